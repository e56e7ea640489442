"""Safe writing: atomic files and folders, and ownership of what biasprobe writes.

Every folder biasprobe writes (run folders, sentiment runs, CrowS runs) carries a manifest,
``.biasprobe-manifest.json``, listing its kind, its id and the exact files biasprobe wrote. A
folder is replaced (``--overwrite``) only when it has such a manifest and holds nothing else
besides biasprobe's own HTML reports: a user's folder that merely contains a file named
``results.json`` is never deleted. A file is overwritten only when biasprobe wrote it (HTML
reports carry a generator marker).

Folders are written to a hidden staging sibling, ``.NAME.tmp-PID-<random>``, holding a marker with
the writer's PID and host; it is renamed into place when complete. A staging folder left behind
by a killed process (SIGKILL, power loss) is removed by the next biasprobe write in the same
parent folder once its owner is no longer running. Nothing here imports torch, pandas or numpy.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from biasprobe.errors import OutputError, UsageError

MANIFEST = ".biasprobe-manifest.json"
STAGING_MARKER = ".biasprobe-staging"
REPORT_MARKER = '<meta name="generator" content="biasprobe'
_STAGING = re.compile(r"^\..+\.(tmp|old)-(\d+)-.*$")


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


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to a temporary sibling file, then rename it onto ``path`` (permissions:
    ``mode``, default those of a new file under the umask, :func:`shared_mode`)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, shared_mode() if mode is None else mode)  # mkstemp's are private
        os.replace(tmp, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(path, text)


def is_biasprobe_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report biasprobe wrote (its generator marker)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    return REPORT_MARKER.encode() in head


def check_output_file(path: str | Path, *, what: str = "report") -> Path:
    """Refuse to overwrite a file biasprobe did not write (only its own reports are replaced).

    Raises:
        NotOwnedError: the path exists and is not one of biasprobe's reports (exit code 2).
    """
    out = Path(path)
    if out.is_dir():
        raise NotOwnedError(f"{what} path {out} is a folder; give a file name such as report.html")
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_file() or not is_biasprobe_report(out):
            raise NotOwnedError(
                f"refusing to overwrite {out}: it exists and is not an HTML {what} that "
                f"biasprobe wrote (only those are replaced); choose another output path"
            )
    return out


# --------------------------------------------------------------------------- folders


def list_files(folder: Path) -> list[str]:
    """Every file below ``folder`` as a relative POSIX path (sorted), the manifest excluded."""
    files = []
    for root, _dirs, names in os.walk(folder):
        for n in names:
            rel = Path(root, n).relative_to(folder).as_posix()
            if rel != MANIFEST:
                files.append(rel)
    return sorted(files)


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


def foreign_files(folder: Path, kinds: Iterable[str] | None = None) -> list[str] | None:
    """Files in ``folder`` that biasprobe did not write, or None when it has no valid manifest.

    biasprobe's own HTML reports (by their generator marker) count as biasprobe's.
    """
    manifest = read_manifest(folder)
    if manifest is None or (kinds is not None and manifest.get("kind") not in set(kinds)):
        return None
    listed = set(manifest["files"])
    return [
        rel
        for rel in list_files(folder)
        if rel not in listed and not (rel.endswith(".html") and is_biasprobe_report(folder / rel))
    ]


def check_output_folder(
    out: str | Path, overwrite: bool, *, kinds: Iterable[str] = ("run",), what: str = "run folder"
) -> None:
    """Refuse an output folder that cannot or must not be (re)written.

    An existing non-empty folder is replaced only with ``overwrite`` and only if biasprobe wrote
    it: it has a manifest of one of ``kinds`` and holds no file the manifest does not list.

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
        foreign = foreign_files(out, kinds)
        if foreign is None:
            other = read_manifest(out)
            why = (
                f"it is a biasprobe {other.get('kind')} folder, not a {what}"
                if other is not None
                else f"no {MANIFEST}; it holds {_shown(list_files(out))}"
            )
            raise NotOwnedError(
                f"refusing to overwrite {out}: it is not a {what} written by biasprobe ({why}); "
                f"--overwrite only replaces biasprobe's own {what}s"
            )
        if foreign:
            shown = _shown(foreign)
            raise NotOwnedError(
                f"refusing to overwrite {out}: it holds files biasprobe did not write ({shown}); "
                "move them away or choose another --out"
            )
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


def _shown(files: list[str], most: int = 5) -> str:
    more = f" and {len(files) - most} more" if len(files) > most else ""
    return ", ".join(files[:most]) + more


def _pid_alive(pid: int) -> bool:
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
    """Remove staging folders in ``parent`` left by biasprobe processes that are gone.

    Only folders carrying biasprobe's staging marker, written on this host by a process that no
    longer runs, are touched. A previous run folder moved aside (``.NAME.old-PID-…``) by a killed
    replace is moved back when its place is empty, else removed. Returns what was cleaned.
    """
    parent = Path(parent)
    cleaned: list[Path] = []
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
        if owner is None or owner[1] != host or _pid_alive(owner[0]):
            continue
        if m.group(1) == "old":
            # killed between moving the previous run folder aside and moving the new one in
            target = parent / entry.name[1 : entry.name.rindex(".old-")]
            previous = entry / "previous"
            with contextlib.suppress(OSError):
                if previous.is_dir() and not target.exists():
                    os.replace(previous, target)
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


def replace_dir(tmp: Path, out: str | Path) -> None:
    """Move the finished staging folder ``tmp`` to ``out``, replacing an existing folder last."""
    out = Path(out).resolve()
    (tmp / STAGING_MARKER).unlink(missing_ok=True)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        _mark_staging(old)  # so a kill between the two renames can be repaired
        moved = old / "previous"
        os.replace(out, moved)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(moved, out)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
