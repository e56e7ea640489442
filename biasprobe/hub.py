"""Where a Hugging Face model comes from: a local folder, the local HF cache, or the hub.

One rule for every model biasprobe loads (masked LMs, sequence classifiers, encoders): a name
that looks like a path is a local folder (it must exist and hold ``config.json``, weights and
tokenizer files); any other name is a hub id (``name``, ``org/name``), looked up in the local
Hugging Face cache first (``HF_HOME`` / ``HF_HUB_CACHE``, no network), then on the hub if it can
be reached. torch and transformers are imported only inside the functions that need them
(:func:`implied_parameters`).
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


def _link_problem(path: Path) -> str | None:
    """Why ``path`` (which does not resolve) cannot be followed: a symlink loop or a broken
    symlink; None when it is simply absent."""
    import errno

    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop (the link leads back to itself)"
        return f"is a broken symlink (it points to {os.readlink(path)}, which does not exist)"
    return None


def _entry_problem(path: Path) -> str | None:
    """Why an entry of a model folder cannot be read as a file: not a regular file or folder
    (a FIFO would block a reader forever), a symlink loop or a broken symlink."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return _link_problem(path)
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    if stat.S_ISFIFO(st.st_mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(st.st_mode):
        return "is a socket, not a regular file"
    return "is a device or other special file, not a regular file"


#: Files of a checkpoint folder that transformers may open (a broken link among them is an error).
_READ_FILES = (
    "config.json",
    *WEIGHT_FILES,
    *TOKENIZER_FILES,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "merges.txt",
)


def _check_folder(name: str, path: Path, *, need_tokenizer: bool) -> list[Path]:
    if not path.exists():
        why = _link_problem(path)
        if why:
            raise ModelLoadError(f"model path {name} {why}; expected a checkpoint folder")
        raise ModelLoadError(f"model folder {name} does not exist")
    if not path.is_dir():
        kind = _entry_problem(path)
        raise ModelLoadError(
            f"model path {name} {kind or 'is a file'}; expected a checkpoint folder "
            "(config.json, weights and tokenizer files)"
        )
    try:
        entries = sorted(path.iterdir())
    except OSError as e:
        raise ModelLoadError(f"model folder {name} cannot be read: {e.strerror or e}") from None
    for entry in entries:
        why = _entry_problem(entry)
        if why and (entry.name in _READ_FILES or "broken symlink" not in why):
            raise ModelLoadError(
                f"model folder {name}: {entry.name} {why}; a checkpoint folder holds only "
                "regular files and folders"
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
    if os.path.lexists(path) or looks_like_path(name):
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


# --------------------------------------------------------------------------- plausibility

#: Bits of a stored value, by safetensors dtype; a float holds one parameter, an integer type
#: may pack several low-bit parameters (quantised checkpoints), at most one per bit.
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F4"}
_INT_BITS = {"I64": 64, "U64": 64, "I32": 32, "U32": 32, "I16": 16, "U16": 16, "I8": 8, "U8": 8}
_MAX_HEADER = 100 * 2**20


class DamagedWeightsError(Exception):
    """A weights file whose header cannot be right (see :func:`weights_capacity`)."""


def describe_error(e: BaseException, most: int = 300) -> str:
    """An exception as one line: its type and message, lines joined, cut to ``most`` characters."""
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    if len(text) > most:
        text = text[: most - 1] + "…"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _safetensors_capacity(path: Path) -> int:
    """Most parameters a safetensors file can hold, read from its header (nothing else is read).

    Raises:
        DamagedWeightsError: the header is damaged or promises more data than the file has.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > min(_MAX_HEADER, size - 8):
            raise DamagedWeightsError(
                f"{path.name} is corrupt: not a safetensors file (its header length field says "
                f"{n:,} bytes, the file has {size:,})"
            )
        raw = f.read(n)
    import json

    try:
        header = json.loads(raw)
        capacity, end = 0, 0
        for key, t in header.items():
            if key == "__metadata__":
                continue
            numel = 1
            for d in t["shape"]:
                numel *= int(d)
            dtype = str(t["dtype"])
            capacity += numel if dtype in _FLOAT_DTYPES else numel * _INT_BITS.get(dtype, 64)
            end = max(end, int(t["data_offsets"][1]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        raise DamagedWeightsError(f"{path.name} is corrupt: its header is not valid JSON") from None
    if end > size - 8 - n:
        raise DamagedWeightsError(
            f"{path.name} is corrupt or truncated: its header describes {end:,} bytes of "
            f"tensors but the file holds {size - 8 - n:,}"
        )
    return capacity


def weights_capacity(folder: Path, *, prefer_safetensors: bool = True) -> tuple[int, str] | None:
    """The most parameters the weight files that ``from_pretrained`` would read from ``folder``
    can hold, and which files those are; None when it cannot be told (files absent).

    safetensors headers give the exact count (integer tensors counted as one parameter per bit,
    for packed quantised weights); a pickle checkpoint is not opened: its size in bytes × 8 is
    the bound (one bit per parameter).

    Raises:
        DamagedWeightsError: a safetensors file is damaged or truncated.
    """
    import json

    def shards(index: Path) -> list[Path] | None:
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = sorted({folder / str(v) for v in weight_map.values()})
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        return files if files and all(f.is_file() for f in files) else None

    order = ["model.safetensors", "model.safetensors.index.json"]
    order += ["pytorch_model.bin", "pytorch_model.bin.index.json"]
    if not prefer_safetensors:
        order = order[2:] + order[:2]
    for name in order:
        path = folder / name
        if not path.is_file():
            continue
        files = shards(path) if name.endswith(".index.json") else [path]
        if files is None:
            return None
        total = 0
        for f in files:
            if f.suffix == ".safetensors":
                total += _safetensors_capacity(f)
            else:
                total += 8 * f.stat().st_size
        return total, ", ".join(f.name for f in files[:3]) + (
            f" and {len(files) - 3} more" if len(files) > 3 else ""
        )
    return None


#: Config fields that count something: whole numbers, never negative.
_COUNT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "embedding_size",
    "num_labels",
)
#: How far the parameters a config implies may exceed what its weight files can hold.
PLAUSIBLE_FACTOR = 2
PLAUSIBLE_SLACK = 2**20


def implied_parameters(
    auto_class: Any, config: Any, *, trust_remote_code: bool = False
) -> int | None:
    """Parameters of the model ``config`` describes, counted without allocating it (None when
    it cannot be built that way: ``from_pretrained`` then reports what is wrong).

    The model is built on torch's ``meta`` device (shapes only, no memory) with at most two
    layers; the count for ``num_hidden_layers`` layers is extrapolated from the one- and
    two-layer counts, so a config claiming 10,000 layers is counted in milliseconds.
    """
    import copy

    import torch

    layers = getattr(config, "num_hidden_layers", None)

    def count(n: int | None) -> int:
        c = copy.deepcopy(config)
        if n is not None:
            c.num_hidden_layers = n
        with torch.device("meta"):
            model = auto_class.from_config(c, trust_remote_code=trust_remote_code)
        return int(sum(p.numel() for p in model.parameters()))

    try:
        if not isinstance(layers, int) or isinstance(layers, bool) or layers <= 2:
            return count(None)
        one, two = count(1), count(2)
    except Exception:  # an architecture this way of counting does not fit: no verdict
        return None
    return one + (layers - 1) * max(two - one, 0)


def check_config_plausible(
    src: ModelSource, config: Any, auto_class: Any, *, trust_remote_code: bool = False
) -> None:
    """Refuse a config that its weight files cannot fill, before the model is built.

    Its counts (``vocab_size``, ``num_hidden_layers``, ...) must be whole numbers, and the
    parameters it implies (:func:`implied_parameters`) at most :data:`PLAUSIBLE_FACTOR` times
    what the weight files can hold (:func:`weights_capacity`) plus :data:`PLAUSIBLE_SLACK`: a
    ``config.json`` claiming 10,000 layers or a vocabulary of 10⁹ would otherwise take minutes
    and gigabytes to build, only to fail when the weights do not fit it.

    Raises:
        ModelLoadError: naming the model, the config's sizes and the weight files.
    """
    for key in _COUNT_FIELDS:
        value = getattr(config, key, None)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ModelLoadError(
                f"{src.describe()}: config.json gives {key} = {value!r}; expected a whole "
                "number >= 0"
            )
    folder = local_folder(src)
    if folder is None:
        return
    try:
        capacity = weights_capacity(
            folder, prefer_safetensors=src.kwargs.get("use_safetensors", True)
        )
    except DamagedWeightsError as e:
        raise ModelLoadError(f"{src.describe()} could not be loaded: {e}") from None
    if capacity is None:
        return
    held, files = capacity
    implied = implied_parameters(auto_class, config, trust_remote_code=trust_remote_code)
    if implied is None or implied <= PLAUSIBLE_FACTOR * held + PLAUSIBLE_SLACK:
        return
    sizes = ", ".join(
        f"{k} {getattr(config, k):,}"
        for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size")
        if isinstance(getattr(config, k, None), int)
    )
    raise ModelLoadError(
        f"{src.describe()}: its config.json describes a model of {implied:,} parameters "
        f"({sizes}), but its weight files ({files}) hold at most {held:,}: the config does not "
        "belong to these weights or is damaged. Nothing was built; use the config.json saved "
        "with the weights"
    )


def local_folder(src: ModelSource) -> Path | None:
    """The folder a local or cached model is read from (None for a hub model not yet here)."""
    if src.is_local:
        return Path(src.load_from)
    if src.source != "hub-cache":
        return None
    try:
        from transformers.utils import cached_file

        cfg = cached_file(src.name, "config.json", revision=src.revision, local_files_only=True)
    except Exception:
        return None
    return Path(cfg).parent if cfg else None


def explain_load_error(
    e: BaseException, advice: str = "; use a safetensors checkpoint (model.safetensors)"
) -> str:
    """Why ``from_pretrained`` failed, in words that fit biasprobe's messages.

    A pickle checkpoint that holds more than tensors is refused by torch's safe unpickler
    (nothing in it runs); torch's own message then suggests loading it unsafely, which biasprobe
    never repeats. transformers' "look at the above report" for mismatched shapes refers to a
    report that is not shown: say what it means instead.
    """
    text = str(e)
    if type(e).__name__ == "UnpicklingError" or "weights_only" in text:
        return (
            "its pickle file holds objects other than tensors, which biasprobe refuses to load "
            f"(nothing in it was run){advice}"
        )
    if "ignore_mismatched_sizes" in text or "size mismatch" in text:
        return (
            "the shapes of the weights in its files do not match the model its config.json "
            "describes (e.g. vocab_size or hidden_size differ): the config does not belong to "
            "these weights"
        )
    return describe_error(e)


def check_finite_weights(model: Any, what: str) -> None:
    """Refuse a model whose parameters hold NaN or infinite values (a damaged checkpoint):
    every score computed from them would be NaN.

    Raises:
        ModelLoadError: naming ``what`` and the first damaged tensors.
    """
    import torch

    bad = [
        name
        for name, p in model.named_parameters()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ModelLoadError(
            f"{what}: its weights hold NaN or infinite values (in {shown}), so every score "
            "would be NaN; the checkpoint is damaged"
        )
