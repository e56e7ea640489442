"""A persistent result cache: what a model computed for a request, kept across runs.

One SQLite database (standard library, WAL journal) in the cache folder: ``--cache DIR``, else
the ``BIASPROBE_CACHE_DIR`` environment variable, else ``$XDG_CACHE_HOME/biasprobe`` (by
default ``~/.cache/biasprobe``). Entries are keyed by

* **the model's identity** (:func:`model_identity`, in :mod:`biasprobe.cache.identity`): the
  resolved hub commit or the sha256 of the weight files, the sha256 of ``config.json`` and of
  the tokenizer files, the model class, dtype and device kind, and the torch / transformers
  versions — a changed checkpoint never hits an old entry;
* **the exact request**: its kind (:data:`KINDS`: ``mask``, ``chain``, ``prior``, ``token``,
  ``pair``, ``label``, ``sentence``) and what the model was given (the sentence in the model's mask token, the target's pieces, the prior's
  arguments; for a pair, both sentences and every setting its scores depend on), hashed
  (sha256) into the key.

Values are stored with a format tag: ``f32`` (a full-vocabulary float32 log-prob vector, raw
little-endian bytes), ``f64`` (one float64 scalar) and ``rec1`` (a pair's reduced record: its
scores, top-k lists, target log-probs and what the run folder stores of it, as a JSON header
followed by little-endian arrays; never pickle). A finished pair is kept as its record (about
10 KB); the full vectors of its sentences are kept only until every pair of the run that uses
them has its record (:meth:`ResultCache.put` drops them in the same transaction).

**Integrity.** Every entry carries a digest (BLAKE2b, 128 bits) of its model, kind, key, format
and value bytes, written in the same row and checked whenever the entry is read. An entry whose
digest does not match (a changed byte, flipped bits in a stored array, a row copied under
another key), or whose value cannot be decoded, is never served: it counts as *damaged*, is
computed again exactly as if it had never been stored (so the numbers equal a ``--no-cache``
run's) and replaced, and the run reports it (``models[i].info.cache.damaged`` in
``results.json`` and a warning on the cache line of ``biasprobe run``). Damage SQLite itself
detects (a truncated or overwritten database file) stops the run with an error naming the
file and the fix: ``biasprobe cache clear --cache DIR`` (which removes a damaged database when
its header still says it is biasprobe's; a file it cannot prove is biasprobe's is never
removed), or ``--no-cache``.

**Schema versions.** Version 2 added the digests. A version 1 cache is upgraded in place when
first opened: its entries (which carry no digest) are treated as absent, computed again and
replaced, so older entries are never served unchecked.

Two biasprobe processes may share one cache: every write is one short ``BEGIN IMMEDIATE`` …
``COMMIT`` transaction, readers never block writers (WAL), and a busy database is waited for
(:data:`BUSY_TIMEOUT_S`). A process killed at any point (SIGKILL included) leaves every committed
batch readable and nothing half-written (SQLite's atomic commit).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biasprobe.cache.identity import (  # noqa: F401 - re-exported: biasprobe.cache is the API
    CLASSIFIER_KINDS,
    CONFIG_FILES,
    TOKENIZER_FILES,
    cache_dirs,
    cache_line,
    format_bytes,
    model_identity,
)
from biasprobe.errors import UsageError

ENV_VAR = "BIASPROBE_CACHE_DIR"
#: The database file; SQLite adds ``-wal`` and ``-shm`` next to it while it is open.
DB_NAME = "biasprobe-cache.sqlite3"
DB_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal")
#: SQLite ``application_id`` stamped into the database header ("BPRC"): a file of that name
#: without it is not biasprobe's and is never used or removed.
APPLICATION_ID = 0x42505243
SCHEMA_VERSION = 2
#: Schema versions opened and upgraded in place (their entries carry no digest: never served).
UPGRADABLE = (1,)
#: Seconds a write waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 120.0

#: Request kinds: a masked LM's vector at the mask (``mask``), chain-rule, prior and token
#: log-probs (``chain``, ``prior``, ``token``: one float64 each), a fill-mask pair's record
#: (``pair``), a classifier's label probabilities (``label``: a record of one float64 array) and
#: a sentence scorer's log-likelihood of a sentence (``sentence``: a record of its tokens).
KINDS = ("mask", "chain", "prior", "pair", "token", "label", "sentence")
#: Value formats: raw little-endian float32 vector / one little-endian float64 / a record
#: (:func:`encode_record`).
F32, F64, REC = "f32", "f64", "rec1"
#: dtypes a record's arrays may have (anything else is refused when reading).
RECORD_DTYPES = ("<f4", "<f8", "<i4", "<i8")


class CacheError(UsageError):
    """The cache folder or database cannot be used (names the path and what to do)."""


class CacheDamagedError(CacheError):
    """The cache database file is damaged (SQLite says so, or its own records are inconsistent)."""


def _damaged(path: Path, why: object) -> CacheDamagedError:
    folder = path.parent
    return CacheDamagedError(
        f"the cache database {path} is damaged ({why}). Remove it with: biasprobe cache clear "
        f"--cache {folder} (the next run builds a new one), or run with --no-cache"
    )


def _is_damage(e: sqlite3.Error) -> bool:
    """Whether an SQLite error says the database file itself is damaged."""
    text = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    )


def entry_digest(model_id: int, kind: str, key: bytes, fmt: str, value: bytes) -> bytes:
    """The integrity digest of one entry (BLAKE2b, 16 bytes) over everything the row holds."""
    h = hashlib.blake2b(digest_size=16, person=b"biasprobe-cache")
    h.update(f"{int(model_id)}\0{kind}\0{fmt}\0{len(key)}\0".encode())
    h.update(key)
    h.update(value)
    return h.digest()


def default_cache_dir() -> Path:
    """``$BIASPROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/biasprobe``, else
    ``~/.cache/biasprobe``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "biasprobe"


def resolve_cache_dir(folder: str | Path | None) -> Path:
    """The cache folder a run uses: ``folder`` if given, else :func:`default_cache_dir`."""
    return Path(folder).expanduser() if folder is not None else default_cache_dir()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def digest(obj: Any) -> bytes:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no spaces): the key of any request."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).digest()


#: The old private name of :func:`digest` (``biasprobe.runner`` imports it until it switches).
_digest = digest


def request_key(kind: str, request: Any) -> bytes:
    """sha256 of the request's kind and content (JSON, so that ``["a", [1, 2]]`` and a tuple of
    the same values give one key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    return digest([kind, request])


def encode_vector(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def encode_record(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """A record: 4 bytes (little-endian length of the JSON header), the header (``header``
    plus the arrays' names, dtypes and lengths; floats written as Python's shortest repr, so
    they read back bit for bit; NaN as ``NaN``), then each 1-d array's raw bytes."""
    layout, parts = [], []
    for name, values in arrays.items():
        values = np.ascontiguousarray(values)
        dtype = values.dtype.newbyteorder("<").str
        if dtype not in RECORD_DTYPES or values.ndim != 1:
            raise ValueError(f"record array {name!r}: 1-d {RECORD_DTYPES} only, got {dtype}")
        layout.append([name, dtype, int(values.size)])
        parts.append(values.astype(dtype, copy=False).tobytes())
    text = json.dumps({"h": header, "a": layout}, ensure_ascii=False, default=_plain)
    head = text.encode("utf-8")
    return len(head).to_bytes(4, "little") + head + b"".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a cache record")


def decode_record(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` of :func:`encode_record`.

    Raises:
        ValueError: the bytes are not a well-formed record.
    """
    try:
        size = int.from_bytes(blob[:4], "little")
        if len(blob) < 4 or 4 + size > len(blob):
            raise ValueError("record header runs past its end")
        meta = json.loads(bytes(blob[4 : 4 + size]).decode("utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("h"), dict):
            raise ValueError("record header is not an object")
        arrays, at = {}, 4 + size
        for name, dtype, n in meta["a"]:
            if dtype not in RECORD_DTYPES or int(n) < 0:
                raise ValueError(f"record array {name!r} has dtype {dtype!r}")
            width = np.dtype(dtype).itemsize * int(n)
            if at + width > len(blob):
                raise ValueError(f"record array {name!r} runs past the record's end")
            arrays[str(name)] = np.frombuffer(blob, dtype=dtype, count=int(n), offset=at)
            at += width
    except (KeyError, TypeError, IndexError, UnicodeDecodeError, OverflowError) as e:
        raise ValueError(f"malformed record ({type(e).__name__})") from None
    if at != len(blob):
        raise ValueError("record length does not match its header")
    return meta["h"], arrays


def decode(fmt: str, blob: bytes) -> Any:
    """The value of an entry stored in format ``fmt``.

    Raises:
        ValueError: an unknown format, or bytes that do not fit it.
    """
    if fmt == F32:
        if len(blob) % 4:
            raise ValueError("float32 vector of a length not a multiple of 4")
        return np.frombuffer(blob, dtype="<f4")
    if fmt == F64:
        if len(blob) != 8:
            raise ValueError("float64 scalar not 8 bytes long")
        return float(np.frombuffer(blob, dtype="<f8")[0])
    if fmt == REC:
        return decode_record(blob)
    raise ValueError(f"unknown cache value format {fmt!r}")


def encode_scalar(value: float) -> bytes:
    return np.asarray([value], dtype="<f8").tobytes()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    identity BLOB NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created TEXT NOT NULL,
    last_used TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    model INTEGER NOT NULL REFERENCES models(id),
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    format TEXT NOT NULL,
    value BLOB NOT NULL,
    digest BLOB,
    PRIMARY KEY (model, kind, key)
) WITHOUT ROWID;
"""

#: Where the SQLite header keeps the ``application_id`` (4 bytes, big-endian).
_APP_ID_OFFSET = 68


def _is_ours(path: Path) -> bool | None:
    """True: a biasprobe cache; False: some other file; None: empty (a fresh database).

    The ``application_id`` in the file's header is read first: it says the file is biasprobe's
    even when the rest is damaged or truncated, or the folder is read-only. A header without
    it is asked of SQLite (read-only): in WAL mode the header on disk may not show the latest
    commits yet, which are in the ``-wal`` file.
    """
    import stat

    try:  # O_NONBLOCK + fstat: a FIFO put there is refused, never waited on
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CacheError(
                    f"cache database {path} is not a regular file; biasprobe leaves it alone"
                )
            header = os.read(fd, 100)
        finally:
            os.close(fd)
    except OSError as e:
        raise CacheError(f"cache database {path} cannot be read ({e.strerror})") from None
    if not header:
        return None
    if header[:16] != b"SQLite format 3\x00":
        return False
    at = _APP_ID_OFFSET
    if len(header) >= at + 4 and int.from_bytes(header[at : at + 4], "big") == APPLICATION_ID:
        return True
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    if app == APPLICATION_ID:
        return True
    return None if app == 0 and tables == 0 else False


class ResultCache:
    """The cache database of one folder (created on first use).

    Raises:
        CacheError: the folder cannot be created or written, or its database file is not
            biasprobe's (then it is left alone).
    """

    def __init__(self, folder: str | Path, *, readonly: bool = False) -> None:
        self.folder = Path(folder).expanduser()
        self.path = self.folder / DB_NAME
        self.readonly = readonly
        try:
            if not readonly:
                self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"cache folder {self.folder} cannot be created ({e.strerror}); choose another "
                f"with --cache DIR or {ENV_VAR}, or run with --no-cache"
            ) from None
        if not self.folder.is_dir():
            raise CacheError(f"cache folder {self.folder} is not a folder")
        if self.path.exists() and _is_ours(self.path) is False:
            raise CacheError(
                f"{self.path} exists and is not a biasprobe cache database; biasprobe leaves it "
                "alone. Choose another cache folder with --cache DIR, or run with --no-cache"
            )
        if not readonly and not os.access(self.folder, os.W_OK | os.X_OK):
            raise CacheError(
                f"cache folder {self.folder} is read-only: biasprobe cannot keep its cache there "
                f"(SQLite writes a journal beside the database). Choose a writable folder with "
                f"--cache DIR or {ENV_VAR}, or run with --no-cache"
            )
        #: entries found damaged by this connection, per ``(model id, kind)``
        self.damaged: dict[tuple[int, str], int] = {}
        try:
            if readonly:
                self._conn = self._connect_readonly()
                self._check_schema()
            else:
                self._conn = sqlite3.connect(
                    str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
                self._setup()
        except sqlite3.Error as e:
            if _is_damage(e):
                raise _damaged(self.path, e) from None
            raise CacheError(
                f"cache database {self.path} cannot be opened ({e}); choose another cache folder "
                "with --cache DIR, or run with --no-cache"
            ) from None

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection (``cache info``): also in a folder biasprobe cannot write,
        where SQLite cannot create the WAL index, by opening the file as immutable."""
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            if _is_damage(e) or os.access(self.folder, os.W_OK):
                raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=BUSY_TIMEOUT_S)

    def _schema_version(self, row: Any) -> int:
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise _damaged(self.path, f"its schema version is {row[0]!r}, not a number") from None

    def _check_schema(self) -> None:
        app = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if app != APPLICATION_ID:
            raise CacheError(f"{self.path} is not a biasprobe cache database")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = self._schema_version(row) if row is not None else None
        if version is not None and version != SCHEMA_VERSION and version not in UPGRADABLE:
            raise self._wrong_version(row[0])

    def _wrong_version(self, found: Any) -> CacheError:
        return CacheError(
            f"cache database {self.path} has schema version {found}, this biasprobe "
            f"reads version {SCHEMA_VERSION}: clear it (biasprobe cache clear --cache "
            f"{self.folder}) or choose another folder"
        )

    def _setup(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"WAL journal not available (got {mode})")
        # WAL + NORMAL: a committed transaction survives the process being killed (only a power
        # loss may drop the last commits, which a cache can afford).
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute("BEGIN IMMEDIATE")
        try:
            app = c.execute("PRAGMA application_id").fetchone()[0]
            tables = c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app != APPLICATION_ID and tables:
                raise CacheError(
                    f"{self.path} is an SQLite database that biasprobe did not create; biasprobe "
                    "leaves it alone. Choose another cache folder with --cache DIR"
                )
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                c.execute(statement)
            row = c.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            created = row is None
            if created:
                c.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            else:
                version = self._schema_version(row)
                if version in UPGRADABLE:
                    # version 1 entries have no digest: kept, but never served (see the module)
                    columns = [r[1] for r in c.execute("PRAGMA table_info(entries)")]
                    if "digest" not in columns:
                        c.execute("ALTER TABLE entries ADD COLUMN digest BLOB")
                    c.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),)
                    )
                elif version != SCHEMA_VERSION:
                    raise self._wrong_version(row[0])
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        if created:  # the header on disk says "biasprobe" from now on (see _is_ours)
            c.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- models -------------------------------------------------------------------------------
    def model(self, identity: Mapping[str, Any], name: str) -> ModelStore:
        """The entries of one model identity (registered on first use). ``name`` (what the
        user called the model) is shown by ``biasprobe cache info`` but is not part of the
        identity: the same files under another path are the same model."""
        key = digest(dict(identity))
        description = json.dumps({**identity, "name": name}, sort_keys=True, ensure_ascii=False)
        now = _now()
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT INTO models (identity, description, created, last_used) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(identity) DO UPDATE SET last_used = ?, "
                "description = ?",
                (key, description, now, now, now, description),
            )
            model_id = c.execute("SELECT id FROM models WHERE identity = ?", (key,)).fetchone()
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return ModelStore(self, int(model_id[0]), key.hex())

    def get(self, model_id: int, kind: str, keys: Sequence[bytes]) -> dict[bytes, Any]:
        """The stored values of those keys that are in the cache and intact (see the module:
        a damaged entry is left out, as if it were not stored, and counted in
        :attr:`damaged`)."""
        rows = self._select("key, format, value, digest", model_id, kind, keys)
        out: dict[bytes, Any] = {}
        for key, fmt, blob, check in rows:
            key, blob = bytes(key), bytes(blob)
            value = self._verified(model_id, kind, key, fmt, blob, check)
            if value is not None:
                out[key] = value
        return out

    def present(self, model_id: int, kind: str, keys: Sequence[bytes]) -> set[bytes]:
        """Those of ``keys`` that are stored and intact (each value is read and checked, so
        that a damaged entry is computed again rather than served)."""
        return set(self.get(model_id, kind, keys))

    def _verified(
        self, model_id: int, kind: str, key: bytes, fmt: str, blob: bytes, digest: Any
    ) -> Any:
        """The decoded value of an entry, or None when it carries no digest (written before
        schema version 2) or is damaged (counted)."""
        if digest is None:
            return None
        if not isinstance(fmt, str) or bytes(digest) != entry_digest(
            model_id, kind, key, fmt, blob
        ):
            value = None
        else:
            try:
                value = decode(fmt, blob)
            except ValueError:
                value = None
        if value is None:
            self.damaged[(model_id, kind)] = self.damaged.get((model_id, kind), 0) + 1
        return value

    def _select(self, columns: str, model_id: int, kind: str, keys: Sequence[bytes]) -> list:
        """``columns`` of the entries of those keys that are stored, 500 keys a query (well
        below SQLite's limit on bound parameters)."""
        rows: list = []
        step = 500
        try:
            for start in range(0, len(keys), step):
                part = list(keys[start : start + step])
                marks = ",".join("?" * len(part))
                rows += self._conn.execute(
                    f"SELECT {columns} FROM entries WHERE model = ? AND kind = ? "
                    f"AND key IN ({marks})",
                    (model_id, kind, *part),
                ).fetchall()
        except sqlite3.Error as e:
            raise self._failed("read from", e) from None
        return rows

    def _failed(self, what: str, e: sqlite3.Error) -> CacheError:
        if _is_damage(e):
            return _damaged(self.path, e)
        return CacheError(
            f"cannot {what} the cache database {self.path} ({e}); what was committed is kept. "
            "Free disk space or wait for the other biasprobe process, or run with --no-cache"
        )

    def put(
        self,
        model_id: int,
        kind: str,
        rows: Iterable[tuple[bytes, str, bytes]],
        *,
        drop: tuple[str, Sequence[bytes]] | None = None,
    ) -> None:
        """Store ``(key, format, value)`` rows in one transaction (replacing older values); the
        entries ``drop = (kind, keys)`` are removed in the same transaction."""
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._failed("write to", e) from None
        try:
            c.executemany(
                "INSERT OR REPLACE INTO entries (model, kind, key, format, value, digest) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (model_id, kind, k, fmt, v, entry_digest(model_id, kind, k, fmt, v))
                    for k, fmt, v in rows
                ],
            )
            if drop is not None:
                c.executemany(
                    "DELETE FROM entries WHERE model = ? AND kind = ? AND key = ?",
                    [(model_id, drop[0], k) for k in drop[1]],
                )
            c.execute("COMMIT")
        except BaseException as e:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise self._failed("write to", e) from None
            raise

    # -- inspection ---------------------------------------------------------------------------
    def summary(self) -> list[dict[str, Any]]:
        """Per model identity: its description, entries per kind and stored bytes.

        Raises:
            CacheDamagedError: SQLite finds the database damaged.
        """
        try:
            models = self._conn.execute(
                "SELECT id, identity, description, created, last_used FROM models ORDER BY id"
            ).fetchall()
            counts: dict[int, dict[str, tuple[int, int]]] = {}
            for model_id, kind, n, size in self._conn.execute(
                "SELECT model, kind, count(*), sum(length(value)) FROM entries GROUP BY model, kind"
            ):
                counts.setdefault(model_id, {})[str(kind)] = (int(n), int(size or 0))
        except sqlite3.Error as e:
            raise self._failed("read from", e) from None
        out = []
        for model_id, identity, description, created, last_used in models:
            kinds = counts.get(model_id, {})
            out.append(
                {
                    "identity": bytes(identity).hex() if identity is not None else "",
                    "model": _description(description),
                    "created": created,
                    "last_used": last_used,
                    "entries": {k: kinds[k][0] for k in KINDS if k in kinds},
                    "value_bytes": sum(v[1] for v in kinds.values()),
                }
            )
        return out

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _description(text: Any) -> dict[str, Any]:
    """A model's stored description, or a stand-in naming the damage."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {"name": "(damaged model description)"}


@dataclass
class ModelStore:
    """The entries of one model identity in a :class:`ResultCache`."""

    cache: ResultCache
    model_id: int
    identity: str  # sha256 hex of the identity

    def get(self, kind: str, keys: Sequence[bytes]) -> dict[bytes, Any]:
        return self.cache.get(self.model_id, kind, keys)

    def present(self, kind: str, keys: Sequence[bytes]) -> set[bytes]:
        return self.cache.present(self.model_id, kind, keys)

    def damaged(self) -> dict[str, int]:
        """Entries of this model found damaged so far (never served), per kind."""
        return {
            kind: n for (model, kind), n in self.cache.damaged.items() if model == self.model_id
        }

    def put_vectors(self, kind: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        self.cache.put(self.model_id, kind, [(k, F32, encode_vector(v)) for k, v in items])

    def put_scalars(self, kind: str, items: Iterable[tuple[bytes, float]]) -> None:
        self.cache.put(self.model_id, kind, [(k, F64, encode_scalar(v)) for k, v in items])

    def put_records(
        self,
        kind: str,
        items: Iterable[tuple[bytes, bytes]],
        drop: tuple[str, Sequence[bytes]] | None = None,
    ) -> None:
        """Store encoded records (:func:`encode_record`) and drop ``drop``'s entries, in one
        transaction."""
        self.cache.put(self.model_id, kind, [(k, REC, v) for k, v in items], drop=drop)


def database_files(folder: str | Path) -> list[Path]:
    """The cache database files biasprobe created in ``folder`` (nothing else)."""
    folder = Path(folder).expanduser()
    main = folder / DB_NAME
    if not main.is_file() or _is_ours(main) is False:
        return []
    return [folder / name for name in DB_FILES if (folder / name).is_file()]


def check_cache_folder(folder: str | Path) -> Path:
    """``folder`` if it can hold biasprobe's cache (it may not exist yet).

    Raises:
        CacheError: it is a file, or its database file is not biasprobe's.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file, not a folder; pass a folder")
    main = folder / DB_NAME
    if main.exists() and _is_ours(main) is False:
        raise CacheError(
            f"{main} is not a biasprobe cache database; biasprobe neither reads nor removes it "
            "(choose another folder with --cache DIR)"
        )
    return folder


def clear(folder: str | Path) -> list[Path]:
    """Remove biasprobe's cache database files from ``folder``; every other file stays.

    The removal takes the database's write lock first, so that a run writing to it at that
    moment finishes its transaction; a run still open on it keeps working on its own copy.

    Raises:
        CacheError: the database file there is not biasprobe's.
    """
    folder = check_cache_folder(folder)
    main = folder / DB_NAME
    files = database_files(folder)
    if not files:
        return []
    conn = sqlite3.connect(str(main), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            # a damaged database cannot be locked; its header says it is biasprobe's
            # (database_files), so it is removed all the same
            if not _is_damage(e):
                raise CacheError(
                    f"cannot clear the cache database {main} ({e}); wait for the biasprobe "
                    "process using it to finish"
                ) from None
        removed = []
        for f in files:
            try:
                f.unlink()
                removed.append(f)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise CacheError(f"cannot remove {f} ({e.strerror})") from None
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        leftover = folder / name  # a companion file closing the connection left behind
        if leftover.is_file() and not main.exists():
            leftover.unlink()
    return removed
