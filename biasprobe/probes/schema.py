"""Reading a probe file: safe YAML, the top-level schema, size limits and expansion.

Every problem found is collected with its ``file:line`` and raised together as one
:class:`~biasprobe.errors.ProbeSetError` (listing at most
:data:`~biasprobe.yamlschema.MAX_PROBLEMS`); no other exception escapes
:func:`load_probe_set`. Sizes are computed arithmetically and capped for the whole file before
any item is built.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from biasprobe.errors import ProbeSetError, Problem
from biasprobe.fsio import NotRegularFileError, read_regular_bytes
from biasprobe.probes.fields import Context, Entry, targets, text, text_at, text_list
from biasprobe.probes.lexicons import drop_echoes, load_lexicons
from biasprobe.probes.model import (
    COUNTERFACTUAL,
    FILL_MASK,
    KINDS,
    MAX_CHARS_PER_FILE,
    MAX_ITEMS_PER_FILE,
    MAX_ITEMS_PER_PAIR,
    PairSpec,
    ProbeItem,
    ProbeSet,
)
from biasprobe.probes.pairs import NAME_RE, load_pair
from biasprobe.probes.templates import (
    ExpansionError,
    Token,
    expand_pair,
    expansion_chars,
    expansion_size,
)
from biasprobe.yamlschema import (
    MAX_DEPTH,
    YAML_TAG,
    Problems,
    capped_error,
    check_nodes,
    compose,
    cut,
    describe,
    int_value,
    line,
    mapping,
    paused_gc,
    shown,
)

TOP_KEYS = (
    "name",
    "version",
    "description",
    "source",
    "kind",
    "orientation",
    "top_k",
    "models",
    "targets",
    "lexicons",
    "pairs",
)
TOP_REQUIRED = ("name", "version", "description", "source", "pairs")
ORIENTATION_KEYS = ("minoritized", "normative")
MAX_FILE_BYTES = 1_000_000
"""Largest probe file read. Validation is linear, but a file of a million YAML nodes still takes
seconds to compose and check; 1 MB holds thousands of written entries (larger sets are written
with lexicons, which expand up to :data:`MAX_ITEMS_PER_FILE` pairs from a few lines)."""
_HOLDS = "probe files hold only plain strings, numbers, lists and mappings"
_HOLDS_PY = "a probe set holds only strings, numbers, booleans, None, lists, tuples and dicts"
STRING_SOURCE = "<string>"
"""Pseudo-file name of a probe set given as a YAML string (:func:`probes_from_yaml`)."""
DICT_SOURCE = "<dict>"
"""Pseudo-file name of a probe set given as a dict (:func:`probes_from_dict`)."""
_TITLE = "invalid probe set"


def load_probe_set(path: str | Path | Mapping[str, Any]) -> ProbeSet:
    """Load, validate and expand a probe set: a YAML file, or a dict with the same content.

    Args:
        path: the YAML file, or a mapping holding what the file would (plain strings, numbers,
            booleans, ``None``, lists or tuples, and mappings; see :func:`probes_from_dict`).
            A path is kept as given (``str(path)``) in error messages, :attr:`ProbeSet.path`
            and every :attr:`ProbeItem.source`.

    Returns:
        The validated probe set with its pairs expanded into :attr:`ProbeSet.items`.

    Raises:
        ProbeSetError: the file is missing, unreadable, not valid YAML or does not follow the
            schema. It lists every problem found (the first 50, then how many more), each with
            ``file:line``. No other exception is raised for any file content.
    """
    if isinstance(path, Mapping):
        return probes_from_dict(path)
    if not isinstance(path, str | os.PathLike):
        found = type(path).__name__
        hint = " (for YAML text use probes_from_yaml)" if isinstance(path, bytes) else ""
        raise ProbeSetError(
            [Problem(f"<{found}>", None, f"expected a file path or a dict, found {found}{hint}")]
        )
    file = str(path)
    p = Path(path)
    try:
        if not p.exists():
            raise ProbeSetError([Problem(file, None, "file does not exist")])
        if p.is_dir():
            raise ProbeSetError([Problem(file, None, "is a directory, expected a YAML file")])
        # Only a regular file is read: a FIFO or a device would block or never end.
        data = read_regular_bytes(p, limit=MAX_FILE_BYTES, what="probe file")
    except NotRegularFileError as exc:
        raise ProbeSetError([Problem(file, None, _not_regular(exc, p))]) from None
    except (OSError, ValueError) as exc:
        raise ProbeSetError([Problem(file, None, f"cannot read the file: {exc}")]) from exc
    return _from_bytes(data, file)


def _not_regular(exc: NotRegularFileError, p: Path) -> str:
    """The problem of a path that is not a regular file or is over the size limit, in the words
    of the other problems (the path is already in front of the message)."""
    if "over the limit" in exc.message or "grew past" in exc.message:
        return (
            f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB, the limit for a probe file"
        )
    try:
        fifo = stat.S_ISFIFO(p.stat().st_mode)
    except OSError:
        fifo = False
    what = "a FIFO (named pipe)" if fifo else "not a regular file (a device or a socket)"
    return f"is {what}, expected a YAML file: it is not read, so nothing waits on it"


def probes_from_yaml(text: str, *, name: str = STRING_SOURCE) -> ProbeSet:
    """Load, validate and expand a probe set written as a YAML string (e.g. in a notebook).

    The text is checked exactly as a file is (see :func:`load_probe_set`); ``name`` stands in
    for the file name, so problems read ``<string>:3: ...`` with the line inside ``text``, and
    :attr:`ProbeSet.path` and every :attr:`ProbeItem.source` use it.

    Args:
        text: the YAML document.
        name: the pseudo-file name shown in messages and sources (default ``"<string>"``).

    Raises:
        ProbeSetError: ``text`` is not a string, not valid YAML or does not follow the schema.
    """
    if not isinstance(text, str):
        what = type(text).__name__
        hint = " (decode it first: data.decode('utf-8'))" if isinstance(text, bytes) else ""
        raise ProbeSetError(
            [Problem(name, None, f"expected YAML text (a str), found {what}{hint}")]
        )
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        message = (
            f"holds a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start + 1}"
        )
        raise ProbeSetError([Problem(name, None, message)]) from None
    return _from_bytes(data, name)


def probes_from_dict(data: Mapping[str, Any], *, name: str = DICT_SOURCE) -> ProbeSet:
    """Load, validate and expand a probe set given as a dict with the keys of a probe file.

    The dict is written as YAML (keys in their order) and checked exactly as a file is, so the
    same rules and messages apply. Problems name ``<dict>:LINE`` (the line of that YAML
    rendering) and quote the line they are on, so each can be found in the dict.

    Args:
        data: ``{"name": ..., "version": ..., "description": ..., "source": ..., "pairs":
            [{"id": ..., "template": ..., "groups": [...], ...}], ...}``.
        name: the pseudo-file name shown in messages and sources (default ``"<dict>"``).

    Raises:
        ProbeSetError: ``data`` holds a value YAML cannot hold, or does not follow the schema.
    """
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        found = type(data).__name__
        raise ProbeSetError([Problem(name, None, f"expected a dict (mapping), found {found}")])
    plain = _plain(data, "data", problems, name, 0, set())
    if problems:
        raise capped_error(ProbeSetError, problems, _TITLE)
    text = yaml.safe_dump(
        plain, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10**6
    )
    return _from_bytes(text.encode("utf-8"), name, quote=text.splitlines())


def _plain(
    value: Any, where: str, problems: list[Problem], name: str, depth: int, open_ids: set[int]
) -> Any:
    """``value`` with tuples as lists; anything YAML cannot hold is reported at its path,
    written as Python subscripts (``data['pairs'][0]['groups']``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            message = f"{where}: holds a lone surrogate U+{ord(value[exc.start]):04X}"
            problems.append(Problem(name, None, message))
        return value
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth > MAX_DEPTH:
        problems.append(Problem(name, None, f"{where}: nested more than {MAX_DEPTH} levels deep"))
        return None
    if id(value) in open_ids:
        problems.append(Problem(name, None, f"{where}: a value may not contain itself"))
        return None
    if isinstance(value, Mapping):
        open_ids.add(id(value))
        out = {}
        for key, child in value.items():
            if not isinstance(key, str | int | float | bool):
                problems.append(
                    Problem(name, None, f"{where}: keys are strings, found {type(key).__name__}")
                )
                continue
            out[key] = _plain(child, f"{where}[{key!r}]", problems, name, depth + 1, open_ids)
        open_ids.discard(id(value))
        return out
    if isinstance(value, list | tuple):
        open_ids.add(id(value))
        out_list = [
            _plain(child, f"{where}[{i}]", problems, name, depth + 1, open_ids)
            for i, child in enumerate(value)
        ]
        open_ids.discard(id(value))
        return out_list
    problems.append(
        Problem(
            name,
            None,
            f"{where}: cannot hold a value of type {type(value).__name__} ({shown(value)}); "
            f"{_HOLDS_PY}",
        )
    )
    return None


def _from_bytes(data: bytes, file: str, *, quote: list[str] | None = None) -> ProbeSet:
    """Validate and expand the bytes of a probe file (or of a YAML string) named ``file``.

    With ``quote`` (the lines of the text), each problem quotes the line it is on: the text
    was written by biasprobe from a dict, so the user has never seen its line numbers.
    """
    if len(data) > MAX_FILE_BYTES:
        message = (
            f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB, the limit for a probe file"
        )
        raise ProbeSetError([Problem(file, None, message)])
    try:
        source_text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"expected UTF-8 text, found an invalid byte at offset {exc.start}"
        raise ProbeSetError([Problem(file, None, message)]) from exc
    problems = Problems(file)
    with paused_gc():  # a big file builds many objects at once, none of them garbage
        probe_set = _load(Context(problems), source_text, hashlib.sha256(data).hexdigest())
    if probe_set is None or problems:
        if quote is not None:
            problems.items = [_quoted(p, quote) for p in problems.items]
        raise problems.error(ProbeSetError, _TITLE)
    return probe_set


def _quoted(problem: Problem, lines: list[str]) -> Problem:
    if problem.line is None or not 0 < problem.line <= len(lines):
        return problem
    at = cut(lines[problem.line - 1].strip())
    return Problem(problem.file, problem.line, f"{problem.message} [at: {at}]")


def _load(ctx: Context, source_text: str, sha256: str) -> ProbeSet | None:
    root = compose(source_text, ctx.problems)
    if root is None:
        if not ctx.problems:
            ctx.error(
                None,
                "the file is empty: expected a mapping with keys " + ", ".join(TOP_REQUIRED),
            )
        return None
    check_nodes(root, ctx.problems, _HOLDS)
    top = mapping(root, ctx.problems, TOP_KEYS, TOP_REQUIRED, "the probe file")
    if top is None:
        return None
    name = text_at(ctx, top, "name")
    if name is not None and not NAME_RE.fullmatch(name):
        ctx.error(
            top["name"][1],
            f"name: expected lower-case letters, digits, '-' or '_', found {shown(name)}",
        )
    ctx.kind = _kind(ctx, top.get("kind"))
    version = _version(ctx, top.get("version"))
    description = text_at(ctx, top, "description")
    source = text_at(ctx, top, "source")
    orientation = _orientation(ctx, top.get("orientation"))
    top_k = _top_k(ctx, top.get("top_k"))
    models = _models(ctx, top.get("models"))
    invalid_lexicons = load_lexicons(ctx, top.get("lexicons"))
    default_targets = _default_targets(ctx, top.get("targets"))
    specs, items = _pairs(ctx, top.get("pairs"), orientation, default_targets)
    drop_echoes(ctx.problems, invalid_lexicons)
    if ctx.problems:
        return None
    assert name is not None and description is not None and source is not None
    assert version is not None
    return ProbeSet(
        name=name,
        description=description,
        version=version,
        source=source,
        path=ctx.problems.file,
        sha256=sha256,
        top_k=top_k,
        models=models,
        pairs=tuple(specs),
        items=tuple(items),
        orientation=orientation,
        kind=ctx.kind,
    )


# --------------------------------------------------------------------------------------------
# Top-level fields


def _kind(ctx: Context, entry: Entry | None) -> str:
    if entry is None:
        return FILL_MASK
    value = text(ctx, entry[1], "kind")
    if value is not None and value not in KINDS:
        ctx.error(
            entry[1],
            f"kind: expected {' or '.join(repr(k) for k in KINDS)}, found {shown(value)}"
            f"{ctx.problems.suggest(value, KINDS)}",
        )
    return value if value in KINDS else FILL_MASK


def _version(ctx: Context, entry: Entry | None) -> int | str | None:
    if entry is None:
        return None
    node = entry[1]
    if isinstance(node, yaml.ScalarNode) and node.tag == YAML_TAG + "int":
        return int_value(node, ctx.problems, "version")
    if isinstance(node, yaml.ScalarNode) and node.tag == YAML_TAG + "bool":
        ctx.error(node, f"version: expected an integer or a string, found {describe(node)}")
        return None
    return text(ctx, node, "version")


def _top_k(ctx: Context, entry: Entry | None) -> int | None:
    if entry is None:
        return None
    node = entry[1]
    if isinstance(node, yaml.ScalarNode) and node.tag == YAML_TAG + "int":
        value = int_value(node, ctx.problems, "top_k")
        if value is None or value >= 1:
            return value
    ctx.error(node, f"top_k: expected a positive integer, found {describe(node)}")
    return None


def _models(ctx: Context, entry: Entry | None) -> tuple[str, ...]:
    if entry is None:
        return ()
    words = text_list(ctx, entry[1], "models")
    return tuple(w for w, _ in words) if words else ()


def _default_targets(ctx: Context, entry: Entry | None) -> tuple[str, ...]:
    if entry is None:
        return ()
    if ctx.kind == COUNTERFACTUAL:
        ctx.error(
            entry[0],
            "targets: a counterfactual set has no mask, so there is nothing to score targets "
            "at; remove 'targets'",
        )
        return ()
    return targets(ctx, entry[1], "targets") or ()


def _orientation(ctx: Context, entry: Entry | None) -> tuple[str, str] | None:
    if entry is None:
        return None
    before = len(ctx.problems)
    found = _orientation_labels(ctx, entry)
    if found is None and len(ctx.problems) > before:
        # reported once here; the pairs then do not each say "no orientation"
        ctx.problems.broken.add("orientation")
    return found


def _orientation_labels(ctx: Context, entry: Entry) -> tuple[str, str] | None:
    node = entry[1]
    m = mapping(node, ctx.problems, ORIENTATION_KEYS, ORIENTATION_KEYS, "orientation", entry[0])
    if m is None:
        return None
    minoritized = text_at(ctx, m, "minoritized")
    normative = text_at(ctx, m, "normative")
    if minoritized is None or normative is None:
        return None
    if minoritized == normative:
        ctx.error(
            node,
            f"orientation: minoritized and normative must be different labels, "
            f"found {shown(minoritized)} for both",
        )
        return None
    return minoritized, normative


# --------------------------------------------------------------------------------------------
# Pairs: validate every entry, size the file, then expand


def _pairs(
    ctx: Context,
    entry: Entry | None,
    orientation: tuple[str, str] | None,
    default_targets: tuple[str, ...],
) -> tuple[list[PairSpec], list[ProbeItem]]:
    if entry is None:
        return [], []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, f"pairs: expected a list of pair entries, found {describe(node)}")
        return [], []
    if not node.value:
        ctx.error(node, "pairs: expected at least one pair entry, found an empty list")
        return [], []
    ids: dict[str, int] = {}
    valid: list[tuple[PairSpec, list[Token], yaml.Node]] = []
    for index, pair_node in enumerate(node.value, start=1):
        loaded = load_pair(ctx, pair_node, index, orientation, default_targets, ids)
        if loaded is not None:
            valid.append((*loaded, pair_node))
    if ctx.problems or not _sizes_ok(ctx, valid, entry[0]):
        return [spec for spec, _, _ in valid], []
    return [spec for spec, _, _ in valid], _expand_all(ctx, valid)


def _sizes_ok(
    ctx: Context, valid: list[tuple[PairSpec, list[Token], yaml.Node]], pairs_key: yaml.Node
) -> bool:
    """Refuses entries and files that would expand into too many items, or into sentences
    holding too many characters, before building any."""
    total = chars = 0
    ok = True
    for spec, tokens, pair_node in valid:
        size = expansion_size(spec, tokens, ctx.lexicons)
        if size > MAX_ITEMS_PER_PAIR:
            ctx.error(
                pair_node,
                f"pair {shown(spec.id)}: expands into {_count(size)} pairs, more than the limit "
                f"of {MAX_ITEMS_PER_PAIR} per entry",
            )
            ok = False
            continue
        total += size
        size_chars = expansion_chars(spec, tokens, ctx.lexicons)
        if size_chars > MAX_CHARS_PER_FILE:
            ctx.error(
                pair_node,
                f"pair {shown(spec.id)}: its {size:,} pairs' sentences would hold "
                f"{size_chars:,} characters, more than the limit of "
                f"{MAX_CHARS_PER_FILE:,} per file (shorten the words or templates, or split "
                "the entry)",
            )
            ok = False
            continue
        chars += size_chars
    if ok and total > MAX_ITEMS_PER_FILE:
        ctx.error(
            pairs_key,
            f"pairs: the file expands into {total} pairs, more than the limit of "
            f"{MAX_ITEMS_PER_FILE} per file",
        )
        ok = False
    if ok and chars > MAX_CHARS_PER_FILE:
        ctx.error(
            pairs_key,
            f"pairs: the sentences the file expands into would hold {chars:,} characters, more "
            f"than the limit of {MAX_CHARS_PER_FILE:,} per file (split the file, or shorten "
            "its words or templates)",
        )
        ok = False
    return ok


def _count(n: int) -> str:
    """``n`` in digits, or a huge one by its order of magnitude (Python refuses to print an
    integer of more than 4,300 digits, and nobody reads one of 30)."""
    if n < 10**30:
        return str(n)
    return f"about 10^{int(n.bit_length() * math.log10(2))}"


def _expand_all(
    ctx: Context, valid: list[tuple[PairSpec, list[Token], yaml.Node]]
) -> list[ProbeItem]:
    items: list[ProbeItem] = []
    expanded_ids: dict[str, int] = {}
    for spec, tokens, pair_node in valid:
        try:
            expanded = list(expand_pair(spec, tokens, ctx.lexicons))
        except ExpansionError as exc:
            template_node = next(v for k, v in pair_node.value if k.value == "template")
            ctx.error(template_node, f"pair {shown(spec.id)}: {exc}")
            continue
        for item in expanded:
            first = expanded_ids.get(item.pair_id)
            if first is not None:
                ctx.error(
                    pair_node,
                    f"pair {shown(spec.id)}: expanded pair id {shown(item.pair_id)} is not unique "
                    f"(also produced by the entry at line {first})",
                )
                continue
            expanded_ids[item.pair_id] = line(pair_node)
            items.append(item)
    return items
