"""The one place where the reports turn text into HTML.

Every renderer builds its markup through these functions: :func:`escape` turns any value into
HTML text, :func:`html` fills a literal template whose placeholders are always escaped, and
:class:`Markup` marks what is already HTML (the output of these functions), so that it is not
escaped twice. Text from probe files, run folders and model metadata (model names and paths,
tokens, group labels, sentences, ids) therefore never reaches a page unescaped by accident: a
value only skips escaping by being :class:`Markup`, which the renderers make only from these
functions' output and from their own fixed markup (a stylesheet, a constant note).
``tests/test_report_security.py`` checks the renderers' sources for HTML built by an f-string
or ``+`` from anything but these functions and a few reviewed helpers.

Data embedded in ``<script>`` elements goes through :func:`script_json`.
"""

from __future__ import annotations

import html as _html
import json
import math
import string
from collections.abc import Iterable
from typing import Any

__all__ = ["Markup", "escape", "html", "join", "script_json"]


class Markup(str):
    """A string that is HTML already (made by :func:`escape`, :func:`html` or :func:`join`)."""

    __slots__ = ()

    def __html__(self) -> Markup:
        return self


def escape(value: Any) -> Markup:
    """``value`` as HTML text: ``& < > " '`` escaped; :class:`Markup` is returned unchanged."""
    if isinstance(value, Markup):
        return value
    return Markup(_html.escape("" if value is None else str(value), quote=True))


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Markup) and not format_spec:
            return value
        return escape(format(value, format_spec))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is None:
            return value
        return escape(super().convert_field(value, conversion))


_FORMATTER = _Escaping()


def html(template: str, /, *args: Any, **kwargs: Any) -> Markup:
    """Fill the HTML ``template`` (``str.format`` syntax) with escaped values.

    ``template`` itself is trusted markup (a literal in the code); each value is escaped
    unless it is :class:`Markup`. A format spec applies before escaping (``{:.3f}``).
    """
    return Markup(_FORMATTER.vformat(template, args, kwargs))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    """Join ``parts`` (each escaped unless :class:`Markup`) with the literal markup ``sep``."""
    return Markup(sep.join(escape(p) for p in parts))


def _clean(x: Any) -> Any:
    import numpy as np

    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


_SCRIPT_SWAP = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def script_json(payload: Any) -> Markup:
    """``payload`` as JSON safe inside a ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as ``\\u`` escapes, so no ``</script>`` or ``<!--`` in a
    string can end or confuse the element, and U+2028/U+2029 likewise; NaN and infinities
    become ``null``.
    """
    text = json.dumps(_clean(payload), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, safe in _SCRIPT_SWAP:
        text = text.replace(raw, safe)
    return Markup(text)
