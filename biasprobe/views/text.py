"""Text for the terminal: untrusted text made safe to print, and short model names.

Probe files, run folders and model vocabularies are untrusted; every string the views print
goes through :func:`safe_text` (control and format characters shown as escapes) or, inside a
rich table, :func:`markup` (rich markup escaped too). :func:`display_names` gives models short,
distinct names for narrow tables.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["display_names", "markup", "safe_text"]

_ESCAPED = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_KEPT_LINES = frozenset("\t\n")


def _shown_char(c: str, keep: frozenset[str]) -> str:
    """``c`` itself, or its escape when it is a control, format or separator character."""
    if c in keep or unicodedata.category(c) not in _ESCAPED:
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def safe_text(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control and format character shown as an escape (``\\x1b``,
    ``\\u202e``).

    Probe files and model vocabularies are untrusted: an escape sequence (``\\x1b]2;…\\x07``)
    printed raw would retitle or reprogram the user's terminal, and a bidirectional override
    (U+202E) or another format character (Unicode category Cf) would make the text read
    differently from what it is. Escaped: categories Cc, Cf, Cs (lone surrogates), Zl and Zp
    (line and paragraph separators); with ``keep_newlines``, tabs and newlines stay.
    ``rich.markup.escape`` does not cover that; every string biasprobe prints goes through here.
    """
    s = str(text)
    if s.isprintable():  # the common case, checked in C: nothing to escape
        return s
    keep = _KEPT_LINES if keep_newlines else frozenset()
    return "".join(c if c.isprintable() else _shown_char(c, keep) for c in s)


def markup(text: object) -> str:
    """``text`` made safe for a rich table cell: control characters and rich markup escaped."""
    from rich.markup import escape

    return escape(safe_text(text))


def display_names(names: Iterable[str], width: int = 48) -> dict[str, str]:
    """Short, distinct labels for model names on the terminal: the shortest trailing part of
    each path (``/tmp/random-a`` → ``random-a``) that no other name shares, ``recorded:`` kept
    as a prefix, and at most ``width`` characters (cut in the middle with ``…``). Names that
    would still collide keep their full text."""
    names = list(dict.fromkeys(names))

    def parts(name: str) -> tuple[str, list[str]]:
        prefix = "recorded:" if name.startswith("recorded:") else ""
        body = name[len(prefix) :].replace("\\", "/").rstrip("/")
        return prefix, [p for p in body.split("/") if p not in ("", ".")] or [body or name]

    split = {n: parts(n) for n in names}

    def tail(name: str, k: int) -> str:
        prefix, p = split[name]
        return prefix + "/".join(p[-k:])

    out: dict[str, str] = {}
    for name in names:
        _, p = split[name]
        short = name
        for k in range(1, len(p) + 1):
            cand = tail(name, k)
            if all(tail(other, k) != cand for other in names if other != name):
                short = cand
                break
        if len(short) > width:
            head = (width - 1) // 2
            short = short[:head] + "…" + short[len(short) - (width - 1 - head) :]
        out[name] = short
    shown = list(out.values())
    for name in names:
        if shown.count(out[name]) > 1:
            out[name] = name
    return out
