r"""Linear-time regular expressions for the ``~=``/``!~=`` operators of NGSI-LD ``q`` and
``idPattern``.

Why not ``re``: query patterns come from untrusted clients, and Python's backtracking engine can
take exponential time on patterns like ``(a+)+$`` (ReDoS). :class:`SafeRegex` parses a pattern
(the subset below, with its own error messages), then runs it on RE2 (google-re2, C++,
linear time: a 161-character pattern over 10 KB took 7.6 s on the pure-Python Pike VM this
module had, and takes well under a millisecond on RE2). The pattern is translated so that RE2
answers as ``re.search`` would: Unicode ``\d \w \s`` and ``$`` also before a final newline.
The few forms RE2 cannot express that way (a negated shorthand such as ``\W`` inside a
``[...]`` class) run on the Pike VM kept here, whose time is bounded by
``len(text) x len(program)``. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import re2

__all__ = ["MAX_REGEX_LENGTH", "SafeRegex"]

MAX_REGEX_LENGTH = 512
"""Longest accepted pattern (characters)."""
_MAX_REGEX_PROGRAM = 4096
_MAX_REPEAT = 100

_Pred: TypeAlias = Callable[[str], bool]
# Instructions: ("char", pred) | ("split", a, b) | ("jmp", a) | ("bol",) | ("eol",) | ("match",)
_Instr: TypeAlias = tuple[Any, ...]
_CLASS_ESCAPES: dict[str, _Pred] = {
    "d": str.isdecimal,
    "D": lambda c: not c.isdecimal(),
    "w": lambda c: c.isalnum() or c == "_",
    "W": lambda c: not (c.isalnum() or c == "_"),
    "s": str.isspace,
    "S": lambda c: not c.isspace(),
}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}

# RE2 spellings of the shorthands as Python's str methods define them (Unicode)
_SPACE: Final = r"\t\n\x0b\f\r\x1c-\x1f\x20\x85\p{Z}"
_WORD: Final = r"\p{L}\p{N}_"
_OUTSIDE: Final = {
    "d": r"\p{Nd}", "D": r"\P{Nd}",
    "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]",
}  # fmt: skip
_INSIDE: Final = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 8 << 20  # a bounded program; a pattern past it is refused (400)


def _to_re2(pattern: str) -> str | None:
    r"""``pattern`` (already accepted by the parser) in RE2 syntax with ``re``'s meaning;
    None when RE2 cannot say it (``\W``, ``\S`` inside a class)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    if pattern.startswith("(?i)"):
        out.append("(?i)")
        i = 4
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            i += 2
            table = _INSIDE if in_class else _OUTSIDE
            if e in table:
                out.append(table[e])
            elif e in "WS" and in_class:
                return None
            elif e == "0":
                out.append(r"\x00")
            elif e in "ntrfv":
                out.append("\\" + e)
            else:
                out.append(re2.escape(e) if e.isalnum() else "\\" + e)
            continue
        if in_class:
            if c == "]" and out[-1] not in ("[", "[^"):
                in_class = False
            elif c == "[":
                c = r"\["
            out.append(c)
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
            out.append("[")
        elif c == "$":
            out.append(r"(?:\n?\z)")  # re's $: the end, or before a final newline
        else:
            out.append(c)
        i += 1
    return "".join(out)


class SafeRegex:
    """A regular expression run by a Pike VM: time is O(len(text) x len(pattern)), always.

    Supports what ``re`` and POSIX ERE (the spec's IEEE 1003.2) share: literals, ``.``,
    ``[...]`` classes with ranges and negation, ``\\d \\w \\s`` (and negations), ``^``, ``$``,
    groups ``(...)``/``(?:...)``, ``|``, ``* + ? {m} {m,} {m,n}`` (a lazy ``?`` suffix is
    accepted; it does not change whether a match exists) and a leading ``(?i)``. Rejects
    (``ValueError``) back-references, look-around, word boundaries and other flags, patterns
    longer than 512 characters and repeat counts above 100. Matching is ``re.search``-like:
    anywhere in the text, ``.`` not matching a newline, ``$`` also before a final newline.
    """

    __slots__ = ("_fast", "_fold", "_pattern", "_pos", "_prog")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_REGEX_LENGTH:
            raise ValueError(f"longer than {MAX_REGEX_LENGTH} characters")
        self._pattern = pattern
        self._fold = pattern.startswith("(?i)")
        self._pos = 4 if self._fold else 0
        node = self._alternation()
        if self._pos < len(pattern):
            raise ValueError(f"unbalanced ')' at pattern offset {self._pos}")
        prog: list[_Instr] = []
        self._emit(node, prog)
        prog.append(("match",))
        self._prog = prog
        translated = _to_re2(pattern)
        self._fast: Any = None
        if translated is not None:
            try:
                self._fast = re2.compile(translated, _RE2_OPTIONS)
            except re2.error:  # past RE2's memory bound, or a form it spells otherwise
                self._fast = None

    # parsing into ("cat", [...]) / ("alt", [...]) / ("rep", node, min, max) / ("char", pred)
    # / ("bol",) / ("eol",)

    def _alternation(self) -> tuple[Any, ...]:
        branches = [self._concat()]
        while self._pos < len(self._pattern) and self._pattern[self._pos] == "|":
            self._pos += 1
            branches.append(self._concat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def _concat(self) -> tuple[Any, ...]:
        items: list[tuple[Any, ...]] = []
        p = self._pattern
        while self._pos < len(p) and p[self._pos] not in "|)":
            atom = self._atom()
            items.append(self._quantified(atom))
        return ("cat", items)

    def _quantified(self, atom: tuple[Any, ...]) -> tuple[Any, ...]:
        p = self._pattern
        if self._pos >= len(p):
            return atom
        ch = p[self._pos]
        bounds: tuple[int, int | None]
        if ch in "*+?":
            self._pos += 1
            bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        elif ch == "{" and (m := re.compile(r"\{(\d+)(,(\d*))?\}").match(p, self._pos)):
            self._pos = m.end()
            low = int(m.group(1))
            high = low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
                raise ValueError(f"repeat count outside 0..{_MAX_REPEAT} or reversed")
            bounds = (low, high)
        else:
            return atom
        if atom[0] in ("bol", "eol"):
            raise ValueError("nothing to repeat")
        if self._pos < len(p) and p[self._pos] == "?":
            self._pos += 1  # lazy: same language
        if self._pos < len(p) and (p[self._pos] in "*+" or re.compile(r"\{\d").match(p, self._pos)):
            raise ValueError("multiple repeat")
        return ("rep", atom, bounds[0], bounds[1])

    def _atom(self) -> tuple[Any, ...]:
        p = self._pattern
        ch = p[self._pos]
        self._pos += 1
        if ch == "(":
            if p.startswith("?:", self._pos):
                self._pos += 2
            elif p.startswith("?", self._pos):
                raise ValueError("look-around, named groups and inline flags are not supported")
            node = self._alternation()
            if self._pos >= len(p) or p[self._pos] != ")":
                raise ValueError("missing ')'")
            self._pos += 1
            return node
        if ch == "[":
            return ("char", self._class())
        if ch == ".":
            return ("char", lambda c: c != "\n")
        if ch == "^":
            return ("bol",)
        if ch == "$":
            return ("eol",)
        if ch in "*+?":
            raise ValueError("nothing to repeat")
        if ch == "{" and re.compile(r"\d+(,\d*)?\}").match(p, self._pos):
            raise ValueError("nothing to repeat")
        if ch == "\\":
            return ("char", self._escape())
        return ("char", self._literal(ch))

    def _literal(self, ch: str) -> _Pred:
        if self._fold:
            folded = ch.lower()
            return lambda c: c.lower() == folded
        return ch.__eq__

    def _escape(self) -> _Pred:
        p = self._pattern
        if self._pos >= len(p):
            raise ValueError("trailing backslash")
        ch = p[self._pos]
        self._pos += 1
        if ch in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[ch]
        if ch in _CHAR_ESCAPES:
            return self._literal(_CHAR_ESCAPES[ch])
        if ch.isalnum():
            raise ValueError(f"escape \\{ch} is not supported")
        return self._literal(ch)

    def _class(self) -> _Pred:
        p = self._pattern
        negate = p.startswith("^", self._pos)
        if negate:
            self._pos += 1
        ranges: list[tuple[str, str]] = []
        preds: list[_Pred] = []
        first = True
        while True:
            if self._pos >= len(p):
                raise ValueError("unterminated character class")
            ch = p[self._pos]
            if ch == "]" and not first:
                self._pos += 1
                break
            first = False
            self._pos += 1
            if ch == "\\":
                if self._pos >= len(p):
                    raise ValueError("unterminated character class")
                esc = p[self._pos]
                self._pos += 1
                if esc in _CLASS_ESCAPES:
                    preds.append(_CLASS_ESCAPES[esc])
                    continue
                if esc.isalnum() and esc not in _CHAR_ESCAPES:
                    raise ValueError(f"escape \\{esc} is not supported")
                ch = _CHAR_ESCAPES.get(esc, esc)
            elif ch == "[" and p.startswith(":", self._pos):
                raise ValueError("POSIX [:classes:] are not supported; use \\d, \\w or \\s")
            if p.startswith("-", self._pos) and not p.startswith("-]", self._pos):
                self._pos += 1
                high = p[self._pos] if self._pos < len(p) else ""
                self._pos += 1
                if high == "\\":
                    esc = p[self._pos] if self._pos < len(p) else ""
                    self._pos += 1
                    if not esc or (esc.isalnum() and esc not in _CHAR_ESCAPES):
                        raise ValueError("bad character range")
                    high = _CHAR_ESCAPES.get(esc, esc)
                if not high or high < ch:
                    raise ValueError("bad character range")
                ranges.append((ch, high))
            else:
                ranges.append((ch, ch))
        fold = self._fold

        def member(c: str) -> bool:
            candidates = (c, c.lower(), c.upper()) if fold else (c,)
            hit = any(lo <= x <= hi for x in candidates for lo, hi in ranges) or any(
                pred(c) for pred in preds
            )
            return hit != negate

        return member

    def _emit(self, node: tuple[Any, ...], prog: list[_Instr]) -> None:
        if len(prog) > _MAX_REGEX_PROGRAM:
            raise ValueError("too complex once repeats are expanded")
        kind = node[0]
        if kind == "cat":
            for item in node[1]:
                self._emit(item, prog)
        elif kind == "alt":
            jumps: list[int] = []
            branches = node[1]
            for i, branch in enumerate(branches):
                if i < len(branches) - 1:
                    split_at = len(prog)
                    prog.append(("split", split_at + 1, -1))
                    self._emit(branch, prog)
                    jumps.append(len(prog))
                    prog.append(("jmp", -1))
                    prog[split_at] = ("split", split_at + 1, len(prog))
                else:
                    self._emit(branch, prog)
            for j in jumps:
                prog[j] = ("jmp", len(prog))
        elif kind == "rep":
            _, body, low, high = node
            for _ in range(low):
                self._emit(body, prog)
            if high is None:
                loop = len(prog)
                prog.append(("split", loop + 1, -1))
                self._emit(body, prog)
                prog.append(("jmp", loop))
                prog[loop] = ("split", loop + 1, len(prog))
            else:
                holes: list[int] = []
                for _ in range(high - low):
                    holes.append(len(prog))
                    prog.append(("split", len(prog) + 1, -1))
                    self._emit(body, prog)
                for h in holes:
                    prog[h] = ("split", h + 1, len(prog))
        else:
            prog.append(node)

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (on RE2 when it can)."""
        if self._fast is not None:
            return self._fast.search(text) is not None
        return self._vm_search(text)

    def _vm_search(self, text: str) -> bool:
        """The Pike VM: the forms RE2 cannot say as ``re`` means them."""
        prog = self._prog
        n = len(text)
        current: list[int] = []
        for pos in range(n + 1):
            seen: set[int] = set()
            stack = [*reversed(current), 0]
            runnable: list[int] = []
            while stack:
                pc = stack.pop()
                if pc in seen:
                    continue
                seen.add(pc)
                instr = prog[pc]
                op = instr[0]
                if op == "match":
                    return True
                if op == "jmp":
                    stack.append(instr[1])
                elif op == "split":
                    stack.append(instr[2])
                    stack.append(instr[1])
                elif op == "bol":
                    if pos == 0:
                        stack.append(pc + 1)
                elif op == "eol":
                    if pos == n or (pos == n - 1 and text[pos] == "\n"):
                        stack.append(pc + 1)
                else:
                    runnable.append(pc)
            if pos == n:
                break
            ch = text[pos]
            current = [pc + 1 for pc in runnable if prog[pc][1](ch)]
        return False
