# -*- coding: utf-8 -*-
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The grammar of a Postfix ``smtp_tls_policy_maps`` entry.

Pure Python, no Ansible imports.  What Postfix accepts is taken from
src/smtp/smtp_tls_policy.c and src/tls/tls_level.c (see
docs/tls_policy.md): a key is the verbatim next-hop destination, the value
is a security level followed by ``name=value`` attributes, and an entry
Postfix rejects makes it defer mail for that destination ("client TLS
configuration problem").  Everything here refuses such entries up front,
with a message naming the offending value and the rule it breaks.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re

LEVELS = ('none', 'may', 'encrypt', 'dane', 'dane-only', 'fingerprint', 'verify', 'secure')
CIPHER_GRADES = ('high', 'medium', 'low', 'export', 'null')
PROTOCOLS = ('SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3')
SERVERNAME_KEYWORDS = ('hostname', 'nexthop')

# Where each attribute is allowed.
MATCH_LEVELS = ('fingerprint', 'verify', 'secure')
TAFILE_LEVELS = ('verify', 'secure')

# Attribute order in a rendered value (also the attribute names we know).
ATTRIBUTES = ('match', 'tafile', 'ciphers', 'protocols', 'exclude',
              'servername', 'connection_reuse', 'enable_rpk')
REPEATABLE = ('match', 'tafile')

# The first Postfix release that understands a feature.
SINCE = {
    'servername': (3, 4),
    'connection_reuse': (3, 4),
    'enable_rpk': (3, 9),
    'protocol_range': (3, 6),
}

# Digest sizes in bytes: md5, sha1, sha224, sha256, sha384, sha512.
_FINGERPRINT_SIZES = (16, 20, 28, 32, 48, 64)

# Postfix splits tokens of a policy value on these (CHARS_COMMA_SP).
TOKEN_SEPARATORS = ', \t\r\n'
_WHITESPACE = ' \t\n\v\f\r'
_FORBIDDEN_IN_TOKEN = ', \t\n\v\f\r{}'

_LABEL_RE = re.compile(r'^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$', re.IGNORECASE | re.ASCII)
_SERVICE_RE = re.compile(r'^[a-z][a-z0-9-]*$', re.IGNORECASE | re.ASCII)
_IPV4_RE = re.compile(r'^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$')
_CIPHER_NAME_RE = re.compile(r'^[A-Za-z0-9+_.-]+$')
_HEX_COLON_RE = re.compile(r'^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*$')
_HEX_RE = re.compile(r'^(?:[0-9A-Fa-f]{2})+$')

_BAD_KEY_CHAR_RE = re.compile('[%s,\x00-\x1f\x7f]' % re.escape(_WHITESPACE))

_PROTOCOL_BY_LOWER = dict((p.lower(), p) for p in PROTOCOLS)


class PolicyError(ValueError):
    """A value Postfix would reject (or never use); the message says why."""


# ---------------------------------------------------------------------------
# Keys (next-hop destinations)
# ---------------------------------------------------------------------------

def _describe_chars(text):
    bad = sorted(set(ch for ch in text if ch in _WHITESPACE or ch == ',' or ord(ch) < 32))
    return ', '.join(repr(ch) for ch in bad)


def _idna_hint(text):
    """Suggest the A-label spelling of a non-ASCII destination, if possible."""
    def convert(match):
        part = match.group(0)
        if part.isascii():
            return part
        return part.encode('idna').decode('ascii')
    try:
        return re.sub(r'[^\[\]:.]+', convert, text)
    except UnicodeError:
        return None


def _check_hostname(host, destination, what='host name'):
    if not host:
        raise PolicyError('destination %r: empty %s' % (destination, what))
    if host.endswith('.'):
        raise PolicyError('destination %r: %s %r ends with a dot; Postfix next-hop names '
                          'have no trailing dot (use %r)' % (destination, what, host, host.rstrip('.')))
    if len(host) > 253:
        raise PolicyError('destination %r: %s is longer than 253 characters' % (destination, what))
    for label in host.split('.'):
        if not label:
            raise PolicyError('destination %r: %s %r has an empty label' % (destination, what, host))
        if not _LABEL_RE.match(label):
            raise PolicyError('destination %r: label %r of %s %r is not a valid DNS label '
                              '(letters, digits, "-" and "_", at most 63 characters, '
                              'no leading or trailing "-")' % (destination, label, what, host))


def _check_port(port, destination):
    if port.isdigit():
        if port.startswith('0') or not 1 <= int(port) <= 65535:
            raise PolicyError('destination %r: port %r must be a number from 1 to 65535 '
                              'without leading zeros (or a service name such as "submission")'
                              % (destination, port))
        return
    if not _SERVICE_RE.match(port):
        raise PolicyError('destination %r: port %r must be a number from 1 to 65535 '
                          'or a service name such as "submission"' % (destination, port))


def normalize_destination(destination):
    """Check a policy table key and fold it to lower case as Postfix does.

    Accepted forms: ``domain``, ``.domain`` (subdomains), ``[host]``,
    ``[host]:port``, ``host:port``, ``[ipv6:ADDR]``, ``[ipv6:ADDR]:port``
    (``host`` may be an IPv4 address inside brackets).

    Returns ``(key, warnings)``; raises PolicyError for a key Postfix could
    never look up.
    """
    if not isinstance(destination, str) or destination == '':
        raise PolicyError('destination %r: must be a non-empty string' % (destination,))
    if _BAD_KEY_CHAR_RE.search(destination):
        raise PolicyError('destination %r: contains whitespace, a comma or a control character '
                          '(%s); a policy table key is a single token'
                          % (destination, _describe_chars(destination) or 'control character'))
    if not destination.isascii():
        hint = _idna_hint(destination)
        raise PolicyError('destination %r: contains non-ASCII characters; Postfix looks up the '
                          'ASCII (A-label) form of an internationalized domain%s'
                          % (destination, ', use %r' % hint if hint else ''))
    key = destination.lower()
    warnings = []
    if key.startswith('['):
        close = key.find(']')
        if close < 0:
            raise PolicyError('destination %r: unbalanced brackets: "[" without "]"' % destination)
        inner, rest = key[1:close], key[close + 1:]
        if '[' in inner or ']' in rest or '[' in rest:
            raise PolicyError('destination %r: unbalanced or repeated brackets' % destination)
        if rest:
            if not rest.startswith(':'):
                raise PolicyError('destination %r: only ":port" may follow "]"' % destination)
            _check_port(rest[1:], destination)
        if not inner:
            raise PolicyError('destination %r: empty host inside brackets' % destination)
        if inner.startswith('ipv6:'):
            address = inner[5:]
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                raise PolicyError('destination %r: %r is not a valid IPv6 address'
                                  % (destination, address))
        elif ':' in inner:
            raise PolicyError('destination %r: an IPv6 address must be written '
                              '[ipv6:ADDRESS] (for example [ipv6:2001:db8::1])' % destination)
        elif _IPV4_RE.match(inner):
            try:
                ipaddress.IPv4Address(inner)
            except ValueError:
                raise PolicyError('destination %r: %r is not a valid IPv4 address'
                                  % (destination, inner))
        elif inner.startswith('.'):
            raise PolicyError('destination %r: a leading dot (subdomain form) is not allowed '
                              'inside brackets' % destination)
        else:
            _check_hostname(inner, destination)
        return key, warnings
    if ']' in key or '[' in key:
        raise PolicyError('destination %r: unbalanced brackets' % destination)
    if key.startswith('ipv6:'):
        raise PolicyError('destination %r: an IPv6 address must be written in brackets: [%s]'
                          % (destination, key))
    if key.startswith('.'):
        if ':' in key:
            raise PolicyError('destination %r: the subdomain form ".domain" takes no port'
                              % destination)
        _check_hostname(key[1:], destination, 'domain')
        return key, warnings
    if ':' in key:
        host, _sep, port = key.rpartition(':')
        if ':' in host:
            raise PolicyError('destination %r: an IPv6 address must be written '
                              '[ipv6:ADDRESS] (for example [ipv6:2001:db8::1])' % destination)
        _check_port(port, destination)
        _check_hostname(host, destination)
        warnings.append(
            'destination %r: Postfix looks this key up only when a transport or relayhost '
            'names %r verbatim; mail routed by MX to %s is looked up as %r (or [%s]:%s for '
            'a transport without MX lookups)' % (destination, key, host, host, host, port))
        return key, warnings
    if _IPV4_RE.match(key):
        warnings.append('destination %r: an IP address without brackets is looked up only '
                        'when a transport names it that way; a relayhost or transport '
                        'to an address is written [%s]' % (destination, key))
        return key, warnings
    _check_hostname(key, destination, 'domain')
    return key, warnings


# ---------------------------------------------------------------------------
# Values (security level and attributes)
# ---------------------------------------------------------------------------

def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _check_token(name, value):
    """A value must not contain anything that would make Postfix see more tokens."""
    if not isinstance(value, str):
        raise PolicyError('%s value %r must be a string' % (name, value))
    if value == '':
        raise PolicyError('%s: empty value (Postfix: attribute "%s" has empty value)' % (name, name))
    bad = [ch for ch in value if ch in _FORBIDDEN_IN_TOKEN or ord(ch) < 32 or ord(ch) == 127]
    if bad:
        raise PolicyError('%s value %r contains %s; whitespace, commas, braces and control '
                          'characters would split it into separate tokens of the policy entry'
                          % (name, value, ', '.join(repr(ch) for ch in sorted(set(bad)))))


def _check_match_host(value):
    _check_token('match', value)
    if ':' in value or '|' in value:
        raise PolicyError('match value %r contains %r; at levels verify and secure match '
                          'values are host names or the keywords hostname, nexthop and '
                          'dot-nexthop, joined by ":"'
                          % (value, ':' if ':' in value else '|'))
    host = value[1:] if value.startswith('.') else value
    if not host or host.endswith('.') or not all(_LABEL_RE.match(label) for label in host.split('.')):
        raise PolicyError('match value %r is not a host name, ".domain" or one of the '
                          'keywords hostname, nexthop, dot-nexthop' % value)


def _check_fingerprint(value):
    _check_token('match', value)
    if '|' in value:
        raise PolicyError('match value %r contains "|", the separator of fingerprint match '
                          'values; give each fingerprint as its own list item' % value)
    if _HEX_COLON_RE.match(value):
        size = value.count(':') + 1
    elif _HEX_RE.match(value):
        size = len(value) // 2
    else:
        raise PolicyError('match value %r is not a certificate or public key fingerprint '
                          '(hex bytes, optionally separated by ":", for example '
                          '"3D:95:34:...")' % value)
    if size not in _FINGERPRINT_SIZES:
        raise PolicyError('match value %r is %d bytes long; a fingerprint digest is %s bytes'
                          % (value, size, ', '.join(str(s) for s in _FINGERPRINT_SIZES)))


def _split_colon_list(name, values):
    """Split list items on ":" (the table syntax), refusing embedded whitespace."""
    tokens = []
    for item in _as_list(values):
        if not isinstance(item, str):
            raise PolicyError('%s value %r must be a string' % (name, item))
        # blanks around list items ("!SSLv2, !SSLv3" split on the comma) are dropped;
        # line breaks and other control characters are refused like anywhere else
        item = item.strip(' \t')
        if item == '':
            raise PolicyError('%s: empty value (Postfix: attribute "%s" has empty value)'
                              % (name, name))
        for token in item.split(':'):
            if token == '':
                raise PolicyError('%s value %r has an empty element between ":" separators'
                                  % (name, item))
            _check_token(name, token)
            tokens.append(token)
    return tokens


def canonical_protocols(values):
    """Validate a protocols setting; return the ``:``-joined table form.

    Elements: ``NAME`` (include), ``!NAME`` (exclude), ``>=NAME`` and
    ``<=NAME`` (range, Postfix 3.6 and later).  Names are SSLv2, SSLv3,
    TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (case-insensitive).
    """
    tokens = _split_colon_list('protocols', values)
    if not tokens:
        raise PolicyError('protocols: empty value (Postfix: attribute "protocols" has empty value)')
    seen = {}
    rendered = []
    included, excluded = set(), set()
    low = high = None
    order = dict((p, i) for i, p in enumerate(PROTOCOLS))
    for token in tokens:
        op = ''
        for prefix in ('>=', '<=', '!'):
            if token.startswith(prefix):
                op, name = prefix, token[len(prefix):]
                break
        else:
            name = token
        proto = _PROTOCOL_BY_LOWER.get(name.lower())
        if proto is None:
            raise PolicyError('protocols value %r: unknown protocol %r; use %s, optionally '
                              'prefixed with "!" (exclude), ">=" or "<=" (range)'
                              % (token, name, ', '.join(PROTOCOLS)))
        canon = op + proto
        if canon in seen:
            raise PolicyError('protocols value %r is listed twice' % token)
        seen[canon] = True
        if op == '!':
            excluded.add(proto)
        elif op == '>=':
            if low is not None:
                raise PolicyError('protocols value %r: only one ">=" lower bound is allowed' % token)
            low = proto
        elif op == '<=':
            if high is not None:
                raise PolicyError('protocols value %r: only one "<=" upper bound is allowed' % token)
            high = proto
        else:
            included.add(proto)
        rendered.append(canon)
    both = included & excluded
    if both:
        name = sorted(both)[0]
        raise PolicyError('protocols: %r is both included and excluded (%r and %r)'
                          % (name, name, '!' + name))
    enabled = set(included) if included else set(PROTOCOLS)
    enabled -= excluded
    if low is not None:
        enabled = set(p for p in enabled if order[p] >= order[low])
    if high is not None:
        enabled = set(p for p in enabled if order[p] <= order[high])
    if low is not None and high is not None and order[low] > order[high]:
        raise PolicyError('protocols: lower bound ">=%s" is above upper bound "<=%s"' % (low, high))
    if not enabled:
        raise PolicyError('protocols value %r leaves no protocol enabled' % ':'.join(rendered))
    return ':'.join(rendered)


def protocols_use_range(protocols):
    return '>=' in protocols or '<=' in protocols


def canonical_exclude(values):
    tokens = _split_colon_list('exclude', values)
    if not tokens:
        raise PolicyError('exclude: empty value (Postfix: attribute "exclude" has empty value)')
    for token in tokens:
        if not _CIPHER_NAME_RE.match(token):
            raise PolicyError('exclude value %r is not an OpenSSL cipher name or alias '
                              '(letters, digits, "+", "-", "_", ".")' % token)
    return ':'.join(tokens)


def _check_servername(value):
    _check_token('servername', value)
    if value.lower() in SERVERNAME_KEYWORDS:
        return value.lower()
    host = value
    if host.endswith('.') or len(host) > 253 or \
            not all(_LABEL_RE.match(label) for label in host.split('.')):
        raise PolicyError('servername value %r is neither a valid host name nor one of the '
                          'keywords hostname, nexthop' % value)
    return value


def _bool_word(name, value):
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, str) and value.lower() in ('yes', 'no'):
        return value.lower()
    raise PolicyError('%s value %r must be yes or no' % (name, value))


class Policy(object):
    """A validated policy: a level and attributes in canonical form."""

    __slots__ = ('level', 'attributes')

    def __init__(self, level, attributes):
        self.level = level
        self.attributes = attributes    # list of (name, value) in render order

    def render(self):
        """The value as written to the table: ``level name=value ...``."""
        return ' '.join([self.level] + ['%s=%s' % item for item in self.attributes])

    def get(self, name):
        return [value for attr, value in self.attributes if attr == name]

    def minimum_postfix_version(self):
        """``(version tuple, reason)`` of the newest feature used, or None."""
        needed = None
        for name, value in self.attributes:
            feature = name
            if name == 'protocols' and protocols_use_range(value):
                feature = 'protocol_range'
            since = SINCE.get(feature)
            if since and (needed is None or since > needed[0]):
                reason = ('the protocols range form (">=" / "<=")' if feature == 'protocol_range'
                          else 'the %s attribute' % name)
                needed = (since, reason)
        return needed

    def __eq__(self, other):
        return isinstance(other, Policy) and self.render() == other.render()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.render())

    def __repr__(self):
        return 'Policy(%r)' % self.render()


def build_policy(level, match=None, ciphers=None, protocols=None, exclude=None,
                 tafile=None, servername=None, connection_reuse=None, enable_rpk=None):
    """Validate a level and attributes; return a Policy or raise PolicyError.

    ``match`` and ``tafile`` are lists (a string is one item); ``protocols``
    and ``exclude`` are lists or ``:``-separated strings.  An empty list
    means "not set"; an empty string is an error.
    """
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise PolicyError('level %r is not a Postfix TLS security level (Postfix: invalid '
                          'security level); use one of %s' % (level, ', '.join(LEVELS)))
    level = level.lower()
    given = []
    match = _as_list(match)
    tafile = _as_list(tafile)
    if match:
        given.append(('match', match))
    if tafile:
        given.append(('tafile', tafile))
    for name, value in (('ciphers', ciphers), ('protocols', protocols), ('exclude', exclude),
                        ('servername', servername), ('connection_reuse', connection_reuse),
                        ('enable_rpk', enable_rpk)):
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        given.append((name, value))

    if level == 'none' and given:
        name, value = given[0]
        raise PolicyError('attribute %s (value %r) is not allowed at level none: Postfix ignores '
                          'every attribute at security level "none"' % (name, value))
    if match and level not in MATCH_LEVELS:
        raise PolicyError('attribute match (value %r) is invalid at level %s (Postfix: '
                          'attribute "match" invalid at security level "%s"); match is only '
                          'used at levels %s' % (match, level, level, ', '.join(MATCH_LEVELS)))
    if tafile and level not in TAFILE_LEVELS:
        raise PolicyError('attribute tafile (value %r) is invalid at level %s (Postfix: '
                          'attribute "tafile" invalid at security level "%s"); tafile is only '
                          'used at levels verify and secure' % (tafile, level, level))

    attributes = []
    if match:
        if level == 'fingerprint':
            for value in match:
                _check_fingerprint(value)
            attributes.append(('match', '|'.join(match)))
        else:
            for value in match:
                _check_match_host(value)
            attributes.append(('match', ':'.join(match)))
    for value in tafile:
        _check_token('tafile', value)
        if not value.startswith('/'):
            raise PolicyError('tafile value %r must be an absolute path' % value)
        attributes.append(('tafile', value))
    if ciphers is not None:
        if not isinstance(ciphers, str) or ciphers.lower() not in CIPHER_GRADES:
            raise PolicyError('ciphers value %r is not a cipher grade; use one of %s'
                              % (ciphers, ', '.join(CIPHER_GRADES)))
        attributes.append(('ciphers', ciphers.lower()))
    if protocols is not None and protocols != []:
        attributes.append(('protocols', canonical_protocols(protocols)))
    if exclude is not None and exclude != []:
        attributes.append(('exclude', canonical_exclude(exclude)))
    if servername is not None:
        attributes.append(('servername', _check_servername(servername)))
    if connection_reuse is not None:
        attributes.append(('connection_reuse', _bool_word('connection_reuse', connection_reuse)))
    if enable_rpk is not None:
        attributes.append(('enable_rpk', _bool_word('enable_rpk', enable_rpk)))
    return Policy(level, attributes)


def parse_policy(text):
    """Parse a table value the way Postfix does; return the canonical Policy.

    Raises PolicyError with Postfix's own complaint for values it rejects
    (and for the ``{ name = value }`` form, which this module never writes).
    """
    tokens = [t for t in re.split('[%s]+' % re.escape(TOKEN_SEPARATORS), text or '') if t]
    if not tokens:
        raise PolicyError('invalid empty policy')
    level = tokens[0].lower()
    if level not in LEVELS:
        raise PolicyError('invalid security level "%s"' % tokens[0])
    values = {}
    for token in tokens[1:]:
        name, sep, value = token.partition('=')
        if not sep or token.startswith('{'):
            raise PolicyError('malformed attribute/value pair "%s"' % token)
        name = name.lower()
        if name not in ATTRIBUTES:
            raise PolicyError('invalid attribute name: "%s"' % name)
        if value == '':
            raise PolicyError('attribute "%s" has empty value' % name)
        if name in REPEATABLE:
            values.setdefault(name, []).append(value)
        elif name in values:
            raise PolicyError('attribute "%s" is specified multiple times' % name)
        else:
            values[name] = value
    match = None
    if 'match' in values:
        separator = '|' if level == 'fingerprint' else ':'
        match = [part for value in values['match'] for part in value.split(separator) if part]
        if not match:
            raise PolicyError('attribute "match" has empty value')
    return build_policy(level, match=match, ciphers=values.get('ciphers'),
                        protocols=values.get('protocols'), exclude=values.get('exclude'),
                        tafile=values.get('tafile'), servername=values.get('servername'),
                        connection_reuse=values.get('connection_reuse'),
                        enable_rpk=values.get('enable_rpk'))


def same_policy(existing_value, wanted_value):
    """True when an existing table value means the same as a rendered one."""
    if existing_value == wanted_value:
        return True
    try:
        return parse_policy(existing_value).render() == wanted_value
    except PolicyError:
        return False
