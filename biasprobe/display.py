"""How objects present themselves, registered by the view layer (layer 0: imports nothing).

Domain types (:class:`~biasprobe.probes.ProbeSet`, :class:`~biasprobe.results.RunResult` …) keep
no presentation code: their ``__repr__`` and ``_repr_html_`` ask this registry, which
:mod:`biasprobe.notebook` fills when it is imported (the package imports it before handing out
``run``, ``load_run`` or ``pair``). Without a registered function a type shows its own short
plain repr, and no HTML (Jupyter then shows the text)::

    from biasprobe import display

    display.register_html("ProbeSet", probe_set_html)
    display.html_of(probe_set)      # the HTML, or None when nothing is registered
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "html_of",
    "register_html",
    "register_text",
    "register_view",
    "registered",
    "text_of",
    "view",
]

_HTML: dict[str, Callable[[Any], str]] = {}
_TEXT: dict[str, Callable[[Any], str]] = {}
_VIEWS: dict[str, Callable[..., Any]] = {}


def register_html(type_name: str, fn: Callable[[Any], str]) -> None:
    """Make ``fn(obj)`` the HTML of objects whose class (or a base class) is ``type_name``."""
    _HTML[type_name] = fn


def register_text(type_name: str, fn: Callable[[Any], str]) -> None:
    """Make ``fn(obj)`` the text repr of objects whose class (or a base class) is ``type_name``."""
    _TEXT[type_name] = fn


def _lookup(table: dict[str, Callable[[Any], str]], obj: Any) -> Callable[[Any], str] | None:
    for cls in type(obj).__mro__:
        fn = table.get(cls.__name__)
        if fn is not None:
            return fn
    return None


def html_of(obj: Any) -> str | None:
    """The registered HTML of ``obj``, or None when no view registered one for its type."""
    fn = _lookup(_HTML, obj)
    return None if fn is None else fn(obj)


def text_of(obj: Any) -> str | None:
    """The registered text repr of ``obj``, or None when no view registered one for its type."""
    fn = _lookup(_TEXT, obj)
    return None if fn is None else fn(obj)


def register_view(name: str, fn: Callable[..., Any]) -> None:
    """Register a named view (e.g. ``"RunResult.scatter"``: a figure of a result), so that a
    domain type's convenience method can call it without importing the view module."""
    _VIEWS[name] = fn


def view(name: str) -> Callable[..., Any]:
    """The view registered as ``name``.

    Raises:
        LookupError: nothing registered it (the message says which module provides it).
    """
    fn = _VIEWS.get(name)
    if fn is None:
        raise LookupError(
            f"{name} is drawn by biasprobe's notebook views, which are not loaded: "
            "import biasprobe.notebook (or biasprobe) first"
        )
    return fn


def registered() -> dict[str, tuple[str, ...]]:
    """The type names with a registered text repr and HTML, and the registered views."""
    return {
        "text": tuple(sorted(_TEXT)),
        "html": tuple(sorted(_HTML)),
        "views": tuple(sorted(_VIEWS)),
    }
