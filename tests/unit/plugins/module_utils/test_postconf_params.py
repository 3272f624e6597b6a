# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the pure Postfix knowledge behind mailgw.postfix_tls.postconf."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils import postconf_params as pp


# --- names ---------------------------------------------------------------

@pytest.mark.parametrize('name', [
    'smtp_tls_policy_maps', 'tls_high_cipherlist', 'maillog_file', 'maps_d_dir',
    'relay_destination_concurrency_limit', 'X', '2bounce_notice_recipient',
    # per-transport parameters of services with "-" or "." in their name (postconf writes them)
    'smtp-amavis_destination_recipient_limit', 'scalemail-backend_destination_concurrency_limit',
    'relay.out_destination_rate_delay',
])
def test_valid_names(name):
    assert pp.check_name(name) is None


@pytest.mark.parametrize('name', [
    '', '-x', '.a', 'a b', 'a=b', 'name\n', '$x', 'ä', 'a/b', None, 3,
])
def test_invalid_names_are_refused_with_the_rule(name):
    reason = pp.check_name(name)
    assert reason is not None
    if isinstance(name, str) and name:
        assert repr(name) in reason
        assert 'letters, digits' in reason


# --- values --------------------------------------------------------------

@pytest.mark.parametrize('value', ['encrypt', '', 'a b', 'hash:${maps_d_dir}/x.map', '#not a comment'])
def test_acceptable_values(value):
    assert pp.check_value('x', value) is None


@pytest.mark.parametrize('value,label', [
    ('may\nsmtpd_tls_security_level = none', 'newline'),
    ('may\r', 'carriage return'),
    ('may\x00', 'NUL'),
])
def test_line_breaking_values_are_refused(value, label):
    reason = pp.check_value('smtp_tls_security_level', value)
    assert label in reason
    assert 'smtp_tls_security_level' in reason


def test_override_values_refuse_whitespace():
    assert pp.check_override_value('smtpd_tls_security_level', 'none') is None
    assert pp.check_override_value('smtpd_tls_security_level', '') is None
    assert 'whitespace' in pp.check_override_value('smtpd_banner', 'a b')
    assert 'newline' in pp.check_override_value('smtpd_banner', 'a\nb')


# --- $ macros: what Postfix can expand ----------------------------------------------

# Values postconf 3.7 reads without a macro warning (checked against the binary).
EXPANDABLE = [
    'hash:${maps_d_dir}/x',
    '$myhostname ESMTP $mail_name',
    '${config_directory}/tls',
    '$(name)',
    '${name}', '${ name }', '$name.', '$5', '$_', '${_a1}',
    '$$', 'a$$b', '$$(touch x)', 'cost: $$5', '${a}${b}$c$$d',
    '${a}}', '$(a))',                                  # extra closing brackets are text
    '${name?x}', '${name:x}', '${name?}', '${name:}', '${a??}',
    '${name?{x}}', '${name:{x}}', '${name?{x}:{y}}', '${name?{x}:y:z}', '${name?x:{y}}',
    '${a? {x} : {y} }', '${a?(}', '${a?$$}', '$(a?{x}:{y})',
    '${a?{${b?{c}:{$d}}}:{e}}',
    '${{a}=={b}}', '${{a} == {b}?{x}:{y}}', '${ {1}=={2}}', '${{1}=={2}:{x}}',
    '${{x}<{y}}', '${{1}!={2}}', '${{1}<={2}}', '${{1}>={2}}', '${{1}>{2}}',
    '${{3}==level {3} ? {a} : {b}}', '${{3.6.1} <level {3}}', '${{ 3.6} <level {3.6}}',
    # Postfix's own defaults
    '${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}',
    '${{$compatibility_level} <level {2} ? {$mydestination} : {}}',
    '${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, '
    'permit_sasl_authenticated, defer_unauth_destination}}',
    '$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using '
    '$rbl_domain${rbl_reason?; $rbl_reason}',
]

# Values postconf refuses ("macro processing error"), with a fragment of our reason.
NOT_EXPANDABLE = [
    ('$(touch x)', 'attribute name syntax error'),
    ('x$(touch${IFS}/tmp/x)', 'attribute name syntax error'),
    ('${unclosed', 'truncated'),
    ('$(a', 'truncated'),
    ('$(a}', 'truncated'),
    ('${a?${b}', 'truncated'),
    ('${a?{x}', 'truncated'),
    ('$', 'empty macro name'),
    ('x$', 'empty macro name'),
    ('a $ b', 'empty macro name'),
    ('$-x', 'empty macro name'),
    ('$ {a}', 'empty macro name'),
    ('${}', 'empty macro name'),
    ('$\u00e9', 'empty macro name'),
    ('${name x}', 'attribute name syntax error'),
    ('${a(}', 'attribute name syntax error'),
    ('${a)}', 'attribute name syntax error'),
    ('$((a))', 'attribute name syntax error'),
    ('${a?$(c d)}', 'attribute name syntax error'),          # also in an operand
    ('${a?{x}:{$(c d)}}', 'attribute name syntax error'),
    ('${a?$}', 'empty macro name'),
    ('${name?{x} z}', '":" expected'),
    ('${name:{x}z}', 'unexpected input'),
    ('${a?{x}:{y}:{z}}', 'unexpected input'),
    ('${a:{x}?y}', 'unexpected input'),
    ('${{a}?{b}}', 'relational operator'),
    ('${{1}}', 'relational operator'),
    ('${{1}==={2}}', 'relational operator'),
    ('${{a} x {b}}', 'relational operator'),
    ('${{a}==b}', 'bad operator suffix'),
    ('${{1}!=LEVEL{2}}', 'bad operator suffix'),
    ('${{a}==length{c}}', 'bad operator suffix'),
    ('${{1}==}', '"{expression}" expected'),
    ('${{1}=={2} x}', '"?" or ":" expected'),
    ('${{1}=={2}', 'truncated'),
    ('${{a} <level {3.6} ? {md5} : {sha256}}', 'malformed compatibility level'),
    ('${{3.} <level {3}}', 'malformed compatibility level'),
    ('${{} <level {3}}', 'malformed compatibility level'),
    ('${{3.6.1.2} <level {3}}', 'malformed compatibility level'),
    ('${{99999999999999999999}<{1}}', 'too large'),
]


@pytest.mark.parametrize('value', EXPANDABLE)
def test_values_postfix_can_expand_are_accepted(value):
    assert pp.macro_syntax_error(value) is None
    assert pp.check_value('smtpd_banner', value) is None


@pytest.mark.parametrize('value,fragment', NOT_EXPANDABLE)
def test_values_postfix_cannot_expand_are_refused_with_the_rule(value, fragment):
    assert fragment in pp.macro_syntax_error(value)
    reason = pp.check_value('smtpd_banner', value)
    assert 'smtpd_banner' in reason and repr(value) in reason
    assert 'cannot be expanded by Postfix' in reason and '"$$"' in reason
    assert fragment in reason


def test_override_values_get_the_same_macro_check():
    assert 'truncated' in pp.check_override_value('smtpd_tls_security_level', '${x')
    assert pp.check_override_value('smtpd_tls_security_level', '$tls_level') is None


def test_nesting_deeper_than_postfix_allows_is_refused():
    nested = 'x'
    for dummy in range(100):
        nested = '${a?{%s}}' % nested
    assert pp.macro_syntax_error(nested) is None
    assert 'nesting' in pp.macro_syntax_error('${a?{%s}}' % nested)


def test_deeply_nested_relational_operands_do_not_crash():
    assert pp.macro_syntax_error('${{' * 5000) is not None
    assert pp.macro_syntax_error('${{' * 5000 + '}' * 5000) is not None


@pytest.mark.parametrize('name', sorted(pp.RAW_PARAMETERS))
def test_raw_parameters_are_not_macro_checked(name):
    # Postfix reads these unexpanded; the expansion filters contain a literal "$".
    assert pp.check_value(name, '\\t\\40!"#$%&\'()*+,-./0123456789:;<=>?@ABC') is None


# --- control characters ------------------------------------------------------------------

@pytest.mark.parametrize('char', ['\x01', '\x0b', '\x0c', '\x1b', '\x1c', '\x1e', '\x1f', '\x7f'])
def test_control_characters_are_refused(char):
    reason = pp.check_value('smtpd_banner', 'gw%sx' % char)
    assert 'smtpd_banner' in reason and 'control character' in reason and repr(char) in reason


@pytest.mark.parametrize('value', ['a\tb', 'gw\x85x', 'gw\u2028x', 'gw\u2029x', '\u00e9\u4e2d', '\xa0'])
def test_tab_and_non_ascii_text_are_accepted(value):
    assert pp.check_value('smtpd_banner', value) is None


def test_lone_surrogates_are_refused():
    assert 'not valid Unicode' in pp.check_value('smtpd_banner', 'a\udcfcb')


def test_override_whitespace_means_blank_or_tab():
    assert 'whitespace' in pp.check_override_value('smtpd_banner', 'a\tb')
    assert pp.check_override_value('smtpd_banner', 'a\u2028b') is None


@pytest.mark.parametrize('raw,text', [
    ('encrypt', 'encrypt'),
    ('  padded  ', 'padded'),
    (['127.0.0.1', '::1'], '127.0.0.1, ::1'),
    (('a', 'b'), 'a, b'),
    ([' a ', 'b'], 'a, b'),
    ('may\r', 'may\r'),
    ('x\n', 'x\n'),
    (True, 'yes'),
    (False, 'no'),
    (10, '10'),
    ('', ''),
    ([], ''),
])
def test_to_postconf_value(raw, text):
    assert pp.to_postconf_value(raw) == text


@pytest.mark.parametrize('raw', [None, {'a': 1}, [None], [['nested']], ['a', ''], object()])
def test_to_postconf_value_refuses_other_types(raw):
    with pytest.raises(TypeError):
        pp.to_postconf_value(raw)


# --- lists ---------------------------------------------------------------

@pytest.mark.parametrize('value,items', [
    ('a, b', ['a', 'b']),
    ('a,b', ['a', 'b']),
    ('a b', ['a', 'b']),
    ('  a ,,\tb\n c ', ['a', 'b', 'c']),
    ('', []),
    (' , ', []),
    ('hash:/etc/postfix/a, lmdb:${maps_d_dir}/b', ['hash:/etc/postfix/a', 'lmdb:${maps_d_dir}/b']),
    ('permit_mynetworks, check_policy_service { inet:127.0.0.1:10040, timeout=10s }, reject',
     ['permit_mynetworks', 'check_policy_service', '{inet:127.0.0.1:10040, timeout=10s}', 'reject']),
    ('{a,{ b  c }} d', ['{a, {b c}}', 'd']),
    ('${a}x, $(b)', ['${a}x', '$(b)']),
    ('!SSLv2:!SSLv3', ['!SSLv2:!SSLv3']),
])
def test_split_list_like_mystrtokq(value, items):
    assert pp.list_items(value) == items


def test_braced_items_ignore_inner_layout():
    assert pp.list_items('{inet:x, timeout=10s}') == pp.list_items('{  inet:x,  timeout=10s }')
    # milter.c and smtpd_check.c split a braced item's parts on commas and blanks alike
    # (CHARS_COMMA_SP): the same milter, however its settings are separated
    same = ['{inet:127.0.0.1:8891, default_action=accept}']
    for value in ('{ inet:127.0.0.1:8891, default_action=accept }', '{ inet:127.0.0.1:8891,default_action=accept }',
                  '{inet:127.0.0.1:8891 default_action=accept}', '{ inet:127.0.0.1:8891 ,, default_action=accept }'):
        assert pp.list_items(value) == same, value
    # a different setting is a different item
    assert pp.list_items('{ inet:127.0.0.1:8891, default_action=tempfail }') != same
    # not one braced item: only whitespace collapsed
    assert pp.list_items('{ a,  b') == ['{a, b']


@pytest.mark.parametrize('name', [
    'smtp_tls_policy_maps', 'smtpd_recipient_restrictions', 'relay_domains', 'mynetworks',
    'inet_interfaces', 'inet_protocols', 'smtpd_tls_protocols', 'smtp_tls_mandatory_protocols',
    'header_checks', 'smtpd_restriction_classes', 'mydestination', 'smtpd_milters',
    'smtp_tls_mandatory_exclude_ciphers', 'smtp_tls_secure_cert_match',
    # the documented *_exclude_ciphers / *_security_options rule for lmtp_ and tlsproxy_ too
    'lmtp_sasl_security_options', 'lmtp_sasl_tls_security_options', 'lmtp_sasl_tls_verified_security_options',
    'tlsproxy_tls_exclude_ciphers', 'tlsproxy_tls_mandatory_exclude_ciphers', 'lmtp_sasl_mechanism_filter',
    'smtpd_tls_chain_files', 'tlsproxy_client_chain_files', 'smtp_pix_workarounds', 'postscreen_dnsbl_sites',
    'postscreen_access_list', 'tls_eecdh_auto_curves', 'message_drop_headers', 'alias_database',
])
def test_list_parameters(name):
    assert pp.is_list_parameter(name)


@pytest.mark.parametrize('name', [
    'smtpd_banner', 'tls_high_cipherlist', 'smtp_tls_security_level', 'myhostname',
    'maillog_file', 'maps_d_dir', 'smtpd_tls_cert_file', 'smtpd_tls_eecdh_grade', 'tlsproxy_tls_eecdh_grade',
])
def test_scalar_parameters(name):
    assert not pp.is_list_parameter(name)


@pytest.mark.parametrize('a,b', [('a, b', 'a,b'), ('a,b', 'a b'), ('a b', ' a\t,  b ')])
def test_list_values_equal_whatever_the_separators(a, b):
    assert pp.values_equal('mynetworks', a, b)


def test_list_order_matters():
    assert not pp.values_equal('smtpd_recipient_restrictions', 'permit, reject', 'reject, permit')


def test_list_items_must_match():
    assert not pp.values_equal('mynetworks', 'a, b', 'a, b, c')


def test_scalar_values_compare_exactly_apart_from_surroundings():
    assert pp.values_equal('smtpd_banner', ' $myhostname ESMTP ', '$myhostname ESMTP')
    assert not pp.values_equal('smtpd_banner', '$myhostname  ESMTP', '$myhostname ESMTP')
    assert not pp.values_equal('tls_high_cipherlist', 'a,b', 'a, b')


def test_value_given_as_list_compares_as_list():
    assert pp.values_equal('maps_d_dir', 'a,b', 'a, b', as_list=True)


def test_none_only_equals_none():
    assert pp.values_equal('x', None, None)
    assert not pp.values_equal('x', None, '')
    assert not pp.values_equal('x', '', None)


# --- references ------------------------------------------------------------

@pytest.mark.parametrize('value,names', [
    ('hash:${maps_d_dir}/hash-tls-policy.map', {'maps_d_dir'}),
    ('$a $(b) ${c?x} ${d:y} ${e?{z}}', {'a', 'b', 'c', 'd', 'e'}),
    ('$$literal and $real', {'real'}),
    ('no references', set()),
    ('', set()),
    (None, set()),
])
def test_referenced_names(value, names):
    assert pp.referenced_names(value) == names


# --- main.cf reader ----------------------------------------------------------

def test_parse_main_cf_like_postfix():
    text = (
        '# comment\n'
        'compatibility_level = 3.6\n'
        'mynetworks = 127.0.0.0/8,\n'
        '    # indented comment inside\n'
        '\n'
        '    [::1]/128\n'
        'smtpd_banner=$myhostname  ESMTP   \n'
        '   \n'
        'empty =\n'
        'not a setting\n'
        'relayhost = first\n'
        'relayhost = second\n'
    )
    parsed = pp.parse_main_cf(text)
    assert parsed == {
        'compatibility_level': '3.6',
        'mynetworks': '127.0.0.0/8,    [::1]/128',    # continuation appended as it is
        'smtpd_banner': '$myhostname  ESMTP',
        'empty': '',
        'relayhost': 'second',
    }
    # last entry wins, and its position counts
    assert list(parsed)[-1] == 'relayhost'


@pytest.mark.parametrize('char', ['\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029'])
def test_parse_main_cf_breaks_lines_at_newline_only(char):
    # str.splitlines() breaks at all of these; Postfix only at "\n".
    text = ('smtp_tls_security_level = may\n'
            'smtpd_banner = gw%ssmtp_tls_security_level = encrypt\n' % char)
    parsed = pp.parse_main_cf(text)
    assert parsed['smtp_tls_security_level'] == 'may'
    assert parsed['smtpd_banner'] == 'gw%ssmtp_tls_security_level = encrypt' % char


def test_parse_main_cf_blanks_are_ascii_isspace():
    text = ('relayhost = r\r\n'                      # CRLF: the \r is a trailing blank
            'myorigin = o\x0c\n'
            'myhostname = h\x0b\x0cz \n'
            '\x0cdelay_warning_time = 1h\n'          # starts with a blank: continuation
            '\rmax_idle = 5s\n'
            '\x0c\x0b\n'                             # blank line
            'mydomain = \u00a0d\u2028\n')            # U+00A0, U+2028 are text to Postfix
    assert pp.parse_main_cf(text) == {
        'relayhost': 'r',
        'myorigin': 'o',
        'myhostname': 'h\x0b\x0cz \x0cdelay_warning_time = 1h\rmax_idle = 5s',
        'mydomain': '\u00a0d\u2028',
    }


def test_parse_main_cf_ignores_text_after_nul():
    assert pp.parse_main_cf('smtpd_banner = a\x00b\n  c\n') == {'smtpd_banner': 'a'}


def test_parse_main_cf_name_ends_at_a_blank():
    assert pp.parse_main_cf('smtpd banner = x\nrelayhost\t= y\n') == {'relayhost': 'y'}


def test_parse_main_cf_empty():
    assert pp.parse_main_cf('') == {}
    assert pp.parse_main_cf('   leading continuation without entry\n') == {}


def test_decode_config_keeps_bytes_that_are_not_utf8():
    data = b'# Gr\xfc\xdfe\nmyorigin = m\xfcnchen\nsmtpd_banner = \xc3\xa9\xe4\xb8\xad\n'
    text = pp.decode_config(data)
    assert text.encode('utf-8', 'surrogateescape') == data
    parsed = pp.parse_main_cf(text)
    assert parsed['smtpd_banner'] == '\u00e9\u4e2d'
    assert pp.printable(parsed['myorigin']) == 'm\\xfcnchen'
    assert pp.printable('\u00e9') == '\u00e9'
    assert pp.printable(None) is None


# --- postconf output -----------------------------------------------------------

def test_parse_postconf_output():
    out = ('config_directory = /tmp/x\n'
           'smtp_tls_policy_maps = hash:${maps_d_dir}/hash-tls-policy.map\n'
           'content_filter =\n'
           'empty_after = \n')
    assert pp.parse_postconf_output(out) == {
        'config_directory': '/tmp/x',
        'smtp_tls_policy_maps': 'hash:${maps_d_dir}/hash-tls-policy.map',
        'content_filter': '',
        'empty_after': '',
    }


def test_parse_services():
    out = ('smtp       inet  n       -       n       -       -       smtpd\n'
           '127.0.0.1:10026 inet n   -       n       -       -       smtpd -o a=b\n'
           'pickup     unix  n       -       n       60      1       pickup\n'
           '    -o continued=1\n'
           '[::1]:10026 inet n - n - - smtpd\n')
    assert pp.parse_services(out) == {
        ('smtp', 'inet'), ('127.0.0.1:10026', 'inet'), ('pickup', 'unix'), ('[::1]:10026', 'inet'),
    }
    assert pp.parse_service_commands(out) == {
        ('smtp', 'inet'): 'smtpd', ('127.0.0.1:10026', 'inet'): 'smtpd', ('pickup', 'unix'): 'pickup',
        ('[::1]:10026', 'inet'): 'smtpd'}


def test_parse_service_overrides():
    out = ('127.0.0.1:10026/inet/content_filter =\n'
           '127.0.0.1:10026/inet/smtpd_tls_security_level = none\n'
           'submission/inet/smtpd_tls_security_level = encrypt\n'
           'postlog/unix-dgram/maillog_file = /dev/stdout\n')
    assert pp.parse_service_overrides(out) == {
        ('127.0.0.1:10026', 'inet'): {'content_filter': '', 'smtpd_tls_security_level': 'none'},
        ('submission', 'inet'): {'smtpd_tls_security_level': 'encrypt'},
        ('postlog', 'unix-dgram'): {'maillog_file': '/dev/stdout'},
    }


@pytest.mark.parametrize('spec,parsed', [
    ('submission/inet', ('submission', 'inet')),
    ('127.0.0.1:10026/inet', ('127.0.0.1:10026', 'inet')),
    ('[::1]:10026/inet', ('[::1]:10026', 'inet')),
    ('postlog/unix-dgram', ('postlog', 'unix-dgram')),
])
def test_parse_service_spec(spec, parsed):
    assert pp.parse_service_spec(spec) == parsed


@pytest.mark.parametrize('spec,fragment', [
    ('submission', 'SERVICE/TYPE'),
    ('submission/tcp', "unknown service type 'tcp'"),
    ('/inet', 'non-empty'),
    ('a b/inet', 'whitespace'),
    ('a/b/inet', '"/"'),
    ('a=b/inet', '"="'),
])
def test_parse_service_spec_errors(spec, fragment):
    with pytest.raises(ValueError) as err:
        pp.parse_service_spec(spec)
    assert fragment in str(err.value)


# --- suggestions ---------------------------------------------------------------

KNOWN = {'smtp_tls_policy_maps', 'smtpd_tls_security_level', 'smtp_tls_security_level',
         'tls_high_cipherlist', 'maillog_file', 'inet_interfaces'}


def test_did_you_mean():
    assert pp.suggest('smtp_tls_polcy_maps', KNOWN)[0] == 'smtp_tls_policy_maps'
    message = pp.unknown_name_message('smtpd_tls_securty_level', KNOWN)
    assert "unknown Postfix parameter 'smtpd_tls_securty_level'" in message
    assert "did you mean 'smtpd_tls_security_level'" in message
    assert 'allow_unknown' in message


def test_no_suggestion():
    message = pp.unknown_name_message('zzzzzz', KNOWN)
    assert 'no known parameter name is close' in message


# --- restart ---------------------------------------------------------------------

def test_restart_required():
    assert pp.restart_required(['inet_interfaces'])
    assert pp.restart_required(['smtpd_tls_security_level', 'inet_protocols'])
    assert not pp.restart_required(['smtpd_tls_security_level'])
    assert not pp.restart_required([])


def test_format_line():
    assert pp.format_line('a', 'b') == 'a = b'
    assert pp.format_line('a', '') == 'a = '


# --- properties ------------------------------------------------------------------

hypothesis = pytest.importorskip('hypothesis')
st = hypothesis.strategies

_ITEM = st.text(alphabet=st.characters(blacklist_characters=', \t\r\n{}\x00',
                                       blacklist_categories=('Cs', 'Zs', 'Zl', 'Zp', 'Cc')),
                min_size=1, max_size=12)


@hypothesis.given(st.lists(_ITEM, max_size=8), st.sampled_from([', ', ',', ' ', ' ,\t', '\n ']))
def test_joined_list_splits_back_into_its_items(items, separator):
    assert pp.list_items(separator.join(items)) == items
    assert pp.values_equal('mynetworks', separator.join(items), pp.to_postconf_value(items))


@hypothesis.given(st.text(max_size=40))
def test_name_check_agrees_with_postfix_alphabet(name):
    # letters, digits, "_"; "-" and "." after the first character (service-derived names)
    def word(c):
        return c.isascii() and (c.isalnum() or c == '_')
    valid = bool(name) and word(name[0]) and all(word(c) or c in '-.' for c in name[1:])
    assert (pp.check_name(name) is None) == valid


# -- the TLS security level Postfix applies (used by tls_probe and the current_tls_level filter)

@pytest.mark.parametrize('params, level', [
    ({'smtp_tls_security_level': 'Encrypt'}, 'encrypt'),
    ({'smtp_tls_security_level': '', 'smtp_use_tls': 'yes'}, 'may'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes'}, 'encrypt'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes', 'smtp_tls_enforce_peername': 'yes'}, 'verify'),
    ({}, 'none'),
])
def test_tls_security_level_of_the_smtp_client(params, level):
    assert pp.tls_security_level(params, 'smtp') == level


@pytest.mark.parametrize('params, level', [
    ({'smtpd_tls_security_level': ' Encrypt '}, 'encrypt'),
    ({'smtpd_enforce_tls': 'yes', 'smtpd_use_tls': 'no'}, 'encrypt'),
    ({'smtpd_enforce_tls': 'no', 'smtpd_use_tls': 'YES'}, 'may'),
    ({'smtpd_tls_security_level': '', 'smtp_use_tls': 'yes'}, 'none'),
])
def test_tls_security_level_of_the_smtp_server(params, level):
    assert pp.tls_security_level(params, 'smtpd') == level


@pytest.mark.parametrize('text, expected', [
    ('${maps_d_dir}${maps_d_dir:/etc/postfix/maps.d}/${default_database_type}-tls-policy.map',
     '/srv/maps.d/lmdb-tls-policy.map'),
    ('${empty}${empty:/etc/postfix/maps.d}/$default_database_type-tls-policy.map',
     '/etc/postfix/maps.d/lmdb-tls-policy.map'),
    ('$(maps_d_dir)/x${maps_d_dir?-set}${empty?-unset}', '/srv/maps.d/x-set'),
    ('cost: $$5 ${maps_d_dir:default}', 'cost: $5 '),
    ('/etc/postfix/tls_policy', '/etc/postfix/tls_policy'),
])
def test_expand_references_as_postfix_does(text, expected):
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import expand_references
    values = {'maps_d_dir': '/srv/maps.d', 'default_database_type': 'lmdb', 'empty': ''}
    assert expand_references(text, values) == expected


def test_expand_references_names_what_it_does_not_know():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import expand_references
    with pytest.raises(KeyError, match='nope'):
        expand_references('/x/${nope}', {})


# -- list items added or removed, the rest kept ---------------------------------------------------

@pytest.mark.parametrize('current, items, mode, expected', [
    # added at the end, the items already there kept as written (separators and all)
    ('hash:/etc/postfix/a hash:/etc/postfix/b', 'hash:/etc/postfix/tls_policy', 'present',
     'hash:/etc/postfix/a, hash:/etc/postfix/b, hash:/etc/postfix/tls_policy'),
    (None, 'aNULL, eNULL', 'present', 'aNULL, eNULL'),
    ('', 'aNULL', 'present', 'aNULL'),
    # already there (in any spelling of the separators): nothing to write
    ('aNULL,eNULL', 'eNULL', 'present', None),
    ('aNULL,eNULL', 'eNULL aNULL', 'present', None),
    ('check_policy_service { inet:127.0.0.1:10040, timeout=10s }',
     'check_policy_service {inet:127.0.0.1:10040, timeout=10s}', 'present', None),
    # only the missing ones, each once, in the order given
    ('a', 'b, a, c, b', 'present', 'a, b, c'),
    # removed, the rest kept in its order
    ('hash:/a, hash:/etc/postfix/tls_policy, hash:/b', 'hash:/etc/postfix/tls_policy', 'absent', 'hash:/a, hash:/b'),
    ('a b a c', 'a', 'absent', 'b, c'),
    ('a', 'a', 'absent', ''),
    ('a, b', 'c', 'absent', None),
    (None, 'c', 'absent', None),
    ('{ a,  b }, c', '{a, b}', 'absent', 'c'),
    # the same milter with its settings separated otherwise: not added twice, and removed
    ('{ inet:127.0.0.1:8891, default_action=accept }', '{ inet:127.0.0.1:8891,default_action=accept }',
     'present', None),
    ('{ inet:127.0.0.1:8891, default_action=accept }, inet:127.0.0.1:11332',
     '{inet:127.0.0.1:8891 default_action=accept}', 'absent', 'inet:127.0.0.1:11332'),
])
def test_edit_list(current, items, mode, expected):
    assert pp.edit_list(current, items, mode) == expected


def test_edit_list_for_a_master_cf_override_joins_without_blanks():
    assert pp.edit_list('!aNULL', 'eNULL,!MD5', 'present', separator=',') == '!aNULL,eNULL,!MD5'


def test_edit_list_knows_only_present_and_absent():
    with pytest.raises(ValueError):
        pp.edit_list('a', 'b', 'exact')


def test_printable_result_shows_bytes_that_are_not_utf8_everywhere_in_a_result():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import printable_result
    latin1 = b'caf\xe9'.decode('utf-8', 'surrogateescape')
    result = printable_result({'diff': {'before': latin1}, 'removed': [latin1], latin1: 1, 'n': 2, 'ok': True})
    assert result == {'diff': {'before': 'caf\\xe9'}, 'removed': ['caf\\xe9'], 'caf\\xe9': 1, 'n': 2, 'ok': True}
    assert printable_result('bücher') == 'bücher'


@pytest.mark.parametrize('level, than, weaker', [
    ('may', 'encrypt', True), ('encrypt', 'may', False), ('dane', 'encrypt', True), ('encrypt', 'dane', True),
    ('dane', 'may', False), ('dane', 'verify', True), ('verify', 'dane', False), ('dane-only', 'encrypt', False),
    ('DANE', 'Encrypt', True), ('encrypt', 'encrypt', False),
])
def test_weaker_somewhere(level, than, weaker):
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import weaker_somewhere
    assert weaker_somewhere(level, than, 'smtp') is weaker


def test_policy_value_level_is_the_first_token_as_postfix_splits_it():
    assert pp.policy_value_level('Secure match=nexthop') == 'secure'
    assert pp.policy_value_level('encrypt,protocols=>=TLSv1.2') == 'encrypt'
    assert pp.policy_value_level('') is None and pp.policy_value_level(None) is None
