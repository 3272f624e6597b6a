# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""State every scenario must leave behind after converge (all scenarios run it).

Postfix runs and its configuration passes ``postfix check``; the gateway's
smtpd and every SMTP peer of the scenario listen; every table in
smtp_tls_policy_maps that postmap builds has an index at least as new as its
source, both owned by root with mode 0644 (the role's defaults), as
Postfix itself wants it (it warns about an index older than its source).
"""

# Map types built by postmap, and the index file it writes next to the source.
INDEX_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}


def test_postfix_runs(gateway):
    gateway.run("postfix status")


def test_postfix_check_is_clean(gateway):
    out = gateway.run("postfix check 2>&1")
    assert out.strip() == "", "postfix check complained: %s" % out


def test_smtpd_and_every_peer_listen(gateway):
    expected = {("127.0.0.1", 25)} | {
        (peer["listen"], int(peer.get("port", 25))) for peer in gateway.vars.get("mailgw_test_peers", [])}
    missing = expected - gateway.listening()
    assert not missing, "nothing listens on %s" % sorted(missing)


def test_policy_tables_are_indexed(gateway):
    maps = gateway.run("postconf -x -h smtp_tls_policy_maps").replace(",", " ").split()
    assert maps, "smtp_tls_policy_maps is empty"
    for spec in maps:
        map_type, _sep, path = spec.partition(":")
        files = [path] + ([path + INDEX_SUFFIX[map_type]] if map_type in INDEX_SUFFIX else [])
        stats = {}
        for line in gateway.run("stat -c %s" + " %s" * len(files), "%n %U %G %a %Y", *files).splitlines():
            name, user, group, mode, mtime = line.rsplit(" ", 4)
            stats[name] = (user, group, mode, int(mtime))
        for name in files:
            assert stats[name][:3] == ("root", "root", "644"), "%s: owner, group, mode %s" % (name, stats[name][:3])
        if len(files) == 2:
            assert stats[files[1]][3] >= stats[files[0]][3], (
                "%s (%s) is older than its source %s (%s)" % (files[1], stats[files[1]][3], files[0], stats[files[0]][3]))
