"""The run folder and bookkeeping of sentiment training: checking, creating and resuming the
folder, the checkpointed training state, the log, weights and memory/time measurements.

:mod:`biasprobe.sentiment.train` runs the loop; this module holds everything it reads and writes
around it (the folder layout is in :mod:`biasprobe.sentiment.trained`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from biasprobe import fsio
from biasprobe.errors import BiasprobeError, OutputError, RunFolderError
from biasprobe.sentiment.config import TrainConfig
from biasprobe.sentiment.trained import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    RUN_FILES,
    RUN_KIND,
    SUMMARY_FILE,
    nonfinite_parameters,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "RESUMABLE_CHANGES",
    "Memory",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_finite",
    "check_out_dir",
    "config_diff",
    "count_parameters",
    "cpu_name",
    "create_out_dir",
    "finished_summary",
    "read_log",
    "rss_bytes",
    "save_weights",
    "state_bytes",
    "sync",
]

# Keys that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "device"), ("train", "patience")}


class TrainingDiverged(BiasprobeError):
    """The loss, the validation loss or the weights became NaN or infinite: training stops,
    and the last checkpoint written before it (all finite) stays as it was."""


class TrainingInterrupted(BiasprobeError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved and the run can be resumed."""

    exit_code = 130


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (all parameters, trainable parameters), each shared tensor counted once."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def rss_bytes() -> int:
    """Current resident set size of this process (Linux), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if platform.system() == "Darwin" else peak * 1024


class Memory:
    """Peak memory of the run: CUDA max allocated on GPU, sampled peak RSS on CPU."""

    def __init__(self, device: torch.device, previous: int = 0) -> None:
        import torch

        self.device = device
        self.cuda = device.type == "cuda"
        self.peak = previous
        self.kind = "cuda_max_allocated" if self.cuda else "peak_rss"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> int:
        import torch

        now = torch.cuda.max_memory_allocated(self.device) if self.cuda else rss_bytes()
        self.peak = max(self.peak, now)
        return self.peak


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def state_bytes(model: nn.Module) -> bytes:
    """The model's weights as safetensors bytes (tied tensors stored once)."""
    from safetensors.torch import _remove_duplicate_names, save

    state = dict(model.state_dict())
    metadata: dict[str, str] = {}
    for kept, removed in _remove_duplicate_names(state).items():
        for name in removed:  # as safetensors.torch.save_model does, so load_model reads it
            metadata[name] = kept
            del state[name]
    return save({k: v.contiguous() for k, v in state.items()}, metadata=metadata or None)


def check_finite(model: nn.Module, step: int) -> None:
    """Raise :class:`TrainingDiverged` when any weight is NaN or infinite (never saved)."""
    bad = nonfinite_parameters(model)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise TrainingDiverged(f"the weights became NaN or infinite at step {step} (in {shown})")


def save_weights(model: nn.Module, path: Path, step: int) -> None:
    check_finite(model, step)
    fsio.atomic_write_bytes(path, state_bytes(model))


@dataclass
class TrainState:
    """Everything a checkpoint stores besides model and optimiser weights."""

    step: int = 0
    epoch: int = 0  # epoch in progress (0-based)
    batches_in_epoch: int = 0  # batches of the current epoch already trained on
    examples_seen: int = 0
    epochs_completed: int = 0
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    last_eval_step: int | None = None
    last_val_accuracy: float | None = None
    last_val_loss: float | None = None
    peak_memory_bytes: int = 0
    resumed_at: list[int] = dataclasses.field(default_factory=list)
    evals_since_best: int = 0  # evaluations without a better validation accuracy
    stopped_early: bool = False  # early stopping (patience) ended the run
    augment: str | None = None  # CDA axis of the run, checked on resumption


def config_diff(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    diffs = []
    for section in sorted(set(stored) | set(current)):
        a, b = stored.get(section), current.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if (section, key) not in RESUMABLE_CHANGES and a.get(key) != b.get(key):
                    diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
        elif a != b:
            diffs.append(f"{section}: {a!r} -> {b!r}")
    return diffs


def check_out_dir(out: Path, config_dict: dict[str, Any], overwrite: bool) -> bool:
    """Check the run folder without touching it; return True when a checkpoint is to be resumed.

    An existing non-empty folder is used only when biasprobe wrote it (its manifest has kind
    ``sentiment-run``): with ``overwrite`` it is replaced, provided it holds no other files;
    without, its checkpoint is resumed.

    Raises:
        OutputError: not a folder, or a non-empty folder that cannot be resumed (exit 1).
        fsio.NotOwnedError: ``overwrite`` of a folder biasprobe did not write (exit 2).
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if overwrite:
        fsio.check_output_folder(out, True, kinds=(RUN_KIND,), what="sentiment run folder")
        return False
    if fsio.read_manifest(out) is None or fsio.foreign_files(out, (RUN_KIND,)) is None:
        raise OutputError(
            f"output folder {out} is not empty and is not a sentiment run written by biasprobe "
            "(no manifest); choose another --out"
        )
    ckpt, cfg = out / CHECKPOINT_FILE, out / CONFIG_FILE
    if ckpt.exists() and not ckpt.is_file():
        raise OutputError(f"{ckpt} is not a regular file; choose another --out")
    if not ckpt.exists():
        raise OutputError(
            f"output folder {out} holds a run without a checkpoint to resume; "
            "choose another --out or pass --overwrite"
        )
    try:
        stored = yaml.safe_load(fsio.read_regular_text(cfg, what="run config"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, fsio.NotRegularFileError) as e:
        raise RunFolderError(f"{cfg}: cannot read the config of the run to resume: {e}") from e
    diffs = config_diff(stored or {}, config_dict)
    if diffs:
        raise OutputError(
            f"output folder {out} holds a run of a different config, so it cannot be resumed "
            f"({'; '.join(diffs)}); choose another --out or pass --overwrite"
        )
    return True


def create_out_dir(out: Path, name: str, overwrite: bool, resuming: bool) -> None:
    """Empty a checked biasprobe run folder (``overwrite``) or create it; write its manifest."""
    manifest = fsio.read_manifest(out) if out.is_dir() else None
    if overwrite and manifest is not None:
        for rel in manifest["files"]:
            (out / rel).unlink(missing_ok=True)
        (out / fsio.MANIFEST).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not resuming:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        fsio.write_manifest(out, RUN_KIND, f"{name}-{stamp}", files=RUN_FILES)


def read_log(path: Path, upto_step: int) -> list[dict[str, Any]]:
    """Log records of an interrupted run up to its checkpoint (later ones are redone)."""
    if not path.is_file():
        return []
    records = []
    text = fsio.read_regular_text(path, what="training log")
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by the interruption
        if rec.get("kind") in ("train", "eval") and rec.get("step", 0) <= upto_step:
            records.append(rec)
    return records


def finished_summary(out: Path, state: TrainState, config: TrainConfig) -> dict[str, Any] | None:
    """The stored summary of a run that has nothing left to train (its summary was written
    at the step it stands at, and its epochs, ``max_steps`` or patience are used up), else
    None (an interrupted run, or one given a larger ``--max-steps``)."""
    path = out / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        summary = json.loads(fsio.read_regular_text(path, what="summary"))
    except (OSError, ValueError, fsio.NotRegularFileError):
        return None
    t = config.train
    done = (
        state.stopped_early
        or state.epochs_completed >= t.epochs
        or (t.max_steps is not None and state.step >= t.max_steps)
    )
    if not isinstance(summary, dict) or summary.get("steps") != state.step or not done:
        return None
    return summary
