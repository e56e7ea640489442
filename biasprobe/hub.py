"""Where a Hugging Face model comes from: a local folder, the local HF cache, or the hub.

One rule for every model biasprobe loads (masked LMs, sequence classifiers, encoders): a name
that looks like a path is a local folder (it must exist and hold ``config.json``, weights and
tokenizer files); any other name is a hub id (``name``, ``org/name``), looked up in the local
Hugging Face cache first (``HF_HOME`` / ``HF_HUB_CACHE``, no network), then on the hub if it can
be reached. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from biasprobe.errors import ModelLoadError

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
# Any one of these makes a folder's tokenizer loadable without guessing.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub host accepts a TCP connection (fast offline detection)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # only the proxy can tell; let huggingface_hub try through it
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a folder."""
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or not _HUB_ID.match(name)
    )


#: Digests already computed in this process (never written to disk), keyed by
#: :func:`_file_key`.
_SHA256_MEMO: dict[tuple[str, int, int, int, int, int], str] = {}
#: A file changed less than this long (ns) before it is hashed is not memoized: a later write
#: within the same tick of a coarse file-system clock could otherwise leave its
#: (size, mtime, ctime) as they were.
_RACY_NS = 2_000_000_000


def _file_key(path: str, st: os.stat_result) -> tuple[str, int, int, int, int, int]:
    """What identifies a file's content for :func:`sha256_file`: its real path, device, inode,
    size, mtime and ctime. Any write changes the ctime, which users cannot set (``os.utime``
    restores an mtime but stamps a new ctime), so a changed file never matches an old key."""
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file, read in 1 MiB blocks, for provenance.

    Memoized in this process: a file whose real path, device, inode, size, mtime and ctime are
    unchanged since it was hashed is not read again (a cached run would otherwise re-hash a
    440 MB checkpoint every time). Only files unchanged while they were read, and last changed
    at least :data:`_RACY_NS` before, are memoized.
    """
    real = os.path.realpath(path)
    try:
        known = _SHA256_MEMO.get(_file_key(real, os.stat(real)))
    except OSError:
        known = None  # open() below reports it
    if known is not None:
        return known
    h = hashlib.sha256()
    with open(real, "rb") as f:
        before = os.fstat(f.fileno())
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        after = os.fstat(f.fileno())
    digest = h.hexdigest()
    key = _file_key(real, before)
    settled = time.time_ns() - max(before.st_mtime_ns, before.st_ctime_ns) >= _RACY_NS
    if key == _file_key(real, after) and settled:
        _SHA256_MEMO[key] = digest
    return digest


def local_help(name: str) -> str:
    return (
        f"To use a local copy, pass its folder instead: --model /path/to/{name.split('/')[-1]} "
        "(a folder with config.json, model.safetensors or pytorch_model.bin, and the tokenizer "
        "files, as written by save_pretrained), or point HF_HOME / HF_HUB_CACHE at a Hugging "
        "Face cache that holds it."
    )


@dataclass
class ModelSource:
    """Where to load a model from and what to record about it."""

    name: str  # what the user gave
    load_from: str  # folder path or hub id, for ``from_pretrained``
    source: str  # "local", "hub-cache" or "hub"
    revision: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra ``from_pretrained`` kwargs
    info: dict[str, Any] = field(default_factory=dict)  # provenance

    @property
    def is_local(self) -> bool:
        return self.source == "local"

    def describe(self) -> str:
        return f"model folder {self.name}" if self.is_local else f"model {self.name!r}"


def _check_folder(name: str, path: Path, *, need_tokenizer: bool) -> list[Path]:
    if not path.exists():
        raise ModelLoadError(f"model folder {name} does not exist")
    if not path.is_dir():
        raise ModelLoadError(
            f"model path {name} is a file; expected a checkpoint folder "
            "(config.json, weights and tokenizer files)"
        )
    if not (path / "config.json").is_file():
        if (path / "config.yaml").is_file() and (path / "best.safetensors").is_file():
            raise ModelLoadError(
                f"{name} is a biasprobe sentiment classifier (a `biasprobe sentiment train` run "
                "folder), not a masked language model: run it on a counterfactual probe set "
                "(kind: counterfactual); fill-mask sets need a masked LM"
            )
        raise ModelLoadError(
            f"{name} is not a model checkpoint folder: config.json is missing (expected "
            "config.json, model.safetensors or pytorch_model.bin, and tokenizer files)"
        )
    weights = [path / f for f in WEIGHT_FILES if (path / f).is_file()]
    if not weights:
        raise ModelLoadError(
            f"model folder {name} has no weights: expected model.safetensors or "
            "pytorch_model.bin (or a sharded index)"
        )
    if need_tokenizer and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model folder {name} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}); "
            "without them transformers silently builds a near-empty tokenizer that maps every "
            "word to the unknown token. Save the tokenizer into the folder "
            "(tokenizer.save_pretrained(folder))"
        )
    return sorted({f for pattern in ("*.safetensors", "*.bin") for f in path.glob(pattern)})


def resolve_model_source(
    name: str, *, revision: str | None = None, need_tokenizer: bool = True
) -> ModelSource:
    """Decide where ``name`` is loaded from, without loading anything heavy.

    Raises:
        ModelLoadError: a local folder is missing or incomplete, or a hub id is neither cached
            nor reachable; the message says how to point at a local copy.
    """
    path = Path(name).expanduser()
    if path.exists() or looks_like_path(name):
        files = _check_folder(name, path, need_tokenizer=need_tokenizer)
        info = {
            "requested": name,
            "source": "local",
            "path": str(path.resolve()),
            "revision": None,  # a local folder has no hub revision
            "files_sha256": {f.name: sha256_file(f) for f in files},
        }
        return ModelSource(name, str(path), "local", None, {"local_files_only": True}, info)
    info = {"requested": name, "revision": revision}
    source, kwargs = "hub-cache", {"local_files_only": True}
    try:
        from transformers.utils import cached_file

        cached_file(name, "config.json", revision=revision, local_files_only=True)
    except Exception:
        if not hub_reachable():
            raise ModelLoadError(
                f"model {name!r} is not in the local Hugging Face cache and the hub cannot "
                f"be reached (offline). {local_help(name)}"
            ) from None
        source, kwargs = "hub", {}
    info["source"] = source
    return ModelSource(name, name, source, revision, kwargs, info)


def record_commit(src: ModelSource, config: Any = None) -> None:
    """Add the resolved hub commit hash and snapshot path to ``src.info`` (hub models only)."""
    if src.is_local:
        return
    try:
        from transformers.utils import cached_file

        cfg_path = cached_file(
            src.name, "config.json", revision=src.revision, local_files_only=True
        )
        m = re.search(r"snapshots[/\\]([0-9a-f]{40})[/\\]", str(cfg_path))
        src.info["commit_hash"] = m.group(1) if m else None
        src.info["path"] = str(Path(cfg_path).parent)
    except Exception:
        src.info["commit_hash"] = getattr(config, "_commit_hash", None)


def quiet_transformers() -> None:
    """Silence transformers' progress bars and load reports: biasprobe checks what matters
    (missing weights, tokenizer files) itself and says it in one ``error:`` line."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
