"""Train a sentiment classifier from a config: AdamW, evaluation, logs, checkpoints, resume.

One run writes one folder::

    config.yaml         the resolved config (overrides and --data applied)
    log.jsonl           one JSON object per line: {"kind": "train"|"eval"|"summary", ...}
    summary.json        the summary record (best validation accuracy over training, times, ...)
    checkpoint.pt       model + optimiser + RNG + data position: an interrupted run resumes here
    model.safetensors   weights at the last step
    best.safetensors    weights at the step with the best validation accuracy

:func:`load_trained` reads a folder back into a ready-to-use classifier and its tokenizer.

Unlike the notebook the study comes from, which called ``optimizer.zero_grad()`` once before the
loop (so every step applied the sum of all gradients so far), gradients are zeroed before every
step here.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import json
import math
import os
import platform
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from biasprobe.errors import BiasprobeError, DeviceError, OutputError, RunFolderError, UsageError
from biasprobe.sentiment.config import TrainConfig, config_to_dict, parse_config
from biasprobe.sentiment.data import (
    Batch,
    DataSource,
    batches,
    load_tokenizer,
    open_source,
    shuffled,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "TrainedModel",
    "TrainingInterrupted",
    "count_parameters",
    "evaluate",
    "load_trained",
    "resolve_device",
    "train",
]

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
_RUN_FILES = (CONFIG_FILE, LOG_FILE, SUMMARY_FILE, CHECKPOINT_FILE, FINAL_WEIGHTS, BEST_WEIGHTS)
# Keys that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "device")}


class TrainingInterrupted(BiasprobeError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved and the run can be resumed."""

    exit_code = 130


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into an available ``torch.device``.

    Raises:
        DeviceError: the device is unknown or not available on this machine.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r}: CUDA is not available on this machine; use cpu")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r}: MPS is not available on this machine; use cpu")
    return device


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (all parameters, trainable parameters), each shared tensor counted once."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if platform.system() == "Darwin" else peak * 1024


class _Memory:
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

        now = torch.cuda.max_memory_allocated(self.device) if self.cuda else _rss_bytes()
        self.peak = max(self.peak, now)
        return self.peak


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    tmp = path.with_name(path.name + ".tmp")
    save_model(model, str(tmp))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def build_model(config: TrainConfig) -> nn.Module:
    """Build the classifier a config describes (random initialisation, or pretrained for bert).

    Raises:
        UsageError: the classifier rejects the config's arguments.
    """
    from biasprobe.sentiment.classifiers import build_classifier

    try:
        return build_classifier(config.model.kind, **config.model.kwargs)
    except (TypeError, ValueError) as e:
        where = config.path or "config"
        raise UsageError(f"{where}: model: cannot build {config.model.kind!r}: {e}") from e


# --------------------------------------------------------------------------- evaluation


def evaluate(model: nn.Module, held_out: list[Batch], device: torch.device) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on pre-tokenised held-out batches.

    Args:
        model: a classifier with ``forward(input_ids, mask, labels=None) -> (loss, logits)``.
        held_out: the batches (on any device).
        device: where to run.

    Returns:
        ``{"val_loss": ..., "val_accuracy": ..., "val_examples": ...}``.
    """
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for batch in held_out:
            b = batch.to(device)
            _, logits = model(b.input_ids, b.mask)
            loss_sum += float(F.cross_entropy(logits.float(), b.labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == b.labels).sum())
            n += len(b)
    model.train(was_training)
    return {"val_loss": loss_sum / n, "val_accuracy": correct / n, "val_examples": n}


# --------------------------------------------------------------------------- training


@dataclass
class _State:
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


def _config_diff(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    diffs = []
    for section in sorted(set(stored) | set(current)):
        a, b = stored.get(section), current.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if (section, key) not in _RESUMABLE_CHANGES and a.get(key) != b.get(key):
                    diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
        elif a != b:
            diffs.append(f"{section}: {a!r} -> {b!r}")
    return diffs


def _prepare_out_dir(out: Path, config_dict: dict[str, Any], overwrite: bool) -> bool:
    """Create or check the run folder; return True when a checkpoint is to be resumed."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder")
    if overwrite and out.is_dir():
        for name in _RUN_FILES:
            (out / name).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out}: {e}") from e
    ckpt, cfg = out / CHECKPOINT_FILE, out / CONFIG_FILE
    if not ckpt.exists():
        if any((out / name).exists() for name in (LOG_FILE, SUMMARY_FILE, FINAL_WEIGHTS)):
            raise OutputError(
                f"output folder {out} holds files of a run without a checkpoint to resume; "
                "choose another --out or pass --overwrite"
            )
        return False
    try:
        stored = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise RunFolderError(f"{cfg}: cannot read the config of the run to resume: {e}") from e
    diffs = _config_diff(stored or {}, config_dict)
    if diffs:
        raise OutputError(
            f"output folder {out} holds a run of a different config, so it cannot be resumed "
            f"({'; '.join(diffs)}); choose another --out or pass --overwrite"
        )
    return True


def _read_log(path: Path, upto_step: int) -> list[dict[str, Any]]:
    """Log records of an interrupted run up to its checkpoint (later ones are redone)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by the interruption
        if rec.get("kind") in ("train", "eval") and rec.get("step", 0) <= upto_step:
            records.append(rec)
    return records


def _train_stream(
    source: DataSource, config: TrainConfig, tokenizer: Any, state: _State
) -> Iterator[Batch]:
    """Training batches from ``state``'s position on: epoch by epoch, each reshuffled."""
    d, t = config.data, config.train
    for epoch in range(state.epoch, t.epochs):
        examples = shuffled(source.train(), d.shuffle_buffer, seed=t.seed * 1_000_003 + epoch)
        skip = state.batches_in_epoch * t.batch_size if epoch == state.epoch else 0
        if skip:
            examples = itertools.islice(examples, skip, None)
        else:
            state.batches_in_epoch = 0
        state.epoch = epoch
        yield from batches(examples, tokenizer, t.batch_size, d.max_length)
        state.epochs_completed = epoch + 1
        state.epoch, state.batches_in_epoch = epoch + 1, 0


def _held_out_batches(source: DataSource, config: TrainConfig, tokenizer: Any) -> list[Batch]:
    d = config.data
    examples = list(itertools.islice(source.held_out(), d.validation_size))
    if not examples:
        raise BiasprobeError(f"data source {source.name!r}: the held-out split is empty")
    return list(batches(examples, tokenizer, config.train.eval_batch_size, d.max_length))


def _progress(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val acc {task.fields[acc]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    return progress, total


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    model: nn.Module | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the classifier of ``config``, evaluating, logging and checkpointing as configured.

    If ``out_dir`` holds a checkpoint of the same config, training resumes from it, with the same
    data order, optimiser state and random state as an uninterrupted run (``train.max_steps`` and
    ``train.device`` may differ). Ctrl-C saves a checkpoint before stopping.

    Args:
        config: the validated config (apply ``--data``/``--max-steps`` with
            :func:`dataclasses.replace` or :func:`biasprobe.sentiment.config.apply_overrides`).
        out_dir: the run folder (created when missing).
        model: a classifier to train instead of building ``config.model`` (for experiments
            with custom modules; it must have the classifiers' ``forward``). Such a run cannot be
            reloaded with :func:`load_trained`.
        progress: show a progress bar on the terminal.
        overwrite: delete the run files already in ``out_dir`` first.

    Returns:
        The summary record (also written to ``summary.json`` and as the last log line).

    Raises:
        BiasprobeError: bad config, missing data, unavailable device, unwritable folder.
        TrainingInterrupted: on Ctrl-C, after saving a checkpoint.
    """
    import torch

    out = Path(out_dir)
    t, d = config.train, config.data
    config_dict = config_to_dict(config)
    resuming = _prepare_out_dir(out, config_dict, overwrite)
    device = resolve_device(t.device)
    source = open_source(d.source, text_field=d.text, held_out_fraction=d.held_out_fraction)
    tokenizer = load_tokenizer(d.tokenizer)

    torch.manual_seed(t.seed)
    if model is None:
        model = build_model(config)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UsageError(f"{config.path or 'config'}: model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    n_total, n_trainable = count_parameters(model)

    state = _State()
    if resuming:
        ckpt = torch.load(out / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = _State(**ckpt["state"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        state.resumed_at.append(state.step)
    records = _read_log(out / LOG_FILE, state.step) if resuming else []
    _atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(config_dict, sort_keys=False))
    log_file = (out / LOG_FILE).open("w", encoding="utf-8")
    for rec in records:
        log_file.write(json.dumps(rec) + "\n")
    log_file.flush()

    def log(rec: dict[str, Any]) -> None:
        log_file.write(json.dumps(rec) + "\n")
        log_file.flush()

    held_out = _held_out_batches(source, config, tokenizer)
    n_val = sum(len(b) for b in held_out)
    val_positive = sum(int(b.labels.sum()) for b in held_out) / n_val
    memory = _Memory(device, state.peak_memory_bytes)

    def checkpoint() -> None:
        state.peak_memory_bytes = memory.sample()
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": dataclasses.asdict(state),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }
        tmp = out / (CHECKPOINT_FILE + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, out / CHECKPOINT_FILE)
        _save_weights(model, out / FINAL_WEIGHTS)

    def run_eval() -> dict[str, float]:
        _sync(device)
        start = time.perf_counter()
        metrics = evaluate(model, held_out, device)
        _sync(device)
        state.eval_time_s += time.perf_counter() - start
        state.last_eval_step = state.step
        state.last_val_accuracy, state.last_val_loss = metrics["val_accuracy"], metrics["val_loss"]
        if state.best_val_accuracy is None or metrics["val_accuracy"] > state.best_val_accuracy:
            state.best_val_accuracy = metrics["val_accuracy"]
            state.best_val_loss = metrics["val_loss"]
            state.best_step = state.step
            _save_weights(model, out / BEST_WEIGHTS)
        log(
            {
                "kind": "eval",
                "step": state.step,
                "examples": state.examples_seen,
                "val_loss": metrics["val_loss"],
                "val_accuracy": metrics["val_accuracy"],
                "val_examples": metrics["val_examples"],
                "elapsed_s": state.train_time_s + state.eval_time_s,
                "train_time_s": state.train_time_s,
                "eval_time_s": state.eval_time_s,
            }
        )
        return metrics

    steps_per_epoch = math.ceil(source.train_size / t.batch_size) if source.train_size else None
    total = t.max_steps
    if steps_per_epoch is not None:
        total = min(total or 10**18, steps_per_epoch * t.epochs)
    bar = _progress(progress, total)
    task = None
    if bar is not None:
        bar[0].start()
        task = bar[0].add_task(config.name, total=total, completed=state.step, loss="-", acc="-")

    model.train()
    window: list[float] = []
    stream = _train_stream(source, config, tokenizer, state)
    try:
        if state.step == 0:
            run_eval()  # the untrained model: the first point of every validation curve
        while t.max_steps is None or state.step < t.max_steps:
            _sync(device)
            start = time.perf_counter()
            batch = next(stream, None)
            if batch is None:
                break
            batch = batch.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss, logits = model(batch.input_ids, batch.mask, batch.labels)
            if loss is None:
                loss = torch.nn.functional.cross_entropy(logits, batch.labels)
            loss.backward()
            grad_norm = None
            if t.grad_clip is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, t.grad_clip))
            optimizer.step()
            loss_value = float(loss.detach())
            _sync(device)
            state.train_time_s += time.perf_counter() - start
            state.step += 1
            state.batches_in_epoch += 1
            state.examples_seen += len(batch)
            memory.sample()
            if not math.isfinite(loss_value):
                raise BiasprobeError(
                    f"training diverged at step {state.step} (loss {loss_value}); "
                    "lower train.lr or set train.grad_clip"
                )
            window.append(loss_value)
            if state.step % t.log_every == 0:
                rec = {
                    "kind": "train",
                    "step": state.step,
                    "examples": state.examples_seen,
                    "epoch": state.epoch,
                    "train_loss": sum(window) / len(window),
                    "lr": optimizer.param_groups[0]["lr"],
                    "elapsed_s": state.train_time_s + state.eval_time_s,
                    "train_time_s": state.train_time_s,
                }
                if grad_norm is not None:
                    rec["grad_norm"] = grad_norm
                log(rec)
                window = []
            if state.step % t.eval_every == 0:
                run_eval()
            if state.step % t.checkpoint_every == 0:
                checkpoint()
            if bar is not None:
                acc = state.last_val_accuracy
                bar[0].update(
                    task,
                    completed=state.step,
                    loss=f"{loss_value:.4f}",
                    acc="-" if acc is None else f"{acc:.4f}",
                )
        if state.last_eval_step != state.step:
            run_eval()
        checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        log_file.close()
        raise TrainingInterrupted(
            f"interrupted at step {state.step}; checkpoint saved in {out}: run the same command "
            "again to resume"
        ) from None
    finally:
        if bar is not None:
            bar[0].stop()
        stream.close()

    summary = {
        "kind": "summary",
        "experiment": config.experiment,
        "name": config.name,
        "description": config.description,
        "model_kind": config.model.kind,
        "data_source": source.description,
        "train_examples": source.train_size,
        "validation_examples": n_val,
        "val_positive_fraction": val_positive,
        "val_majority_accuracy": max(val_positive, 1.0 - val_positive),
        "batch_size": t.batch_size,
        "max_length": d.max_length,
        "lr": t.lr,
        "steps": state.step,
        "examples_seen": state.examples_seen,
        "epochs_completed": (
            state.examples_seen / source.train_size
            if source.train_size
            else float(state.epochs_completed)
        ),
        "epochs": t.epochs,
        "max_steps": t.max_steps,
        "best_val_accuracy": state.best_val_accuracy,
        "best_val_loss": state.best_val_loss,
        "best_step": state.best_step,
        "final_val_accuracy": state.last_val_accuracy,
        "final_val_loss": state.last_val_loss,
        "train_time_s": state.train_time_s,
        "eval_time_s": state.eval_time_s,
        "train_examples_per_s": (
            state.examples_seen / state.train_time_s if state.train_time_s else None
        ),
        "peak_memory_mib": memory.sample() / 2**20,
        "memory_kind": memory.kind,
        "params_total": n_total,
        "params_trainable": n_trainable,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
        ),
        "cpu_threads": torch.get_num_threads(),
        "seed": t.seed,
        "resumed_at": state.resumed_at,
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    log(summary)
    log_file.close()
    _atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


# --------------------------------------------------------------------------- loading


@dataclass
class TrainedModel:
    """A trained classifier read back from its run folder.

    Attributes:
        model: the classifier, in eval mode.
        tokenizer: the WordPiece tokenizer it was trained with.
        config: the run's config.
        summary: the run's summary record (empty if the run did not finish).
        path: the run folder.
    """

    model: nn.Module
    tokenizer: Any
    config: TrainConfig
    summary: dict[str, Any]
    path: Path

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> Any:
        """Probability of the positive class for each text, as a NumPy float array."""
        import numpy as np
        import torch

        from biasprobe.sentiment.data import Example

        device = next(self.model.parameters()).device
        out = []
        examples = [Example(text, 0) for text in texts]
        with torch.no_grad():
            for b in batches(examples, self.tokenizer, batch_size, self.config.data.max_length):
                b = b.to(device)
                _, logits = self.model(b.input_ids, b.mask)
                out.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def load_trained(path: str | Path, *, which: str = "best", device: str = "cpu") -> TrainedModel:
    """Load a trained classifier from a run folder written by :func:`train`.

    Args:
        path: the run folder.
        which: ``"best"`` (weights at the best validation accuracy) or ``"final"`` (last step).
        device: where to put the model (``auto``, ``cpu``, ``cuda``, ...).

    Returns:
        A :class:`TrainedModel`.

    Raises:
        UsageError: ``which`` is not best/final.
        RunFolderError: the folder or one of its files is missing or unreadable.
    """
    from safetensors.torch import load_model

    if which not in ("best", "final"):
        raise UsageError(f"which={which!r}: expected 'best' or 'final'")
    folder = Path(path)
    cfg_path = folder / CONFIG_FILE
    weights = folder / (BEST_WEIGHTS if which == "best" else FINAL_WEIGHTS)
    for p in (cfg_path, weights):
        if not p.is_file():
            raise RunFolderError(
                f"{folder} is not a trained sentiment run: {p.name} is missing "
                f"(expected the folder written by 'biasprobe sentiment train')"
            )
    config = parse_config(cfg_path.read_text(encoding="utf-8"), str(cfg_path))
    summary: dict[str, Any] = {}
    if (folder / SUMMARY_FILE).is_file():
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
    model = build_model(config)
    try:
        load_model(model, str(weights), strict=True)
    except (RuntimeError, OSError) as e:
        raise RunFolderError(f"{weights}: cannot load the weights: {e}") from e
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, load_tokenizer(config.data.tokenizer), config, summary, folder)
