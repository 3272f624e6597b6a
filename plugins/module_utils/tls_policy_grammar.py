# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The grammar of a Postfix ``smtp_tls_policy_maps`` entry.

Pure Python, no Ansible imports.  What Postfix accepts is taken from its
sources (see docs/tls_policy.md for the rule by rule account):

* src/smtp/smtp_tls_policy.c ``tls_policy_lookup_one()``: the value is a
  level followed by ``name=value`` attributes, with per-attribute repeat
  and empty-value rules;
* src/tls/tls_level.c, src/tls/tls_misc.c (``tls_proto_mask_lims()``,
  ``tls_set_ciphers()``), src/tls/tls_client.c, src/tls/tls_dane.c: what
  becomes of protocols, cipher grades, exclusions, SNI names and
  fingerprints at handshake time;
* src/util/host_port.c, src/util/valid_hostname.c,
  src/util/valid_utf8_hostname.c, src/smtp/smtp_connect.c: which next-hop
  destinations exist, i.e. which keys Postfix can ever look up.

Two kinds of refusal:

``PolicyError``
    Postfix cannot use the entry: it defers the mail ("client TLS
    configuration problem", or an aborted TLS session), or it can never
    look the key up.  Messages quote Postfix only with text Postfix prints.
``PolicyLint`` (a subclass)
    Postfix would use the entry, but this collection refuses it because it
    is almost certainly a mistake (its effect differs from what it says).
    Every such message ends with ``(rule of this collection, Postfix
    accepts it: ...)``.  ``build_policy(..., lint=False)`` and
    ``parse_policy()`` turn lints into ``Policy.warnings`` instead.
"""

import ipaddress
import re
import socket
import unicodedata

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    LIST_SEPARATORS,
    WHITESPACE,
    fold_key,
    split_list,
    utf8_fold_key,
)

LEVELS = ('none', 'may', 'encrypt', 'dane', 'dane-only', 'fingerprint', 'verify', 'secure')
CIPHER_GRADES = ('high', 'medium', 'low', 'export', 'null')
# tls_misc.c protocol_table (include/exclude names) and tls_version_table (bounds).
PROTOCOLS = ('SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3')
BOUND_VERSIONS = (('None', 0), ('SSLv3', 0x0300), ('TLSv1', 0x0301), ('TLSv1.1', 0x0302),
                  ('TLSv1.2', 0x0303), ('TLSv1.3', 0x0304))
SERVERNAME_KEYWORDS = ('hostname', 'nexthop')
MATCH_KEYWORDS = ('hostname', 'nexthop', 'dot-nexthop')

# Where each attribute is allowed.
MATCH_LEVELS = ('fingerprint', 'verify', 'secure')
TAFILE_LEVELS = ('verify', 'secure')

# Attribute order in a rendered value (also the attributes build_policy takes).
ATTRIBUTES = ('match', 'tafile', 'ciphers', 'protocols', 'exclude',
              'servername', 'connection_reuse', 'enable_rpk')
# MTA-STS / TLSRPT plumbing attributes (Postfix 3.10): read, never written.
EXT_ATTRIBUTES = ('policy_type', 'policy_domain', 'policy_string', 'mx_host_pattern',
                  'policy_failure', 'policy_ttl')
# Repeat semantics of smtp_tls_policy.c: the others are "specified multiple times" errors.
REPEATABLE = ('match', 'tafile', 'policy_string', 'mx_host_pattern')
LAST_ONE_WINS = ('connection_reuse', 'enable_rpk')
# Attributes whose empty value Postfix accepts (overrides main.cf with nothing).
EMPTY_ALLOWED = ('protocols', 'exclude')

# The first Postfix release that understands a feature (major, minor[, patch]).
SINCE = {
    'servername': (3, 4),
    'connection_reuse': (3, 4, 14),
    'enable_rpk': (3, 9),
    'protocol_range': (3, 6),
    'brace_form': (3, 10),
    'tlsrpt_attributes': (3, 10),
    # not a feature an entry uses: malformed table fingerprints no longer fall back to
    # smtp_tls_fingerprint_cert_match (smtp_tls_policy.c, 3.9)
    'fingerprint_no_fallback': (3, 9),
}
FEATURE_REASONS = {
    'servername': 'the servername attribute',
    'connection_reuse': 'the connection_reuse attribute',
    'enable_rpk': 'the enable_rpk attribute',
    'protocol_range': 'the protocols range form (">=" / "<=")',
    'brace_form': 'the "{ name = value }" attribute form',
    'tlsrpt_attributes': 'the MTA-STS/TLSRPT attributes (policy_type, ...)',
}

# Digest sizes in bytes: md5, sha1, sha224, sha256, sha384, sha512.
FINGERPRINT_SIZES = (16, 20, 28, 32, 48, 64)
_FINGERPRINT_SIZES = FINGERPRINT_SIZES
_EVP_MAX_MD_SIZE = 64

# Postfix splits tokens of a policy value on these (CHARS_COMMA_SP).
TOKEN_SEPARATORS = LIST_SEPARATORS
_WHITESPACE = WHITESPACE
_FORBIDDEN_IN_TOKEN = ', \t\n\v\f\r{}'
_FORBIDDEN_IN_TOKEN_RE = re.compile('[%s\x00-\x1f\x7f]' % re.escape(_FORBIDDEN_IN_TOKEN))

_LABEL_RE = re.compile(r'^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$', re.IGNORECASE | re.ASCII)
_SERVICE_RE = re.compile(r'^[a-z][a-z0-9_.+-]*$', re.IGNORECASE | re.ASCII)
_CIPHER_NAME_RE = re.compile(r'^[A-Za-z0-9+_.-]+$')
_HEX_VERSION_RE = re.compile(r'^(?:0[xX])?[0-9A-Fa-f]+$')
_VALID_HOSTNAME_LEN = 255
_VALID_LABEL_LEN = 63
# DEF_KNOWN_TCP_PORTS (Postfix 3.6+): resolved without /etc/services.
_KNOWN_TCP_PORTS = ('lmtp', 'smtp', 'smtps', 'submissions', 'submission')

_BAD_KEY_CHAR_RE = re.compile('[%s,\x00-\x1f\x7f]' % re.escape(_WHITESPACE))

_PROTOCOL_BY_LOWER = dict((p.lower(), p) for p in PROTOCOLS)
_BOUND_BY_LOWER = dict((name.lower(), (name, code)) for name, code in BOUND_VERSIONS)
_KNOWN_VERSION_CODES = dict((code, name) for name, code in BOUND_VERSIONS)
_PROTOCOL_CODE = {'SSLv2': 0x0200, 'SSLv3': 0x0300, 'TLSv1': 0x0301, 'TLSv1.1': 0x0302,
                  'TLSv1.2': 0x0303, 'TLSv1.3': 0x0304}

_TLSRPT_POLICY_TYPES = ('sts', 'no-policy-found')
_TLSRPT_POLICY_FAILURES = ('sts-policy-fetch-error', 'sts-policy-invalid',
                           'sts-webpki-invalid', 'validation-failure')


class PolicyError(ValueError):
    """An entry Postfix cannot use (or a key it never looks up); the message says why."""


class PolicyLint(PolicyError):
    """An entry Postfix would use, refused by a documented rule of this collection."""


def _lint_text(message, why):
    return '%s (rule of this collection, Postfix accepts it: %s)' % (message, why)


class _Checker:
    """Collect lints; done() raises the first one when strict. A lint is raised only after
    every other check passed: an error Postfix defers the mail for is what a value that has
    both gets refused with."""

    def __init__(self, strict):
        self.strict = strict
        self.warnings = []

    def lint(self, message, why):
        self.lint_text(_lint_text(message, why))

    def lint_text(self, text):
        """A lint already worded by _lint_text."""
        self.warnings.append(text)

    def done(self):
        if self.strict and self.warnings:
            raise PolicyLint(self.warnings[0])
        return self.warnings


def version_tuple(text):
    """'3.7.11' -> (3, 7, 11); () when TEXT holds no number."""
    if isinstance(text, tuple):
        return text
    return tuple(int(n) for n in re.findall(r'\d+', text or '')[:3])


def supports(feature, version):
    """True when Postfix VERSION (a tuple or text) understands FEATURE.

    ``connection_reuse`` in the table is a patch-level gate: Postfix 3.4.0 to
    3.4.13 and 3.5.0 to 3.5.3 reject it as an invalid attribute name (HISTORY
    20200617, fixed in 3.4.14, 3.5.4 and 3.6).  An unknown version (``()``)
    is assumed to support everything.
    """
    version = version_tuple(version)
    if not version:
        return True
    padded = (tuple(version) + (0, 0, 0))[:3]
    if feature == 'connection_reuse':
        if padded[:2] == (3, 5):
            return padded >= (3, 5, 4)
        return padded >= (3, 4, 14)
    since = SINCE.get(feature)
    if since is None:
        return True
    return padded >= (tuple(since) + (0, 0, 0))[:3]


def _version_text(feature):
    if feature == 'connection_reuse':
        return '3.4.14, 3.5.4 or 3.6 and later'
    return '%s or later' % '.'.join(str(n) for n in SINCE[feature])


# ---------------------------------------------------------------------------
# Host names and addresses: ports of src/util/valid_hostname.c
# ---------------------------------------------------------------------------

def hostname_problem(name):
    """Why Postfix's ``valid_hostname()`` refuses NAME (ASCII), or None.

    Letters, digits, ``_`` and ``-`` in dot-separated labels of at most 63
    characters, no empty label (so no leading or trailing dot), no hyphen at
    the start or end of a label, at most 255 characters, and not all-numeric
    (digits and dots only, such as ``192.0.2.1`` or ``123``).
    """
    if not name:
        return 'empty hostname'
    if len(name) > _VALID_HOSTNAME_LEN:
        return 'longer than %d characters' % _VALID_HOSTNAME_LEN
    if not name.isascii():
        return 'non-ASCII character'
    if name.startswith('.'):
        return 'misplaced delimiter: starts with a dot'
    if name.endswith('.'):
        return 'misplaced delimiter: ends with a dot (no trailing dot in Postfix names)'
    non_numeric = False
    for label in name.split('.'):
        if not label:
            return 'misplaced delimiter: empty label'
        if len(label) > _VALID_LABEL_LEN:
            return ('label %r is not a valid DNS label: longer than %d characters (at most %d)'
                    % (label, _VALID_LABEL_LEN, _VALID_LABEL_LEN))
        if label.startswith('-') or label.endswith('-'):
            return 'label %r is not a valid DNS label: misplaced hyphen' % label
        bad = [ch for ch in label if not (ch.isalnum() or ch in '_-')]
        if bad:
            return 'label %r is not a valid DNS label: invalid character %r' % (label, bad[0])
        if not label.isdigit():
            non_numeric = True
    if not non_numeric:
        return 'numeric hostname (all labels are digits)'
    return None


def valid_ipv4(addr):
    """Postfix's ``valid_ipv4_hostaddr()``: 4 decimal octets <= 255, not 0.x.y.z."""
    parts = addr.split('.')
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() for p in parts):
        return False
    if any(int(p) > 255 for p in parts):
        return False
    if int(parts[0]) == 0 and any(int(p) for p in parts[1:]):
        return False
    return True


def valid_ipv6(addr):
    """Postfix's ``valid_ipv6_hostaddr()`` (no zone index, fields of <= 4 hex digits)."""
    if not addr or not addr.isascii() or not re.match(r'^[0-9A-Fa-f:.]+$', addr):
        return False
    try:
        ipaddress.IPv6Address(addr)
    except ValueError:
        return False
    head = addr.rsplit(':', 1)[0] if '.' in addr else addr
    return all(len(field) <= 4 for field in head.split(':'))


def _ascii_form(name):
    """The A-label form of a (partly) UTF-8 name, or raise UnicodeError."""
    out = []
    for label in name.split('.'):
        if label.isascii():
            out.append(label)
        else:
            out.append(label.encode('idna').decode('ascii'))
    return '.'.join(out)


def _utf8_hostname_problem(name):
    """``valid_utf8_hostname()``: UTF-8 names are checked in their A-label form."""
    if name.isascii():
        return hostname_problem(name), name
    try:
        ascii_name = _ascii_form(name)
    except UnicodeError:
        return 'not a valid internationalized domain name (no A-label form)', None
    return hostname_problem(ascii_name), ascii_name


# ---------------------------------------------------------------------------
# Keys (next-hop destinations)
# ---------------------------------------------------------------------------

def _describe_chars(text):
    bad = sorted(set(ch for ch in text if ch in _WHITESPACE or ch == ',' or ord(ch) < 32
                     or ord(ch) == 127))
    return ', '.join(repr(ch) for ch in bad)


def _no_nexthop(destination, what, problem):
    return PolicyError('destination %r: %s is not a valid host name or address (%s); '
                       'Postfix accepts no such next hop ("valid hostname or network '
                       'address required"), so it never looks this key up'
                       % (destination, what, problem))


def _check_port(port, destination, warnings, checker):
    if port == '':
        checker.lint('destination %r: empty port after ":"' % destination,
                     'Postfix uses the default port, but only looks this key up when a transport '
                     'spells it with the trailing ":"; write the key without it')
        return
    if port[0].isdigit():
        if not port.isdigit() or not port.isascii():
            raise PolicyError('destination %r: port %r: Postfix refuses this next hop '
                              '("garbage after numerical service")' % (destination, port))
        if not 1 <= int(port) <= 65535:
            raise PolicyError('destination %r: port %r: Postfix refuses this next hop '
                              '("bad network port"); use 1 to 65535' % (destination, port))
        return
    if not _SERVICE_RE.match(port):
        raise PolicyError('destination %r: port %r is neither a number nor a service name'
                          % (destination, port))
    if port in _KNOWN_TCP_PORTS:
        return
    try:
        socket.getservbyname(port, 'tcp')
    except (OSError, socket.error):
        warnings.append('destination %r: port %r is not a TCP service in this host\'s services '
                        'database: until it is, Postfix stops delivery to this next hop '
                        '("unknown service: %s/tcp"); the port number always works'
                        % (destination, port, port))


def normalize_destination(destination):
    """Check a policy table key and fold it as Postfix does.

    Accepted forms: ``domain``, ``.domain`` (subdomains), ``[host]``,
    ``[host]:port``, ``host:port``, ``[ipv6:ADDR]``, ``[ipv6:ADDR]:port`` and
    the bare ``[ADDR]``, ``[ADDR]:port`` (a different key from the
    ``ipv6:`` form); ``host`` may be an address inside brackets; domains may
    be UTF-8 (looked up verbatim, never converted).

    Returns ``(key, warnings)``; raises PolicyError for a key Postfix never
    looks up (PolicyLint for the collection's own rules, only when Postfix does look
    the key up: a key that breaks both gets the error).
    """
    checker = _Checker(True)
    key, warnings = _normalize_destination(destination, checker)
    checker.done()
    return key, warnings


def _normalize_destination(destination, checker):
    if not isinstance(destination, str) or destination == '':
        raise PolicyError('destination %r: must be a non-empty string' % (destination,))
    if _BAD_KEY_CHAR_RE.search(destination):
        raise PolicyError('destination %r: contains whitespace, a comma or a control character '
                          '(%s); a policy table key ends at the first whitespace'
                          % (destination, _describe_chars(destination) or 'control character'))
    if destination.startswith('#'):
        raise PolicyError('destination %r: a table line starting with "#" is a comment'
                          % destination)
    if destination == '*' or destination.startswith('*.') or destination.startswith('.*'):
        raise PolicyError('destination %r: smtp_tls_policy_maps has no wildcards, Postfix '
                          'never looks this key up; the default for all destinations is '
                          'smtp_tls_security_level, subdomains are covered by ".example.com"'
                          % destination)
    warnings = []
    if destination.isascii():
        key = destination.lower()
    else:
        _check_non_ascii_key(destination, checker)
        key = fold_key(destination)
        folded = utf8_fold_key(destination)
        if key != folded:
            checker.lint('destination %r: write this UTF-8 key case-folded, as %r' % (destination, folded),
                         'with smtputf8_enable=yes it folds the key to %r, with smtputf8_enable=no it '
                         'only lowers ASCII letters, so only the folded spelling works with both'
                         % folded)
    if key.startswith('['):
        return key, _bracket_key(destination, key, warnings, checker)
    if ']' in key or '[' in key:
        raise PolicyError('destination %r: unbalanced brackets' % destination)
    if key.startswith('ipv6:'):
        raise PolicyError('destination %r: an IPv6 address must be written in brackets: [%s]'
                          % (destination, key))
    if key.startswith('.'):
        if ':' in key:
            raise PolicyError('destination %r: the subdomain form ".domain" takes no port: '
                              'Postfix only tries parent domains of a plain domain name, '
                              'so it never looks this key up' % destination)
        _check_dot_domain(destination, key[1:])
        _utf8_warning(destination, key, key[1:], warnings)
        return key, warnings
    if ':' in key:
        host, _sep, port = key.rpartition(':')
        if ':' in host or (not host and port):
            raise PolicyError('destination %r: an IPv6 address must be written in brackets, '
                              '[2001:db8::1] or [ipv6:2001:db8::1], as the transport or relayhost '
                              'spells it' % destination)
        _check_port(port, destination, warnings, checker)
        if not valid_ipv4(host):
            problem, dummy = _utf8_hostname_problem(host)
            if problem:
                raise _no_nexthop(destination, 'host %r' % host, problem)
        warnings.append(
            'destination %r: Postfix looks this key up only when a transport or relayhost '
            'names %r verbatim; mail routed by MX to %s is looked up as %r (or [%s]:%s for '
            'a transport without MX lookups)' % (destination, key, host, host, host, port))
        _utf8_warning(destination, key, host, warnings)
        return key, warnings
    if valid_ipv4(key):
        warnings.append('destination %r: an IP address without brackets is looked up only '
                        'when a transport names it that way; a relayhost or transport '
                        'to an address is written [%s]' % (destination, key))
        return key, warnings
    problem, dummy = _utf8_hostname_problem(key)
    if problem:
        raise _no_nexthop(destination, 'domain %r' % key, problem)
    _utf8_warning(destination, key, key, warnings)
    return key, warnings


def removable_key(destination):
    """The key of an entry to remove (state absent): any single table token.

    Existing lines Postfix cannot use (a ``*`` key, a key that is no next
    hop) must be removable by name, so only what could not be a table key
    at all is refused here.  Returns ``(key, warnings)``.
    """
    try:
        return normalize_destination(destination)
    except PolicyError as e:
        if not isinstance(destination, str) or destination == '' \
                or _BAD_KEY_CHAR_RE.search(destination) or destination.startswith('#'):
            raise
        return fold_key(destination), ['%s (removing it)' % e]


# Zero-width joiner and non-joiner have a place inside some scripts' names (IDNA CONTEXTJ)
_JOINERS = ('\u200c', '\u200d')


def _invisible_characters(text):
    """The format characters in TEXT (Unicode category Cf: zero-width space, byte order mark,
    soft hyphen, direction marks, ...), joiners aside, as 'U+200B (ZERO WIDTH SPACE)'."""
    return ['U+%04X (%s)' % (ord(ch), unicodedata.name(ch, 'unnamed'))
            for ch in sorted(set(text)) if unicodedata.category(ch) == 'Cf' and ch not in _JOINERS]


def invisible_key_problem(destination):
    """The lint text for a key with invisible characters, or None: pasted from a web page or
    a word processor (a byte order mark before the table's first line), the key looks right
    and no next hop is spelled with them, so the entry never matches."""
    invisible = _invisible_characters(destination) if not destination.isascii() else []
    if not invisible:
        return None
    them = 'them' if len(invisible) > 1 else 'it'
    return _lint_text('destination %r: invisible character%s %s'
                      % (destination, 's' if len(invisible) > 1 else '', ', '.join(invisible)),
                      'it looks the key up verbatim, and no next hop is spelled with %s; remove %s'
                      % (them, them))


def _check_non_ascii_key(destination, checker):
    """A UTF-8 key must be a real internationalized name, not ASCII in disguise."""
    invisible = invisible_key_problem(destination)
    if invisible:
        checker.lint_text(invisible)
    host = destination.strip('[].')
    if host.startswith('ipv6:'):
        host = host[5:]
    host = host.split(']')[0]
    if ':' in host and not host.startswith('['):
        host = host.rpartition(':')[0]
    try:
        ascii_host = _ascii_form(host)
    except UnicodeError:
        raise PolicyError('destination %r: non-ASCII name that is not a valid internationalized '
                          'domain name (it has no A-label form), so no next hop is ever spelled '
                          'this way and Postfix never looks this key up' % destination)
    if 'xn--' not in ascii_host:
        checker.lint(
            'destination %r: non-ASCII characters that stand for ASCII letters (%r)'
            % (destination, ascii_host),
            'it looks the key up verbatim, while next hops are spelled %r; write that'
            % ascii_host)


def _check_dot_domain(destination, rest):
    """``.domain``: a suffix of a valid host name (labels only; may be numeric)."""
    try:
        ascii_rest = _ascii_form(rest) if not rest.isascii() else rest
    except UnicodeError:
        raise PolicyError('destination %r: %r is not a valid internationalized domain name, '
                          'so Postfix never looks this key up' % (destination, rest))
    problem = hostname_problem('x.' + ascii_rest) if ascii_rest else 'empty domain'
    if problem:
        raise PolicyError('destination %r: %r is not a domain (%s); Postfix only looks up '
                          '".domain" for parents of valid host names, so never this key'
                          % (destination, rest, problem))


def _utf8_warning(destination, key, host, warnings):
    if host.isascii():
        return
    try:
        ascii_key = key.replace(host, _ascii_form(host), 1)
    except UnicodeError:
        return
    warnings.append('destination %r: Postfix looks keys up verbatim and converts nothing '
                    'between UTF-8 and A-labels: mail whose next hop is spelled %r is looked up '
                    'under that spelling, so add an entry for it too (SMTPUTF8_README)'
                    % (destination, ascii_key))


def _bracket_key(destination, key, warnings, checker):
    close = key.find(']')
    if close < 0:
        raise PolicyError('destination %r: unbalanced brackets: "[" without "]"; Postfix '
                          'refuses such a next hop ("missing \\"]\\"")' % destination)
    inner, rest = key[1:close], key[close + 1:]
    if '[' in inner or ']' in rest or '[' in rest:
        raise PolicyError('destination %r: unbalanced or repeated brackets' % destination)
    if rest:
        if not rest.startswith(':'):
            raise PolicyError('destination %r: only ":port" may follow "]"; Postfix refuses '
                              'such a next hop ("garbage after \\"]\\"")' % destination)
        _check_port(rest[1:], destination, warnings, checker)
    if not inner:
        raise PolicyError('destination %r: empty host inside brackets; Postfix refuses such a '
                          'next hop ("missing host information")' % destination)
    if inner.startswith('ipv6:'):
        if not valid_ipv6(inner[5:]):
            raise PolicyError('destination %r: %r is not a valid IPv6 address; Postfix refuses '
                              'such a next hop ("malformed IPv6 address")'
                              % (destination, inner[5:]))
        return warnings
    if ':' in inner:
        if not valid_ipv6(inner):
            raise _no_nexthop(destination, '%r' % inner, 'not a valid IPv6 address')
        return warnings
    if valid_ipv4(inner):
        return warnings
    if inner.startswith('.'):
        raise _no_nexthop(destination, 'host %r' % inner,
                          'a leading dot: the subdomain form is not allowed inside brackets')
    problem, dummy = _utf8_hostname_problem(inner)
    if problem:
        raise _no_nexthop(destination, 'host %r' % inner, problem)
    _utf8_warning(destination, key, inner, warnings)
    return warnings


# ---------------------------------------------------------------------------
# Values (security level and attributes)
# ---------------------------------------------------------------------------

def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _empty_value_error(name):
    return PolicyError('%s: empty value; Postfix defers the mail (attribute "%s" has empty value)'
                       % (name, name))


def _check_token(name, value, empty_ok=False):
    """A value must not contain anything that would make Postfix see more tokens."""
    if not isinstance(value, str):
        raise PolicyError('%s value %r must be a string' % (name, value))
    if value == '' and not empty_ok:
        raise _empty_value_error(name)
    if _FORBIDDEN_IN_TOKEN_RE.search(value):
        bad = [ch for ch in value if ch in _FORBIDDEN_IN_TOKEN or ord(ch) < 32 or ord(ch) == 127]
        raise PolicyError('%s value %r contains %s; whitespace, commas, braces and control '
                          'characters would split it into separate tokens of the policy entry'
                          % (name, value, ', '.join(repr(ch) for ch in sorted(set(bad)))))


def _check_match_host(value, checker):
    _check_token('match', value)
    if ':' in value:
        raise PolicyError('match value %r contains ":", the separator of match values at '
                          'levels verify and secure; give each name as a separate match value' % value)
    if value.lower() in MATCH_KEYWORDS:
        return
    if value == '.':
        checker.lint('match value "." names no domain',
                     'it ignores the name with a warning ("ignoring invalid match name")')
        return
    host = value[1:] if value.startswith('.') else value
    if not host.isascii():
        try:
            ascii_host = _ascii_form(host)
        except UnicodeError:
            ascii_host = None
        if ascii_host is not None and ascii_host.isascii() and 'xn--' not in ascii_host:
            checker.lint('match value %r contains non-ASCII characters that stand for ASCII '
                         'letters (%r)' % (value, ascii_host),
                         'it converts the name to %r, write that' % ascii_host)
            return
        if ascii_host is None:
            checker.lint('match value %r is not a valid internationalized host name' % value,
                         'OpenSSL then never matches it, and verification fails')
            return
        host = ascii_host
    problem = hostname_problem(host) if host else 'empty name'
    if problem and not (value.startswith('.') and problem.startswith('numeric')):
        checker.lint('match value %r is not a host name, ".domain" or one of the keywords '
                     'hostname, nexthop, dot-nexthop (%s)' % (value, problem),
                     'OpenSSL compares it with the certificate names, which never match')


# hex_decode_opt(HEX_DECODE_FLAG_ALLOW_COLON): hex pairs, each but the first optionally
# preceded by one ":" (a ":" is skipped only when a whole pair follows it)
_FINGERPRINT_RE = re.compile(r'(?:[0-9A-Fa-f]{2}(?::?[0-9A-Fa-f]{2})*)?')


def _fingerprint_bytes(value):
    """Decode like hex_decode_opt(HEX_DECODE_FLAG_ALLOW_COLON); None when malformed."""
    if len(value) > 3 * _EVP_MAX_MD_SIZE or not _FINGERPRINT_RE.fullmatch(value):
        return None
    return (len(value) - value.count(':')) // 2


def _check_fingerprint(value, checker):
    _check_token('match', value)
    if '|' in value:
        raise PolicyError('match value %r contains "|", the separator of fingerprint match '
                          'values; give each fingerprint as its own list item' % value)
    size = _fingerprint_bytes(value)
    if size is None:
        checker.lint('match value %r is not a certificate or public key fingerprint (hex '
                     'bytes, optionally separated by ":", for example "3D:95:34:...")' % value,
                     'it skips it ("malformed fingerprint value") and defers the mail when no '
                     'fingerprint is left')
        return
    if size not in FINGERPRINT_SIZES:
        checker.lint('match value %r is %d bytes long; a fingerprint digest is %s bytes'
                     % (value, size, ', '.join(str(s) for s in FINGERPRINT_SIZES)),
                     'it skips it ("unusable TLSA RR") and uses the other fingerprints')


def _split_colon_list(name, values, checker):
    """Split list items on ":" (the table syntax); [] when the whole setting is empty."""
    items = []
    for item in _as_list(values):
        if not isinstance(item, str):
            raise PolicyError('%s value %r must be a string' % (name, item))
        # blanks around list items ("!SSLv2, !SSLv3" split on the comma) are dropped;
        # line breaks and other control characters are refused like anywhere else
        items.append(item.strip(' \t'))
    if all(item == '' for item in items):
        return []
    tokens = []
    for item in items:
        if item == '':
            checker.lint('%s: an empty list item next to non-empty ones' % name,
                         'it skips empty elements; an empty value is a single empty string')
            continue
        for token in item.split(':'):
            if token == '':
                checker.lint('%s value %r has an empty element between ":" separators'
                             % (name, item), 'it skips empty elements')
                continue
            _check_token(name, token)
            tokens.append(token)
    return tokens


def _parse_bound(token, op, checker):
    """A ``>=``/``<=`` bound; return (canonical text, version code)."""
    value = token[len(op):]
    known = _BOUND_BY_LOWER.get(value.lower())
    if known is not None:
        return op + known[0], known[1]
    if value == '':
        checker.lint('protocols value %r: a bound without a version' % token,
                     'it reads it as no bound; write %sNone for that' % op)
        return token, 0
    if not _HEX_VERSION_RE.match(value):
        raise PolicyError('protocols value %r: %r is not a protocol version; Postfix aborts '
                          'TLS ("Invalid TLS protocol list"); bounds take None, SSLv3, TLSv1, '
                          'TLSv1.1, TLSv1.2, TLSv1.3 or a hex version such as 0x0303 '
                          '(SSLv2 is not a bound)' % (token, value))
    code = int(value, 16)
    if code > 0x7fffffff:
        raise PolicyError('protocols value %r: version out of range; Postfix aborts TLS '
                          '("Invalid TLS protocol list")' % token)
    if code not in _KNOWN_VERSION_CODES:
        checker.lint('protocols value %r: 0x%04x is not a TLS protocol version' % (token, code),
                     'OpenSSL refuses it, Postfix logs "error setting %simum TLS version" and '
                     'applies no bound' % ('min' if op == '>=' else 'max'))
        return op + value, None
    return op + value, code


def canonical_protocols(values, checker=None):
    """Validate a protocols setting; return the ``:``-joined table form.

    Elements (tls_proto_mask_lims): ``NAME`` (include), ``!NAME``
    (exclude), ``>=VERSION`` and ``<=VERSION`` (bounds, Postfix 3.6 and
    later).  NAME is SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3;
    VERSION is None, SSLv3 .. TLSv1.3 or a hex version (``0x0303``);
    both case-insensitive.  As in Postfix, a later bound overrides an
    earlier one and an exclusion beats an inclusion; repeats are kept as
    written.  An empty setting returns ``''`` (it overrides main.cf).
    """
    own, checker = checker is None, checker or _Checker(True)
    tokens = _split_colon_list('protocols', values, checker)
    rendered = []
    included, excluded = set(), set()
    floor = ceiling = 0
    for token in tokens:
        if token.startswith('>=') or token.startswith('<='):
            op = token[:2]
            canon, code = _parse_bound(token, op, checker)
            if code is not None:
                if op == '>=':
                    floor = code
                else:
                    ceiling = code
            rendered.append(canon)
            continue
        negate = token.startswith('!')
        name = token[1:] if negate else token
        proto = _PROTOCOL_BY_LOWER.get(name.lower())
        if proto is None:
            raise PolicyError('protocols value %r: unknown protocol %r; Postfix aborts TLS '
                              '("Invalid TLS protocol list"); use %s, optionally prefixed '
                              'with "!" (exclude), or a ">=" / "<=" bound'
                              % (token, name, ', '.join(PROTOCOLS)))
        (excluded if negate else included).add(proto)
        rendered.append(('!' if negate else '') + proto)
    if tokens:
        enabled = _enabled(included, excluded, floor, ceiling, contiguous=False)
        if not enabled:
            raise PolicyError('protocols value %r leaves no protocol enabled (exclusions beat '
                              'inclusions, the last bound of each kind applies, OpenSSL 1.1 and '
                              'later has no SSLv2 or SSLv3): every TLS handshake fails ("no '
                              'protocols available")' % ':'.join(rendered))
        used = _lowest_run(enabled)
        if used != enabled:
            unused = [p for p in enabled if p not in used]
            gap = [p for p in _TLS_VERSIONS if _PROTOCOL_CODE[used[-1]] < _PROTOCOL_CODE[p] < _PROTOCOL_CODE[unused[0]]]
            checker.lint('protocols value %r enables %s, but not %s between them: OpenSSL negotiates '
                         'only the lowest unbroken run of versions, %s, and never %s; to leave out old '
                         'versions exclude every one below the lowest wanted (%s), or from Postfix 3.6 '
                         'give a bound (>=%s)'
                         % (':'.join(rendered), ', '.join(enabled), ', '.join(gap), ', '.join(used),
                            ', '.join(unused), ':'.join('!' + p for p in _TLS_VERSIONS if _PROTOCOL_CODE[p] < _PROTOCOL_CODE[unused[0]]),
                            unused[0]),
                         'the TLS versions above the gap are silently never used')
    if own:
        checker.done()
    return ':'.join(rendered)


# the versions OpenSSL 1.1 and later can negotiate, in order (no SSLv2; SSLv3 is not built by default)
_TLS_VERSIONS = ('TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3')


def _enabled(included, excluded, floor, ceiling, contiguous=True):
    """The TLS versions OpenSSL may negotiate: those not masked nor outside the bounds, and
    of them (CONTIGUOUS) only the lowest unbroken run, as OpenSSL's ssl_get_min_max_version()
    reads a protocol mask with a gap (TLSv1 and TLSv1.2 without TLSv1.1: only TLSv1)."""
    masked = set(excluded)
    if included:
        masked |= set(PROTOCOLS) - included
    enabled = [p for p in _TLS_VERSIONS if p not in masked
               and (not floor or _PROTOCOL_CODE[p] >= floor)
               and (not ceiling or _PROTOCOL_CODE[p] <= ceiling)]
    return _lowest_run(enabled) if contiguous else enabled


def _lowest_run(enabled):
    """ENABLED (in _TLS_VERSIONS order) up to its first gap."""
    run = enabled[:1]
    for version in enabled[1:]:
        if _TLS_VERSIONS.index(version) != _TLS_VERSIONS.index(run[-1]) + 1:
            break
        run.append(version)
    return run


def enabled_protocols(table_value):
    """The protocol versions a canonical ``protocols`` value leaves to OpenSSL."""
    included, excluded = set(), set()
    floor = ceiling = 0
    for token in [t for t in table_value.split(':') if t]:
        if token[:2] in ('>=', '<='):
            known = _BOUND_BY_LOWER.get(token[2:].lower())
            code = known[1] if known else (int(token[2:], 16) if _HEX_VERSION_RE.match(token[2:]) else 0)
            if code and code not in _KNOWN_VERSION_CODES:
                continue
            if token[:2] == '>=':
                floor = code
            else:
                ceiling = code
        elif token.startswith('!'):
            excluded.add(_PROTOCOL_BY_LOWER.get(token[1:].lower()))
        else:
            included.add(_PROTOCOL_BY_LOWER.get(token.lower()))
    return _enabled(included, excluded, floor, ceiling)


def protocols_use_range(protocols):
    return '>=' in protocols or '<=' in protocols


def canonical_exclude(values, checker=None):
    """Validate cipher exclusions; return the ``:``-joined table form ('' when empty)."""
    own, checker = checker is None, checker or _Checker(True)
    tokens = _split_colon_list('exclude', values, checker)
    for token in tokens:
        if token[0] in '!+-@':
            raise PolicyError('exclude value %r starts with %r; Postfix aborts TLS ("invalid '
                              'unary \'!+-@\' in cipher exclusion"): give the plain cipher name '
                              'or alias, Postfix adds the "!" itself' % (token, token[0]))
        if not _CIPHER_NAME_RE.match(token):
            checker.lint('exclude value %r is not an OpenSSL cipher name or alias (letters, '
                         'digits, "+", "-", "_", ".")' % token,
                         'OpenSSL ignores names it does not know, so nothing is excluded')
    if own:
        checker.done()
    return ':'.join(tokens)


def _check_cipher_combinations(level, attributes):
    """What is left for OpenSSL after grade, exclusions and protocols (oracle findings)."""
    values = dict(attributes)
    grade = values.get('ciphers')
    if 'ALL' in values.get('exclude', '').split(':') and grade != 'null':
        # "ALL" does not contain the eNULL suites, so only grade null survives it
        raise PolicyError('exclude value "ALL" excludes every cipher of grade %s: Postfix aborts '
                          'TLS ("error setting cipher grade", "no cipher match")'
                          % (grade or 'from main.cf'))
    if grade == 'null' and 'protocols' in values and values['protocols'] and \
            'TLSv1.3' not in enabled_protocols(values['protocols']):
        # grade null leaves only eNULL suites, which OpenSSL offers for no TLS version below 1.3;
        # TLS 1.3 suites are not governed by the grade
        raise PolicyError('ciphers value "null" with protocols %r (no TLSv1.3) leaves no cipher: '
                          'the handshake fails ("no ciphers available")' % values['protocols'])


def _check_servername(value, checker):
    if not isinstance(value, str):
        raise PolicyError('servername value %r must be a string' % (value,))
    _check_token('servername', value, empty_ok=True)
    if value in SERVERNAME_KEYWORDS:
        return value
    problem = hostname_problem(value)
    if problem:
        raise PolicyError('servername value %r is not a valid host name (%s); Postfix defers '
                          'the mail ("servername=%s" specifies an invalid hostname); use a '
                          'host name or the keywords hostname, nexthop'
                          % (value, problem, value))
    if value.lower() in SERVERNAME_KEYWORDS:
        checker.lint('servername value %r: the keywords are lower case, %r' % (value, value.lower()),
                     'it compares the keywords case-sensitively and sends %r literally as SNI'
                     % value)
    return value


def _bool_word(name, value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, str) and value.lower() in ('yes', 'no'):
        return value.lower()
    raise PolicyError('%s value %r must be yes or no; Postfix defers the mail (attribute "%s" '
                      'has bad value)' % (name, value, name))


class Policy:
    """A validated policy: a level and attributes in canonical form.

    ``warnings`` holds the collection's lints when they were not raised
    (``lint=False``, ``parse_policy``); ``features`` the version-gated
    features the entry uses.
    """

    __slots__ = ('level', 'attributes', 'warnings', 'features', 'ignored')

    def __init__(self, level, attributes, warnings=None, features=None):
        self.level = level
        self.attributes = attributes    # list of (name, value) in render order
        self.ignored = []               # tokens Postfix ignores after level "none"
        self.warnings = list(warnings or [])
        self.features = set(features or ())
        for name, value in attributes:
            if name in SINCE:
                self.features.add(name)
            elif name == 'protocols' and protocols_use_range(value):
                self.features.add('protocol_range')
            elif name in EXT_ATTRIBUTES:
                self.features.add('tlsrpt_attributes')

    def render(self):
        """The value as written to the table: ``level name=value ...``."""
        return ' '.join([self.level] + ['%s=%s' % item for item in self.attributes]
                        + self.ignored)

    def get(self, name):
        return [value for attr, value in self.attributes if attr == name]

    def minimum_postfix_version(self):
        """``(version tuple, reason)`` of the newest feature used, or None.

        Patch-level gaps (connection_reuse: not 3.5.0-3.5.3) are only seen
        by ``unsupported_on``.
        """
        needed = None
        for feature in self.features:
            since = SINCE[feature]
            if needed is None or since > needed[0]:
                needed = (since, FEATURE_REASONS[feature])
        return needed

    def unsupported_on(self, version):
        """Messages for each feature Postfix VERSION does not understand."""
        return ['%s needs Postfix %s' % (FEATURE_REASONS[f], _version_text(f))
                for f in sorted(self.features) if not supports(f, version)]

    def __eq__(self, other):
        return isinstance(other, Policy) and self.render() == other.render()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.render())

    def __repr__(self):
        return 'Policy(%r)' % self.render()


def _is_unset(value):
    return value is None or (isinstance(value, (list, tuple)) and not value)


def build_policy(level, match=None, ciphers=None, protocols=None, exclude=None,
                 tafile=None, servername=None, connection_reuse=None, enable_rpk=None,
                 lint=True):
    """Validate a level and attributes; return a Policy or raise PolicyError.

    ``match`` and ``tafile`` are lists (a string is one item); ``protocols``
    and ``exclude`` are lists or ``:``-separated strings.  None or an empty
    list means "not set"; for ``protocols`` and ``exclude`` an empty string
    (or a list of empty strings) is the empty value Postfix accepts (it
    overrides main.cf), for the other attributes it is an error.  With
    ``lint=False`` the collection's own rules become ``Policy.warnings``.
    """
    checker = _Checker(lint)
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise PolicyError('level %r is not a Postfix TLS security level; Postfix defers the '
                          'mail (invalid security level); use one of %s'
                          % (level, ', '.join(LEVELS)))
    level = level.lower()
    match = _as_list(match)
    tafile = _as_list(tafile)
    given = []
    if match:
        given.append(('match', match))
    if tafile:
        given.append(('tafile', tafile))
    for name, value in (('ciphers', ciphers), ('protocols', protocols), ('exclude', exclude),
                        ('servername', servername), ('connection_reuse', connection_reuse),
                        ('enable_rpk', enable_rpk)):
        if not _is_unset(value):
            given.append((name, value))

    if level == 'none' and given:
        name, value = given[0]
        checker.lint('attribute %s (value %r) at level none does nothing' % (name, value),
                     'at security level "none" it ignores every attribute with a warning')
        return Policy(level, [], checker.done())
    if match and level not in MATCH_LEVELS:
        raise PolicyError('attribute match (value %r) is invalid at level %s; Postfix defers the '
                          'mail (attribute "match" invalid at security level "%s"); match is '
                          'only used at levels %s' % (match, level, level, ', '.join(MATCH_LEVELS)))
    if tafile and level not in TAFILE_LEVELS:
        raise PolicyError('attribute tafile (value %r) is invalid at level %s; Postfix defers the '
                          'mail (attribute "tafile" invalid at security level "%s"); tafile is '
                          'only used at levels verify and secure' % (tafile, level, level))

    attributes = []
    if match:
        if level == 'fingerprint':
            for value in match:
                _check_token('match', value)
            if not any(_fingerprint_bytes(v) in FINGERPRINT_SIZES for v in match) and \
                    any(_fingerprint_bytes(v) for v in match):
                first = [v for v in match if _fingerprint_bytes(v)][0]
                raise PolicyError('match value %r is %d bytes long, and no match value has the '
                                  'length of a digest (%s bytes): Postfix cannot use any ("unusable '
                                  'TLSA RR", "all fingerprints unusable"; before 3.6 no warning) and '
                                  'never authenticates the peer'
                                  % (first, _fingerprint_bytes(first),
                                     ', '.join(str(s) for s in FINGERPRINT_SIZES)))
            for value in match:
                _check_fingerprint(value, checker)
            attributes.append(('match', '|'.join(match)))
        else:
            for value in match:
                _check_match_host(value, checker)
            attributes.append(('match', ':'.join(match)))
    for value in tafile:
        _check_token('tafile', value)
        if not value.startswith('/'):
            checker.lint('tafile value %r is not an absolute path' % value,
                         'when the file exists relative to its working directory, the queue '
                         'directory (inside the chroot when smtp is chrooted)')
        attributes.append(('tafile', value))
    if not _is_unset(ciphers):
        if isinstance(ciphers, str) and ciphers == '':
            raise _empty_value_error('ciphers')
        if not isinstance(ciphers, str) or ciphers.lower() not in CIPHER_GRADES:
            raise PolicyError('ciphers value %r is not a cipher grade; Postfix aborts TLS '
                              '(invalid cipher grade); use one of %s'
                              % (ciphers, ', '.join(CIPHER_GRADES)))
        if level == 'encrypt' and ciphers.lower() == 'null':
            # set_cipher_grade(): level encrypt always adds "eNULL" to the exclusions
            raise PolicyError('ciphers value %r at level encrypt leaves no cipher: Postfix '
                              'excludes eNULL at that level and aborts TLS ("error setting '
                              'cipher grade", "no cipher match")' % ciphers)
        attributes.append(('ciphers', ciphers.lower()))
    if not _is_unset(protocols):
        attributes.append(('protocols', canonical_protocols(protocols, checker)))
    if not _is_unset(exclude):
        attributes.append(('exclude', canonical_exclude(exclude, checker)))
    _check_cipher_combinations(level, attributes)
    if servername is not None:
        attributes.append(('servername', _check_servername(servername, checker)))
    if connection_reuse is not None:
        attributes.append(('connection_reuse', _bool_word('connection_reuse', connection_reuse)))
    if enable_rpk is not None:
        attributes.append(('enable_rpk', _bool_word('enable_rpk', enable_rpk)))
    return Policy(level, attributes, checker.done())


# ---------------------------------------------------------------------------
# Reading existing values
# ---------------------------------------------------------------------------

def _tokens(text, braces):
    """mystrtok(CHARS_COMMA_SP), or mystrtokq with "{}" (Postfix 3.10 and later)."""
    return split_list(text or '', braces=braces)


def _split_nameval(token):
    """Postfix's split_nameval(): ``name = value`` with blanks trimmed."""
    stripped = token.lstrip(_WHITESPACE)
    if not stripped or stripped[0] == '=':
        return None, None, 'missing attribute name'
    match = re.match('[^%s=]+' % re.escape(_WHITESPACE), stripped)
    name = match.group(0)
    rest = stripped[len(name):].lstrip(_WHITESPACE)
    if not rest.startswith('='):
        return None, None, "missing '=' after attribute name"
    return name, rest[1:].strip(_WHITESPACE), None


def _ext_check(name, value, seen):
    if name in seen and name not in REPEATABLE:
        raise PolicyError('attribute "%s" is specified multiple times' % name)
    if name == 'policy_ttl':
        if not value.isdigit() or not value.isascii() or int(value) > 0x7fffffffffffffff:
            raise PolicyError('attribute "%s" has a malformed value: "%s"' % (name, value))
    elif name == 'policy_type' and value.lower() not in _TLSRPT_POLICY_TYPES:
        raise PolicyError('attribute "%s" has an unexpected value: "%s"' % (name, value))
    elif name == 'policy_failure' and value.lower() not in _TLSRPT_POLICY_FAILURES:
        raise PolicyError('attribute "%s" has an unexpected value: "%s"' % (name, value))
    elif name == 'policy_domain' and hostname_problem(value):
        raise PolicyError('attribute "%s" has a malformed value: "%s"' % (name, value))


def parse_policy(text, version=None, lint=False):
    """Read a table value the way the Postfix SMTP client does.

    Returns the canonical Policy (lints of this collection go to
    ``Policy.warnings``, version-gated features to ``Policy.features``).
    Raises PolicyError with Postfix's own complaint for a value that makes
    Postfix defer the mail.  ``version`` (tuple or text) selects the
    tokenizer: the ``{ name = value }`` form exists from Postfix 3.10; with
    no version it is read as a current Postfix reads it.

    ``lint=True`` reads a value a task asks for (tls_policy ``policies``)
    exactly as strictly as ``build_policy`` checks the options of an entry:
    the collection's rules raise PolicyLint, and what the entry options
    cannot express (attributes after level "none", TLSRPT attributes, a
    match without names) is refused.  The Policy then renders the value the
    entry would write (the ``{ }`` form becomes plain ``name=value``).
    """
    if lint and not isinstance(text, str):
        raise PolicyError('policy value %r must be a string: a level and attributes, as '
                          'written in the table' % (text,))
    braces = version is None or supports('brace_form', version)
    tokens = _tokens(text, braces)
    if not tokens:
        if lint:
            raise PolicyError('empty policy value: a level is required (one of %s); Postfix '
                              'defers the mail (invalid empty policy)' % ', '.join(LEVELS))
        raise PolicyError('invalid empty policy')
    level = tokens[0].lower()
    if level not in LEVELS:
        if lint:
            build_policy(tokens[0])     # raises the message an entry's level gets
        raise PolicyError('invalid security level "%s"' % tokens[0])
    if level == 'none':
        # Postfix ignores everything after "none" (with a warning per token).
        policy = Policy('none', [])
        ignored = tokens[1:]
        if ignored and lint:
            name, value, err = _split_nameval(ignored[0])
            raise PolicyLint(_lint_text(
                ('attribute %s (value %r) at level none does nothing' % (name, value)) if not err
                else ('%r after level none does nothing' % ignored[0]),
                'at security level "none" it ignores every attribute with a warning'))
        if ignored:
            policy.ignored = ignored
            policy.warnings.append('Postfix ignores %s after level "none"'
                                   % ', '.join('"%s"' % t for t in ignored))
        return policy
    features = set()
    values = {}
    ext = []
    # the collection's rules (lint=True), raised after every check of what Postfix defers for
    checker = _Checker(True)
    for token in tokens[1:]:
        braced = braces and token.startswith('{')
        if braced:
            features.add('brace_form')
            if not token.endswith('}') or token.count('{') != token.count('}'):
                raise PolicyError('malformed attribute/value pair "%s": missing \'}\'' % token)
            token = re.sub('[%s]' % re.escape(_WHITESPACE), ' ', token[1:-1].strip(_WHITESPACE))
        name, value, err = _split_nameval(token)
        if err:
            raise PolicyError('malformed attribute/value pair "%s": %s' % (token, err))
        lname = name.lower()
        if braced and lname in ('protocols', 'exclude'):
            # tls_proto_mask_lims() and tls_set_ciphers() split these on blanks, commas and
            # ":" alike: "{ protocols = !SSLv2, !SSLv3 }" is "!SSLv2:!SSLv3" (only the
            # brace form can hold blanks or commas in a value)
            value = ':'.join(item for item in re.split('[%s,:]+' % re.escape(_WHITESPACE), value) if item)
        if lname in EXT_ATTRIBUTES and lint:
            checker.lint('attribute %s (value %r) is a TLSRPT attribute, which a tls_policy entry cannot '
                         'write' % (name, value),
                         'Postfix 3.10 and later take it from a policy service for TLSRPT, such as an '
                         'MTA-STS resolver, not from a static policy table')
            continue
        if lname in EXT_ATTRIBUTES:
            _ext_check(lname, value, values)
            values.setdefault(lname, []).append(value)
            ext.append((lname, value))
            continue
        if lname not in ATTRIBUTES:
            raise PolicyError('invalid attribute name: "%s"' % name)
        if lname in ('ciphers', 'match', 'tafile') and value == '':
            raise PolicyError('attribute "%s" has empty value' % name)
        if lname in REPEATABLE:
            values.setdefault(lname, []).append(value)
        elif lname in LAST_ONE_WINS:
            values[lname] = value
        elif lname in values:
            raise PolicyError('attribute "%s" is specified multiple times' % name)
        else:
            values[lname] = value
        if lname in LAST_ONE_WINS and value.lower() not in ('yes', 'no'):
            raise PolicyError('attribute "%s" has bad value: "%s"' % (name, value))
        if lint:
            continue        # build_policy checks the rest, with the messages an entry gets
        if lname == 'match' and level not in MATCH_LEVELS:
            raise PolicyError('attribute "%s" invalid at security level "%s"' % (name, level))
        if lname == 'tafile' and level not in TAFILE_LEVELS:
            raise PolicyError('attribute "%s" invalid at security level "%s"' % (name, level))
        if lname == 'servername' and value not in SERVERNAME_KEYWORDS and hostname_problem(value):
            raise PolicyError('"%s=%s" specifies an invalid hostname' % (name, value))
    if ext and 'policy_type' not in values:
        raise PolicyError('built-in policy has unexpected attribute policy_ttl, policy_domain, '
                          'policy_string, mx_host_pattern or policy_failure')
    match = None
    nameless_match = False
    if 'match' in values:
        separator = '|' if level == 'fingerprint' else ':'
        match = [part for value in values['match'] for part in value.split(separator) if part]
        nameless_match = not match
    policy = build_policy(level, match=match, ciphers=values.get('ciphers'),
                          protocols=values.get('protocols'), exclude=values.get('exclude'),
                          tafile=values.get('tafile'), servername=values.get('servername'),
                          connection_reuse=values.get('connection_reuse'),
                          enable_rpk=values.get('enable_rpk'), lint=lint)
    if level == 'fingerprint' and match and \
            not any(_fingerprint_bytes(value) for value in match):
        message = ('configured at fingerprint security level, but with no fingerprints to match: '
                   'no match value is a hex fingerprint')
        if version is None or supports('fingerprint_no_fallback', version):
            raise PolicyError('%s; Postfix 3.9 and later defer the mail' % message)
        policy.warnings.append('%s; this Postfix uses smtp_tls_fingerprint_cert_match instead, '
                               'and defers the mail when that is empty' % message)
    if nameless_match:
        # argv_split() of ":" or "|" gives no names: nothing can ever match
        text = _lint_text('attribute "match" has no names between its separators',
                          'but no certificate name or fingerprint can ever match, so the peer is '
                          'never authenticated')
        if lint:
            checker.lint_text(text)
        policy.attributes.insert(0, ('match', ''))
        policy.warnings.append(text)
    policy.attributes.extend(ext)
    if not lint:
        # the strict reading renders without braces: no version needs to read them
        policy.features |= features
    if ext:
        policy.features.add('tlsrpt_attributes')
    if version is not None:
        missing = policy.unsupported_on(version)
        if missing:
            raise PolicyError('%s; this Postfix is %s, which defers the mail (invalid attribute '
                              'name, or an invalid TLS protocol list)'
                              % ('; '.join(missing), '.'.join(str(n) for n in version_tuple(version))))
    checker.done()
    return policy


def same_policy(existing_value, wanted_value, version=None):
    """True only when Postfix VERSION (None: a current one) reads an existing table value
    exactly as a rendered one (``{ name = value }`` is a malformed pair before 3.10)."""
    if existing_value == wanted_value:
        return True
    try:
        return parse_policy(existing_value, version).render() == wanted_value
    except PolicyError:
        return False


# ---------------------------------------------------------------------------
# Checks that need the rest of the configuration (values read with postconf)
# ---------------------------------------------------------------------------

DIGEST_SIZES = {'md5': 16, 'sha1': 20, 'sha224': 28, 'sha256': 32, 'sha384': 48, 'sha512': 64}


def configuration_problems(policy, settings):
    """Cross-checks of a Policy against main.cf values.

    ``settings`` maps parameter names to their expanded values (``postconf
    -x -h``): ``smtp_tls_fingerprint_digest`` (md5 before compatibility_level
    3.6, sha256 from it), ``smtp_dns_support_level``.  Returns ``(errors,
    warnings)``; each message names the parameter and the fix.
    """
    errors, warnings = [], []
    digest = (settings.get('smtp_tls_fingerprint_digest') or '').strip().lower()
    if policy.level == 'fingerprint' and digest in DIGEST_SIZES:
        size = DIGEST_SIZES[digest]
        fingerprints = [f for attr, v in policy.attributes if attr == 'match' for f in v.split('|')]
        wrong = [(f, _fingerprint_bytes(f)) for f in fingerprints
                 if _fingerprint_bytes(f) and _fingerprint_bytes(f) != size]
        usable = [f for f in fingerprints if _fingerprint_bytes(f) == size]
        for fingerprint, got in wrong:
            message = ('match value %r is a %d-byte digest, but smtp_tls_fingerprint_digest is '
                       '%s (%d bytes): give the %s fingerprint, or set smtp_tls_fingerprint_digest '
                       'to the digest used' % (fingerprint, got, digest, size, digest))
            if usable:
                errors.append(_lint_text(message, 'it skips the value ("unusable TLSA RR") and '
                                                  'matches the other fingerprints'))
            else:
                errors.append(message + '; no fingerprint fits, so Postfix never authenticates '
                                        'the peer ("all fingerprints unusable"; before 3.6 only '
                                        '"Server certificate not verified")')
    dns = (settings.get('smtp_dns_support_level') or '').strip().lower()
    if policy.level in ('dane', 'dane-only') and 'smtp_dns_support_level' in settings \
            and dns != 'dnssec':
        text = ('level %s needs smtp_dns_support_level = dnssec (it is %s): Postfix logs '
                '"%s configured with dnssec lookups disabled"'
                % (policy.level, repr(dns) if dns else 'empty', policy.level))
        if policy.level == 'dane-only':
            errors.append(text + ' and defers the mail; set smtp_dns_support_level = dnssec')
        else:
            warnings.append(text + ' and silently uses level may instead; set '
                            'smtp_dns_support_level = dnssec')
    return errors, warnings


def address_literal(key):
    """The IP address of a bracketed next-hop key (``[192.0.2.1]``, ``[ipv6:2001:db8::1]:25``,
    ``[2001:db8::1]``), else None: the next hops Postfix connects to without a DNS lookup."""
    if not isinstance(key, str) or not key.startswith('[') or ']' not in key:
        return None
    inner = key[1:key.index(']')]
    address = inner[5:] if inner.lower().startswith('ipv6:') else inner
    if valid_ipv4(address) or (':' in address and valid_ipv6(address)):
        return address
    return None


def key_level_problems(key, policy):
    """``(errors, lints)`` of a level that cannot do what it says for the kind of next hop KEY is.

    DANE for an address literal (smtp_tls_policy.c ``dane_init()``, tls_dane.c
    ``tls_dane_resolve()``): an IP next hop has no DNSSEC-validated address
    record, so Postfix never looks up TLSA records for it ("no TLSA records
    found"): ``dane-only`` defers the mail, ``dane`` silently uses level
    ``may``.  A lint is a rule of this collection (PolicyLint text): refused
    for a new entry, a warning for a line already in a table.
    """
    errors, lints = [], []
    if policy.level not in ('dane', 'dane-only') or address_literal(key) is None:
        return errors, lints
    instead = ('use encrypt for mandatory TLS to it, or fingerprint (or verify with match=) to '
               'authenticate its certificate')
    if policy.level == 'dane-only':
        errors.append('level dane-only for the address literal %s: Postfix looks up no DNSSEC records '
                      'for an IP next hop, so it never finds TLSA records and defers the mail ("no TLSA '
                      'records found"); %s' % (key, instead))
    else:
        lints.append(_lint_text(
            'level dane for the address literal %s never authenticates the server: Postfix looks up no '
            'DNSSEC records for an IP next hop and finds no TLSA records; %s, or may' % (key, instead),
            'it silently uses level may, opportunistic TLS that falls back to plaintext'))
    return errors, lints


def existing_entry_problems(key, value, version=None):
    """Why Postfix cannot use an existing table line, and what it would warn about.

    Returns ``(errors, warnings)``: errors when Postfix never looks the key
    up or defers the mail for it (a ``*`` key, a ``# comment`` after the
    level, an abbreviated fingerprint), warnings for lines it uses.
    """
    errors, warnings = [], []
    try:
        dummy, key_warnings = normalize_destination(key)
        warnings.extend(key_warnings)
    except PolicyLint as e:
        warnings.append(str(e))
    except PolicyError as e:
        errors.append(str(e))
    try:
        policy = parse_policy(value, version)
        for warning in policy.warnings:
            # the entry's own fingerprints are all unusable: only the main.cf fallback is left
            (errors if 'smtp_tls_fingerprint_cert_match instead' in warning else warnings).append(warning)
    except PolicyError as e:
        text = str(e)
        if '"#"' in text:
            text += ' (a "#" after the level is not a comment in a table value)'
        errors.append(text)
    else:
        level_errors, level_lints = key_level_problems(key, policy)
        errors.extend(level_errors)
        warnings.extend(level_lints)
    return errors, warnings
