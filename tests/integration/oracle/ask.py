# SPDX-License-Identifier: GPL-3.0-or-later
"""Ask a private Postfix instance whether it uses TLS policy entries.

    python -m tests.integration.oracle.ask '[127.0.0.9]:2525 encrypt bogus=1' 'example.test may'
    python -m tests.integration.oracle.ask --map-type texthash 'a.test may' 'A.test encrypt'
    python -m tests.integration.oracle.ask --json ...
    python -m tests.integration.oracle.ask --image bullseye 'example.test encrypt protocols=>=TLSv1.2'

Each argument is one table line (KEY VALUE).  Keys may be any form Postfix
takes as a next hop; host names resolve to loopback inside the instance's
private /etc/hosts, IP addresses must be loopback (127.0.0.0/8, ::1); a key
without a port uses the instance's peer port.  Prints, per entry, the
module's verdict (its grammar: normalize_destination + parse_policy) and
Postfix's verdict (used / rejected / ignored / unmatched / unknown) with the
log lines.  Exit status: 0 when the two agree on every entry (module
accepts <=> Postfix uses), 1 otherwise, 2 on a usage or set-up error.
Run from the repository root with the venv (source scripts/env.sh), as root.
--image SUITE asks the Postfix of a test image (localhost/mailgw-postfix:SUITE,
e.g. bullseye for 3.5, sid for 3.11) instead of the host's: the same command
runs in a throwaway container of it (in_image.py).
"""

import argparse
import json
import sys

from .instance import Oracle, OracleError, unavailable_reason
from .module_side import view_line


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.integration.oracle.ask',
                                     description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('lines', nargs='+', metavar="'KEY VALUE'")
    parser.add_argument('--map-type', default='hash', help='hash (default), btree, cdb, lmdb, texthash')
    parser.add_argument('--json', action='store_true', help='one JSON document instead of text')
    parser.add_argument('--keep', action='store_true', help='keep the instance directory (printed)')
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds to wait for delivery statuses')
    parser.add_argument('--image', metavar='SUITE',
                        help="ask the Postfix of localhost/mailgw-postfix:SUITE (a container) instead of the host's")
    args = parser.parse_args(argv)
    if args.image:
        return ask_in_image(args.image, list(sys.argv[1:] if argv is None else argv))
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    entries = []
    for line in args.lines:
        key, _sep, value = line.strip().partition(' ')
        entries.append((key, value.strip()))
    if args.map_type != 'texthash':
        keys = [k.lower() for k, _v in entries]
        if len(set(keys)) != len(keys):
            print('two entries share a key (keys are case-insensitive); ask about them in separate runs, '
                  'or use --map-type texthash to see what a duplicate does', file=sys.stderr)
            return 2
    oracle = Oracle(keep=args.keep, round_timeout=args.timeout)
    try:
        oracle.start()
        verdicts = oracle.ask(entries, map_type=args.map_type)
        version = oracle.mail_version()
    except OracleError as exc:
        print('oracle failed: %s' % exc, file=sys.stderr)
        return 2
    finally:
        oracle.stop()
    disagree = 0
    report = []
    for verdict in verdicts:
        module = view_line(verdict.key, verdict.value, version)
        agree = module.accepted == (verdict.verdict == 'used')
        disagree += not agree
        report.append(dict(line=verdict.line, postfix=verdict.verdict, status=verdict.status,
                           reason=verdict.reason, lookup=verdict.lookup, evidence=verdict.evidence,
                           module='accepts' if module.accepted else 'refuses',
                           module_message=module.message, module_value=module.value,
                           module_warnings=module.warnings, agree=agree))
    if args.json:
        json.dump(dict(entries=report, instance=oracle.base if args.keep else None), sys.stdout, indent=2)
        print()
    else:
        for item in report:
            print('%s\n  postfix: %s (%s: %s)\n  module:  %s%s%s' % (
                item['line'], item['postfix'], item['status'], item['reason'],
                item['module'], ' -> %r' % item['module_value'] if item['module_value'] else '',
                ': %s' % item['module_message'] if item['module_message'] else ''))
            if not item['agree']:
                print('  DIVERGENCE')
            for line in item['evidence']:
                print('    ' + line)
        if args.keep:
            print('instance kept in %s' % oracle.base)
    return 1 if disagree else 0


def ask_in_image(suite, argv):
    """This command, without --image, in a throwaway container of SUITE's image."""
    import subprocess
    import tempfile
    from .in_image import ImageUnavailable, container_argv, container_name
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--image':
            skip = True
        elif not arg.startswith('--image='):
            rest.append(arg)
    with tempfile.TemporaryDirectory(prefix='mailgw-ask-') as tmp:
        try:
            command = container_argv(suite, tmp, container_name(suite),
                                     ['/usr/bin/python3', '-m', 'oracle.ask'] + rest)
        except ImageUnavailable as exc:
            print(exc, file=sys.stderr)
            return 2
        return subprocess.run(command, check=False).returncode


if __name__ == '__main__':
    sys.exit(main())
