# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the time of one tls_policy run goes, phase by phase.

Runs plugins/modules/tls_policy.py in this process with the arguments of
ARGS.json (as `python tls_policy.py ARGS.json` does) and wraps its phases
with timers: imports, AnsibleModule (Ansible's argument validation of
entries[]), desired_entries (the collection's validation), resolve_map and
check_postfix_support (postconf calls), apply (read, parse, edit, render),
write (postmap build and verification), exit_json (Ansible's result
scrubbing and JSON).  Prints a table to stderr; the module's JSON goes to
stdout as usual.

    source scripts/env.sh
    PYTHONPATH=$COLLECTIONS_DIR python bench/phases.py ARGS.json [--json OUT.json]
"""

import argparse
import importlib.util
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PHASES = []


def _children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Timer:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.child = _children_cpu()
        return self

    def __exit__(self, *exc):
        PHASES.append((self.name, time.perf_counter() - self.wall, time.process_time() - self.cpu,
                       _children_cpu() - self.child))
        return False


def wrap(owner, attr, name):
    original = getattr(owner, attr, None)
    if original is None:  # the module changed; time what still exists
        return

    def timed(*args, **kwargs):
        with Timer(name):
            return original(*args, **kwargs)
    setattr(owner, attr, timed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('args_file')
    parser.add_argument('--json', help='also write the phases to this file')
    opts = parser.parse_args()
    sys.argv = [sys.argv[0], opts.args_file]
    total = Timer('total')
    total.__enter__()
    with Timer('import module and module_utils'):
        spec = importlib.util.spec_from_file_location(
            'tls_policy_bench', os.path.join(os.environ.get('BENCH_TREE') or ROOT, 'plugins', 'modules', 'tls_policy.py'))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    from ansible.module_utils import basic
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils import postfix_commands, table_transaction
    # the table logic: module_utils' TlsPolicyTable, or the module's own class in older trees (--tree)
    table_class = getattr(mod, 'TlsPolicyModule', None)
    if table_class is None:
        from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_table import TlsPolicyTable
        table_class = TlsPolicyTable
    wrap(basic.AnsibleModule, '__init__', 'AnsibleModule(): argument validation')
    wrap(basic.AnsibleModule, '_return_formatted', 'exit_json: result scrubbing + JSON')
    wrap(table_class, 'desired_entries', 'desired_entries: grammar validation')
    wrap(table_class, 'resolve_map', 'resolve_map: postconf calls')
    wrap(table_class, 'check_postfix_support', 'check_postfix_support')
    wrap(table_transaction.TableTransaction, 'commit', 'write: temp file, postmap build, verify, rename')
    wrap(table_transaction.TableTransaction, 'verify', '  of which verify (postmap -q)')
    wrap(table_class, 'apply', 'apply: read, parse, edit, render (+ write)')
    wrap(table_transaction.TableTransaction, 'apply_attributes', 'apply_attributes')
    wrap(postfix_commands.Postmap, 'build', '  of which postmap build')
    wrap(postfix_commands.PostfixCommand, '_run', '(every postconf/postmap process)')
    rc = 0
    try:
        mod.main()
    except SystemExit as e:
        rc = e.code
    total.__exit__()
    agg = {}
    order = []
    for name, wall, cpu, child in PHASES:
        if name not in agg:
            agg[name] = [0, 0.0, 0.0, 0.0]
            order.append(name)
        a = agg[name]
        a[0] += 1
        a[1] += wall
        a[2] += cpu
        a[3] += child
    sys.stdout.flush()
    err = sys.stderr
    err.write('\n%-48s %5s %9s %9s %9s\n' % ('phase', 'calls', 'wall', 'cpu', 'child cpu'))
    for name in order:
        n, wall, cpu, child = agg[name]
        err.write('%-48s %5d %8.3fs %8.3fs %8.3fs\n' % (name, n, wall, cpu, child))
    if opts.json:
        import json
        with open(opts.json, 'w') as f:
            json.dump(dict(rc=rc,
                           phases=[dict(name=name.strip(), calls=agg[name][0], wall=round(agg[name][1], 3),
                                        cpu=round(agg[name][2], 3), child_cpu=round(agg[name][3], 3))
                                   for name in order]), f, indent=1)
    return rc


if __name__ == '__main__':
    sys.exit(main())
