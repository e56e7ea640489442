"""What identifies the numbers a model computes (the result cache's model key), and the
terminal lines about a run's cache use.

:func:`model_identity` covers every live model: masked LMs (Hugging Face), Hugging Face sequence
classifiers and biasprobe sentiment run folders (by the sha256 of their files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CLASSIFIER_KINDS",
    "CONFIG_FILES",
    "TOKENIZER_FILES",
    "cache_dirs",
    "cache_line",
    "format_bytes",
    "model_identity",
]

#: Files besides the weights that decide a model's numbers or its tokenization.
CONFIG_FILES = ("config.json",)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def _files_sha256(folder: Path, names: Sequence[str]) -> dict[str, str]:
    from biasprobe.hub import sha256_file

    return {n: sha256_file(folder / n) for n in names if (folder / n).is_file()}


#: The ``info["kind"]`` of classifiers (:mod:`biasprobe.backends.classifiers`).
CLASSIFIER_KINDS = ("hf-sequence-classification", "sentiment-run")
#: The files of a sentiment run folder besides its weights that decide its numbers.
SENTIMENT_RUN_FILES = ("config.yaml",)


def model_identity(backend: Any) -> tuple[dict[str, Any] | None, str]:
    """What identifies the numbers a live model computes, or ``(None, why not)``.

    * weights: the resolved hub commit of a model from the Hugging Face cache (a snapshot never
      changes), else the sha256 of every weight file of the folder;
    * ``config.json`` and the tokenizer files (sha256 each);
    * the model class and dtype (they decide the computation);
    * the device kind (``cpu``, ``cuda`` with the GPU's name, ``mps``): other kernels give other
      last bits, and a run must give the same numbers with and without the cache;
    * torch and transformers versions, for the same reason.

    Classifiers (``info["kind"]`` in :data:`CLASSIFIER_KINDS`) are identified the same way,
    with their kind, architecture and labels; a sentiment run folder by the sha256 of its
    weights, of ``config.yaml`` and of its tokenizer's vocabulary.

    Models with no files (built in memory and passed to :func:`biasprobe.run`) get no identity:
    nothing would tell a changed model from the old one.
    """
    info = backend.info or {}
    folder = info.get("path")
    if not folder or not Path(folder).is_dir():
        return None, "in-memory model (no checkpoint files to identify it)"
    folder = Path(folder)
    kind = info.get("kind")
    if kind == "sentiment-run":
        return _sentiment_run_identity(info, folder)
    if info.get("source") == "local":
        weights = dict(info.get("files_sha256") or {})
        if not weights:
            return None, f"no weight files found in {folder}"
        identity: dict[str, Any] = {"weights_sha256": weights}
    elif info.get("commit_hash"):
        identity = {"hub_id": info.get("requested"), "commit": info["commit_hash"]}
    else:
        from biasprobe.hub import WEIGHT_FILES

        files = sorted(
            {f.name for pattern in ("*.safetensors", "*.bin") for f in folder.glob(pattern)}
            | {n for n in WEIGHT_FILES if (folder / n).is_file()}
        )
        if not files:
            return None, f"no weight files found in {folder}"
        identity = {"weights_sha256": _files_sha256(folder, files)}
    from importlib.metadata import version

    identity.update(
        config_sha256=_files_sha256(folder, CONFIG_FILES),
        tokenizer_sha256=_files_sha256(folder, TOKENIZER_FILES),
    )
    if kind in CLASSIFIER_KINDS:
        identity.update(
            kind=kind,
            architecture=info.get("architecture"),
            labels=info.get("labels"),
            dtype=info.get("dtype"),
            device_kind=_device_kind(info),
            torch=version("torch"),
            transformers=version("transformers"),
        )
        return identity, ""
    identity.update(
        tokenizer_class=info.get("tokenizer"),
        model_class=info.get("class"),
        dtype=info.get("dtype"),
        device_kind=_device_kind(info),
        head_at_mask_only=info.get("head_at_mask_only"),
        torch=version("torch"),
        transformers=version("transformers"),
    )
    if info.get("fill"):  # a causal LM's fill rule: entries of another rule never match
        identity["fill"] = info["fill"]
    return identity, ""


def _sentiment_run_identity(
    info: Mapping[str, Any], folder: Path
) -> tuple[dict[str, Any] | None, str]:
    """A biasprobe sentiment run folder: its weights, config.yaml and tokenizer vocabulary."""
    from importlib.metadata import version

    weights = dict(info.get("files_sha256") or {})
    if not weights:
        return None, f"no weight files found in {folder}"
    vocab = info.get("tokenizer_vocab_sha256")
    if not vocab:
        return None, f"the tokenizer of {folder} is not identified"
    identity = {
        "kind": "sentiment-run",
        "weights_sha256": weights,
        "config_sha256": _files_sha256(folder, SENTIMENT_RUN_FILES),
        "tokenizer_vocab_sha256": vocab,
        "model_kind": info.get("model_kind"),
        "device_kind": _device_kind(info),
        "torch": version("torch"),
    }
    return identity, ""


def _device_kind(info: Mapping[str, Any]) -> str:
    """``cpu``, ``mps`` or ``cuda (GPU name)``: other kernels give other last bits."""
    device = str(info.get("device") or "cpu")
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        kind = f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return kind


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def cache_line(model: Mapping[str, Any], label: str | None = None) -> str | None:
    """One terminal line about a model's cache use, from its model card in results.json
    (None for recorded outputs, which never compute anything). ``label``: the model's short
    name on the terminal (default its name); the cache folder is named by :func:`cache_dirs`."""
    stats = (model.get("info") or {}).get("cache")
    if not stats or str(stats.get("reason", "")).startswith("recorded outputs"):
        return None
    name = label or model["name"]
    if not stats.get("enabled"):
        return f"cache {name}: not used: {stats.get('reason')}"
    pairs = (stats.get("by_kind") or {}).get("pair")
    served = ""
    if pairs and pairs["hits"] + pairs["misses"]:
        served = f"{pairs['hits']}/{pairs['hits'] + pairs['misses']} pairs cached; "
    damaged = sum((stats.get("damaged") or {}).values())
    warning = ""
    if damaged:
        warning = (
            f"warning: {damaged} damaged entr{'y' if damaged == 1 else 'ies'} (failed the "
            "integrity check) not used, computed again; "
        )
    return (
        f"cache {name}: {warning}{served}{stats['hits']} hit(s), {stats['misses']} computed in "
        f"{stats['batches_computed']} batch(es)"
    )


def cache_dirs(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The cache folders the models of a run used (for one line naming them)."""
    found = [((m.get("info") or {}).get("cache") or {}).get("dir") for m in models]
    return list(dict.fromkeys(d for d in found if d))
