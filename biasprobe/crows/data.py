"""The CrowS-Pairs sentence pairs: loading the shipped CSV (or a user's copy) and filtering.

Each pair has a more-stereotypical sentence (``sent_more``) and a less-stereotypical one
(``sent_less``), a direction (``stereo``: the pair was written as a stereotype about a
historically disadvantaged group; ``antistereo``: as the violation of one — ``sent_more`` is
the more stereotypical sentence in both cases) and a bias type. See
``biasprobe/data/crows-pairs/NOTICE`` for source, licence and attribution.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from biasprobe.errors import UsageError

#: The bias types of CrowS-Pairs, in the order the paper lists them.
BIAS_TYPES = (
    "race-color",
    "gender",
    "socioeconomic",
    "nationality",
    "religion",
    "age",
    "sexual-orientation",
    "physical-appearance",
    "disability",
)
#: Accepted shorthands (bias-bench calls race-color "race").
ALIASES = {"race": "race-color", "color": "race-color", "sexual_orientation": "sexual-orientation"}
DIRECTIONS = ("stereo", "antistereo")
REQUIRED_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
SHIPPED_NAME = "crows_pairs_anonymized.csv"
_ID_COLUMNS = ("", "index", "id", "pair_id")


class CrowsDataError(UsageError):
    """The CrowS-Pairs file is missing, unreadable or malformed (exit code 2)."""


@dataclass(frozen=True)
class CrowsPair:
    """One CrowS-Pairs row."""

    pair_id: str  # the CSV's index column ("", index, id or pair_id), else the 0-based row number
    sent_more: str
    sent_less: str
    direction: str  # "stereo" or "antistereo"
    bias_type: str
    line: int  # line of the row in the file (1-based; the header is line 1)


def shipped_path() -> Path:
    """Path of the CSV shipped with biasprobe (package data)."""
    return Path(str(resources.files("biasprobe") / "data" / "crows-pairs" / SHIPPED_NAME))


def normalize_bias_types(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Canonical bias-type names (aliases resolved); None or empty means all.

    Raises:
        UsageError: an unknown bias type, with the list of valid ones.
    """
    if not names:
        return None
    out: list[str] = []
    for raw in names:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in BIAS_TYPES:
            raise UsageError(
                f"unknown CrowS-Pairs bias type {raw!r}; expected one of {', '.join(BIAS_TYPES)} "
                "(or race for race-color)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def load_pairs(
    path: str | Path | None = None,
    *,
    bias_types: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
) -> list[CrowsPair]:
    """Read CrowS-Pairs rows (the shipped copy when ``path`` is None).

    Args:
        path: a CSV with the columns of ``crows_pairs_anonymized.csv`` (at least sent_more,
            sent_less, stereo_antistereo, bias_type).
        bias_types: keep only these bias types (aliases such as ``race`` accepted).
        limit: keep the first ``limit`` rows after filtering.

    Raises:
        CrowsDataError: the file is missing, not UTF-8 CSV, lacks a column, or a row has an
            empty sentence, an unknown direction or bias type (message: ``file:line: ...``).
        UsageError: bad ``bias_types`` or ``limit``.
    """
    wanted = normalize_bias_types(bias_types)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    src = shipped_path() if path is None else Path(path)
    if not src.is_file():
        raise CrowsDataError(f"CrowS-Pairs file {src} does not exist or is not a file")
    pairs: list[CrowsPair] = []
    problems: list[str] = []
    try:
        with open(src, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            _check_unique_columns(header, src)
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise CrowsDataError(
                    f"{src}:1: missing column(s) {', '.join(missing)}; a CrowS-Pairs file has "
                    f"the columns {', '.join(REQUIRED_COLUMNS)} (and an index column)"
                )
            # The shipped file's first column is the unnamed index; accept a named one too.
            id_col = next((c for c in header if c.strip().lower() in _ID_COLUMNS), None)
            for row_no, row in enumerate(reader):
                line = reader.line_num
                pair = _parse_row(row, row_no, line, id_col, src, problems)
                if pair is None:
                    continue
                if wanted is None or pair.bias_type in wanted:
                    pairs.append(pair)
    except UnicodeDecodeError as e:
        raise CrowsDataError(f"{src} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise CrowsDataError(f"{src} is not a readable CSV file ({e})") from None
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CrowsDataError(
            f"invalid CrowS-Pairs file ({len(problems)} problem(s)):\n  "
            + "\n  ".join(shown)
            + more
        )
    ids = [p.pair_id for p in pairs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise CrowsDataError(f"{src}: pair id {dup!r} appears more than once")
    if not pairs:
        which = f" of bias type {', '.join(wanted)}" if wanted else ""
        raise CrowsDataError(f"{src} has no pairs{which}")
    return pairs[:limit] if limit is not None else pairs


def _check_unique_columns(header: list[str], src: Path) -> None:
    """A column biasprobe reads may be named once: with two, which one holds the data is a
    guess (Python's CSV reader silently takes the last)."""
    used = set(REQUIRED_COLUMNS)
    id_col = next((c for c in header if c.strip().lower() in _ID_COLUMNS), None)
    if id_col is not None:
        used.add(id_col)
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header, start=1):
        if name in used:
            positions.setdefault(name, []).append(i)
    twice = {name: at for name, at in positions.items() if len(at) > 1}
    if twice:
        said = "; ".join(
            f"{name or '(unnamed)'!r} is columns {', '.join(map(str, at))}"
            for name, at in twice.items()
        )
        raise CrowsDataError(
            f"{src}:1: a column is named more than once ({said}); a CrowS-Pairs file names "
            "each column once, so which one to read would be a guess"
        )


def _parse_row(
    row: dict[str | None, str | None],
    row_no: int,
    line: int,
    id_col: str | None,
    src: Path,
    problems: list[str],
) -> CrowsPair | None:
    where = f"{src}:{line}"
    if None in row:
        problems.append(f"{where}: more fields than the header has")
        return None
    values = {c: (row.get(c) or "").strip() for c in REQUIRED_COLUMNS}
    ok = True
    for col in ("sent_more", "sent_less"):
        if not values[col]:
            problems.append(f"{where}: {col} is empty")
            ok = False
    direction = values["stereo_antistereo"].lower()
    if direction not in DIRECTIONS:
        problems.append(
            f"{where}: stereo_antistereo is {values['stereo_antistereo']!r}; expected stereo "
            "or antistereo"
        )
        ok = False
    bias = values["bias_type"].lower()
    bias = ALIASES.get(bias, bias)  # the shorthands --bias-type accepts (race for race-color)
    if bias not in BIAS_TYPES:
        problems.append(
            f"{where}: bias_type is {values['bias_type']!r}; expected one of "
            f"{', '.join(BIAS_TYPES)} (or race for race-color)"
        )
        ok = False
    if ok and values["sent_more"] == values["sent_less"]:
        problems.append(f"{where}: sent_more and sent_less are the same sentence")
        ok = False
    if not ok:
        return None
    pair_id = (row.get(id_col) or "").strip() if id_col is not None else ""
    return CrowsPair(
        pair_id=pair_id or str(row_no),
        sent_more=values["sent_more"],
        sent_less=values["sent_less"],
        direction=direction,
        bias_type=bias,
        line=line,
    )
