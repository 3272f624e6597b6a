# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Save and restore a gateway's TLS settings for playbooks/rollout.yml.

    rollout_settings.py save SNAPSHOT_DIR ROOT...
    rollout_settings.py restore SNAPSHOT_DIR

save copies every file, symlink and directory under each ROOT directory (the
Postfix configuration directory: main.cf, master.cf, the policy table and its
index), and each ROOT file (a policy table kept elsewhere and its index files;
one that does not exist is noted as absent) into SNAPSHOT_DIR with a
manifest of modes, owners and SHA-256 sums. restore puts back every saved file
whose bytes, mode or owner differ (each written to a temporary file in its
directory and renamed over the old one, so a reader sees the old or the new
file, never a partial one), and removes the files and empty directories that
appeared under a ROOT directory since the save, and the ROOT files noted as
absent (a table or index the rollout created). Both print
JSON: what was saved, or which paths were restored and removed.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(65536), b''):
            digest.update(block)
    return digest.hexdigest()


def walk(root):
    """Every path under ROOT (ROOT included), parents before children."""
    yield root
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            yield os.path.join(top, name)


def describe(path):
    st = os.lstat(path)
    entry = {'path': path, 'mode': st.st_mode & 0o7777, 'uid': st.st_uid, 'gid': st.st_gid}
    if os.path.islink(path):
        entry.update(type='link', target=os.readlink(path))
    elif os.path.isdir(path):
        entry['type'] = 'dir'
    elif os.path.isfile(path):
        entry.update(type='file', sha256=sha256(path))
    else:
        entry['type'] = 'other'
    return entry


def save(snapshot, roots):
    os.makedirs(snapshot, mode=0o700, exist_ok=True)
    manifest = {'roots': [], 'entries': []}
    seen = set()
    for root in roots:
        root = os.path.abspath(root)
        if root in seen or any(root.startswith(d.rstrip('/') + '/') for d in manifest['roots']):
            continue
        seen.add(root)
        if not os.path.lexists(root):
            # a file that does not exist yet (a table or index the rollout may create)
            manifest['entries'].append({'path': root, 'type': 'absent'})
            continue
        if os.path.isdir(root) and not os.path.islink(root):
            manifest['roots'].append(root)
            paths = walk(root)
        else:
            paths = [root]
        for path in paths:
            entry = describe(path)
            if entry['type'] == 'file':
                entry['copy'] = 'f%06d' % len(manifest['entries'])
                shutil.copyfile(path, os.path.join(snapshot, entry['copy']))
            manifest['entries'].append(entry)
    with open(os.path.join(snapshot, 'manifest.json.tmp'), 'w') as handle:
        json.dump(manifest, handle)
    os.replace(os.path.join(snapshot, 'manifest.json.tmp'), os.path.join(snapshot, 'manifest.json'))
    return {'snapshot': snapshot, 'roots': manifest['roots'],
            'files': [e['path'] for e in manifest['entries'] if e['type'] == 'file']}


def put_file(snapshot, entry):
    directory = os.path.dirname(entry['path'])
    fd, tmp = tempfile.mkstemp(prefix='.rollout-restore.', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as out, open(os.path.join(snapshot, entry['copy']), 'rb') as src:
            shutil.copyfileobj(src, out)
            out.flush()
            os.fsync(out.fileno())
        os.chown(tmp, entry['uid'], entry['gid'])
        os.chmod(tmp, entry['mode'])
        os.replace(tmp, entry['path'])
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def restore(snapshot):
    with open(os.path.join(snapshot, 'manifest.json')) as handle:
        manifest = json.load(handle)
    saved = dict((e['path'], e) for e in manifest['entries'])
    restored, removed = [], []
    for entry in manifest['entries']:
        path = entry['path']
        now = describe(path) if os.path.lexists(path) else None
        if now == dict((k, v) for k, v in entry.items() if k != 'copy'):
            continue
        if entry['type'] == 'dir':
            if now is None:
                os.makedirs(path)
            elif now['type'] != 'dir':
                os.unlink(path)
                os.makedirs(path)
            os.chown(path, entry['uid'], entry['gid'])
            os.chmod(path, entry['mode'])
        elif entry['type'] == 'file':
            if now is not None and now['type'] == 'dir':
                shutil.rmtree(path)
            put_file(snapshot, entry)
        elif entry['type'] == 'absent':
            if now is None:
                continue
            if now['type'] == 'dir':
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
            continue
        elif entry['type'] == 'link':
            if now is not None:
                os.unlink(path)
            os.symlink(entry['target'], path)
        else:
            continue
        restored.append(path)
    for root in manifest['roots']:
        for path in reversed(list(walk(root))):
            if path in saved or not os.path.lexists(path):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                if not os.listdir(path):
                    os.rmdir(path)
                    removed.append(path)
            else:
                os.unlink(path)
                removed.append(path)
    return {'snapshot': snapshot, 'restored': restored, 'removed': sorted(removed)}


def main(argv):
    if len(argv) >= 3 and argv[1] == 'save':
        result = save(argv[2], argv[3:])
    elif len(argv) == 3 and argv[1] == 'restore':
        result = restore(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
