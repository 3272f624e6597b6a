# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a collection module directly, outside Ansible, as Ansible would on the
target (``python MODULE ARGS.json``), optionally under cProfile.

This isolates the module's own time from Ansible's task overhead (templating
the arguments, building the AnsiballZ payload, the connection), and is what
the profile in bench/README.md was taken with:

    source scripts/env.sh
    python bench/module_direct.py --profile tls_policy ARGS.json
"""

import argparse
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def tree():
    """The checkout of the collection being measured (bench/run --tree), else this one."""
    return os.environ.get('BENCH_TREE') or ROOT


def module_path(name):
    return os.path.join(tree(), 'plugins', 'modules', name + '.py')


def collections_dir():
    return os.environ.get('COLLECTIONS_DIR') or os.path.join(ROOT, '.cache', 'collections')


def write_args(path, args):
    with open(path, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    return path


def run_module(name, args_file, timeout, env=None, profile_out=None):
    """Returns dict(seconds, rc, result or None, timed_out, stderr)."""
    cmd = [sys.executable]
    if profile_out:
        cmd += ['-m', 'cProfile', '-o', profile_out]
    cmd += [module_path(name), args_file]
    run_env = dict(env or os.environ)
    run_env['PYTHONPATH'] = collections_dir()
    start = time.monotonic()
    cpu_start = _children_cpu()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=run_env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        return dict(seconds=time.monotonic() - start, cpu=None, rc=None, result=None, timed_out=True,
                    stderr=(e.stderr or b'').decode('utf-8', 'replace')[-2000:])
    seconds = time.monotonic() - start
    cpu = _children_cpu() - cpu_start
    result = None
    out = proc.stdout.decode('utf-8', 'replace')
    # AnsibleModule prints exactly one JSON document.
    try:
        result = json.loads(out[out.index('{'):])
    except ValueError:
        result = None
    return dict(seconds=seconds, cpu=cpu, rc=proc.returncode, result=result, timed_out=False,
                stderr=proc.stderr.decode('utf-8', 'replace')[-2000:])


def _children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def top_functions(profile_out, limit=25, sort='cumulative'):
    buf = io.StringIO()
    stats = pstats.Stats(profile_out, stream=buf)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return buf.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('module', help='tls_policy or postconf')
    parser.add_argument('args_file', help='JSON file {"ANSIBLE_MODULE_ARGS": {...}}')
    parser.add_argument('--profile', action='store_true', help='run under cProfile and print the top functions')
    parser.add_argument('--sort', default='cumulative', help='pstats sort key (cumulative, tottime)')
    parser.add_argument('--timeout', type=float, default=600)
    opts = parser.parse_args()
    prof = opts.args_file + '.prof' if opts.profile else None
    res = run_module(opts.module, opts.args_file, opts.timeout, profile_out=prof)
    print('seconds=%.3f cpu=%s rc=%s timed_out=%s' % (res['seconds'], res['cpu'] and round(res['cpu'], 3),
                                                      res['rc'], res['timed_out']))
    if res['result'] is not None:
        summary = dict((k, v if not isinstance(v, list) else len(v))
                       for k, v in res['result'].items() if k not in ('invocation', 'diff'))
        print(json.dumps(summary, sort_keys=True))
    elif res['stderr']:
        print(res['stderr'])
    if prof and os.path.exists(prof):
        print(top_functions(prof, sort=opts.sort))


if __name__ == '__main__':
    main()
