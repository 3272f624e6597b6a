# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/execution-environment.yml with the real ansible-builder (pinned in requirements-dev.txt).

The collection tarball is built, an execution environment definition installs
it, and ``ansible-builder create`` writes the build context. No image is built:
the context's galaxy step (the Containerfile's ``ansible-galaxy collection
install`` in /build, which is the context's _build directory) runs here, into a
temporary collections directory, and the context's own introspect script (what
the image build runs to collect the collections' requirements) reads the
installed collection's meta/execution-environment.yml.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import yaml

from ansible_env import REPO, ansible_env, tool

# meta/ee-bindep.txt, as the introspection reports it (meta/ee-requirements.txt lists no package)
EXPECTED_SYSTEM = ['openssh-client [platform:dpkg]  # from collection mailgw.postfix_tls',
                   'openssh-clients [platform:rpm]  # from collection mailgw.postfix_tls']


def ansible_core_pin():
    with open(os.path.join(REPO, 'requirements-dev.txt')) as handle:
        return re.search(r'^ansible-core==\S+', handle.read(), re.M).group(0)


def test_builder_context_installs_the_collection(tmp_path):
    env = ansible_env(tmp_path, ANSIBLE_GALAXY_DISABLE_GPG_VERIFY='1')
    dist = tmp_path / 'dist'
    subprocess.run([tool('ansible-galaxy'), 'collection', 'build', '--output-path', str(dist), REPO],
                   check=True, capture_output=True, env=env)
    [tarball] = list(dist.glob('mailgw-postfix_tls-*.tar.gz'))
    version = json.loads(subprocess.run(['tar', '-xzOf', str(tarball), 'MANIFEST.json'], check=True,
                                        capture_output=True).stdout)['collection_info']['version']

    definition = {
        'version': 3,
        'images': {'base_image': {'name': 'quay.io/centos/centos:stream9'}},
        'dependencies': {
            'ansible_core': {'package_pip': ansible_core_pin()},
            'ansible_runner': {'package_pip': 'ansible-runner'},
            'galaxy': {'collections': [{'name': 'collections/%s' % tarball.name, 'type': 'file'}]},
        },
        'additional_build_files': [{'src': str(tarball), 'dest': 'collections'}],
    }
    ee_file = tmp_path / 'execution-environment.yml'
    ee_file.write_text(yaml.safe_dump(definition))
    context = tmp_path / 'context'
    proc = subprocess.run([tool('ansible-builder'), 'create', '-f', str(ee_file), '-c', str(context)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    build = context / '_build'
    containerfile = (context / 'Containerfile').read_text()
    assert 'COPY _build /build' in containerfile and 'WORKDIR /build' in containerfile
    assert (build / 'collections' / tarball.name).is_file()
    [install] = [line for line in containerfile.splitlines()
                 if line.startswith('RUN ') and 'ansible-galaxy collection install' in line]

    # The galaxy step as the image build runs it, in /build (= _build), into a local directory.
    argv = shlex.split(install[len('RUN '):].replace('$ANSIBLE_GALAXY_CLI_COLLECTION_OPTS', ''))
    assignments = dict(a.split('=', 1) for a in argv if re.match(r'^[A-Z_]+=', a))
    argv = [a for a in argv if not re.match(r'^[A-Z_]+=', a)]
    target = tmp_path / 'usr-share-ansible-collections'
    argv[argv.index('--collections-path') + 1] = str(target)
    argv[0] = tool('ansible-galaxy')
    # Only the image's collections: this working tree, linked in .cache/collections, would count
    # as installed already.
    proc = subprocess.run(argv, cwd=str(build), capture_output=True, text=True, check=False,
                          env=dict(env, ANSIBLE_COLLECTIONS_PATH=str(target), **assignments))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = target / 'ansible_collections' / 'mailgw' / 'postfix_tls'
    manifest = json.loads((installed / 'MANIFEST.json').read_text())['collection_info']
    assert (manifest['namespace'], manifest['name'], manifest['version']) == ('mailgw', 'postfix_tls', version)
    assert (installed / 'meta' / 'execution-environment.yml').is_file()

    # What the image build then collects from the installed collections.
    proc = subprocess.run([sys.executable, str(build / 'scripts' / 'introspect.py'), 'introspect', str(target)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout)
    assert found['system'] == EXPECTED_SYSTEM, proc.stdout
    assert found['python'] == [], proc.stdout
