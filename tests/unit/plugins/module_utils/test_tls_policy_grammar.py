# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TLS policy entry grammar: keys, levels, attributes, every rule Postfix enforces."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    LEVELS,
    PolicyError,
    build_policy,
    canonical_protocols,
    normalize_destination,
    parse_policy,
    same_policy,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
from tests.support.lookup_tables import postfix_view

SHA256 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E'
SHA1_PLAIN = 'a9b8c7d6e5f40312a9b8c7d6e5f40312a9b8c7d6'


def error(func, *args, **kwargs):
    with pytest.raises(PolicyError) as info:
        func(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------
# destinations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('given, key', [
    ('example.com', 'example.com'),
    ('Example.COM', 'example.com'),
    ('.Example.com', '.example.com'),
    ('localhost', 'localhost'),
    ('[mx.example.com]', '[mx.example.com]'),
    ('[MX.example.com]:587', '[mx.example.com]:587'),
    ('[mx.example.com]:submission', '[mx.example.com]:submission'),
    ('[192.0.2.1]', '[192.0.2.1]'),
    ('[127.0.0.1]:10025', '[127.0.0.1]:10025'),
    ('[ipv6:2001:DB8::1]', '[ipv6:2001:db8::1]'),
    ('[IPv6:2001:db8::1]:587', '[ipv6:2001:db8::1]:587'),
    ('_smtp.example.com', '_smtp.example.com'),
    ('xn--bcher-kva.de', 'xn--bcher-kva.de'),
])
def test_destination_forms_are_accepted_and_folded(given, key):
    assert normalize_destination(given) == (key, [])


def test_unbracketed_host_port_warns_that_mx_delivery_never_looks_it_up():
    key, warnings = normalize_destination('example.com:25')
    assert key == 'example.com:25'
    assert len(warnings) == 1
    assert "'example.com:25'" in warnings[0] and "'example.com'" in warnings[0]


@pytest.mark.parametrize('destination', ['[example.com]:25', '[127.0.0.1]:25', '.example.com', 'example.com'])
def test_bracketed_or_plain_keys_do_not_warn(destination):
    assert normalize_destination(destination)[1] == []


def test_unbracketed_ip_address_warns():
    key, warnings = normalize_destination('192.0.2.1')
    assert key == '192.0.2.1'
    assert '[192.0.2.1]' in warnings[0]


@pytest.mark.parametrize('destination, fragment', [
    ('', 'non-empty'),
    ('exa mple.com', 'whitespace'),
    ('example.com\n', 'whitespace'),
    ('a.com,b.com', 'comma'),
    ('[example.com', 'unbalanced'),
    ('example.com]', 'unbalanced'),
    ('[[example.com]]', 'bracket'),
    ('[example.com]x', ':port'),
    ('[]', 'empty host'),
    ('[example.com]:0', 'port'),
    ('[example.com]:65536', 'port'),
    ('[example.com]:', 'port'),
    ('[example.com]:0x19', 'garbage after numerical service'),
    ('example.com:sm tp', 'whitespace'),
    ('example.com:p@rt', 'port'),
    ('[ipv6:2001:db8::zz]', 'not a valid IPv6'),
    ('[ipv6:]', 'not a valid IPv6'),
    ('[2001:db8::zz]', 'not a valid IPv6'),
    ('[fe80::1%eth0]', 'not a valid IPv6'),
    ('[ipv6:12345::1]', 'malformed IPv6 address'),
    ('2001:db8::1', '[ipv6:'),
    ('ipv6:2001:db8::1', 'brackets'),
    ('[300.1.1.1]', 'numeric hostname'),
    ('[0.1.2.3]', 'numeric hostname'),
    ('[123]', 'numeric hostname'),
    ('123', 'numeric hostname'),
    ('[192.0.2.1.5]', 'numeric hostname'),
    ('*', 'no wildcards'),
    ('*.example.com', 'no wildcards'),
    ('#example.com', 'comment'),
    ('example.com.', 'trailing dot'),
    ('exa..mple.com', 'empty label'),
    ('-example.com', 'misplaced hyphen'),
    ('example-.com', 'misplaced hyphen'),
    ('ex*ample.com', 'invalid character'),
    ('.example.com:25', 'takes no port'),
    ('[.example.com]', 'leading dot'),
    ('.', 'empty'),
    ('a' * 64 + '.com', 'longer than 63'),
])
def test_invalid_destinations_fail_naming_the_value(destination, fragment):
    message = error(normalize_destination, destination)
    assert repr(destination) in message
    assert fragment in message


def test_utf8_destination_is_kept_verbatim_and_warns_about_the_a_label():
    # Postfix converts no lookup key between UTF-8 and A-labels (SMTPUTF8_README)
    key, warnings = normalize_destination('bücher.de')
    assert key == 'bücher.de'
    assert len(warnings) == 1
    assert "'bücher.de'" in warnings[0] and "'xn--bcher-kva.de'" in warnings[0]


def test_utf8_subdomain_and_bracket_forms_warn_with_their_own_a_label():
    assert "'.xn--bcher-kva.de'" in normalize_destination('.bücher.de')[1][0]
    assert "'[xn--bcher-kva.de]:25'" in normalize_destination('[bücher.de]:25')[1][0]
    assert normalize_destination('[Bücher.DE]:25')[0] == '[bücher.de]:25'


def test_non_string_destination_fails():
    assert 'non-empty string' in error(normalize_destination, None)


# ---------------------------------------------------------------------------
# levels and rendering
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('level', LEVELS)
def test_every_level_alone_renders_as_itself(level):
    if level == 'fingerprint':
        assert build_policy(level, match=[SHA256]).render() == 'fingerprint match=' + SHA256
    else:
        assert build_policy(level).render() == level


def test_unknown_level_fails_naming_it():
    message = error(build_policy, 'mandatory')
    assert "'mandatory'" in message and 'invalid security level' in message


def test_level_is_case_insensitive_and_rendered_lower_case():
    assert build_policy('SECURE').render() == 'secure'


def test_full_render_order_is_fixed():
    policy = build_policy('secure', match=['nexthop', 'dot-nexthop'], ciphers='high',
                          protocols=['!SSLv2', '!SSLv3'], exclude=['aNULL', 'MD5'],
                          tafile=['/etc/ssl/ta.pem'], servername='hostname',
                          connection_reuse=True, enable_rpk=False)
    assert policy.render() == ('secure match=nexthop:dot-nexthop tafile=/etc/ssl/ta.pem ciphers=high '
                               'protocols=!SSLv2:!SSLv3 exclude=aNULL:MD5 servername=hostname '
                               'connection_reuse=yes enable_rpk=no')


def test_fingerprint_match_values_are_joined_with_a_bar():
    policy = build_policy('fingerprint', match=[SHA256, SHA1_PLAIN])
    assert policy.render() == 'fingerprint match=%s|%s' % (SHA256, SHA1_PLAIN)


def test_repeated_tafile_renders_one_attribute_each():
    assert build_policy('verify', tafile=['/a.pem', '/b.pem']).render() == \
        'verify tafile=/a.pem tafile=/b.pem'


def test_empty_lists_mean_not_set():
    assert build_policy('may', match=[], protocols=[], exclude=[], tafile=[]).render() == 'may'


# ---------------------------------------------------------------------------
# one test per rule Postfix enforces
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('name, value', [
    ('ciphers', 'high'), ('protocols', ['>=TLSv1.2']), ('exclude', ['aNULL']),
    ('servername', 'hostname'), ('connection_reuse', True), ('enable_rpk', False),
])
def test_attributes_at_level_none_are_refused(name, value):
    message = error(build_policy, 'none', **{name: value})
    assert name in message and repr(value) in message and 'level none' in message


@pytest.mark.parametrize('level', ['may', 'encrypt', 'dane', 'dane-only'])
def test_match_is_invalid_below_fingerprint(level):
    message = error(build_policy, level, match=['nexthop'])
    assert "['nexthop']" in message
    assert 'attribute "match" invalid at security level "%s"' % level in message


def test_match_at_level_none_is_refused():
    assert 'level none' in error(build_policy, 'none', match=['nexthop'])


@pytest.mark.parametrize('level', ['may', 'encrypt', 'dane', 'dane-only', 'fingerprint'])
def test_tafile_is_only_valid_at_verify_and_secure(level):
    kwargs = {'match': [SHA256]} if level == 'fingerprint' else {}
    message = error(build_policy, level, tafile=['/etc/ta.pem'], **kwargs)
    assert "/etc/ta.pem" in message and 'tafile' in message and level in message


def test_tafile_must_be_absolute():
    assert "'ta.pem'" in error(build_policy, 'secure', tafile=['ta.pem'])


@pytest.mark.parametrize('value', ['', ' '])
def test_empty_match_value_is_refused(value):
    message = error(build_policy, 'secure', match=[value])
    assert 'match' in message


@pytest.mark.parametrize('value, fragment', [
    ('a.example b.example', "' '"),
    ('a.example,b.example', "','"),
    ('a.example\nb.example', "'\\n'"),
    ('a.example\tb', "'\\t'"),
    ('{a.example}', "'{'"),
])
def test_match_values_cannot_inject_tokens_or_lines(value, fragment):
    message = error(build_policy, 'verify', match=[value])
    assert repr(value) in message and fragment in message


def test_verify_match_value_with_colon_is_refused():
    message = error(build_policy, 'verify', match=['nexthop:hostname'])
    assert "'nexthop:hostname'" in message and 'list item' not in message and '":"' in message


def test_verify_match_value_must_be_a_host_name_or_keyword():
    assert "'ex@mple'" in error(build_policy, 'secure', match=['ex@mple'])


def test_verify_match_accepts_dot_domain_and_keywords():
    assert build_policy('secure', match=['.example.com', 'dot-nexthop', 'hostname']).render() == \
        'secure match=.example.com:dot-nexthop:hostname'


@pytest.mark.parametrize('value, fragment', [
    ('zz:11', 'not a certificate or public key fingerprint'),
    ('AB:CD', 'bytes long'),
    (SHA256 + '|' + SHA256, '"|"'),
    ('3D953', 'not a certificate'),
])
def test_fingerprint_match_values_must_be_digests(value, fragment):
    message = error(build_policy, 'fingerprint', match=[value])
    assert repr(value) in message and fragment in message


@pytest.mark.parametrize('grade', ['HIGH', 'medium', 'low', 'export', 'null'])
def test_cipher_grades(grade):
    assert build_policy('may', ciphers=grade).render() == 'may ciphers=' + grade.lower()
    assert build_policy('secure', ciphers=grade).render() == 'secure ciphers=' + grade.lower()


def test_cipher_grade_null_at_encrypt_leaves_no_cipher():
    # set_cipher_grade() adds eNULL to the exclusions at level encrypt (oracle finding F2)
    assert 'no cipher match' in postfix_error(build_policy, 'encrypt', ciphers='NULL')


def test_unknown_cipher_grade_is_refused():
    message = error(build_policy, 'encrypt', ciphers='strong')
    assert "'strong'" in message and 'cipher grade' in message


@pytest.mark.parametrize('given, table', [
    (['!SSLv2', '!SSLv3'], '!SSLv2:!SSLv3'),
    ('!SSLv2:!SSLv3', '!SSLv2:!SSLv3'),
    (['!sslv2:!sslv3', '!TLSV1'], '!SSLv2:!SSLv3:!TLSv1'),
    (['>=TLSv1.2'], '>=TLSv1.2'),
    (['>=TLSv1.2', '<=TLSv1.3'], '>=TLSv1.2:<=TLSv1.3'),
    (['TLSv1.2', 'TLSv1.3'], 'TLSv1.2:TLSv1.3'),
    ([' !SSLv2 '], '!SSLv2'),
])
def test_protocols_render_colon_separated(given, table):
    assert canonical_protocols(given) == table
    assert build_policy('may', protocols=given).render() == 'may protocols=' + table


@pytest.mark.parametrize('given, fragment', [
    (['TLSv1.4'], "unknown protocol 'TLSv1.4'"),
    (['!SSLv4'], "'!SSLv4'"),
    (['=>TLSv1.2'], "'=>TLSv1.2'"),
    (['!SSLv2 !SSLv3'], 'whitespace'),
    (['!SSLv2,!SSLv3'], "','"),
    (['!SSLv2::!SSLv3'], 'empty element'),
    (['>=SSLv2'], 'Invalid TLS protocol list'),
    (['<=TLSv1.4'], 'Invalid TLS protocol list'),
    (['>=0x1FFFFFFFF'], 'out of range'),
    (['>=TLSv1.3', '<=TLSv1.2'], 'leaves no protocol'),
    (['TLSv1.2', '!TLSv1.2'], 'leaves no protocol'),
    (['!SSLv2', '!SSLv3', '!TLSv1', '!TLSv1.1', '!TLSv1.2', '!TLSv1.3'], 'leaves no protocol'),
    (['>=TLSv1.3', '!TLSv1.3'], 'leaves no protocol'),
])
def test_bad_protocols_are_refused(given, fragment):
    message = error(build_policy, 'encrypt', protocols=given)
    assert fragment in message
    assert 'protocols' in message


def test_exclude_joins_with_colons():
    assert build_policy('may', exclude=['aNULL:eNULL', 'RC4']).render() == 'may exclude=aNULL:eNULL:RC4'


@pytest.mark.parametrize('given, fragment', [
    (['aNULL MD5'], 'whitespace'),
    (['aNULL:'], 'empty element'),
    (['a/b'], "'a/b'"),
    (['-RC4'], 'invalid unary'),
    (['RC4|MD5'], "'RC4|MD5'"),
])
def test_bad_exclude_is_refused(given, fragment):
    message = error(build_policy, 'may', exclude=given)
    assert fragment in message and 'exclude' in message


@pytest.mark.parametrize('value, table', [
    ('hostname', 'hostname'), ('nexthop', 'nexthop'), ('mx.example.com', 'mx.example.com'),
    ('MX.Example.com', 'MX.Example.com'), ('a' * 63 + '.' + 'b' * 63 + '.' + 'c' * 63 + '.' + 'd' * 63,
                                           'a' * 63 + '.' + 'b' * 63 + '.' + 'c' * 63 + '.' + 'd' * 63),
])
def test_servername(value, table):
    assert build_policy('secure', servername=value).render() == 'secure servername=' + table


@pytest.mark.parametrize('value', ['', 'mx example', 'mx_.exa$mple', 'mx.example.com.'])
def test_bad_servername_is_refused(value):
    message = error(build_policy, 'secure', servername=value)
    assert 'servername' in message
    if value:
        assert repr(value) in message


@pytest.mark.parametrize('name', ['connection_reuse', 'enable_rpk'])
def test_boolean_attributes(name):
    assert build_policy('encrypt', **{name: True}).render() == 'encrypt %s=yes' % name
    assert build_policy('encrypt', **{name: 'No'}).render() == 'encrypt %s=no' % name
    assert "'maybe'" in error(build_policy, 'encrypt', **{name: 'maybe'})


def test_minimum_postfix_versions():
    assert build_policy('may').minimum_postfix_version() is None
    assert build_policy('may', protocols='!SSLv2').minimum_postfix_version() is None
    assert build_policy('may', protocols='>=TLSv1.2').minimum_postfix_version()[0] == (3, 6)
    assert build_policy('may', servername='hostname').minimum_postfix_version()[0] == (3, 4)
    assert build_policy('may', enable_rpk=True, protocols='>=TLSv1.2').minimum_postfix_version() == \
        ((3, 9), 'the enable_rpk attribute')


# ---------------------------------------------------------------------------
# reading existing values
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('text, canonical', [
    ('secure', 'secure'),
    ('SECURE  match=nexthop:dot-nexthop', 'secure match=nexthop:dot-nexthop'),
    ('secure,match=nexthop , match=dot-nexthop', 'secure match=nexthop:dot-nexthop'),
    ('may ciphers=HIGH protocols=!SSLv2:!SSLv3', 'may ciphers=high protocols=!SSLv2:!SSLv3'),
    ('fingerprint match=%s|%s' % (SHA256, SHA1_PLAIN), 'fingerprint match=%s|%s' % (SHA256, SHA1_PLAIN)),
    ('verify Match=a.example\ttafile=/x.pem', 'verify match=a.example tafile=/x.pem'),
])
def test_parse_policy_reads_what_postfix_reads(text, canonical):
    assert parse_policy(text).render() == canonical


@pytest.mark.parametrize('text, postfix_message', [
    ('', 'invalid empty policy'),
    ('mandatory', 'invalid security level "mandatory"'),
    ('may ciphers', 'malformed attribute/value pair "ciphers"'),
    ('may ciphers=', 'attribute "ciphers" has empty value'),
    ('may ciphers=high ciphers=low', 'attribute "ciphers" is specified multiple times'),
    ('may color=blue', 'invalid attribute name: "color"'),
    ('encrypt match=nexthop', 'attribute "match" invalid at security level "encrypt"'),
])
def test_parse_policy_reports_postfix_complaints(text, postfix_message):
    assert postfix_message in error(parse_policy, text)


def test_brace_form_is_malformed_before_postfix_3_10_and_read_from_3_10():
    assert 'malformed attribute/value pair "{"' in error(parse_policy, 'may { ciphers = high }', (3, 7, 11))
    policy = parse_policy('may { ciphers = high }', (3, 10, 5))
    assert policy.render() == 'may ciphers=high' and 'brace_form' in policy.features


def test_same_policy_compares_meaning_not_spelling():
    assert same_policy('SECURE,match=nexthop', 'secure match=nexthop')
    assert not same_policy('secure match=hostname', 'secure match=nexthop')
    assert not same_policy('secure bogus', 'secure')


@pytest.mark.parametrize('kwargs', [
    {'level': 'secure', 'match': ['mx.\u212aexample.com']},       # KELVIN SIGN folds to "k"
    {'level': 'verify', 'match': ['.\u017fub.example']},          # LONG S folds to "s"
    {'level': 'may', 'servername': '\u212a.example.com'},
])
def test_non_ascii_letters_that_fold_to_ascii_are_refused(kwargs):
    with pytest.raises(PolicyError):
        build_policy(**kwargs)


@pytest.mark.parametrize('kwargs', [
    {'level': 'may', 'protocols': ['>=TLSv1.2\n']},
    {'level': 'may', 'protocols': '\r!SSLv2:!SSLv3'},
    {'level': 'may', 'exclude': ['aNULL\r\n']},
])
def test_line_breaks_around_protocols_and_exclude_are_refused(kwargs):
    with pytest.raises(PolicyError):
        build_policy(**kwargs)


def test_blanks_around_list_items_are_dropped():
    # "!SSLv2, !SSLv3" given as a string is split on the comma by Ansible's list type
    assert build_policy('may', protocols=['!SSLv2', ' !SSLv3'], exclude=['\taNULL ']).render() == \
        'may protocols=!SSLv2:!SSLv3 exclude=aNULL'


# ---------------------------------------------------------------------------
# properties: a built policy is one line of tokens that a table keeps as one
# entry; a destination is refused or becomes one ASCII token
# ---------------------------------------------------------------------------


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


HOSTILE = ['\n', '\r', '\x00', ' ', '\t', ',', '=', '{', '}', '|', ':', '\x0b', '\x85', '\u2028',
           '$(id)', '`id`', ';', '#', '\u212a', '\u017f', 'é']


def spoiled(valid):
    """A valid value, or the same value with something hostile inserted."""
    return st.one_of(
        st.sampled_from(valid),
        st.builds(lambda v, junk, pos: v[:pos % (len(v) + 1)] + junk + v[pos % (len(v) + 1):],
                  st.sampled_from(valid), st.sampled_from(HOSTILE), st.integers(0, 40)),
        st.text(max_size=10),
    )


FINGERPRINT = ':'.join(['AB'] * 32)
policy_args = st.fixed_dictionaries({
    'level': spoiled(list(LEVELS)),
    'match': st.one_of(st.none(), st.lists(spoiled(['nexthop', 'dot-nexthop', '.example.com', 'mx.example.com',
                                                    FINGERPRINT]), max_size=3)),
    'ciphers': st.one_of(st.none(), spoiled(['high', 'medium'])),
    'protocols': st.one_of(st.none(), spoiled(['>=TLSv1.2', '!SSLv2:!SSLv3', 'TLSv1.3']),
                           st.lists(spoiled(['!SSLv2', '>=TLSv1.2']), max_size=3)),
    'exclude': st.one_of(st.none(), spoiled(['aNULL', 'MD5:RC4'])),
    'tafile': st.one_of(st.none(), st.lists(spoiled(['/etc/ssl/ta.pem']), max_size=2)),
    'servername': st.one_of(st.none(), spoiled(['hostname', 'nexthop', 'mx.example.com'])),
    'connection_reuse': st.one_of(st.none(), st.booleans(), spoiled(['yes', 'no'])),
    'enable_rpk': st.one_of(st.none(), st.booleans(), spoiled(['yes', 'no'])),
})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_args)
def test_a_built_policy_is_one_line_of_tokens_that_reads_back(args):
    try:
        policy = build_policy(**args)
    except PolicyError:
        return
    text = policy.render()
    for ch in '\n\r\x00\x0b\x0c\t,{}':
        assert ch not in text, (args, text)
    assert text == text.strip() and '  ' not in text
    assert len(text.split(' ')) == 1 + len(policy.attributes)
    assert parse_policy(text).render() == text
    assert same_policy(text, text)
    table = LookupTableSource.parse('a.example may\n')
    table.set('example.com', text)
    assert postfix_view(table.render()) == {'a.example': 'may', 'example.com': text}


@SETTINGS
@given(st.one_of(st.text(max_size=30), spoiled(['example.com', '.example.com', '[mx.example.com]:587',
                                                '[ipv6:2001:db8::1]', '[192.0.2.1]:25'])))
def test_a_destination_is_refused_or_becomes_one_ascii_token(destination):
    try:
        key, dummy = normalize_destination(destination)
    except PolicyError as e:
        assert str(e)
        return
    # UTF-8 keys are kept (Postfix looks them up verbatim), but only in folded form
    assert key == key.lower() and (key.isascii() or key == key.casefold())
    assert key and key[0] != '#'
    assert not any(ch in ' \t\r\n\v\f,' or ord(ch) < 32 or ord(ch) == 127 for ch in key)
    table = LookupTableSource.parse('other.example may\n')
    table.set(key, 'encrypt')
    assert postfix_view(table.render()) == {'other.example': 'may', key: 'encrypt'}


# ---------------------------------------------------------------------------
# fidelity (issue 13): each rule as the Postfix sources state it
# ---------------------------------------------------------------------------

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (  # noqa: E402
    PolicyLint,
    address_literal,
    enabled_protocols,
    hostname_problem,
    key_level_problems,
    supports,
)

LINT_MARK = 'rule of this collection, Postfix accepts it'


def lint(func, *args, **kwargs):
    with pytest.raises(PolicyLint) as info:
        func(*args, **kwargs)
    assert LINT_MARK in str(info.value)
    return str(info.value)


def postfix_error(func, *args, **kwargs):
    """A refusal Postfix makes too: a PolicyError that is not a lint."""
    with pytest.raises(PolicyError) as info:
        func(*args, **kwargs)
    assert not isinstance(info.value, PolicyLint), str(info.value)
    assert LINT_MARK not in str(info.value)
    return str(info.value)


# keys: host_port.c, valid_hostname.c, smtp_tls_policy.c tls_policy_lookup()

@pytest.mark.parametrize('given, key', [
    ('[2001:db8::1]', '[2001:db8::1]'),                    # host_port(): bare address in brackets
    ('[2001:DB8::1]:587', '[2001:db8::1]:587'),
    ('[::ffff:192.0.2.1]:25', '[::ffff:192.0.2.1]:25'),
    ('[ipv6:2001:db8::1]:587', '[ipv6:2001:db8::1]:587'),  # a different key
    ('[mx.example.com]:025', '[mx.example.com]:025'),     # alldig(): Postfix reads port 25
    ('[mx.example.com]:smtps', '[mx.example.com]:smtps'),  # known_tcp_ports
    ('1-2.example', '1-2.example'),                        # a hyphen makes a label non-numeric
    ('123.example', '123.example'),
    ('.1.2', '.1.2'),                                      # a parent of "mx.1.2"
    ('[' + '.'.join(['a' * 63] * 4) + ']', '[' + '.'.join(['a' * 63] * 4) + ']'),   # 255 characters
])
def test_next_hop_forms_postfix_accepts(given, key):
    assert normalize_destination(given)[0] == key


def test_bare_and_ipv6_prefixed_keys_are_different_keys():
    assert normalize_destination('[2001:db8::1]')[0] != normalize_destination('[ipv6:2001:db8::1]')[0]


@pytest.mark.parametrize('destination, fragment', [
    ('[' + '.'.join(['a' * 63] * 4) + 'a]', 'longer than 255'),
    ('[192.0.2.1]:0', 'bad network port'),
    ('[192.0.2.1]:65536', 'bad network port'),
    ('[192.0.2.1]:25x', 'garbage after numerical service'),
    ('[ipv6:2001:db8::1%eth0]', 'malformed IPv6 address'),
    ('[example.com', 'missing \\"]\\"'),
    ('[example.com]x', 'garbage after'),
    ('[]', 'missing host information'),
    ('192.0.2', 'numeric hostname'),
    ('*', 'no wildcards'),
])
def test_keys_postfix_never_looks_up_are_postfix_errors(destination, fragment):
    assert fragment in postfix_error(normalize_destination, destination)


def test_unknown_service_name_is_a_warning_about_this_host():
    key, warnings = normalize_destination('[example.net]:no-such-service-here')
    assert key == '[example.net]:no-such-service-here'
    assert 'unknown service: no-such-service-here/tcp' in warnings[0]


@pytest.mark.parametrize('destination, fragment', [
    ('[example.com]:', 'empty port'),
    ('BÜCHER.de', "'bücher.de'"),                           # casefold: smtputf8_enable=yes vs no
    ('\u212aelvin.example', "'kelvin.example'"),           # KELVIN SIGN stands for "k"
    ('ex\u200bample.com', 'invisible character U+200B (ZERO WIDTH SPACE)'),
    ('b\u00fccher\u200b.de', 'invisible character U+200B'),  # a real IDN: before, only a warning
    ('\ufeffexample.com', 'U+FEFF (ZERO WIDTH NO-BREAK SPACE)'),   # a byte order mark on line 1
    ('[b\u00fccher\u00ad.de]:25', 'U+00AD (SOFT HYPHEN)'),
])
def test_key_lints(destination, fragment):
    assert fragment in lint(normalize_destination, destination)


def test_an_invisible_character_in_an_existing_key_is_warned_about():
    errors, warnings = existing_entry_problems('b\u00fccher\u200b.de', 'encrypt')
    assert errors == [] and any('invisible character U+200B' in w for w in warnings), warnings
    # zero-width joiners belong in some scripts' names (IDNA CONTEXTJ): not flagged
    dummy, warnings = normalize_destination('\u0645\u06cc\u200c\u0647\u0645.example')
    assert not any('invisible' in w for w in warnings)


def test_utf8_keys_fold_like_postfix_with_smtputf8():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import utf8_fold_key
    assert utf8_fold_key('Example.COM') == 'example.com'
    assert utf8_fold_key('BÜCHER.de') == 'bücher.de'
    assert normalize_destination('Bücher.de')[0] == 'bücher.de'
    assert "'bücher.de'" in lint(normalize_destination, 'BÜCHER.de')


@pytest.mark.parametrize('name, problem', [
    ('192.0.2.1', 'numeric'), ('123', 'numeric'), ('a..b', 'misplaced delimiter'),
    ('a.b.', 'misplaced delimiter'), ('-a.b', 'misplaced hyphen'), ('a-.b', 'misplaced hyphen'),
    ('a b', 'invalid character'), ('a' * 64, 'longer than 63'), ('', 'empty'),
])
def test_hostname_problem_is_valid_hostname(name, problem):
    assert problem in hostname_problem(name)


@pytest.mark.parametrize('name', ['mx.example.com', '1-2', '_dmarc.example', 'a_b', '1.2.a'])
def test_hostname_problem_accepts_what_valid_hostname_accepts(name):
    assert hostname_problem(name) is None


# values: smtp_tls_policy.c tls_policy_lookup_one()

@pytest.mark.parametrize('text, postfix_message', [
    ('may protocols=!SSLv2 protocols=!SSLv3', 'attribute "protocols" is specified multiple times'),
    ('may exclude=RC4 exclude=MD5', 'attribute "exclude" is specified multiple times'),
    ('may servername=a.example servername=b.example', 'attribute "servername" is specified multiple times'),
    ('secure match=', 'attribute "match" has empty value'),
    ('secure tafile=', 'attribute "tafile" has empty value'),
    ('may servername=', '"servername=" specifies an invalid hostname'),
    ('may servername=192.0.2.1', '"servername=192.0.2.1" specifies an invalid hostname'),
    ('may connection_reuse=', 'attribute "connection_reuse" has bad value'),
    ('may connection_reuse=maybe', 'attribute "connection_reuse" has bad value'),
    ('may =high', 'missing attribute name'),
    ('dane tafile=/x.pem', 'attribute "tafile" invalid at security level "dane"'),
    ('may exclude=-RC4', "invalid unary '!+-@' in cipher exclusion"),
    ('may protocols=>=SSLv2', 'Invalid TLS protocol list'),
    ('may protocols=TLSv1.4', 'Invalid TLS protocol list'),
    ('may policy_ttl=60', 'built-in policy has unexpected attribute'),
    ('may policy_type=sts policy_type=sts', 'attribute "policy_type" is specified multiple times'),
    ('may policy_type=dane', 'attribute "policy_type" has an unexpected value'),
    ('fingerprint match=AB:CD:...', 'no fingerprints to match'),
])
def test_parse_policy_refuses_what_postfix_refuses(text, postfix_message):
    assert postfix_message in postfix_error(parse_policy, text)


@pytest.mark.parametrize('text, canonical', [
    ('encrypt connection_reuse=no connection_reuse=YES', 'encrypt connection_reuse=yes'),  # last one wins
    ('encrypt enable_rpk=yes enable_rpk=no', 'encrypt enable_rpk=no'),
    ('may protocols=', 'may protocols='),                 # empty: overrides main.cf
    ('may exclude=', 'may exclude='),
    ('may protocols=>=TLSv1:>=TLSv1.2', 'may protocols=>=TLSv1:>=TLSv1.2'),
    ('may protocols=>=none:<=tlsv1.3', 'may protocols=>=None:<=TLSv1.3'),
    ('may protocols=>=0x0303', 'may protocols=>=0x0303'),
    ('may protocols=!SSLv2::!SSLv3', 'may protocols=!SSLv2:!SSLv3'),    # empty elements skipped
    ('secure match=a.example::b.example', 'secure match=a.example:b.example'),
    ('may servername=HOSTNAME', 'may servername=HOSTNAME'),   # literal SNI, not the keyword
    ('MAY CIPHERS=HIGH', 'may ciphers=high'),
    ('may policy_type=sts policy_domain=example.com mx_host_pattern=*.example.com '
     'mx_host_pattern=mx.example.net policy_ttl=86400',
     'may policy_type=sts policy_domain=example.com mx_host_pattern=*.example.com '
     'mx_host_pattern=mx.example.net policy_ttl=86400'),
])
def test_parse_policy_reads_what_postfix_reads_fidelity(text, canonical):
    assert parse_policy(text).render() == canonical


@pytest.mark.parametrize('given, table', [
    (['>=TLSv1', '>=TLSv1.2'], '>=TLSv1:>=TLSv1.2'),      # the later bound applies
    (['!SSLv2', '!SSLv2'], '!SSLv2:!SSLv2'),
    (['TLSv1.2', 'TLSv1.3', '!TLSv1.2'], 'TLSv1.2:TLSv1.3:!TLSv1.2'),   # exclusion beats inclusion
    (['>=0x0303'], '>=0x0303'),
    (['<=None'], '<=None'),
    ([''], ''),
    ('', ''),
])
def test_protocols_postfix_accepts_are_accepted(given, table):
    assert canonical_protocols(given) == table


@pytest.mark.parametrize('given, fragment', [
    (['>='], '>=None'),
    (['>=0x0305'], 'error setting minimum TLS version'),
    (['<=0x0200'], 'error setting maximum TLS version'),
])
def test_protocol_lints(given, fragment):
    assert fragment in lint(build_policy, 'may', protocols=given)


@pytest.mark.parametrize('given', [
    ['>=TLSv1.3', '!TLSv1.3'], ['SSLv2'], ['SSLv3'], ['SSLv2', 'SSLv3'], ['>=TLSv1.3', '<=TLSv1.2'],
    ['TLSv1.2', '!TLSv1.2'], ['<=SSLv3'],
])
def test_protocols_leaving_nothing_enabled_fail_the_handshake(given):
    # OpenSSL 3 has neither SSLv2 nor SSLv3 (oracle findings F1, F4)
    assert 'no protocols available' in postfix_error(build_policy, 'may', protocols=given)
    assert 'no protocols available' in postfix_error(parse_policy, 'may protocols=' + ':'.join(given))


@pytest.mark.parametrize('given, used, unused', [
    (['!SSLv2', '!SSLv3', '!TLSv1.1'], 'TLSv1', 'TLSv1.2, TLSv1.3'),
    (['!TLSv1.2'], 'TLSv1, TLSv1.1', 'TLSv1.3'),
    (['TLSv1', 'TLSv1.2', 'TLSv1.3'], 'TLSv1', 'TLSv1.2, TLSv1.3'),
    (['TLSv1.1', 'TLSv1.3'], 'TLSv1.1', 'TLSv1.3'),
    (['>=TLSv1', '!TLSv1.1'], 'TLSv1', 'TLSv1.2, TLSv1.3'),
])
def test_protocols_with_a_gap_use_only_the_lowest_run(given, used, unused):
    # OpenSSL's ssl_get_min_max_version() stops at the first gap above the lowest enabled
    # version: "!SSLv2:!SSLv3:!TLSv1.1" negotiates TLSv1 with a TLS 1.3 peer (Postfix 3.7 with
    # OpenSSL 3.0 and 3.10 with OpenSSL 3.5, tests/integration/oracle/test_ask.py)
    message = lint(build_policy, 'encrypt', protocols=given)
    assert 'lowest unbroken run of versions, %s, and never %s' % (used, unused) in message
    assert repr(':'.join(given)) in message
    # an existing line: a warning, the line is kept
    policy = parse_policy('encrypt protocols=' + ':'.join(given))
    assert len(policy.warnings) == 1 and 'never %s' % unused in policy.warnings[0]
    assert enabled_protocols(':'.join(given)) == used.split(', ')


@pytest.mark.parametrize('given', [
    ['!SSLv2', '!SSLv3', '!TLSv1', '!TLSv1.1'], ['>=TLSv1.2'], ['TLSv1.2', 'TLSv1.3'], ['!TLSv1.3'],
    ['TLSv1'], ['SSLv3', 'TLSv1.2', 'TLSv1.3'], ['>=TLSv1.1', '<=TLSv1.2'],
])
def test_protocols_without_a_gap_are_no_lint(given):
    assert build_policy('encrypt', protocols=given).render()
    assert parse_policy('encrypt protocols=' + ':'.join(given)).warnings == []


def test_an_error_beats_a_lint_in_the_same_value():
    # the lint (a protocol gap) comes first in the value, the error (an exclusion Postfix
    # aborts TLS for) after it: the refusal names the error, as Postfix defers the mail for it
    for check in (lambda: parse_policy('encrypt protocols=!TLSv1.1 exclude=kRSA:-RC4', lint=True),
                  lambda: build_policy('encrypt', protocols=['!TLSv1.1'], exclude=['-RC4'])):
        with pytest.raises(PolicyError) as info:
            check()
        assert not isinstance(info.value, PolicyLint) and 'invalid unary' in str(info.value)
    # the same for the rules a value's text breaks (a TLSRPT attribute, a match without
    # names): an invalid attribute after them, or one this Postfix does not have
    for text, version, fragment in (('encrypt policy_type=sts bogus=1', None, 'invalid attribute name: "bogus"'),
                                    ('secure match=: exclude=-RC4', None, 'invalid unary'),
                                    ('fingerprint match=| enable_rpk=yes', (3, 7, 11), 'needs Postfix 3.9')):
        assert fragment in postfix_error(parse_policy, text, version, lint=True)
    # an existing line: the error, and the lint as a warning is not needed to refuse it
    errors, dummy = existing_entry_problems('[192.0.2.1]', 'encrypt protocols=!TLSv1.1 exclude=-RC4')
    assert len(errors) == 1 and 'invalid unary' in errors[0]


@pytest.mark.parametrize('destination, fragment', [
    ('[999.1.1.1]:', "host '999.1.1.1' is not a valid host name or address"),
    ('bad_host!:', "host 'bad_host!' is not a valid host name or address"),
    ('.BÜCHER.de:25', 'the subdomain form ".domain" takes no port'),
    ('BÜCHER..de', 'is not a valid host name or address'),
    ('[\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45..com]:', 'is not a valid host name or address'),
])
def test_an_error_beats_a_lint_in_the_same_key(destination, fragment):
    # the key breaks a rule of this collection (an empty port, an unfolded or disguised UTF-8
    # name) and is no next hop Postfix looks up: the error is what a new entry is refused
    # with, and an existing line is an error, not a warning ("Postfix accepts it")
    assert fragment in postfix_error(normalize_destination, destination)
    errors, warnings = existing_entry_problems(destination, 'encrypt')
    assert len(errors) == 1 and fragment in errors[0], errors
    assert not any('rule of this collection' in w for w in warnings), warnings


def test_grade_null_with_tls_1_3_above_a_gap_leaves_no_cipher():
    # "TLSv1:TLSv1.3" negotiates TLSv1 only: grade null has no cipher there (hunt finding,
    # "deferred (Cannot start TLS: handshake failure)")
    assert 'no ciphers available' in postfix_error(parse_policy, 'may ciphers=null protocols=TLSv1:TLSv1.3')


@pytest.mark.parametrize('key', ['[192.0.2.1]', '[192.0.2.1]:25', '[ipv6:2001:db8::1]', '[2001:db8::1]:587'])
def test_dane_for_an_address_literal(key):
    # smtp_tls_policy.c dane_init(): an IP next hop has no DNSSEC-validated address record, so
    # tls_dane_resolve() finds no TLSA records: dane-only defers, dane is level may
    errors, warnings = key_level_problems(key, build_policy('dane-only'))
    assert warnings == [] and len(errors) == 1
    assert 'address literal %s' % key in errors[0] and 'defers the mail' in errors[0]
    errors, warnings = key_level_problems(key, build_policy('dane'))
    assert errors == [] and len(warnings) == 1
    assert 'silently uses level may' in warnings[0] and 'rule of this collection' in warnings[0]
    assert existing_entry_problems(key, 'dane-only', (3, 7, 11))[0] == [
        key_level_problems(key, build_policy('dane-only'))[0][0]]
    assert existing_entry_problems(key, 'dane', (3, 7, 11)) == ([], warnings)


@pytest.mark.parametrize('key, level', [
    ('example.com', 'dane-only'), ('[mx.example.com]', 'dane'), ('[mx.example.com]:25', 'dane-only'),
    ('.example.com', 'dane'), ('[192.0.2.1]', 'encrypt'), ('[192.0.2.1]', 'fingerprint'),
])
def test_dane_for_host_names_and_other_levels_for_address_literals_are_fine(key, level):
    policy = build_policy(level, match=[SHA256] if level == 'fingerprint' else None)
    assert key_level_problems(key, policy) == ([], [])
    assert address_literal(key) == ('192.0.2.1' if key.startswith('[192') else None)


def test_exclude_all_leaves_no_cipher():
    assert 'no cipher match' in postfix_error(build_policy, 'may', exclude=['ALL'])   # oracle finding F3
    # ALL does not contain the eNULL suites of grade null (F11)
    assert build_policy('may', ciphers='null', exclude=['ALL']).render() == 'may ciphers=null exclude=ALL'


@pytest.mark.parametrize('protocols', [['TLSv1'], ['<=TLSv1.2'], ['!TLSv1.3']])
def test_cipher_grade_null_needs_tls_1_3(protocols):
    # only TLS 1.3 suites survive grade null (F12)
    assert 'no ciphers available' in postfix_error(build_policy, 'secure', ciphers='null', protocols=protocols)
    assert build_policy('secure', ciphers='null', protocols=['>=TLSv1.2']).render()


def test_fingerprints_of_no_digest_length_are_unusable():
    assert 'unusable TLSA RR' in postfix_error(build_policy, 'fingerprint', match=['AB:CD'])
    assert 'all fingerprints unusable' in postfix_error(parse_policy, 'fingerprint match=AB:CD')
    # one usable fingerprint is enough for Postfix (F10): the other one is a lint
    assert 'unusable TLSA RR' in parse_policy('fingerprint match=AB:CD|' + SHA256).warnings[0]
    assert 'unusable TLSA RR' in lint(build_policy, 'fingerprint', match=['AB:CD', SHA256])


@pytest.mark.parametrize('prefix', ['!', '+', '-', '@'])
def test_exclude_with_a_unary_prefix_is_what_postfix_refuses(prefix):
    message = postfix_error(build_policy, 'may', exclude=[prefix + 'RC4'])
    assert "invalid unary '!+-@' in cipher exclusion" in message and repr(prefix + 'RC4') in message


def test_empty_protocols_and_exclude_override_main_cf():
    assert build_policy('encrypt', protocols='', exclude=['']).render() == 'encrypt protocols= exclude='
    assert not same_policy('encrypt', 'encrypt protocols=')
    assert not same_policy('encrypt', 'encrypt exclude=')


@pytest.mark.parametrize('name', ['ciphers', 'match', 'tafile'])
def test_empty_values_postfix_refuses(name):
    level = 'secure'
    message = postfix_error(build_policy, level, **{name: [''] if name != 'ciphers' else ''})
    assert 'attribute "%s" has empty value' % name in message


def test_servername_keeps_its_case_and_refuses_numeric_names():
    assert build_policy('may', servername='MX.Example.COM').render() == 'may servername=MX.Example.COM'
    assert 'specifies an invalid hostname' in postfix_error(build_policy, 'may', servername='192.0.2.1')
    assert 'specifies an invalid hostname' in postfix_error(build_policy, 'may', servername='mx.bücher.de')
    assert "'HOSTNAME'" in lint(build_policy, 'may', servername='HOSTNAME')
    assert not same_policy('may servername=HOSTNAME', 'may servername=hostname')
    assert not same_policy('may servername=NEXTHOP', 'may servername=nexthop')


@pytest.mark.parametrize('kwargs, fragment', [
    ({'level': 'none', 'ciphers': 'high'}, 'at level none does nothing'),
    ({'level': 'secure', 'match': ['.']}, '"."'),
    ({'level': 'secure', 'match': ['ex@mple']}, 'ex@mple'),
    ({'level': 'secure', 'tafile': ['ta.pem']}, 'absolute'),
    ({'level': 'fingerprint', 'match': ['zz:11']}, 'malformed fingerprint value'),
    ({'level': 'may', 'exclude': ['a/b']}, 'OpenSSL ignores'),
    ({'level': 'may', 'protocols': ['!SSLv2', '']}, 'empty list item'),
])
def test_lints_say_they_are_the_collections_rule(kwargs, fragment):
    assert fragment in lint(build_policy, **kwargs)


def test_lints_become_warnings_without_lint():
    policy = build_policy('secure', match=['ex@mple'], tafile=['ta.pem'], lint=False)
    assert policy.render() == 'secure match=ex@mple tafile=ta.pem'
    assert len(policy.warnings) == 2 and all(LINT_MARK in w for w in policy.warnings)


def test_parse_keeps_lints_as_warnings_and_postfix_errors_as_errors():
    policy = parse_policy('fingerprint match=AB:CD|' + SHA256)
    assert policy.render() == 'fingerprint match=AB:CD|' + SHA256
    assert 'bytes long' in policy.warnings[0]


def test_fingerprint_hex_may_mix_colons_as_hex_decode_opt_does():
    assert build_policy('fingerprint', match=[SHA256.replace(':', '', 5)]).render() == \
        'fingerprint match=' + SHA256.replace(':', '', 5)


def test_utf8_match_names_are_accepted_as_postfix_converts_them():
    assert build_policy('secure', match=['mx.bücher.de']).render() == 'secure match=mx.bücher.de'


def test_level_none_ignores_attributes_but_is_not_the_same_entry():
    policy = parse_policy('none ciphers=high bogus')
    assert policy.level == 'none' and 'ignores' in policy.warnings[0]
    assert not same_policy('none ciphers=high', 'none')


def test_fingerprint_without_usable_fingerprint_falls_back_before_3_9():
    policy = parse_policy('fingerprint match=AB:CD:...', (3, 7, 11))
    assert 'smtp_tls_fingerprint_cert_match' in policy.warnings[-1]


# version gates (HISTORY, RELEASE_NOTES)

@pytest.mark.parametrize('version, ok', [
    ((3, 4, 13), False), ((3, 4, 14), True), ((3, 5, 3), False), ((3, 5, 4), True),
    ((3, 6, 0), True), ((3, 7, 11), True), ('3.5.26', True), ((3, 3, 9), False), ((), True),
])
def test_connection_reuse_gate_is_patch_level(version, ok):
    assert supports('connection_reuse', version) is ok
    assert (build_policy('encrypt', connection_reuse=True).unsupported_on(version) == []) is ok


@pytest.mark.parametrize('text, version, fragment', [
    ('encrypt enable_rpk=yes', (3, 7, 11), 'Postfix 3.9'),
    ('encrypt connection_reuse=yes', (3, 5, 3), '3.5.4'),
    ('encrypt protocols=>=TLSv1.2', (3, 5, 9), 'Postfix 3.6'),
    ('may policy_type=sts', (3, 9, 1), 'Postfix 3.10'),
])
def test_parse_policy_for_a_version_refuses_what_it_does_not_know(text, version, fragment):
    assert fragment in postfix_error(parse_policy, text, version)
    assert parse_policy(text).render()


def test_no_postfix_error_is_quoted_by_a_lint():
    """Lint messages never pretend to be a Postfix complaint."""
    for message in (lint(build_policy, 'none', ciphers='high'),
                    lint(build_policy, 'may', servername='NEXTHOP'),
                    lint(build_policy, 'may', protocols=['>='])):
        assert '(Postfix:' not in message


# checks against the configuration and existing lines (used by the module)

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (  # noqa: E402
    configuration_problems,
    existing_entry_problems,
)

MD5 = ':'.join(['AB'] * 16)


def test_fingerprint_length_must_fit_the_configured_digest():
    policy = build_policy('fingerprint', match=[MD5, SHA256])
    errors, dummy = configuration_problems(policy, {'smtp_tls_fingerprint_digest': 'sha256'})
    assert len(errors) == 1 and MD5 in errors[0] and 'smtp_tls_fingerprint_digest' in errors[0]
    assert LINT_MARK in errors[0]           # Postfix uses the entry through the other fingerprint
    errors, dummy = configuration_problems(policy, {'smtp_tls_fingerprint_digest': 'md5'})
    assert len(errors) == 1 and SHA256 in errors[0]
    errors, dummy = configuration_problems(build_policy('fingerprint', match=[MD5]),
                                           {'smtp_tls_fingerprint_digest': 'sha256'})
    assert 'all fingerprints unusable' in errors[0] and LINT_MARK not in errors[0]
    assert configuration_problems(build_policy('fingerprint', match=[SHA256]),
                                  {'smtp_tls_fingerprint_digest': 'SHA256'}) == ([], [])


@pytest.mark.parametrize('level, dns, errors, warnings', [
    ('dane-only', 'enabled', 1, 0), ('dane-only', '', 1, 0), ('dane', 'disabled', 0, 1),
    ('dane-only', 'dnssec', 0, 0), ('dane', 'dnssec', 0, 0), ('encrypt', 'disabled', 0, 0),
])
def test_dane_needs_dnssec(level, dns, errors, warnings):
    got = configuration_problems(build_policy(level), {'smtp_dns_support_level': dns})
    assert (len(got[0]), len(got[1])) == (errors, warnings)
    assert all('smtp_dns_support_level' in m for m in got[0] + got[1])


@pytest.mark.parametrize('key, value, fragment', [
    ('*', 'encrypt', 'no wildcards'),
    ('.bayern.de', 'encrypt # mx has selfsigned cert', 'not a comment'),
    ('example.com', 'fingerprint match=51:e9:af:2e:1e:40:1f:de:...:35:2d', 'no fingerprints to match'),
    ('example.com', 'encrypt enable_rpk=yes', 'invalid attribute name'),
])
def test_existing_lines_postfix_cannot_use(key, value, fragment):
    errors, dummy = existing_entry_problems(key, value, (3, 10, 1) if 'rpk' not in value else (3, 7, 11))
    assert errors and fragment in ' '.join(errors)


def test_existing_usable_lines_have_no_errors():
    assert existing_entry_problems('[2001:db8::1]:587', 'SECURE match=nexthop', (3, 7, 11)) == ([], [])
    errors, warnings = existing_entry_problems('example.com:25', 'encrypt', (3, 7, 11))
    assert errors == [] and len(warnings) == 1


def test_keys_postfix_never_uses_can_still_be_removed_by_name():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import removable_key
    key, warnings = removable_key('*')
    assert key == '*' and 'no wildcards' in warnings[0]
    assert removable_key('Example.COM') == ('example.com', [])
    for bad in ('', 'a b', '#x', None):
        with pytest.raises(PolicyError):
            removable_key(bad)


def test_same_policy_reads_the_existing_value_as_this_postfix_does():
    assert same_policy('secure { match = nexthop }', 'secure match=nexthop')
    assert same_policy('secure { match = nexthop }', 'secure match=nexthop', (3, 10, 1))
    # before 3.10 "{" is a malformed attribute/value pair: Postfix defers, not the same policy
    assert not same_policy('secure { match = nexthop }', 'secure match=nexthop', (3, 7, 11))
    assert same_policy('SECURE match=nexthop', 'secure match=nexthop', (3, 7, 11))


@pytest.mark.parametrize('value, rendered', [
    ('encrypt { protocols = !SSLv2, !SSLv3 }', 'encrypt protocols=!SSLv2:!SSLv3'),
    ('encrypt { exclude = aNULL, MD5 } { protocols = >=TLSv1.2 <=TLSv1.3 }',
     'encrypt protocols=>=TLSv1.2:<=TLSv1.3 exclude=aNULL:MD5'),
])
def test_brace_form_protocols_and_exclude_split_on_blanks_and_commas(value, rendered):
    # tls_proto_mask_lims() and tls_set_ciphers() split on CHARS_COMMA_SP ":" (Postfix 3.10 and
    # later read the brace form; the hunt's oracle run on 3.10.13 used these entries)
    assert parse_policy(value).render() == rendered
    assert parse_policy(value, lint=True).render() == rendered
    assert existing_entry_problems('a.example', value, (3, 10, 13)) == ([], [])
    assert existing_entry_problems('a.example', value, (3, 7, 11))[0]
