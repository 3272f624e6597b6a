# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The source file of a Postfix ``KEY VALUE`` lookup table (what postmap
reads, and texthash tables are): read it as Postfix does and edit it without
losing anything: comments, blank lines, continuation lines, line endings and the
entries it is not asked to touch stay byte for byte.

Pure Python, no Ansible imports. The reading rules are Postfix's
(readllines(3) and postmap(1)); whitespace and key folding come from
postfix_syntax:

* lines are split on ``\\n`` only; a ``\\r`` before it is part of the line
  (Postfix treats it as trailing whitespace);
* a line whose first non-whitespace character is ``#`` is a comment, a line
  of whitespace only is blank; both are skipped *inside* a logical line;
* a line that starts with whitespace continues the current logical line
  (even across comments and blank lines); before the first entry it starts
  a logical line that Postfix ignores ("logical line must not start with
  whitespace");
* the key is the text up to the first whitespace, folded to lower case;
  the value is the rest with surrounding whitespace removed; an entry with
  no value is ignored by Postfix ("expected format: key whitespace value");
* with duplicate keys Postfix keeps the FIRST one.

Editing rules: a changed entry is rewritten on the line where it starts (its
continuation lines are dropped, comments between them stay); a new entry is
appended at the end; removing an entry removes its start and continuation
lines only.
"""

import os
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    LINE_BLANKS,
    WHITESPACE,
    utf8_fold_key,
)

_WHITESPACE_RE = re.compile('[%s]' % re.escape(WHITESPACE))

BLANK = 'blank'
COMMENT = 'comment'
ENTRY = 'entry'
CONTINUATION = 'continuation'
ORPHAN = 'orphan'


def split_lines(text):
    """Split on ``\\n`` only, keeping the terminators (``''.join`` restores)."""
    parts = text.split('\n')
    lines = [part + '\n' for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _content(line):
    return line[:-1] if line.endswith('\n') else line


def _line_ending(line):
    if line.endswith('\r\n'):
        return '\r\n'
    if line.endswith('\n'):
        return '\n'
    return ''


class Entry:
    """One logical ``KEY VALUE`` entry of the table."""

    __slots__ = ('key', 'fkey', 'start', 'continuations', 'value', 'separator', 'dead')

    def __init__(self, key, start, continuations, value, separator):
        self.key = key                      # as written in the file
        self.fkey = utf8_fold_key(key)      # as Postfix looks it up (smtputf8_enable=yes)
        self.start = start                  # index of the first physical line
        self.continuations = continuations  # indexes of continuation lines
        self.value = value                  # logical value, whitespace-trimmed
        self.separator = separator          # whitespace after the key, or None
        self.dead = False                   # removed by an edit

    @property
    def lineno(self):
        return self.start + 1

    def __repr__(self):
        return 'Entry(%r, %r, line %d)' % (self.key, self.value, self.lineno)


def read_table_file(path):
    """The table source file at PATH, parsed as Postfix reads it (bytes that are not UTF-8
    are kept). OSError when it cannot be read."""
    with open(path, 'rb') as f:
        return LookupTableSource.parse(f.read().decode('utf-8', 'surrogateescape'))


def policy_source_entries(path):
    """(items, errors) of the policy table source file at PATH, a planned table given as a
    file (tls_policy's and tls_policy_levels' policies_src): items are (key as written,
    value, 'PATH, line N') of every entry with a value; errors name the lines Postfix ignores
    ('PATH, line N: ...'). Raises ValueError with the reason when the file cannot be used."""
    if not os.path.isabs(path):
        raise ValueError('must be an absolute path (a file on the managed host; a relative path would '
                         'depend on the directory the module runs in)')
    try:
        table = read_table_file(path)
    except (IOError, OSError) as exc:
        raise ValueError('cannot be read on this host: %s' % (exc.strerror or exc))
    if '\0' in table.render():
        raise ValueError('contains NUL bytes: it is not the text of a lookup table (an indexed .db or '
                         '.lmdb file?)')
    errors = ['%s, line %d: %s' % (path, lineno, problem) for lineno, problem in table.problems()]
    items = [(entry.key, entry.value, '%s, line %d' % (path, entry.lineno))
             for entry in table.entries() if entry.value]
    return items, errors


class LookupTableSource:
    """A parsed lookup table source: lines plus an index of entries by key."""

    def __init__(self, lines, kinds, entries):
        self._lines = lines              # physical lines; None once deleted
        self._kinds = kinds
        self._entries = entries          # every Entry in file order
        self._by_key = {}
        for entry in entries:
            self._by_key.setdefault(entry.fkey, []).append(entry)
        self.newline = '\n'
        for line in lines:
            if line.endswith('\n'):
                self.newline = _line_ending(line)
                break

    # -- reading -------------------------------------------------------------

    @classmethod
    def parse(cls, text):
        """Parse the text of a table file (decoded with surrogateescape)."""
        lines = split_lines(text)
        kinds = []
        entries = []
        current = None          # the Entry being continued, or ORPHAN
        parts = None
        for index, line in enumerate(lines):
            content = line[:-1] if line.endswith('\n') else line
            stripped = content.lstrip(LINE_BLANKS)
            if not stripped:
                kinds.append(BLANK)
            elif stripped[0] == '#':
                kinds.append(COMMENT)
            elif content[0] in LINE_BLANKS:
                if current is None or current is ORPHAN:
                    current = ORPHAN
                    kinds.append(ORPHAN)
                else:
                    kinds.append(CONTINUATION)
                    current.continuations.append(index)
                    parts.append(content)
            else:
                if current is not None and current is not ORPHAN:
                    _finish(current, parts)
                kinds.append(ENTRY)
                current = Entry(_first_token(content), index, [], None, None)
                entries.append(current)
                parts = [content]
        if current is not None and current is not ORPHAN:
            _finish(current, parts)
        return cls(lines, kinds, entries)

    def render(self):
        """The file text; identical to the parsed text when nothing was edited."""
        return ''.join(line for line in self._lines if line is not None)

    def entries(self):
        """Live entries in file order (duplicates included)."""
        return [entry for entry in self._entries if not entry.dead]

    def keys(self):
        """Folded keys in file order, each once."""
        return list(self._by_key)

    def lookup(self, key):
        """The entry Postfix would use for key (the first one), or None."""
        found = self._by_key.get(utf8_fold_key(key))
        return found[0] if found else None

    def occurrences(self, key):
        """Every entry for key, first (the one Postfix uses) first."""
        return list(self._by_key.get(utf8_fold_key(key), ()))

    def __contains__(self, key):
        return utf8_fold_key(key) in self._by_key

    def __len__(self):
        return len(self._by_key)

    def duplicates(self):
        """Folded keys that occur more than once with a value (postmap warns
        "duplicate entry" and keeps the first), in file order."""
        return [fkey for fkey, found in self._by_key.items()
                if len(found) > 1 and sum(1 for entry in found if entry.value) > 1]

    def problems(self):
        """Lines Postfix ignores, as sorted (line number, message) pairs."""
        found = []
        in_orphan = False
        for index, kind in enumerate(self._kinds):
            if self._lines[index] is None:
                continue
            if kind == ORPHAN and not in_orphan:
                found.append((index + 1, 'logical line must not start with whitespace; '
                                         'Postfix ignores it'))
            in_orphan = kind == ORPHAN or (in_orphan and kind in (BLANK, COMMENT))
        for entry in self._entries:
            if not entry.dead and not entry.value:
                found.append((entry.lineno, 'key %r has no value; Postfix ignores it '
                                            '(expected format: key whitespace value)' % entry.key))
        found.sort()
        return found

    # -- editing -------------------------------------------------------------

    def set(self, key, value, same=None):
        """Make key map to value.

        ``same(old_value, new_value)`` decides whether an existing value
        already means value (default: string equality).  The first
        occurrence is rewritten in place when it differs; later duplicates
        (dead entries: Postfix uses the first) are removed.

        Returns ``'added'``, ``'updated'`` or ``'unchanged'``.
        """
        _check_key(key)
        _check_value(value)
        found = self._by_key.get(utf8_fold_key(key))
        if not found:
            self._append(key, value)
            return 'added'
        first = found[0]
        status = 'unchanged'
        if len(found) > 1:
            for entry in found[1:]:
                self._delete(entry)
            del found[1:]
            status = 'updated'
        equal = same(first.value, value) if same is not None else first.value == value
        if not equal:
            self._rewrite(first, value)
            status = 'updated'
        return status

    def remove(self, key):
        """Remove every occurrence of key; returns how many were removed."""
        found = self._by_key.pop(utf8_fold_key(key), None)
        if not found:
            return 0
        for entry in found:
            self._delete(entry)
        return len(found)

    def remove_except(self, keep):
        """Remove every key not in keep; returns the removed (folded) keys."""
        keep = set(utf8_fold_key(k) for k in keep)
        removed = [fkey for fkey in self._by_key if fkey not in keep]
        for fkey in removed:
            self.remove(fkey)
        return removed

    def apply(self, desired, exclusive=False, same=None):
        """Make the table hold DESIRED, a list of (key, value or None to remove).

        With EXCLUSIVE every other key is removed too. Returns
        ``{'added': [...], 'updated': [...], 'removed': [...]}`` (keys as given;
        unlisted keys removed by EXCLUSIVE folded).
        """
        changes = dict(added=[], updated=[], removed=[])
        for key, value in desired:
            if value is None:
                if self.remove(key):
                    changes['removed'].append(key)
                continue
            status = self.set(key, value, same=same)
            if status != 'unchanged':
                changes[status].append(key)
        if exclusive:
            changes['removed'].extend(self.remove_except([key for key, value in desired if value is not None]))
        return changes

    def warnings(self, name, managed=()):
        """What Postfix would complain about in this file (NAME), as warnings:
        duplicate keys (noting those MANAGED keys whose later copies an edit
        removes) and lines Postfix ignores."""
        found = []
        for fkey in self.duplicates():
            lines = ', '.join(str(e.lineno) for e in self.occurrences(fkey) if e.value)
            found.append('%s: key %r occurs on lines %s; Postfix uses the first%s'
                         % (name, fkey, lines, '; the later ones are removed' if fkey in managed else ''))
        for lineno, problem in self.problems():
            found.append('%s, line %d: %s' % (name, lineno, problem))
        return found

    def _rewrite(self, entry, value):
        line = self._lines[entry.start]
        separator = entry.separator if entry.separator else ' '
        self._lines[entry.start] = entry.key + separator + value + _line_ending(line)
        for index in entry.continuations:
            self._lines[index] = None
        entry.continuations = []
        entry.value = value
        entry.separator = separator

    def _delete(self, entry):
        self._lines[entry.start] = None
        for index in entry.continuations:
            self._lines[index] = None
        entry.continuations = []
        entry.dead = True

    def _append(self, key, value):
        last = len(self._lines) - 1
        while last >= 0 and self._lines[last] is None:
            last -= 1
        if last >= 0 and not self._lines[last].endswith('\n'):
            # complete the final line: "...\r" becomes "...\r\n", else the file's newline
            self._lines[last] += '\n' if self._lines[last].endswith('\r') else self.newline
        separator = ' '
        for entry in reversed(self._entries):
            if not entry.dead:
                if entry.separator and '\t' in entry.separator:
                    separator = '\t'
                break
        index = len(self._lines)
        self._lines.append(key + separator + value + self.newline)
        self._kinds.append(ENTRY)
        entry = Entry(key, index, [], value, separator)
        self._entries.append(entry)
        self._by_key.setdefault(entry.fkey, []).append(entry)


def _finish(entry, parts):
    """Compute value and separator of an entry from its physical lines."""
    rest = parts[0][len(entry.key):]
    stripped = rest.lstrip(WHITESPACE)
    if stripped.strip(WHITESPACE):
        entry.separator = rest[:len(rest) - len(stripped)]
    logical = rest if len(parts) == 1 else rest + ''.join(parts[1:])
    entry.value = logical.strip(WHITESPACE)


def _first_token(content):
    for index, ch in enumerate(content):
        if ch in WHITESPACE:
            return content[:index]
    return content


def _check_key(key):
    if not key or _WHITESPACE_RE.search(key) or key[0] == '#':
        raise ValueError('key %r must be non-empty, contain no whitespace '
                         'and not start with "#"' % (key,))


def _check_value(value):
    if not value or value != value.strip(WHITESPACE) or '\n' in value or '\r' in value:
        raise ValueError('value %r must be non-empty, on one line, without '
                         'leading or trailing whitespace' % (value,))
