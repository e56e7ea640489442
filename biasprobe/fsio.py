"""Safe writing: atomic files and folders, and ownership of what biasprobe writes.

Every folder biasprobe writes (run folders, sentiment runs, CrowS runs) carries a manifest,
``.biasprobe-manifest.json``, listing its kind, its id and the exact files biasprobe wrote. A
folder is replaced (``--overwrite``) only when it has such a manifest and holds nothing else
besides biasprobe's own HTML reports: a user's folder that merely contains a file named
``results.json`` is never deleted. A file is overwritten only when biasprobe wrote it (HTML
reports: :func:`is_biasprobe_report`).

Folders are written to a hidden staging sibling, ``.NAME.tmp-PID-<random>``, holding a marker with
the writer's PID and host; it is moved into place when complete by :func:`replace_dir`, in one
atomic step that never removes what appeared at the path meanwhile (see there). Single files are
written to a hidden sibling ``.NAME.tmpfile-PID-HOST-<random>.tmp`` (``HOST``: a short hash of
the host name) and renamed onto the name. A staging folder or temporary file left behind by a
killed process (SIGKILL, power loss) is removed by the next biasprobe write in the same folder
(and before a folder is checked for ``--overwrite`` or resume) once its owner is no longer
running on this host. Nothing here imports torch, pandas or numpy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from biasprobe.errors import OutputError, UsageError

MANIFEST = ".biasprobe-manifest.json"
STAGING_MARKER = ".biasprobe-staging"
REPORT_MARKER = '<meta name="generator" content="biasprobe'
_STAGING = re.compile(r"^\..+\.(tmp|old)-(\d+)-.*$")
_TEMP_FILE = re.compile(r"^\..+\.tmpfile-(\d+)-([0-9a-f]{8})-[^.]*\.tmp$")
#: How a report biasprobe wrote begins (every report writer since the marker was introduced):
#: the doctype, ``<html>``, ``<head>``, at most the charset and viewport ``<meta>`` tags, then the
#: generator ``<meta>``: nothing else (no comment, no text) may come before it.
_REPORT_HEAD = re.compile(
    rb"\A(?:\xef\xbb\xbf)?<!doctype html>[ \t\r\n]*"
    rb"<html(?: lang=[\"'][A-Za-z-]{0,35}[\"'])?>[ \t\r\n]*<head>[ \t\r\n]*"
    rb"(?:<meta (?:charset=[\"']utf-8[\"']|name=\"viewport\" content=\"[^\"<>]{0,200}\")>"
    rb"[ \t\r\n]*){0,2}"
    rb'<meta name="generator" content="biasprobe [^"<>]{0,100}">',
    re.IGNORECASE,
)
#: ... and how it ends.
_REPORT_TAIL = re.compile(rb"</html>[ \t\r\n]*\Z", re.IGNORECASE)


class NotOwnedError(UsageError):
    """An output path exists and biasprobe did not write it: it is never replaced."""


# --------------------------------------------------------------------------- files


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(folder: bool = False) -> int:
    """The permissions a plain ``open()`` or ``mkdir`` would give under the current umask
    (0644 files and 0755 folders with umask 022): mkstemp and mkdtemp make theirs private,
    and biasprobe's outputs follow the umask like any other file."""
    return (0o777 if folder else 0o666) & ~current_umask()


class NotRegularFileError(UsageError):
    """A path that must be a regular file is a FIFO, device, socket or folder."""


def read_regular_bytes(path: str | Path, *, limit: int | None = None, what: str = "file") -> bytes:
    """Read ``path`` only if it is a regular file (never blocks on a FIFO or a device).

    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor,
    so a FIFO put where a file is expected is refused at once instead of waiting for a writer,
    and a path swapped between a check and the open cannot slip through.

    Args:
        path: the file to read.
        limit: refuse files larger than this many bytes (``None``: no limit).
        what: how the file is named in error messages ("probe file", "config", ...).

    Raises:
        FileNotFoundError: the path does not exist.
        NotRegularFileError: it exists but is not a regular file, or is over ``limit``.
        OSError: any other error from the operating system.
    """
    import stat

    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except IsADirectoryError:
        raise NotRegularFileError(f"{what} {p} is a folder, not a file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO (named pipe)"
                if stat.S_ISFIFO(st.st_mode)
                else ("a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
            )
            raise NotRegularFileError(f"{what} {p} is {kind}; give a regular file")
        if limit is not None and st.st_size > limit:
            raise NotRegularFileError(
                f"{what} {p} is {st.st_size:,} bytes, over the limit of {limit:,} bytes"
            )
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if limit is not None and size > limit:
                raise NotRegularFileError(
                    f"{what} {p} grew past the limit of {limit:,} bytes while it was read"
                )
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(path: str | Path, *, limit: int | None = None, what: str = "file") -> str:
    """:func:`read_regular_bytes` decoded as UTF-8 (``UnicodeDecodeError`` propagates)."""
    return read_regular_bytes(path, limit=limit, what=what).decode("utf-8")


def _host_tag() -> str:
    """A short, file-name-safe tag of this host (8 hex digits of its name's hash)."""
    return hashlib.blake2b(socket.gethostname().encode("utf-8"), digest_size=4).hexdigest()


def _temp_file(out: Path, data: bytes, mode: int | None) -> str:
    """``data`` in a new temporary sibling of ``out`` (see :func:`atomic_write_bytes`)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(out.parent)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{out.name}.tmpfile-{os.getpid()}-{_host_tag()}-",
            suffix=".tmp",
            dir=out.parent,
        )
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, shared_mode() if mode is None else mode)  # mkstemp's are private
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
        raise
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to a temporary sibling file, then rename it onto ``path`` (permissions:
    ``mode``, default those of a new file under the umask, :func:`shared_mode`).

    The temporary file is named ``.NAME.tmpfile-PID-HOST-<random>.tmp``, so that one left by a
    killed process is recognised and removed later (:func:`clean_stale_temp_files`, run here
    on the folder first).
    """
    out = Path(path)
    tmp = _temp_file(out, data, mode)
    try:
        os.replace(tmp, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def write_report(path: str | Path, text: str, *, what: str = "report") -> Path:
    """Write an HTML report to ``path``, replacing only a report biasprobe wrote, checked at
    the moment the new file is moved into place (not only before a long rendering).

    ``path`` absent: the file is linked into place without replacing anything (``link`` fails
    if something appeared there meanwhile). ``path`` a biasprobe report: the two files are
    swapped atomically (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere a re-check and a
    rename) and the swapped-out file is checked again before it is removed; a user's file that
    got there in between is put back.

    Raises:
        NotOwnedError: ``path`` is (now) not a report biasprobe wrote; it is left as it is.
        OutputError: it cannot be written.
    """
    out = Path(path)
    check_output_file(out, what=what)
    tmp = _temp_file(out, text.encode("utf-8"), None)
    try:
        try:
            os.link(tmp, out)  # never replaces: fails if anything is at ``out``
            return out
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if not os.path.lexists(out) and _renameat2(Path(tmp), out, RENAME_NOREPLACE):
                return out
        check_output_file(out, what=what)  # what is there now must be biasprobe's report
        if os.path.lexists(out) and _renameat2(Path(tmp), out, RENAME_EXCHANGE):
            if os.path.islink(tmp) or not is_biasprobe_report(Path(tmp)):
                _renameat2(Path(tmp), out, RENAME_EXCHANGE)  # a user's file slipped in
                check_output_file(out, what=what)
                raise NotOwnedError(f"refusing to overwrite {out}: it changed while written")
            return out
        os.replace(tmp, out)  # no hard links, no renameat2: checked just before
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return out


def clean_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write_bytes` in ``folder`` whose writer, a
    process of this host, no longer runs (killed mid-write). Only regular files named as
    biasprobe names them are touched (never a symlink, never a file of a running process or of
    another host). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host = _host_tag()
    for entry in entries:
        m = _TEMP_FILE.match(entry.name)
        if not m or m.group(2) != host or pid_alive(int(m.group(1))):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(path, text)


def is_biasprobe_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report biasprobe wrote.

    Recognised by structure, not by a substring: the file must begin exactly as biasprobe's
    reports begin (doctype, ``<html>``, ``<head>``, the charset and viewport ``<meta>`` tags at
    most, then the generator ``<meta>`` naming biasprobe, :data:`_REPORT_HEAD`) and end with
    ``</html>``. A page that merely quotes the generator tag (in a comment, in its text, further
    down its head) is not one, and is never replaced.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 64))
            tail = f.read(64)
    except OSError:
        return False
    return bool(_REPORT_HEAD.match(head)) and bool(_REPORT_TAIL.search(tail))


def check_output_file(path: str | Path, *, what: str = "report") -> Path:
    """Refuse to overwrite a file biasprobe did not write (only its own reports are replaced).

    Raises:
        NotOwnedError: the path exists and is not one of biasprobe's reports (exit code 2).
    """
    out = Path(path)
    if out.is_dir():
        raise NotOwnedError(f"{what} path {out} is a folder; give a file name such as report.html")
    clean_stale_temp_files(out.parent)
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_file() or not is_biasprobe_report(out):
            raise NotOwnedError(
                f"refusing to overwrite {out}: it exists and is not an HTML {what} that "
                f"biasprobe wrote (only those are replaced); choose another output path"
            )
    return out


# --------------------------------------------------------------------------- folders


def _iter_files(folder: Path) -> Iterator[str]:
    """Every file below ``folder`` as a relative POSIX path, lazily (sorted per folder)."""
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for n in sorted(names):
            yield Path(root, n).relative_to(folder).as_posix()


def list_files(folder: Path) -> list[str]:
    """Every file below ``folder`` as a relative POSIX path (sorted), the manifest excluded."""
    return sorted(rel for rel in _iter_files(folder) if rel != MANIFEST)


def write_manifest(folder: str | Path, kind: str, run_id: str, files: Iterable[str] | None = None):
    """Record that biasprobe wrote ``folder`` and which files (default: all present now)."""
    folder = Path(folder)
    listed = sorted(files) if files is not None else list_files(folder)
    atomic_write_json(
        folder / MANIFEST, {"tool": "biasprobe", "kind": kind, "id": run_id, "files": listed}
    )


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != "biasprobe":
        return None
    if not isinstance(data.get("files"), list):
        return None
    return data


def foreign_files(
    folder: Path, kinds: Iterable[str] | None = None, *, limit: int | None = None
) -> list[str] | None:
    """Files in ``folder`` that biasprobe did not write, or None when it has no valid manifest.

    biasprobe's own HTML reports (:func:`is_biasprobe_report`) count as biasprobe's. With
    ``limit``, the walk stops once that many foreign files are found (enough to refuse).
    """
    manifest = read_manifest(folder)
    if manifest is None or (kinds is not None and manifest.get("kind") not in set(kinds)):
        return None
    listed = set(manifest["files"])
    found: list[str] = []
    for rel in _iter_files(folder):
        if rel == MANIFEST or rel in listed:
            continue
        if rel.endswith(".html") and is_biasprobe_report(folder / rel):
            continue
        found.append(rel)
        if limit is not None and len(found) >= limit:
            break
    return found


#: Files named in a refusal; the walk of a folder that is refused stops after one more.
SHOWN_FILES = 5


def _not_replaceable(out: Path, kinds: Iterable[str] | None, what: str) -> UsageError | None:
    """Why the existing, non-empty folder ``out`` must not be replaced (None: it may be).

    Never walks more of ``out`` than needed: a folder without biasprobe's manifest (a home
    folder, ``/``) is refused after listing a few of its files.
    """
    if not out.is_dir():
        return OutputError(f"output path {out} exists and is not a folder")
    clean_stale_temp_files(out)  # a write killed inside it left a temporary file
    foreign = foreign_files(out, kinds, limit=SHOWN_FILES + 1)
    if foreign is None:
        other = read_manifest(out)
        if other is not None:
            why = f"it is a biasprobe {other.get('kind')} folder, not a {what}"
        else:
            first = list(itertools.islice(_iter_files(out), SHOWN_FILES + 1))
            why = f"no {MANIFEST}; it holds {_shown(first, more=len(first) > SHOWN_FILES)}"
        return NotOwnedError(
            f"refusing to overwrite {out}: it is not a {what} written by biasprobe ({why}); "
            f"--overwrite only replaces biasprobe's own {what}s"
        )
    if foreign:
        shown = _shown(foreign, more=len(foreign) > SHOWN_FILES)
        return NotOwnedError(
            f"refusing to overwrite {out}: it holds files biasprobe did not write ({shown}); "
            "move them away or choose another --out"
        )
    return None


def check_output_folder(
    out: str | Path, overwrite: bool, *, kinds: Iterable[str] = ("run",), what: str = "run folder"
) -> None:
    """Refuse an output folder that cannot or must not be (re)written.

    An existing non-empty folder is replaced only with ``overwrite`` and only if biasprobe wrote
    it: it has a manifest of one of ``kinds`` and holds no file the manifest does not list.
    (:func:`replace_dir` checks again when the new folder is moved into place.)

    Raises:
        OutputError: the folder exists without ``overwrite``, or cannot be written (exit 1).
        NotOwnedError: ``overwrite`` was asked for a folder biasprobe did not write (exit 2).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(
                f"output folder {out} already exists and is not empty; "
                "choose another --out or pass --overwrite"
            )
        refused = _not_replaceable(out, kinds, what)
        if refused is not None:
            raise refused
    check_can_create(out, what="output folder")


def check_can_create(path: str | Path, *, what: str = "output folder") -> None:
    """Refuse early when ``path`` could not be created: its nearest existing ancestor must be
    a writable folder (e.g. the default ``reports/`` before a run starts).

    Raises:
        OutputError: naming the path and the ancestor that is not a writable folder.
    """
    path = Path(path)
    parent = path.resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {path}: {parent} is not a writable folder")


def _shown(files: list[str], most: int = SHOWN_FILES, *, more: bool = False) -> str:
    """``files`` (sorted, the first ``most``); ``more``: the list was cut short (the folder
    was not walked to the end, so how many more is not known: shown in the order found)."""
    if more:  # in the order found: the folder's own files first
        return ", ".join(files[:most]) + " and more"
    files = sorted(files)
    extra = f" and {len(files) - most} more" if len(files) > most else ""
    return ", ".join(files[:most]) + extra


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _staging_owner(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads((path / STAGING_MARKER).read_text(encoding="utf-8"))
        return int(data["pid"]), str(data["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clean_stale_staging(parent: str | Path) -> list[Path]:
    """Remove staging folders and temporary files in ``parent`` left by biasprobe processes
    that are gone.

    Only folders carrying biasprobe's staging marker (and files named as
    :func:`atomic_write_bytes` names them), written on this host by a process that no longer
    runs, are touched. A previous run folder moved aside (``.NAME.old-PID-…``) by a killed
    replace is moved back when its place is empty, else removed if it is biasprobe's own.
    Returns what was cleaned.
    """
    parent = Path(parent)
    cleaned: list[Path] = clean_stale_temp_files(parent)
    try:
        entries = list(parent.iterdir())
    except OSError:
        return cleaned
    host = socket.gethostname()
    for entry in entries:
        m = _STAGING.match(entry.name)
        if not m or not entry.is_dir() or entry.is_symlink():
            continue
        owner = _staging_owner(entry)
        if owner is None or owner[1] != host or pid_alive(owner[0]):
            continue
        if m.group(1) == "old":
            # killed between moving the previous run folder aside and moving the new one in
            target = parent / entry.name[1 : entry.name.rindex(".old-")]
            previous = entry / "previous"
            with contextlib.suppress(OSError):
                if previous.is_dir() and not target.exists():
                    os.replace(previous, target)
            if previous.is_dir() and foreign_files(previous, limit=1) != []:
                continue  # not (only) biasprobe's: left where it is
        shutil.rmtree(entry, ignore_errors=True)
        cleaned.append(entry)
    return cleaned


def _mark_staging(folder: Path) -> None:
    marker = {"pid": os.getpid(), "host": socket.gethostname()}
    (folder / STAGING_MARKER).write_text(json.dumps(marker), encoding="utf-8")


@contextlib.contextmanager
def staging_dir(out: str | Path) -> Iterator[Path]:
    """A fresh hidden staging folder next to ``out``; removed again if anything fails.

    Stale staging folders of dead biasprobe processes in the same parent are removed first.
    The staging marker is removed by :func:`replace_dir` before the rename.
    """
    out = Path(out).resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
        os.chmod(tmp, shared_mode(folder=True))  # mkdtemp's are private; follow the umask
        _mark_staging(tmp)
    except OSError as e:
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None
    try:
        yield tmp
    except OSError as e:
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None
    finally:
        # On success the folder was renamed away; otherwise (error, KeyboardInterrupt) it goes.
        shutil.rmtree(tmp, ignore_errors=True)


class OutputChangedError(OutputError):
    """Something appeared at (or in) an output path while biasprobe was writing it: it is left
    untouched and nothing is saved there."""


_AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_RENAMEAT2: list[Any] = []


def _renameat2_fn() -> Any:
    """libc's ``renameat2`` (Linux, glibc 2.28+ / musl), or None where there is none."""
    if not _RENAMEAT2:
        fn = None
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
                fn.argtypes += [ctypes.c_uint]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = None
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``: True when done, False when this system or file system
    does not offer it (then nothing happened).

    Raises:
        OSError: the rename failed (``FileExistsError`` for ``RENAME_NOREPLACE`` onto an
            existing path).
    """
    fn = _renameat2_fn()
    if fn is None:
        return False
    import ctypes

    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _appeared(out: Path) -> OutputChangedError:
    return OutputChangedError(
        f"output folder {out} appeared while this run was writing it (another process wrote "
        "there); it was left untouched and nothing was saved. Choose another --out"
    )


def replace_dir(
    tmp: Path,
    out: str | Path,
    *,
    overwrite: bool = True,
    kinds: Iterable[str] | None = None,
    what: str = "output folder",
) -> None:
    """Move the finished staging folder ``tmp`` to ``out`` in one atomic step.

    What is at ``out`` is checked again here, at the last moment (the check made before a long
    run may be stale), and nothing that appeared meanwhile is ever removed:

    * ``out`` absent: moved with ``renameat2(RENAME_NOREPLACE)``, which fails if anything was
      created at ``out`` since (a concurrent run, a user's file).
    * ``out`` an empty folder: ``rename`` replaces it, and fails if it is no longer empty.
    * ``out`` not empty: refused without ``overwrite`` (:class:`OutputChangedError`: a second
      writer to the same ``--out`` fails and the first one's folder stays). With ``overwrite``
      it must be biasprobe's own (a manifest of one of ``kinds``, no foreign file); the two
      folders are then swapped atomically (``RENAME_EXCHANGE``) and the swapped-out folder is
      checked once more before it is removed: if a foreign file got in between the two checks,
      the folders are swapped back and nothing is removed.

    Where ``renameat2`` is not available (not Linux, old C library, a file system without it)
    a portable path is taken: ``rename`` onto ``out`` (POSIX refuses to rename onto a non-empty
    folder or a file, so a folder that appeared meanwhile is not replaced); with ``overwrite``
    the previous folder is moved aside first, checked again, and moved back if it is not
    biasprobe's own. That path is not atomic: for a moment ``out`` does not exist.

    Raises:
        OutputChangedError: something appeared at ``out`` and ``overwrite`` was not given.
        NotOwnedError: with ``overwrite``, ``out`` is (now) not biasprobe's own folder.
        OutputError: the file system refused (names the path and why).
    """
    out = Path(out).resolve()
    tmp = Path(tmp)
    (tmp / STAGING_MARKER).unlink(missing_ok=True)
    try:
        if not _move_atomic(tmp, out, overwrite, kinds, what):
            _move_portable(tmp, out, overwrite, kinds, what)
    except OSError as e:
        raise OutputError(f"cannot write output folder {out}: {e.strerror or e}") from None


def _move_into_empty(tmp: Path, out: Path) -> bool:
    """``rename(tmp, out)``; False when ``out`` is a non-empty folder or not a folder."""
    try:
        os.rename(tmp, out)
        return True
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return False
        raise


def _check_replaceable(out: Path, overwrite: bool, kinds: Iterable[str] | None, what: str):
    if not overwrite:
        raise _appeared(out)
    refused = _not_replaceable(out, kinds, what)
    if refused is not None:
        raise refused


def _move_atomic(
    tmp: Path, out: Path, overwrite: bool, kinds: Iterable[str] | None, what: str
) -> bool:
    """:func:`replace_dir` with ``renameat2``; False (nothing done) where it is unavailable."""
    if not os.path.lexists(out):
        try:
            return _renameat2(tmp, out, RENAME_NOREPLACE)
        except FileExistsError:
            pass  # appeared since: see below
    elif _renameat2_fn() is None:
        return False
    if out.is_dir() and not out.is_symlink() and _move_into_empty(tmp, out):
        return True
    _check_replaceable(out, overwrite, kinds, what)
    if not _renameat2(tmp, out, RENAME_EXCHANGE):
        return False
    previous = tmp  # the folder that was at ``out`` is now here
    if foreign_files(previous, kinds, limit=1) != []:
        # a file got in between the check and the swap: put everything back
        _renameat2(previous, out, RENAME_EXCHANGE)
        refused = _not_replaceable(out, kinds, what)
        raise refused if refused is not None else _appeared(out)
    _mark_staging(previous)  # swept by a later write should this process die while removing it
    shutil.rmtree(previous, ignore_errors=True)
    return True


def _move_portable(
    tmp: Path, out: Path, overwrite: bool, kinds: Iterable[str] | None, what: str
) -> None:
    """:func:`replace_dir` without ``renameat2`` (see there)."""
    if _move_into_empty(tmp, out):
        return
    _check_replaceable(out, overwrite, kinds, what)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
    _mark_staging(old)  # so a kill between the two renames can be repaired
    moved = old / "previous"
    os.rename(out, moved)
    foreign = foreign_files(moved, kinds, limit=1)
    if foreign != [] or not _move_into_empty(tmp, out):
        # not biasprobe's after all, or something appeared at ``out`` in the gap
        if _move_into_empty(moved, out):
            shutil.rmtree(old, ignore_errors=True)
            refused = None if foreign == [] else _not_replaceable(out, kinds, what)
            raise refused if refused is not None else _appeared(out)
        (old / STAGING_MARKER).unlink(missing_ok=True)  # never swept: the user's to look at
        raise OutputChangedError(
            f"output folder {out} changed while this run was writing it; the folder that was "
            f"there was moved to {moved} and nothing was deleted"
        )
    shutil.rmtree(old, ignore_errors=True)
