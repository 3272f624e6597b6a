# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure Postfix knowledge for the postconf modules: no I/O, no Ansible.

Parameter names and values, list values compared item by item, main.cf as
Postfix reads it, and the output formats of ``postconf``, ``postconf -M``
and ``postconf -P``. Whitespace and list splitting come from postfix_syntax.
"""

import difflib
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    SPACES,
    WHITESPACE,
    split_list,
)

# Postfix parameter names: letters, digits and underscore (mail_conf.c
# refuses anything else on the command line of postconf -e).
# letters, digits and "_", and "-" or "." after the first character: the per-transport
# parameters of a master.cf service are named after it (smtp-amavis_destination_recipient_limit)
PARAM_NAME_RE = re.compile(r'\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z')

# $name, ${name}, $(name), ${name?text}, ${name:text}, ${name?{text}} ...
# (mac_expand.c); only the name is of interest here.
_REFERENCE_RE = re.compile(r'\$(?:\{|\()?([A-Za-z0-9_]+)')

# Parameters whose values Postfix does not $-expand when it reads main.cf
# (CONFIG_RAW_TABLE): their $ text is expanded later with other attributes,
# or is literal (the *_expansion_filter character sets contain "$"). Found
# with postconf 3.7: every other name fails with "macro processing error"
# when its value is "${unclosed".
RAW_PARAMETERS = frozenset((
    'command_execution_directory',
    'default_rbl_reply',
    'forward_path',
    'luser_relay',
    'mailbox_command',
    'postscreen_expansion_filter',
    'postscreen_reject_footer',
    'process_id',
    'process_name',
    'service_name',
    'smtpd_expansion_filter',
    'smtpd_reject_footer',
))

# Characters of a name in $name, ${name} and $(name) (ISALNUM and "_").
_MACRO_NAME_CHARS = frozenset('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_')
# Characters mac_expand takes as a relational operator, and the operators.
_OPERATOR_CHARS = '<>!=?+-*/~&|%'
_OPERATORS = ('==', '!=', '<', '<=', '>=', '>')
# Operator suffixes that Postfix registers (mac_expand_add_relop): "level"
# compares compatibility levels, as in the default of append_dot_mydomain.
_OPERATOR_SUFFIXES = ('level',)
_COMPAT_LEVEL_RE = re.compile(r'\A[ \t]*[0-9]+(?:\.[0-9]+){0,2}\Z')
# mac_expand refuses deeper nesting of ${...} inside ${...}.
_MACRO_MAX_NESTING = 100
_LONG_MAX = 2 ** 63 - 1


# master.cf service types (master_ent.c).
SERVICE_TYPES = ('inet', 'unix', 'unix-dgram', 'fifo', 'pass')

# Parameters that take effect only after "postfix stop; postfix start"
# (postconf(5) says so for inet_interfaces and inet_protocols). The master
# process reads the directory and ownership settings once at start-up, so a
# reload cannot apply a change of those either.
RESTART_PARAMETERS = frozenset((
    'inet_interfaces',
    'inet_protocols',
    'queue_directory',
    'data_directory',
    'mail_owner',
    'setgid_group',
))

# Names whose values Postfix treats as lists, besides the suffixes below.
_LIST_NAMES = frozenset((
    'mydestination',
    'mynetworks',
    'debug_peer_list',
    'import_environment',
    'export_environment',
    'notify_classes',
    'smtpd_milters',
    'non_smtpd_milters',
    'authorized_flush_users',
    'authorized_mailq_users',
    'authorized_submit_users',
    'tls_disable_workarounds',
    'smtp_host_lookup',
    'lmtp_host_lookup',
    'smtpd_forbidden_commands',
    'smtpd_discard_ehlo_keywords',
    'smtp_discard_ehlo_keywords',
    'lmtp_discard_ehlo_keywords',
    'smtpd_command_filter',
    'propagate_unmatched_extensions',
    'masquerade_exceptions',
    'postscreen_dnsbl_sites',
    'postscreen_access_list',
    'message_drop_headers',
    'alias_database',
    'tls_eecdh_auto_curves',
))

# Name suffixes of list-valued parameters: lookup tables, restriction lists,
# domain, network, interface and protocol lists, check tables, classes.
_LIST_SUFFIXES = (
    '_maps',
    '_restrictions',
    '_domains',
    '_networks',
    '_interfaces',
    '_protocols',
    '_checks',
    '_classes',
    '_trust_anchor_file',
    # TLS and SASL (smtp_, lmtp_, smtpd_, tlsproxy_): read with CHARS_COMMA_SP
    '_exclude_ciphers',
    '_cert_match',
    '_security_options',
    '_mechanism_filter',
    '_chain_files',
    '_pix_workarounds',
)


class MacroSyntaxError(ValueError):
    """A value Postfix cannot $-expand; the message says where and why."""


def _skip_space(text, pos):
    while pos < len(text) and text[pos] in SPACES:
        pos += 1
    return pos


def _curly_operand(text, pos):
    """The {text} operand at text[pos] == "{" (balanced); return (payload, pos after it and blanks)."""
    level = 0
    for end in range(pos, len(text)):
        if text[end] == '{':
            level += 1
        elif text[end] == '}':
            level -= 1
            if level == 0:
                return text[pos + 1:end], _skip_space(text, end + 1)
    raise MacroSyntaxError('unbalanced {} in "%s": every "{" needs a matching "}"' % text[pos:])


def _check_macros(text, depth):
    """Postfix's mac_parse(): find $name, ${...} and $(...) in TEXT, check each.

    DEPTH counts the ${...?TEXT} operands this TEXT is nested in.
    """
    if text and depth > _MACRO_MAX_NESTING:
        raise MacroSyntaxError('unreasonable macro nesting: more than %d levels of ${...} '
                               'inside ${...}' % _MACRO_MAX_NESTING)
    pos = 0
    while pos < len(text):
        if text[pos] != '$':
            pos += 1
            continue
        if text[pos + 1:pos + 2] == '$':        # "$$" is a literal "$"
            pos += 2
            continue
        start = pos
        pos += 1
        if text[pos:pos + 1] in ('{', '('):
            opening = text[pos]
            closing = '}' if opening == '{' else ')'
            level = 1
            pos += 1
            while level > 0:
                if pos >= len(text):
                    raise MacroSyntaxError(
                        'truncated macro reference "%s": the "$%s" has no matching "%s"'
                        % (text[start:], opening, closing))
                if text[pos] == opening:
                    level += 1
                elif text[pos] == closing:
                    level -= 1
                pos += 1
            expression = text[start + 2:pos - 1]
        else:
            while pos < len(text) and text[pos] in _MACRO_NAME_CHARS:
                pos += 1
            expression = text[start + 1:pos]
        if not expression:
            raise MacroSyntaxError(
                'empty macro name at "%s": a "$" must be followed by a parameter name, '
                '"{" or "("' % text[start:start + 20])
        _check_expression(expression, text[start:pos], depth)


def _check_expression(expr, macro, depth):
    """Postfix's mac_expand_callback() in scan mode: both branches are checked."""
    pos = _skip_space(expr, 0)
    if expr[pos:pos + 1] == '{':
        # Relational expression: ${{text} OP {text}}, optionally ?{...}:{...}.
        left, pos = _curly_operand(expr, pos)
        op_end = pos
        while op_end < len(expr) and expr[op_end] in _OPERATOR_CHARS:
            op_end += 1
        operator = expr[pos:op_end]
        if operator not in _OPERATORS:
            raise MacroSyntaxError(
                'relational operator (%s) expected at "%s>>>%s" in "%s"'
                % (' '.join(_OPERATORS), expr[:pos], expr[pos:pos + 20], macro))
        pos = suffix_end = op_end
        while suffix_end < len(expr) and expr[suffix_end] in _MACRO_NAME_CHARS \
                and expr[suffix_end] != '_':
            suffix_end += 1
        suffix = expr[pos:suffix_end]
        if suffix and suffix not in _OPERATOR_SUFFIXES:
            raise MacroSyntaxError('bad operator suffix "%s%s" in "%s": Postfix knows only %s'
                                   % (operator, suffix, macro,
                                      ', '.join('"%s%s"' % (operator, s) for s in _OPERATOR_SUFFIXES)))
        pos = _skip_space(expr, suffix_end)
        if expr[pos:pos + 1] != '{':
            raise MacroSyntaxError('"{expression}" expected after "%s%s" in "%s"'
                                   % (operator, suffix, macro))
        right, pos = _curly_operand(expr, pos)
        for operand in (left, right):
            _check_macros(operand, 0)
        _check_literal_operands(left, right, suffix, macro)
        if pos < len(expr) and expr[pos] not in '?:':
            raise MacroSyntaxError('"?" or ":" expected at "%s>>>%s" in "%s"'
                                   % (expr[:pos], expr[pos:pos + 20], macro))
    else:
        # Named parameter: ${name}, ${name?...}, ${name:...}; blanks around
        # the name are allowed.
        while True:
            after_space = _skip_space(expr, pos)
            if after_space >= len(expr) or expr[after_space] in '?:':
                pos = after_space
                break
            if expr[pos] not in _MACRO_NAME_CHARS:
                raise MacroSyntaxError(
                    'attribute name syntax error at "%s>>>%s" in "%s": a parameter name '
                    'consists of letters, digits and "_" only'
                    % (expr[:pos], expr[pos:pos + 20], macro))
            pos += 1
    if pos >= len(expr):
        return
    if expr[pos] == '?':
        pos = _check_result_operand(expr, pos + 1, depth)
        if pos >= len(expr):
            return
        if expr[pos] != ':':
            raise MacroSyntaxError('":" expected at "%s>>>%s" in "%s"'
                                   % (expr[:pos], expr[pos:pos + 20], macro))
    pos = _check_result_operand(expr, pos + 1, depth)
    if pos < len(expr):
        raise MacroSyntaxError('unexpected input at "%s>>>%s" in "%s"'
                               % (expr[:pos], expr[pos:pos + 20], macro))


def _check_result_operand(expr, pos, depth):
    """Check the text after "?" or ":"; return where the next token starts."""
    start = _skip_space(expr, pos)
    if expr[start:start + 1] == '{':
        payload, pos = _curly_operand(expr, start)
    else:
        payload, pos = expr[pos:], len(expr)    # plain text runs to the end
    _check_macros(payload, depth + 1)
    return pos


def _check_literal_operands(left, right, suffix, macro):
    """Operands without $ are evaluated as they are: check what Postfix would refuse."""
    literal = [o for o in (left, right) if '$' not in o]
    if suffix == 'level':
        for operand in literal:
            if not _COMPAT_LEVEL_RE.match(operand):
                raise MacroSyntaxError('malformed compatibility level "%s" in "%s": expected '
                                       'MAJOR[.MINOR[.PATCH]]' % (operand, macro))
    elif len(literal) == 2 and all(o and not o.strip('0123456789') for o in literal):
        for operand in literal:
            if int(operand) > _LONG_MAX:
                raise MacroSyntaxError('number "%s" in "%s" is too large' % (operand, macro))


def macro_syntax_error(value):
    """None when Postfix can $-expand VALUE, else what is wrong with it.

    Follows mac_parse() and mac_expand() as postconf uses them when it scans
    main.cf: "$$" is a literal "$"; "$name" takes the letters, digits and "_"
    after the "$"; "${...}" and "$(...)" run to the balancing bracket and hold
    a name with optional blanks around it, "name?text", "name:text",
    "name?{text}", "name:{text}", "name?{text}:{text}", or a relational
    expression "{text} OP {text}" (OP one of == != < <= >= >, optionally
    with the suffix "level") followed by the same "?"/":" forms. Text after
    "?" and ":" is checked the same way, whichever branch would be taken.
    """
    try:
        _check_macros(value, 0)
    except MacroSyntaxError as exc:
        return str(exc)
    except RecursionError:
        return 'relational expressions nested too deeply'
    return None


def check_name(name):
    """Return None when NAME is a valid parameter name, else the reason."""
    if not isinstance(name, str) or not name:
        return 'parameter name must be a non-empty string, got %r' % (name,)
    if not PARAM_NAME_RE.match(name):
        return ('invalid parameter name %r: Postfix parameter names consist of '
                'letters, digits and "_" (and "-" or "." after the first character, as in '
                'the per-transport parameters of a service such as smtp-amavis)' % (name,))
    return None


def _control_character(value):
    """The first C0 control character (other than tab), DEL or lone surrogate in VALUE."""
    for char in value:
        if (char < ' ' and char != '\t') or char == '\x7f' or '\ud800' <= char <= '\udfff':
            return char
    return None


_CONTROL_LABELS = {'\n': 'a newline', '\r': 'a carriage return', '\x00': 'a NUL character'}


def check_value(name, value):
    """Return None when VALUE may be written for parameter NAME, else the reason.

    Refused are line breaks and other control characters (Postfix reads
    main.cf line by line and treats \\v, \\f and \\r as blanks, so such a
    value cannot be read back as written), and $ text that Postfix cannot
    expand (see macro_syntax_error()), except in RAW_PARAMETERS.
    """
    char = _control_character(value)
    if char is not None:
        if char in _CONTROL_LABELS:
            return ('value of %s contains %s (%r): main.cf values must fit on '
                    'one line' % (name, _CONTROL_LABELS[char], value))
        if '\ud800' <= char <= '\udfff':
            return 'value of %s is not valid Unicode text (%r)' % (name, value)
        return ('value of %s contains the control character %r (%r): Postfix parameter '
                'values may contain no control characters other than tab' % (name, char, value))
    if name not in RAW_PARAMETERS:
        reason = macro_syntax_error(value)
        if reason:
            return ('value of %s (%r) cannot be expanded by Postfix, which would then refuse '
                    'to read main.cf ("macro processing error"): %s. Write "$$" for a '
                    'literal "$"' % (name, value, reason))
    return None


def check_override_value(name, value):
    """Return None when VALUE may be written as a master.cf -o override."""
    reason = check_value(name, value)
    if reason:
        return reason
    if re.search(r'[ \t]', value):
        return ('value of %s contains whitespace (%r): postconf -P cannot write '
                'whitespace into a master.cf -o override; define a main.cf '
                'parameter with that value and use $name in the override'
                % (name, value))
    return None


def check_setting(name, value, override=False):
    """Return None when VALUE may be written for NAME: in main.cf, or with OVERRIDE as a
    master.cf -o override (check_override_value); else the reason it may not."""
    return check_override_value(name, value) if override else check_value(name, value)


def to_postconf_value(value):
    """Turn a value from the task into the text postconf writes.

    A list becomes "a, b, c" (the way Postfix lists are written), a boolean
    becomes yes/no (Postfix booleans), numbers become their text. Leading and
    trailing blanks are removed because postconf and the main.cf reader drop
    them too; line breaks are kept so that check_value() refuses them. Raises TypeError for anything else (mappings, None).
    """
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        # Only blanks: a CR or newline must stay visible to check_value().
        return value.strip(' \t')
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, (list, tuple, dict)) or item is None:
                raise TypeError('list items must be strings, got %r' % (item,))
            text = to_postconf_value(item)
            if text == '':
                raise TypeError('list items must not be empty, got %r' % (value,))
            items.append(text)
        return ', '.join(items)
    raise TypeError('expected a string, number, boolean or list of strings, '
                    'got %s %r' % (type(value).__name__, value))


def list_items(value):
    """The items of a Postfix list value, for comparison.

    Split as Postfix splits lists (postfix_syntax.split_list: commas and
    whitespace, ``{...}`` kept together, e.g. ``check_policy_service
    { inet:127.0.0.1:10040, timeout=10s }``). Inside a braced item the parts
    are split the same way (milter.c and smtpd_check.c read a milter's or a
    policy service's settings with CHARS_COMMA_SP), so ``{ a, b }``,
    ``{a,b}`` and ``{ a b }`` are one item; a part in braces of its own keeps its
    text with whitespace collapsed.
    """
    return [_normalise_item(item) for item in split_list(value)]


def _collapse(text):
    # whitespace collapsed, and dropped just inside braces: "{ a = b }" -> "{a = b}"
    return re.sub(r'\s+\}', '}', re.sub(r'\{\s+', '{', ' '.join(text.split())))


def _normalise_item(item):
    start = item.find('{')
    if start < 0:
        return item
    depth = 0
    for end, char in enumerate(item[start:], start):
        depth += {'{': 1, '}': -1}.get(char, 0)
        if depth == 0:
            break
    if depth != 0 or end != len(item) - 1:
        return _collapse(item)
    parts = split_list(item[start + 1:end])
    return '%s{%s}' % (item[:start], ', '.join(_collapse(part) if '{' in part else part for part in parts))


def edit_list(current, items, mode, separator=', '):
    """The list value CURRENT (text, or None for empty) with the items of ITEMS (a list value,
    text) present (added at the end, in their order, when missing) or absent (removed), the
    other items kept as written. Items compare as list_items() compares them. Returns None
    when CURRENT already is so (nothing to write), else the new value joined with SEPARATOR
    (``", "`` as main.cf lists are written; ``","`` for a master.cf -o override, which
    cannot hold blanks). MODE: ``present`` or ``absent``."""
    if mode not in ('present', 'absent'):
        raise ValueError('mode must be present or absent, got %r' % (mode,))
    kept = split_list(current or '')
    have = [_normalise_item(item) for item in kept]
    wanted = []
    for item in split_list(items):
        if _normalise_item(item) not in [_normalise_item(w) for w in wanted]:
            wanted.append(item)
    if mode == 'present':
        missing = [item for item in wanted if _normalise_item(item) not in have]
        if not missing:
            return None
        return separator.join(kept + missing)
    drop = set(_normalise_item(item) for item in wanted)
    left = [item for item, norm in zip(kept, have) if norm not in drop]
    if len(left) == len(kept):
        return None
    return separator.join(left)


def is_list_parameter(name):
    """Whether Postfix reads NAME as a list (pragmatic rule, see docs)."""
    base = name.lower()
    if base in _LIST_NAMES:
        return True
    return base.endswith(_LIST_SUFFIXES)


def values_equal(name, current, desired, as_list=False):
    """Compare an explicit value with a desired one.

    List parameters (or values given as a list) are equal when they have the
    same items in the same order, whatever the separators; other values must
    be identical after removing surrounding whitespace.
    """
    if current is None or desired is None:
        return current is None and desired is None
    if as_list or is_list_parameter(name):
        return list_items(current) == list_items(desired)
    return current.strip() == desired.strip()


def referenced_names(value):
    """Names referenced as $name, ${name}, $(name) in VALUE."""
    if not value:
        return set()
    # "$$" is a literal dollar sign, not a reference.
    return set(_REFERENCE_RE.findall(value.replace('$$', '')))


def parse_main_cf(text):
    """Explicit settings of a main.cf, as Postfix's configuration reader sees them.

    Mirrors readllines() and split_nameval(): the text is split at "\n"
    only; empty lines, blank lines and lines whose first non-blank character
    is "#" are skipped; a line that starts with a blank continues the
    previous logical line and is appended to it as it is (blanks included);
    a continuation line before any entry is ignored; text after a NUL is
    ignored. The name ends at a blank or "="; leading and trailing blanks of
    the value are removed. Lines without "=" or with a name that is not a
    parameter name are skipped (Postfix refuses to read such a file). The
    last of several entries for a name wins. Returns a dict name -> value in
    file order.
    """
    logical = []
    for line in text.split('\n'):
        stripped = line.lstrip(WHITESPACE)
        if not stripped or stripped.startswith('#'):
            continue
        if line[0] in WHITESPACE:
            if logical:
                logical[-1] += line
            continue
        logical.append(line)
    result = {}
    for entry in logical:
        entry = entry.split('\x00', 1)[0]
        name, sep, value = entry.partition('=')
        name = name.strip(WHITESPACE)
        if not sep or not PARAM_NAME_RE.match(name):
            continue
        result.pop(name, None)
        result[name] = value.strip(WHITESPACE)
    return result


def decode_config(data):
    """Text of a configuration file read as bytes.

    Postfix reads bytes; UTF-8 is decoded, any other byte (a Latin-1
    comment, say) is kept as a surrogate escape, so that nothing fails and
    the text encodes back to the same bytes.
    """
    return data.decode('utf-8', 'surrogateescape')


def printable(value):
    """VALUE for results and diffs: bytes that are not UTF-8 shown as \\xNN."""
    if value is None:
        return None
    return value.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def printable_result(value):
    """VALUE (a module result: dicts, lists, strings) with every string printable(): a table
    or file with bytes that are not UTF-8 (a Latin-1 comment or key) is read with surrogate
    escapes, which Ansible refuses to send back; the result shows them as \\xNN."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return dict((printable_result(k), printable_result(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [printable_result(v) for v in value]
    return value


def parse_postconf_output(text):
    """Parse "name = value" lines printed by postconf, -n or -d."""
    result = {}
    for line in text.splitlines():
        name, sep, value = line.partition(' =')
        if not sep or not PARAM_NAME_RE.match(name):
            continue
        result[name] = value.strip()
    return result


def parse_service_spec(spec):
    """Split "SERVICE/TYPE" (e.g. 127.0.0.1:10026/inet) into (service, type).

    Raises ValueError with the reason when the spec is malformed.
    """
    if not isinstance(spec, str) or '/' not in spec:
        raise ValueError('service %r must be written SERVICE/TYPE, e.g. '
                         'submission/inet or 127.0.0.1:10026/inet' % (spec,))
    service, service_type = spec.rsplit('/', 1)
    if not service or re.search(r'[\s/]', service) or any(c in service for c in '\x00='):
        raise ValueError('service %r: the service name must be non-empty and contain '
                         'no whitespace, "/" or "="' % (spec,))
    if service_type not in SERVICE_TYPES:
        raise ValueError('service %r: unknown service type %r, expected one of %s'
                         % (spec, service_type, ', '.join(SERVICE_TYPES)))
    return service, service_type


def master_entries(text):
    """The fields of each service line of ``postconf -M`` (or master.cf) TEXT: a line that is
    not blank, a comment or a continuation (``-o`` lines start with whitespace)."""
    return [line.split() for line in text.splitlines() if line and line[0] not in ' \t#']


def parse_services(text):
    """Services of "postconf -M" output as a set of (service, type)."""
    return set((fields[0], fields[1]) for fields in master_entries(text) if len(fields) >= 2)


def parse_service_commands(text):
    """The command of each service of "postconf -M" output: {(service, type): command}."""
    return dict(((fields[0], fields[1]), fields[7]) for fields in master_entries(text) if len(fields) >= 8)


def parse_service_overrides(text):
    """Parse "postconf -P" output: {(service, type): {name: value}}."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition(' =')
        if not sep:
            continue
        parts = key.rsplit('/', 2)
        if len(parts) != 3 or not PARAM_NAME_RE.match(parts[2]):
            continue
        result.setdefault((parts[0], parts[1]), {})[parts[2]] = value.strip()
    return result


def suggest(name, known, count=3):
    """The known parameter names closest to NAME, best first."""
    return difflib.get_close_matches(name, sorted(known), n=count, cutoff=0.6)


ALLOW_UNKNOWN = 'Set allow_unknown=true'


def unknown_name_message(name, known, where='main.cf', remedy=ALLOW_UNKNOWN):
    """Error text for an unknown parameter NAME, with a "did you mean" hint; REMEDY: how
    to set a user-defined parameter all the same."""
    close = suggest(name, known)
    if close:
        hint = 'did you mean %s?' % ' or '.join("'%s'" % c for c in close)
    else:
        hint = 'no known parameter name is close to it.'
    return ("unknown Postfix parameter '%s' for %s: %s A misspelt name is ignored by "
            "Postfix, so the intended setting would silently not apply. %s "
            "for a user-defined parameter (one that is "
            "not referenced as $%s by another value)."
            % (name, where, hint, remedy, name))


def format_line(name, value):
    """A main.cf style line for diffs: "name = value"."""
    return '%s = %s' % (name, value)


def restart_required(names):
    """Whether changing any of NAMES in main.cf needs a stop/start."""
    return any(n in RESTART_PARAMETERS for n in names)


def postfix_yes(value):
    """A Postfix boolean parameter value (``yes``/``no``, any case) is yes."""
    return str(value or '').strip().lower() == 'yes'


def tlsproxy_service(settings):
    """The tlsproxy service the SMTP client connects to when it reuses TLS connections
    (connection_reuse, smtp_tls_connection_reuse): main.cf's tlsproxy_service_name in
    SETTINGS (expanded; tlsproxy by default). tls_proxy_clnt.c tls_proxy_open() connects to
    private/$tlsproxy_service_name."""
    return (settings.get('tlsproxy_service_name') or '').strip() or 'tlsproxy'


def tlsproxy_add_command(name):
    """The command that adds the tlsproxy service NAME to master.cf (Debian's commented-out line)."""
    return 'postconf -M %s/unix="%s unix - - y - 0 tlsproxy"' % (name, name)


def tlsproxy_deferral(name):
    """What the SMTP client does with a TLS connection it hands to the tlsproxy service NAME
    when master.cf lacks it (checked with Postfix 3.5 to 3.11, the delivery oracle's tlsproxy
    rounds)."""
    return ('logs "connect to private/%s service: No such file or directory" and defers the mail ("Cannot '
            'start TLS: handshake failure"), at level may too' % name)


# Strictness of the TLS security levels per side (smtp: the client, smtpd: the
# server). A level is stricter than another when its rank is higher; a role
# never replaces a level by one of lower rank unless a downgrade is allowed.
# smtpd runs verify, secure and fingerprint as encrypt, so they rank as
# encrypt on the server side.
LEVEL_RANKS = {
    'smtp': {
        'none': 0, 'may': 1, 'encrypt': 2, 'dane': 3, 'verify': 4,
        'secure': 5, 'dane-only': 5, 'fingerprint': 5,
    },
    'smtpd': {
        'none': 0, 'may': 1, 'encrypt': 2, 'verify': 2, 'secure': 2, 'fingerprint': 2,
    },
}


def level_rank(level, side='smtp'):
    """Strictness of LEVEL on SIDE: 0 for none upwards, -1 when unknown (an invalid entry)."""
    return LEVEL_RANKS[side].get(str(level or '').strip().lower(), -1)


def weaker_somewhere(level, than, side='smtp'):
    """Whether LEVEL gives some destination a weaker TLS level than THAN on SIDE: a lower
    rank (level_rank), or on the client side opportunistic ``dane`` against mandatory
    ``encrypt``: dane is level may, with its plaintext fallback, for every destination
    without DNSSEC-validated TLSA records (smtp_tls_policy.c dane_incompat()), although it
    ranks above encrypt for those that have them."""
    if level_rank(level, side) < level_rank(than, side):
        return True
    return side == 'smtp' and str(level or '').strip().lower() == 'dane' \
        and str(than or '').strip().lower() == 'encrypt'


def policy_value_level(value):
    """The security level of a policy table value (its first token, lower case, tokens split
    on blanks and commas as smtp_tls_policy.c and posttls_finger.parse_entry split them), or None."""
    tokens = split_list(str(value or ''), braces=False)
    return tokens[0].lower() if tokens else None


def lowered_entries(changed_values, fallback):
    """[(key, level before, level after or None)] of the table entries a run makes weaker for
    their destination (weaker_somewhere). CHANGED_VALUES: tls_policy's changed_values, {key:
    {'before': value, 'after': value or None}}; an entry removed leaves its destination to
    FALLBACK (smtp_tls_security_level after the run; a parent domain's entry aside)."""
    found = []
    for key in sorted(changed_values or {}):
        change = changed_values[key]
        if not isinstance(change, dict):
            continue
        before = policy_value_level(change.get('before'))
        after = policy_value_level(change.get('after'))
        if before and weaker_somewhere(after or fallback, before, 'smtp'):
            found.append((key, before, after))
    return found


def planned_level(requested, now, side, keep_stricter):
    """The level SIDE (smtp, smtpd) gets: REQUESTED (None: unchanged), or NOW when
    KEEP_STRICTER and REQUESTED would be weaker for some destination (weaker_somewhere) -
    the enforce_tls role's no-downgrade rule, the same for its decision and for the
    preflight of its read."""
    if not requested:
        return now
    if keep_stricter and weaker_somewhere(requested, now, side):
        return now
    return requested


def raises_smtpd_to_encrypt(before, after):
    """Whether smtpd_tls_security_level goes from BEFORE (none, may) to encrypt AFTER: from then
    on smtpd refuses a client that does not use STARTTLS."""
    return str(after or '').lower() == 'encrypt' and level_rank(before, 'smtpd') < level_rank('encrypt', 'smtpd')


# What tls_security_level reads for the client side: the level and the obsolete settings.
SMTP_LEVEL_PARAMETERS = ('smtp_tls_security_level', 'smtp_use_tls', 'smtp_enforce_tls', 'smtp_tls_enforce_peername')
# ... and for the server side.
SMTPD_LEVEL_PARAMETERS = ('smtpd_tls_security_level', 'smtpd_use_tls', 'smtpd_enforce_tls')


def tls_security_level(parameters, side):
    """The TLS security level Postfix applies on SIDE (``smtp``: the client,
    ``smtpd``: the server), from PARAMETERS (name -> expanded value; a missing
    one counts as empty).

    ``SIDE_tls_security_level``, lower-cased; when it is empty the obsolete
    settings count as Postfix reads them (global_tls_level() in
    smtp_tls_policy.c, smtpd.c): ``smtp_enforce_tls = yes`` is verify
    (encrypt when ``smtp_tls_enforce_peername = no``), ``smtpd_enforce_tls =
    yes`` is encrypt, ``SIDE_use_tls = yes`` is may, otherwise none.
    """
    level = str(parameters.get(side + '_tls_security_level') or '').strip().lower()
    if level:
        return level
    if postfix_yes(parameters.get(side + '_enforce_tls')):
        if side == 'smtp':
            return 'verify' if postfix_yes(parameters.get('smtp_tls_enforce_peername')) else 'encrypt'
        return 'encrypt'
    return 'may' if postfix_yes(parameters.get(side + '_use_tls')) else 'none'


_EXPANSION_RE = re.compile(r'\$(?:\{([A-Za-z0-9_]+)(?:([?:])([^{}$]*))?\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+)|(\$))')


def expand_references(text, values):
    """TEXT with parameter references replaced as Postfix's mac_expand does:
    ``$name``, ``${name}``, ``$(name)`` give the value; ``${name?text}`` gives
    text when the value is not empty, ``${name:text}`` when it is (and
    nothing otherwise); ``$$`` is a dollar sign. VALUES maps names to their
    (already expanded) values; a name it lacks raises KeyError with the name."""
    def replace(match):
        if match.group(6):
            return '$'
        name = match.group(1) or match.group(4) or match.group(5)
        if name not in values:
            raise KeyError(name)
        value = values[name] or ''
        if match.group(2) == '?':
            return match.group(3) if value.strip() else ''
        if match.group(2) == ':':
            return '' if value.strip() else match.group(3)
        return value
    return _EXPANSION_RE.sub(replace, text)


# -- the smtpd certificate and key files -------------------------------------------------

# smtpd_tls_key_file values that mean "the key is in the certificate file"
# (Postfix's default is $smtpd_tls_cert_file).
KEY_IN_CERT_FILE = ('$smtpd_tls_cert_file', '${smtpd_tls_cert_file}', '$(smtpd_tls_cert_file)')


# what smtpd_key_pairs reads
SMTPD_CERTIFICATE_PARAMETERS = ('smtpd_tls_cert_file', 'smtpd_tls_key_file', 'smtpd_tls_eccert_file',
                                'smtpd_tls_eckey_file', 'smtpd_tls_chain_files')


def _first(values):
    return values[0] if values else ''


def smtpd_key_pairs(parameters, parameter_files, cert_file='', key_file=''):
    """[(certificate, key)] smtpd loads after a run that sets CERT_FILE and KEY_FILE (empty:
    kept as main.cf has them): the RSA pair (the key defaults to the certificate file) and
    the ECDSA pair. PARAMETERS: main.cf values as written (smtpd_tls_key_file);
    PARAMETER_FILES: {name: [paths]} of the expanded smtpd_tls_*_file values. [] when
    smtpd_tls_chain_files is set (its files hold keys and chains together)."""
    if parameter_files.get('smtpd_tls_chain_files'):
        return []
    rsa_cert = cert_file or _first(parameter_files.get('smtpd_tls_cert_file'))
    if key_file:
        rsa_key = key_file
    elif str(parameters.get('smtpd_tls_key_file') or '').strip() in KEY_IN_CERT_FILE:
        rsa_key = rsa_cert
    else:
        rsa_key = _first(parameter_files.get('smtpd_tls_key_file'))
    ec_cert = _first(parameter_files.get('smtpd_tls_eccert_file'))
    ec_key = _first(parameter_files.get('smtpd_tls_eckey_file'))
    return ([(rsa_cert, rsa_key)] if rsa_cert else []) + ([(ec_cert, ec_key)] if ec_cert else [])


def smtpd_certificate_files(parameters, parameter_files, cert_file='', key_file=''):
    """The files smtpd loads after the run: smtpd_tls_chain_files when set, else those of
    smtpd_key_pairs, each once."""
    chain = parameter_files.get('smtpd_tls_chain_files') or []
    if chain:
        return list(chain)
    out = []
    for pair in smtpd_key_pairs(parameters, parameter_files, cert_file, key_file):
        for path in pair:
            if path and path not in out:
                out.append(path)
    return out


def key_pair_problem(cert, key):
    """Why OpenSSL (the library Postfix uses on this host, through Python's ssl) cannot
    load CERT with KEY as a server certificate: not PEM, no certificate, a key that does
    not match, an encrypted key (Postfix takes no passphrase); None when it can, or when a
    file cannot be opened (the stat facts say why)."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers('ALL:@SECLEVEL=0')      # the key size is not the question here
    except ssl.SSLError:
        pass
    try:
        context.load_cert_chain(cert, key or None, password=lambda: b'')
    except ssl.SSLError as exc:
        return str(exc)
    except (OSError, IOError):
        return None
    return None
