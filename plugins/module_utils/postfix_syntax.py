# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How Postfix reads text: whitespace, lists and lookup keys, defined once.

Pure Python, no Ansible imports. Every other module_utils file (main.cf
reader, lookup table source, map lists, TLS policy grammar) takes these
rules from here. The names in parentheses are Postfix's own (sys_defs.h,
mystrtok.c, readlline.c, dict.c).
"""

# ISSPACE in the C locale: what Postfix trims and splits on.
WHITESPACE = ' \t\n\v\f\r'

# Blanks inside one line: Postfix breaks lines at "\n" only, so "\r", "\v"
# and "\f" are blanks to it (and a "\r" before "\n" is trailing blank).
LINE_BLANKS = ' \t\v\f\r'

# Blanks and line breaks that separate words (CHARS_SPACE); mac_expand skips
# them around names and operators.
SPACES = ' \t\r\n'

# Separators of list values and of table attribute lists (CHARS_COMMA_SP).
LIST_SEPARATORS = ',' + SPACES

# Grouping characters that protect separators inside a list item (CHARS_BRACE).
BRACES = '{}'

_ASCII_LOWER = dict((ord(c), ord(c.lower())) for c in 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')


def split_list(value, braces=True):
    """Split a Postfix list into its items (mystrtok, or mystrtokq with BRACES).

    Items are separated by any run of LIST_SEPARATORS. With BRACES, text
    inside ``{...}`` (nested) stays one item together with its braces, so
    ``inline:{ {a = b}, c=d }`` or ``check_policy_service { inet:host:port,
    timeout=10s }`` are not torn apart. Empty items are dropped.
    """
    items = []
    current = []
    depth = 0
    for char in value or '':
        if depth == 0 and char in LIST_SEPARATORS:
            if current:
                items.append(''.join(current))
                current = []
            continue
        if braces:
            if char == '{':
                depth += 1
            elif char == '}' and depth > 0:
                depth -= 1
        current.append(char)
    if current:
        items.append(''.join(current))
    return items


def parent_domains(name, dotted=True):
    """The parent-domain keys Postfix tries after NAME, in order, as its lookup loops walk
    ``strchr(entry + 1, '.')`` (smtp_tls_policy.c, mail_addr_find.c, match_ops.c):
    ``.example.com``, ``.com`` for ``a.example.com`` (DOTTED), or ``example.com``, ``com``
    (a list in parent_domain_matches_subdomains)."""
    keys = []
    entry = name
    while True:
        dot = entry.find('.', 1)
        if dot < 0:
            return keys
        entry = entry[dot:] if dotted else entry[dot + 1:]
        keys.append(entry)


def fold_key(key):
    """Fold a lookup key the way Postfix does (lowcase()): ASCII letters only."""
    if key.isascii():
        return key.lower()
    return key.translate(_ASCII_LOWER)


def utf8_fold_key(key):
    """How Postfix folds a table key with smtputf8_enable=yes (the default since
    compatibility_level 1): dict_utf8.c casefolds UTF-8 keys (ICU full case folding, as
    ``str.casefold``: ``BÜCHER.de`` is ``bücher.de``, ``straße.de`` is ``strasse.de``);
    ASCII keys are lowered as fold_key lowers them."""
    if key.isascii():
        return key.lower()
    return key.casefold()


def unique(items):
    """ITEMS without repeats, in the order of their first appearance."""
    seen = set()
    return [item for item in items if not (item in seen or seen.add(item))]
