"""The probe sets shipped with biasprobe, addressable by name.

The shipped sets are package data (``biasprobe/data/probes/``, which in a source checkout is
the repository's ``probes/`` folder), so a pip-installed biasprobe has them too. How a probe-set
argument of the command line (``biasprobe run ARG``, ``validate``, ``record``) is read:

1. ``builtin:NAME`` is always the shipped set NAME.
2. An existing path is that file: a local file always wins.
3. A bare NAME (no folder, no ``.yaml``/``.yml``) that is the name of a shipped set is that
   set, unless ``NAME.yaml`` or ``NAME.yml`` exists in the current folder too: then the
   argument is ambiguous and an error says how to choose (``./NAME.yaml`` or ``builtin:NAME``).
4. Anything else is a path that does not exist: an error, which names the shipped set of the
   same name when there is one (``probes/gender.yaml`` outside a checkout → ``gender``).

Imports only the standard library (and the probe loader in :func:`shipped_sets`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from biasprobe.errors import UsageError

__all__ = ["BUILTIN_PREFIX", "ShippedSet", "resolve_probe_file", "shipped_dir", "shipped_sets"]

#: Prefix that always names a shipped probe set (``builtin:gender``).
BUILTIN_PREFIX = "builtin:"
_SUFFIXES = (".yaml", ".yml")


def shipped_dir() -> Path:
    """The folder of the shipped probe sets (package data)."""
    return Path(__file__).resolve().parent / "data" / "probes"


def shipped_names() -> list[str]:
    """Names of the shipped probe sets (file names without ``.yaml``), sorted."""
    folder = shipped_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def _shipped_file(name: str) -> Path | None:
    for suffix in _SUFFIXES:
        path = shipped_dir() / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _unknown(name: str) -> UsageError:
    names = ", ".join(shipped_names()) or "none"
    return UsageError(
        f"{name!r} is not a shipped probe set (shipped: {names}; `biasprobe list` describes them)"
    )


def _is_bare(text: str) -> bool:
    return bool(text) and "/" not in text and os.sep not in text and not text.endswith(_SUFFIXES)


def resolve_probe_file(arg: str | Path) -> Path:
    """The file a probe-set argument stands for (see the module docstring for the rules).

    Raises:
        UsageError: an unknown ``builtin:`` name, a bare name that is both a shipped set and a
            file here, or a path that does not exist (exit 2).
    """
    text = str(arg)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :]
        path = _shipped_file(name) if _is_bare(name) else None
        if path is None:
            raise _unknown(name)
        return path
    given = Path(text)
    if given.exists():
        return given
    stem = given.name
    for suffix in _SUFFIXES:
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    shipped = _shipped_file(stem) if stem else None
    if _is_bare(text) and shipped is not None:
        local = [f"./{text}{s}" for s in _SUFFIXES if Path(f"{text}{s}").exists()]
        if local:
            raise UsageError(
                f"{text!r} is ambiguous: it is a shipped probe set and {local[0]} is a file "
                f"here; write {local[0]} for the file or {BUILTIN_PREFIX}{text} for the "
                "shipped set"
            )
        return shipped
    if shipped is not None:
        raise UsageError(
            f"{text}: file does not exist; the shipped probe set of that name runs as "
            f"`{stem}` (or {BUILTIN_PREFIX}{stem}; `biasprobe list` shows every shipped set)"
        )
    if _is_bare(text):
        raise UsageError(
            f"{text}: no such file and no shipped probe set of that name (`biasprobe list` "
            "shows the shipped sets)"
        )
    return given  # the loader says the file does not exist, with its path


@dataclass(frozen=True)
class ShippedSet:
    """One shipped probe set, as ``biasprobe list`` shows it."""

    name: str
    kind: str
    pairs: int
    templates: int
    what: str  # what it shows (the first sentence of its description)
    source: str  # where its words come from (the file's ``source``)
    path: Path


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    for stop in (": ", ". "):
        if stop in text:
            text = text.split(stop, 1)[0]
            break
    return text.rstrip(".")


def shipped_sets() -> list[ShippedSet]:
    """Every shipped probe set, loaded and counted (no model needed)."""
    from biasprobe.probes import load_probe_set

    out = []
    for name in shipped_names():
        path = _shipped_file(name)
        assert path is not None
        ps = load_probe_set(path)
        out.append(
            ShippedSet(
                name=name,
                kind=ps.kind,
                pairs=len(ps.items),
                templates=len({it.template_id for it in ps.items}),
                what=_first_sentence(ps.description or ""),
                source=" ".join((ps.source or "").split()),
                path=path,
            )
        )
    return out
