#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: tls_probe
short_description: Ask Postfix's posttls-finger whether mail to each destination would be delivered at its TLS level
version_added: 0.1.0
description:
  - Runs on the gateway and answers, for each destination, "would mail to it be delivered at the
    TLS level it would get?" before a stricter level is enforced.
  - The level is the one the SMTP client would use - the O(level) option, else the entry of the
    policy table (C(smtp_tls_policy_maps), looked up with C(postmap -q) the way the SMTP client
    looks it up), else C(smtp_tls_security_level).
  - The connection, the MX selection, the TLS handshake and the certificate checks are Postfix's
    own, by C(posttls-finger) with the level, the entry's match names, trust anchor files,
    protocols and cipher grade, and the C(main.cf) of O(config_dir). posttls-finger only reports;
    whether the SMTP client would defer (and its words) follows C(src/smtp/smtp_proto.c).
  - Never sends mail (posttls-finger says EHLO, STARTTLS and QUIT) and changes nothing, so it
    runs the same in check mode.
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  destinations:
    description:
      - Next-hop destinations in the policy table's key forms - a domain (MX lookup, for example
        V(example.com)), V([host]), V([host]:port), V(host:port), V([ipv6:2001:db8::1]:25).
      - Checked like a policy table key (the M(mailgw.postfix_tls.tls_policy) rules); a next hop
        Postfix refuses, and a C(.domain) key (it names no host to probe), fail the module.
      - Required unless O(levels) is given; with O(levels), defaults to its destinations.
    type: list
    elements: str
  level:
    description:
      - Probe every destination at this level instead of the level it would get today, for
        example the level a role is about to set.
      - Mutually exclusive with O(levels).
    type: str
    choices: [none, may, encrypt, dane, dane-only, fingerprint, verify, secure]
  levels:
    description:
      - Probe each destination at its own level, a mapping of destination to level (one of the
        O(level) choices), for example the levels a planned change gives each destination. All
        of them are probed in this one module call (concurrently, see O(concurrency)).
      - A destination of O(destinations) that is not in it gets the level it would get today.
      - Mutually exclusive with O(level).
    type: dict
  ca_file:
    description:
      - CA certificates (PEM) to verify server certificates with. Default C(smtp_tls_CAfile) of
        O(config_dir).
    type: path
  ca_path:
    description:
      - CA directory (hashed, C(c_rehash)). Default C(smtp_tls_CApath) of O(config_dir).
    type: path
  connect_timeout:
    description: TCP connection and banner timeout per probe, in seconds (posttls-finger C(-t)).
    type: int
    default: 10
  command_timeout:
    description: EHLO, STARTTLS and QUIT timeout per probe, in seconds (posttls-finger C(-T)).
    type: int
    default: 30
  concurrency:
    description: How many probes run at the same time (at least 1).
    type: int
    default: 4
  config_dir:
    description: Postfix configuration directory, for multi-instance Postfix.
    type: path
    default: /etc/postfix
notes:
  - A domain destination is routed as trivial-rewrite routes its mail (RV(destinations[].next_hop),
    RV(destinations[].transport), RV(destinations[].route)) - its address class
    (C(local_transport) for a domain in C(mydestination), refused for one in
    C(virtual_alias_domains), C(virtual_transport) for one in C(virtual_mailbox_domains),
    C(relay_transport) for one in C(relay_domains), else C(default_transport); names, parent
    domains of C(relay_domains), tables and files as Postfix matches them), the C(relayhost) for
    the last two, then C(transport_maps) (asked with C(postmap -q) in Postfix's key order - a
    recipient C(tls-probe@DOMAIN), the domain, its parent domains, C(*); pattern tables only with
    the address and C(*)) - and the next hop's entry is looked up and probed, with the settings
    of the master.cf service of that transport (its C(-o) overrides, for example its own
    C(smtp_tls_security_level) or C(smtp_tls_policy_maps)). A transport that does not run the
    SMTP client (C(discard), C(error), C(lmtp), C(local), ...) is reported without a probe.
    Sender-dependent relayhosts and default transports (named in RV(destinations[].route)),
    virtual alias expansion and transport entries for single addresses are not modelled.
  - With C(smtp_tls_wrappermode = yes) (SMTPS, e.g. a relayhost on port 465) posttls-finger is run
    with C(-w), TLS from the first byte, as the SMTP client speaks; below V(encrypt) the SMTP
    client refuses wrapper mode and the mail defers, which the module reports without a probe.
  - With C(smtp_dns_support_level = disabled) (or C(disable_dns_lookups = yes)) the SMTP client
    looks a domain up as a host name, not its MX records; the module then gives posttls-finger
    the destination in brackets, so it does the same.
  - posttls-finger probes the first address of a destination it can connect to. The SMTP client
    goes on to the next MX host after a TLS failure, so when that first server would defer at
    V(encrypt), V(fingerprint), V(verify) or V(secure), the module probes the domain's other MX
    hosts too, in preference order (their names come from posttls-finger's own lookup), each as
    C([HOST]) held to the domain's names (C(nexthop) and C(dot-nexthop) in the match list and
    C(servername=nexthop) name the domain), up to C(smtp_mx_address_limit) addresses. The mail
    would be delivered when one of them takes it (RV(destinations[].other_mx)). At V(dane) and
    V(dane-only) as well (each host has its own TLSA records), unless the MX records are not
    DNSSEC-validated, which holds for every host alike. The addresses of one MX host are not
    probed one by one (posttls-finger stops at the first that connects).
  - A policy entry Postfix cannot use (empty, unknown level, malformed attribute) is reported as
    deferring with Postfix's words, without a probe. Entry attributes posttls-finger has no
    option for (C(exclude), C(connection_reuse)) and main.cf's cipher exclusions
    (C(smtp_tls_exclude_ciphers), C(smtp_tls_mandatory_exclude_ciphers)) are not applied; the last
    line of RV(destinations[].evidence) names them when they are set. C(servername), its keywords
    V(hostname) and V(nexthop) included, is sent as SNI as the SMTP client sends it.
  - At level V(dane) and V(dane-only) posttls-finger does its own DNSSEC lookups, and without
    usable TLSA records it checks the certificate at V(secure), which is not what the SMTP client
    does. The module probes both levels with posttls-finger at V(dane-only) (which logs what it
    found of the TLSA records and the MX records' DNSSEC status), with
    C(smtp_tls_dane_insecure_mx_policy) as C(-M), and applies the SMTP client's rules
    (smtp_tls_policy.c) to that - at V(dane) no TLSA records or an MX RRset that is not
    DNSSEC-validated mean opportunistic TLS (V(may)) and unusable records mean V(encrypt); at
    V(dane-only) each of them defers the mail (V(no TLSA records found), V(TLSA records
    unusable), V(non DNSSEC destination)). Without C(smtp_dns_support_level = dnssec) and
    V(dns) in C(smtp_host_lookup) the SMTP client treats V(dane) as V(may), and V(dane-only) is a
    configuration problem (deferred without a probe); so does the module.
  - C(trust) is V(untrusted) also for an anonymous TLS session (no server certificate).
attributes:
  check_mode:
    description: Reads and probes only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
  platform:
    description: Needs C(postconf), C(postmap) and C(posttls-finger) of Postfix on the target.
    support: full
    platforms: posix
seealso:
  - module: mailgw.postfix_tls.tls_log_summary
  - module: mailgw.postfix_tls.tls_policy
  - name: posttls-finger(1)
    description: Probe the TLS properties of an ESMTP or LMTP server.
    link: https://www.postfix.org/posttls-finger.1.html
'''

EXAMPLES = r'''
- name: Would these destinations still get mail at encrypt?
  mailgw.postfix_tls.tls_probe:
    destinations: [example.com, "[relay.example.net]:587"]
    level: encrypt
  register: probe

- name: Stop before enforcing TLS when one would defer
  ansible.builtin.assert:
    that: probe.deferring | length == 0
    fail_msg: "{{ probe.destinations | selectattr('would_defer') | map(attribute='reason') | list }}"

- name: Probe each destination at the level a planned change gives it, in one call
  mailgw.postfix_tls.tls_probe:
    levels:
      example.com: verify
      "[relay.example.net]:587": encrypt

- name: Probe at the level each destination gets today (policy table, else the global level)
  mailgw.postfix_tls.tls_probe:
    destinations: "{{ partner_domains }}"
    concurrency: 8
'''

RETURN = r'''
destinations:
  description: One result per destination, in the order given.
  returned: success
  type: list
  elements: dict
  sample:
    - destination: "[127.0.0.1]:2525"
      next_hop: "[127.0.0.1]:2525"
      level: encrypt
      level_source: policy table
      policy_key: "[127.0.0.1]:2525"
      policy: encrypt
      host: 127.0.0.1[127.0.0.1]:2525
      starttls: false
      trust: none
      reachable: true
      would_defer: true
      reason: TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]
      tls: ""
      evidence: ["Connected to 127.0.0.1[127.0.0.1]:2525", "< 250 8BITMIME"]
      other_mx: []
  contains:
    destination:
      description: The destination as given.
      type: str
    next_hop:
      description:
        - The next hop probed, whose policy entry applies - for a domain the one trivial-rewrite
          routes its mail to (the domain itself, the C(relayhost), or a C(transport_maps) next
          hop); other destinations are their own. Null for a transport whose next hop is an
          error text (C(error), C(retry)).
      type: str
    transport:
      description: The master.cf service (transport) that takes the mail, for example V(smtp) or V(relay).
      type: str
      sample: smtp
    route:
      description:
        - What decided the route - V(the domain itself (its MX hosts)), V(relayhost = ...),
          V(transport_maps (TABLE, KEY VALUE)) (the table, then the entry), V(a next hop of its own) - and the master.cf
          overrides of the transport's service that the probe applied; notes follow after
          V(;) (sender-dependent maps, a transport table C(postmap -q) could not read).
      type: str
      sample: "transport_maps (hash:/etc/postfix/transport: example.com relay:[mx.example.com])"
    level:
      description: The level probed.
      type: str
    level_source:
      description: Where the level came from - V(option), V(policy table) or V(smtp_tls_security_level).
      type: str
    policy_key:
      description: The policy table key that matched (for a domain maybe a parent C(.domain)), or null.
      type: str
    policy:
      description: The policy table value that matched, or null.
      type: str
    host:
      description: The server probed as C(NAME[ADDR]:PORT), or null when no connection was made.
      type: str
    starttls:
      description: Whether the server offered STARTTLS; null when no connection was made.
      type: bool
    trust:
      description:
        - What the TLS session was at this level - V(none) (no TLS), V(untrusted) (not verified,
          or anonymous), V(trusted) (chain trusted, name not checked), V(verified) (matched).
      type: str
    would_defer:
      description:
        - Whether the SMTP client would defer mail to it at this level - for a TLS reason, or
          because no server could be reached at all (then RV(destinations[].reachable) is false,
          and the mail defers at any level).
      type: bool
    reachable:
      description:
        - Whether posttls-finger connected to a server of the destination; null when no probe ran
          (a policy entry Postfix cannot use).
      type: bool
    reason:
      description:
        - The SMTP client's words when it would defer (for example V(Server certificate not
          verified)), else posttls-finger's summary of the session.
      type: str
    tls:
      description: Protocol and cipher of the TLS session, empty without TLS.
      type: str
    evidence:
      description:
        - posttls-finger's report (its output lines without the program name); after a TLS
          failure at a domain's first server, the MX hosts in preference order and the report of
          each further host probed, each after a line in parentheses naming it.
      type: list
      elements: str
    other_mx:
      description:
        - The domain's further MX hosts probed after its first server would have deferred for a
          TLS reason, in the order the SMTP client tries them, up to the first that would take the
          mail; empty when there was no need (or no other MX host). When one would take it,
          RV(destinations[].would_defer) is false and RV(destinations[].host),
          RV(destinations[].trust) and RV(destinations[].reason) are that host's; when none would,
          the reason is the last one's (the words Postfix defers the mail with).
      type: list
      elements: dict
      contains:
        mx:
          description: The MX host name.
          type: str
        host:
          description: The server probed as C(NAME[ADDR]:PORT), or null when none connected.
          type: str
        reachable:
          description: Whether posttls-finger connected to it.
          type: bool
        starttls:
          description: Whether it offered STARTTLS.
          type: bool
        trust:
          description: As RV(destinations[].trust).
          type: str
        would_defer:
          description: Whether the SMTP client would defer at this host.
          type: bool
        reason:
          description: As RV(destinations[].reason).
          type: str
        tls:
          description: Protocol and cipher of the TLS session.
          type: str
deferring:
  description: The destinations that would defer, in the order given.
  returned: success
  type: list
  elements: str
  sample: ["[127.0.0.1]:2525"]
commands:
  description: The commands run (postconf, postmap, posttls-finger).
  returned: success
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
    Postmap,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import tls_security_level
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import (
    LEVELS,
    PROBE_PARAMETERS,
    FingerError,
    PosttlsFinger,
    Transports,
    find_policy,
    map_specs,
    probe_destinations,
    probe_options,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    PolicyError,
    PolicyLint,
    normalize_destination,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            destinations=dict(type='list', elements='str'),
            level=dict(type='str', choices=list(LEVELS)),
            levels=dict(type='dict'),
            ca_file=dict(type='path'),
            ca_path=dict(type='path'),
            connect_timeout=dict(type='int', default=10),
            command_timeout=dict(type='int', default=30),
            concurrency=dict(type='int', default=4),
            config_dir=dict(type='path', default='/etc/postfix'),
        ),
        supports_check_mode=True,
        mutually_exclusive=[('level', 'levels')],
        required_one_of=[('destinations', 'levels')],
    )
    p = module.params
    errors = []
    levels = dict((str(name), value) for name, value in (p['levels'] or {}).items())
    for destination, value in sorted(levels.items()):
        if value not in LEVELS:
            errors.append('levels: %s: %r is not a TLS security level (one of %s)'
                          % (destination, value, ', '.join(LEVELS)))
    if p['destinations'] is None:
        p['destinations'] = list(levels)
    for name in ('connect_timeout', 'command_timeout', 'concurrency'):
        if p[name] < 1:
            errors.append('%s: %d is not allowed, it must be at least 1' % (name, p[name]))
    for destination in p['destinations']:
        if destination.startswith('.'):
            errors.append('destinations: %r is a policy key for subdomains, not a next hop to probe: name a '
                          'domain under it' % destination)
            continue
        try:
            normalize_destination(destination)
        except PolicyLint:
            pass        # Postfix would look it up (a collection rule only)
        except PolicyError as exc:
            errors.append('destinations: %s' % exc)
    if errors:
        module.fail_json(msg='; '.join(errors))

    commands = []
    postconf = Postconf(module, p['config_dir'], commands)
    postmap = Postmap(module, p['config_dir'], commands)
    finger = PosttlsFinger(module, p['config_dir'], commands)
    try:
        params = postconf.parameters(PROBE_PARAMETERS, expand=True)
        transports = Transports(postconf, postmap, params)
        transports.route(p['destinations'])

        def query(spec, keys):
            map_type, _sep, name = spec.partition(':')
            return postmap.query(map_type, name, keys)[0]

        plan = []
        for destination in p['destinations']:
            # the entry of the next hop trivial-rewrite routes the mail to (relayhost,
            # transport_maps), in the tables and at the level of the SMTP client that takes it
            route, client, _overridden, why = transports.settings(destination)
            specs = map_specs(client.get('smtp_tls_policy_maps', '')) if not why else []
            entry = find_policy(query, specs, route.next_hop) if specs else None
            if p['level'] or destination in levels:
                level, source = p['level'] or levels[destination], 'option'
            elif entry:
                level, source = None, 'policy table'
            else:
                level, source = tls_security_level(client, 'smtp'), 'smtp_tls_security_level'
            plan.append((destination, level, source, entry))
    except PostfixCommandError as exc:
        module.fail_json(msg='cannot read the TLS policy in %s: %s' % (p['config_dir'], exc),
                         cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr, commands=commands)

    options = probe_options(p['ca_file'], p['ca_path'], p['connect_timeout'], p['command_timeout'])
    try:
        results = probe_destinations(finger, plan, transports, options, p['concurrency'])
    except FingerError as exc:
        module.fail_json(msg=str(exc), commands=commands)

    module.exit_json(changed=False, destinations=results,
                     deferring=[r['destination'] for r in results if r['would_defer']],
                     commands=commands)


if __name__ == '__main__':
    main()
