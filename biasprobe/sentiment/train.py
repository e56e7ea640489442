"""Train a sentiment classifier from a config: AdamW, evaluation, logs, checkpoints, resume.

One run writes one folder::

    config.yaml         the resolved config (overrides and --data applied)
    log.jsonl           one JSON object per line: {"kind": "train"|"eval"|"summary", ...}
    summary.json        the summary record (best validation accuracy, held-out test accuracy
                        with its 95% Wilson interval and n, times, ...)
    checkpoint.pt       model + optimiser + RNG + data position: an interrupted run resumes here
    model.safetensors   weights at the last step
    best.safetensors    weights at the step with the best validation accuracy
    .biasprobe-manifest.json  marks the folder as a biasprobe sentiment run (kind
                        "sentiment-run") and lists the files above; ``--overwrite`` replaces only
                        such a folder, and never one holding other files

Validation and test. The validation set that drives evaluation, early stopping (``patience``) and
the choice of ``best.safetensors`` is carved from the *training* data
(:func:`biasprobe.sentiment.data.split_validation`); the source's held-out split is touched once,
at the end, to measure the best weights' test accuracy.

:func:`biasprobe.sentiment.trained.load_trained` reads a folder back into a ready-to-use classifier
and its tokenizer (re-exported here); the folder bookkeeping lives in
:mod:`biasprobe.sentiment.train_io`.

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
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from biasprobe import fsio
from biasprobe.device import resolve_device
from biasprobe.errors import BiasprobeError, OutputError, RunFolderError, UsageError
from biasprobe.sentiment.config import TrainConfig, config_to_dict
from biasprobe.sentiment.data import (
    Batch,
    DataSource,
    ValidationSplit,
    batches,
    load_tokenizer,
    open_source,
    shuffled,
    split_validation,
)
from biasprobe.sentiment.train_io import (
    Memory,
    TrainingDiverged,
    TrainingInterrupted,
    TrainState,
    check_finite,
    check_out_dir,
    count_parameters,
    cpu_name,
    create_out_dir,
    finished_summary,
    read_log,
    save_weights,
    sync,
)
from biasprobe.sentiment.trained import (
    BEST_WEIGHTS,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FEATURES_FILE,
    FINAL_WEIGHTS,
    LOG_FILE,
    RUN_KIND,
    SUMMARY_FILE,
    TrainedModel,
    build_model,
    load_trained,
)
from biasprobe.stats import wilson_ci

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "BEST_WEIGHTS",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FEATURES_FILE",
    "FINAL_WEIGHTS",
    "LOG_FILE",
    "RUN_KIND",
    "SUMMARY_FILE",
    "TrainedModel",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_model",
    "count_parameters",
    "evaluate",
    "load_trained",
    "resolve_device",
    "train",
]


# --------------------------------------------------------------------------- evaluation


def evaluate(
    model: nn.Module,
    held_out: list[Batch],
    device: torch.device,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on pre-tokenised held-out batches.

    Args:
        model: a classifier with ``forward(input_ids, mask, labels=None) -> (loss, logits)``.
        held_out: the batches (on any device).
        device: where to run.
        on_batch: called as ``on_batch(batches done, batches)`` after every batch (progress).

    Returns:
        ``{"val_loss": ..., "val_accuracy": ..., "val_examples": ...}``.
    """
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for done, batch in enumerate(held_out, start=1):
            b = batch.to(device)
            _, logits = model(b.input_ids, b.mask)
            loss_sum += float(F.cross_entropy(logits.float(), b.labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == b.labels).sum())
            n += len(b)
            if on_batch is not None:
                on_batch(done, len(held_out))
    model.train(was_training)
    return {"val_loss": loss_sum / n, "val_accuracy": correct / n, "val_examples": n}


# --------------------------------------------------------------------------- training


def _train_stream(
    train_examples: Any, config: TrainConfig, tokenizer: Any, state: TrainState
) -> Iterator[Batch]:
    """Training batches from ``state``'s position on: epoch by epoch, each reshuffled."""
    d, t = config.data, config.train
    for epoch in range(state.epoch, t.epochs):
        examples = shuffled(train_examples(), d.shuffle_buffer, seed=t.seed * 1_000_003 + epoch)
        skip = state.batches_in_epoch * t.batch_size if epoch == state.epoch else 0
        if skip:
            examples = itertools.islice(examples, skip, None)
        else:
            state.batches_in_epoch = 0
        state.epoch = epoch
        yield from batches(examples, tokenizer, t.batch_size, d.max_length)
        state.epochs_completed = epoch + 1
        state.epoch, state.batches_in_epoch = epoch + 1, 0


def _test_batches(source: DataSource, config: TrainConfig, tokenizer: Any) -> list[Batch]:
    d = config.data
    examples = list(itertools.islice(source.held_out(), d.validation_size))
    if not examples:
        raise BiasprobeError(f"data source {source.name!r}: the held-out split is empty")
    return list(batches(examples, tokenizer, config.train.eval_batch_size, d.max_length))


@dataclass
class _Data:
    """Training stream (CDA applied), validation batches carved from it, held-out test batches."""

    train: Any  # callable -> iterator of Example
    train_size: int | None
    validation: list[Batch]
    test: list[Batch]
    split: ValidationSplit
    description: str
    augmented_added: int | None = None  # swapped twins added per epoch (CDA)


def _prepare_data(config: TrainConfig, tokenizer: Any, augment: str | None) -> _Data:
    d, t = config.data, config.train
    source = open_source(d.source, text_field=d.text, held_out_fraction=d.held_out_fraction)
    split = split_validation(source, d.validation_fraction, d.validation_size)
    validation = list(batches(split.validation, tokenizer, t.eval_batch_size, d.max_length))
    test = _test_batches(source, config, tokenizer)
    train, size, added = split.train, split.train_size, None
    if augment is not None:
        from biasprobe.sentiment.cda import augment as cda
        from biasprobe.sentiment.cda import load_swapper

        swapper = load_swapper(augment)
        if size is not None:  # in memory: materialise once, count the twins
            examples = list(cda(split.train(), swapper))
            added, size = len(examples) - size, len(examples)
            train = lambda: iter(examples)  # noqa: E731
        else:
            train, size = (lambda: cda(split.train(), swapper)), None
    description = f"{source.description}; validation carved from training: {split.method}"
    return _Data(train, size, validation, test, split, description, added)


def _progress(enabled: Any, total: int | None) -> Any:
    if not enabled:
        return None
    if not isinstance(enabled, bool):  # the caller's display (plain lines when not a tty)
        return enabled, total
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Metrics(ProgressColumn):
        """Loss and validation accuracy of the training bar (blank on the evaluation bar)."""

        def render(self, task: Any) -> Text:
            loss, acc = task.fields.get("loss"), task.fields.get("acc")
            return Text(f"loss {loss}  val acc {acc}" if loss else "")

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Metrics(),
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
    patience: int | None = None,
    augment: str | None = None,
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
        overwrite: replace the biasprobe run already in ``out_dir`` (never a folder biasprobe
            did not write).
        patience: replaces ``train.patience``: stop after this many evaluations in a row
            without a better validation accuracy (``None``: the config's value).
        augment: replaces ``data.augment`` (``"cda"``, ``"cda:gender"``): each training text
            with a group term is kept and added with the terms swapped
            (see :mod:`biasprobe.sentiment.cda`).

    Returns:
        The summary record (also written to ``summary.json`` and as the last log line).

    Raises:
        BiasprobeError: bad config, missing data, unavailable device, unwritable folder.
        TrainingInterrupted: on Ctrl-C, after saving a checkpoint.
    """
    import torch

    if patience is not None or augment is not None:
        from biasprobe.sentiment.config import apply_overrides

        sets = [] if patience is None else [f"train.patience={patience}"]
        sets += [] if augment is None else [f"data.augment={augment}"]
        config = apply_overrides(config, sets)
    from biasprobe.sentiment.cda import parse_augment

    axis = parse_augment(config.data.augment)
    out = Path(out_dir)
    config_dict = config_to_dict(config)
    # Everything that can fail on bad input is checked before the folder is created.
    resuming = check_out_dir(out, config_dict, overwrite)
    device = resolve_device(config.train.device)
    tokenizer = load_tokenizer(config.data.tokenizer)
    data = _prepare_data(config, tokenizer, axis)
    torch.manual_seed(config.train.seed)
    if model is None:
        model = build_model(config)
    run = _Run(config, out, model, device, data, config.train.patience, axis)
    run.tokenizer = tokenizer
    if resuming:
        run.resume()
        finished = finished_summary(out, run.state, config)
        if finished is not None:  # nothing left to train: say so, rewrite nothing
            return {**finished, "already_finished": True}
    create_out_dir(out, config.name, overwrite, resuming)
    return run.fit(resuming, progress)


class _Run:
    """One training run: the loop, evaluation, checkpoints and the summary."""

    def __init__(
        self,
        config: TrainConfig,
        out: Path,
        model: nn.Module,
        device: Any,
        data: _Data,
        patience: int | None,
        augment: str | None,
    ) -> None:
        import torch

        self.config, self.out, self.model, self.device, self.data = config, out, model, device, data
        self.patience = patience
        model.to(device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise UsageError(f"{config.path or 'config'}: model has no trainable parameters")
        t = config.train
        self.optimizer = torch.optim.AdamW(self.params, lr=t.lr, weight_decay=t.weight_decay)
        self.state = TrainState(augment=augment)
        self.memory: Memory | None = None
        self.log_file: Any = None
        self.tokenizer: Any = None
        self.grad_norm: float | None = None
        self.checkpoint_step: int | None = None  # step of the last checkpoint on disk
        self.bar: Any = None  # (rich Progress, total) while fit shows progress
        self.eval_task: Any = None

    def _eval_progress(self) -> Callable[[int, int], None] | None:
        """The per-batch callback of an evaluation: a second bar, shown while it runs."""
        if self.bar is None:
            return None
        progress = self.bar[0]
        if self.eval_task is None:
            self.eval_task = progress.add_task(
                "validation", total=len(self.data.validation), loss="", acc=""
            )
        progress.reset(self.eval_task, total=len(self.data.validation), visible=True)

        def update(done: int, total: int) -> None:
            progress.update(self.eval_task, completed=done, total=total)

        return update

    # ---------------------------------------------------------------- checkpoints and logs

    def resume(self) -> None:
        import torch

        from biasprobe.hub import explain_load_error

        path = self.out / CHECKPOINT_FILE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's source-line warnings before an error
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            stored = TrainState(**ckpt["state"])
        except Exception as e:
            raise RunFolderError(
                f"{path}: cannot resume from this checkpoint ({explain_load_error(e, '')}); "
                "choose another --out or pass --overwrite"
            ) from None
        if stored.augment != self.state.augment:
            raise OutputError(
                f"output folder {self.out} holds a run with augment {stored.augment!r}, not "
                f"{self.state.augment!r}, so it cannot be resumed; choose another --out or "
                "pass --overwrite"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        features = self.out / FEATURES_FILE
        if getattr(self.model, "freeze", False) and features.is_file():
            saved = torch.load(features, map_location="cpu", weights_only=True)
            self.model.__dict__["_feature_cache"] = {
                bytes.fromhex(k): f for k, f in zip(saved["keys"], saved["features"])
            }
        self.state = stored
        torch.set_rng_state(ckpt["rng_cpu"])
        if self.device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], self.device)
        self.state.resumed_at.append(self.state.step)
        self.checkpoint_step = self.state.step

    def log(self, rec: dict[str, Any]) -> None:
        self.log_file.write(json.dumps(rec) + "\n")
        self.log_file.flush()

    def checkpoint(self) -> None:
        import io

        import torch

        check_finite(self.model, self.state.step)  # a checkpoint never holds NaN weights
        self.state.peak_memory_bytes = self.memory.sample()
        cuda = self.device.type == "cuda"
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": dataclasses.asdict(self.state),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        fsio.atomic_write_bytes(self.out / CHECKPOINT_FILE, buffer.getvalue())
        save_weights(self.model, self.out / FINAL_WEIGHTS, self.state.step)
        cache = getattr(self.model, "_feature_cache", None)
        if cache:  # a frozen encoder's features: a resumed run need not encode the texts again
            buffer = io.BytesIO()
            keys = list(cache)
            torch.save(
                {
                    "keys": [k.hex() for k in keys],
                    "features": torch.stack([cache[k] for k in keys]),
                },
                buffer,
            )
            fsio.atomic_write_bytes(self.out / FEATURES_FILE, buffer.getvalue())
        self.checkpoint_step = self.state.step

    # ---------------------------------------------------------------- evaluation

    def evaluate(self) -> dict[str, float]:
        state = self.state
        sync(self.device)
        start = time.perf_counter()
        metrics = evaluate(self.model, self.data.validation, self.device, self._eval_progress())
        if self.bar is not None and self.eval_task is not None:
            self.bar[0].update(self.eval_task, visible=False)
        sync(self.device)
        state.eval_time_s += time.perf_counter() - start
        if not math.isfinite(metrics["val_loss"]):
            raise TrainingDiverged(
                f"the validation loss became {metrics['val_loss']} at step {state.step}"
            )
        state.last_eval_step = state.step
        state.last_val_accuracy, state.last_val_loss = metrics["val_accuracy"], metrics["val_loss"]
        if state.best_val_accuracy is None or metrics["val_accuracy"] > state.best_val_accuracy:
            state.best_val_accuracy = metrics["val_accuracy"]
            state.best_val_loss = metrics["val_loss"]
            state.best_step = state.step
            state.evals_since_best = 0
            save_weights(self.model, self.out / BEST_WEIGHTS, state.step)
        elif state.step > 0:
            state.evals_since_best += 1
        self.log(
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

    def test(self) -> dict[str, Any]:
        """Accuracy of the best weights on the untouched held-out split, with a Wilson CI."""
        from safetensors.torch import load_model

        load_model(self.model, str(self.out / BEST_WEIGHTS), strict=True)
        metrics = evaluate(self.model, self.data.test, self.device)
        n = metrics["val_examples"]
        correct = round(metrics["val_accuracy"] * n)
        low, high = wilson_ci(correct, n)
        positive = sum(int(b.labels.sum()) for b in self.data.test) / n
        return {
            "test_accuracy": metrics["val_accuracy"],
            "test_accuracy_ci_low": low,
            "test_accuracy_ci_high": high,
            "test_correct": correct,
            "test_examples": n,
            "test_loss": metrics["val_loss"],
            "test_majority_accuracy": max(positive, 1.0 - positive),
            "test_ci_method": "Wilson score interval, 95%",
        }

    # ---------------------------------------------------------------- the loop

    def _step(self, batch: Batch) -> float:
        import torch

        t = self.config.train
        state = self.state
        sync(self.device)
        start = time.perf_counter()
        batch = batch.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self.model(batch.input_ids, batch.mask, batch.labels)
        if loss is None:
            loss = torch.nn.functional.cross_entropy(logits, batch.labels)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):  # checked before the update: it is never applied
            raise TrainingDiverged(
                f"the training loss became {loss_value} at step {state.step + 1}"
            )
        loss.backward()
        self.grad_norm = None
        if t.grad_clip is not None:
            self.grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip))
        self.optimizer.step()
        sync(self.device)
        state.train_time_s += time.perf_counter() - start
        state.step += 1
        state.batches_in_epoch += 1
        state.examples_seen += len(batch)
        self.memory.sample()
        return loss_value

    def _log_train(self, window: list[float]) -> None:
        state = self.state
        rec = {
            "kind": "train",
            "step": state.step,
            "examples": state.examples_seen,
            "epoch": state.epoch,
            "train_loss": sum(window) / len(window),
            "lr": self.optimizer.param_groups[0]["lr"],
            "elapsed_s": state.train_time_s + state.eval_time_s,
            "train_time_s": state.train_time_s,
        }
        if self.grad_norm is not None:
            rec["grad_norm"] = self.grad_norm
        self.log(rec)

    def _total_steps(self) -> int | None:
        t = self.config.train
        total = t.max_steps
        if self.data.train_size:
            steps_per_epoch = math.ceil(self.data.train_size / t.batch_size)
            total = min(total or 10**18, steps_per_epoch * t.epochs)
        return total

    def _loop(self, bar: Any, task: Any) -> None:
        t, state = self.config.train, self.state
        window: list[float] = []
        stream = _train_stream(self.data.train, self.config, self.tokenizer, state)
        try:
            if state.step == 0:
                self.evaluate()  # the untrained model: the first point of every validation curve
            while not state.stopped_early and (t.max_steps is None or state.step < t.max_steps):
                batch = next(stream, None)
                if batch is None:
                    break
                loss_value = self._step(batch)
                window.append(loss_value)
                if state.step % t.log_every == 0:
                    self._log_train(window)
                    window = []
                if state.step % t.eval_every == 0:
                    self.evaluate()
                if state.step % t.checkpoint_every == 0:
                    self.checkpoint()
                if bar is not None:
                    acc = state.last_val_accuracy
                    bar[0].update(
                        task,
                        completed=state.step,
                        loss=f"{loss_value:.4f}",
                        acc="-" if acc is None else f"{acc:.4f}",
                    )
                if self.patience is not None and state.evals_since_best >= self.patience:
                    state.stopped_early = True
                    break
            if state.last_eval_step != state.step:
                self.evaluate()
            self.checkpoint()
        finally:
            stream.close()

    def fit(self, resuming: bool, progress: bool) -> dict[str, Any]:
        out = self.out
        records = read_log(out / LOG_FILE, self.state.step) if resuming else []
        fsio.atomic_write_text(
            out / CONFIG_FILE, yaml.safe_dump(config_to_dict(self.config), sort_keys=False)
        )
        self.log_file = (out / LOG_FILE).open("w", encoding="utf-8")
        for rec in records:
            self.log_file.write(json.dumps(rec) + "\n")
        self.log_file.flush()
        self.memory = Memory(self.device, self.state.peak_memory_bytes)
        bar = _progress(progress, self._total_steps())
        task = None
        if bar is not None:
            bar[0].start()
            task = bar[0].add_task(
                self.config.name,
                total=self._total_steps(),
                completed=self.state.step,
                loss="-",
                acc="-",
            )
        self.bar = bar
        self.model.train()
        try:
            self._loop(bar, task)
        except TrainingDiverged as e:
            self.log_file.close()
            raise TrainingDiverged(f"training diverged: {e.message}; {self._kept()}") from None
        except KeyboardInterrupt:
            self.checkpoint()
            self.log_file.close()
            raise TrainingInterrupted(
                f"interrupted at step {self.state.step}; checkpoint saved in {out}: run the "
                "same command again to resume"
            ) from None
        finally:
            if bar is not None:
                bar[0].stop()
        summary = self.summary()
        self.log(summary)
        self.log_file.close()
        fsio.atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return summary

    def _kept(self) -> str:
        """What a diverged run leaves in its folder, and what to do."""
        advice = "lower train.lr or set train.grad_clip, and train again with --overwrite"
        step = self.checkpoint_step
        if step is None or not (self.out / CHECKPOINT_FILE).is_file():
            return f"no checkpoint had been saved in {self.out} yet; {advice}"
        return (
            f"the last checkpoint, at step {step}, is kept unchanged in {self.out} "
            f"(nothing NaN was saved); {advice}"
        )

    def summary(self) -> dict[str, Any]:
        import torch

        config, state, data, device = self.config, self.state, self.data, self.device
        t, d = config.train, config.data
        n_total, n_trainable = count_parameters(self.model)
        n_val = sum(len(b) for b in data.validation)
        val_positive = sum(int(b.labels.sum()) for b in data.validation) / n_val
        test = self.test()
        return {
            "kind": "summary",
            "experiment": config.experiment,
            "name": config.name,
            "description": config.description,
            "model_kind": getattr(self.model, "kind", config.model.kind),
            "data_source": data.description,
            "train_examples": data.train_size,
            "augment": None if state.augment is None else f"cda:{state.augment}",
            "augmented_added": data.augmented_added,
            "validation_examples": n_val,
            "val_positive_fraction": val_positive,
            "val_majority_accuracy": max(val_positive, 1.0 - val_positive),
            "batch_size": t.batch_size,
            "max_length": d.max_length,
            "lr": t.lr,
            "steps": state.step,
            "examples_seen": state.examples_seen,
            "epochs_completed": (
                state.examples_seen / data.train_size
                if data.train_size
                else float(state.epochs_completed)
            ),
            "epochs": t.epochs,
            "max_steps": t.max_steps,
            "patience": self.patience,
            "stopped_early_by_patience": state.stopped_early,
            "best_val_accuracy": state.best_val_accuracy,
            "best_val_loss": state.best_val_loss,
            "best_step": state.best_step,
            "final_val_accuracy": state.last_val_accuracy,
            "final_val_loss": state.last_val_loss,
            **test,
            "train_time_s": state.train_time_s,
            "eval_time_s": state.eval_time_s,
            "train_examples_per_s": (
                state.examples_seen / state.train_time_s if state.train_time_s else None
            ),
            "peak_memory_mib": self.memory.sample() / 2**20,
            "memory_kind": self.memory.kind,
            "params_total": n_total,
            "params_trainable": n_trainable,
            "device": str(device),
            "device_name": (
                torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
            ),
            "cpu_threads": torch.get_num_threads(),
            "seed": t.seed,
            "resumed_at": state.resumed_at,
            "torch": torch.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
