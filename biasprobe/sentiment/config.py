"""Training configurations: a YAML schema validated into frozen dataclasses.

A config file has four sections; unknown keys are errors and every error names ``file:line``::

    experiment: 1                # number in the study (sorts the results table)
    name: gru-encoder            # short label used in figures and tables
    description: GRU encoder only
    model:
      kind: gru_encoder          # gru_encoder | gru_attention | transformer | bert | bow
      embedding_size: 256        # any other key is passed to the classifier's constructor
    data:
      source: amazon_polarity    # or rotten_tomatoes, a folder, a .csv/.tsv/.jsonl file
      text: content              # title | content | both (Amazon data)
      tokenizer: bert-base-uncased
      max_length: 256
      validation_size: 10000     # at most this many validation (and held-out test) examples
      held_out_fraction: 0.1     # single-file sources only: share held out as the test split
      validation_fraction: 0.1   # share of the training texts carved out for validation
      augment: null              # cda or cda:AXIS: counterfactual data augmentation
      shuffle_buffer: 100000
    train:
      batch_size: 512
      lr: 1.0e-5
      weight_decay: 0.01
      epochs: 1
      max_steps: null            # stop early after this many optimiser steps
      grad_clip: null            # max gradient L2 norm, or null for no clipping
      eval_every: 500
      eval_batch_size: 512
      checkpoint_every: 500
      log_every: 1
      seed: 0
      device: auto               # auto | cpu | cuda | cuda:N | mps
      patience: null             # early stopping after this many evaluations without progress
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from biasprobe.errors import Problem, ProblemsError, UsageError
from biasprobe.sentiment.kinds import CLASSIFIER_CLASSES, MODEL_KINDS
from biasprobe.yamlschema import (
    INVALID,
    Problems,
    check_nodes,
    compose,
    mapping,
    plain_value,
    shown,
    suggest,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "TrainSettings",
    "MODEL_KINDS",
    "apply_overrides",
    "config_to_dict",
    "load_config",
    "parse_config",
]


class ConfigError(ProblemsError, UsageError):
    """A training config is missing or invalid; carries every problem found."""

    title = "invalid training config"


@dataclass(frozen=True)
class ModelConfig:
    """Which classifier to build and the keyword arguments of its constructor."""

    kind: str  # one of MODEL_KINDS
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to build_classifier


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it is tokenised."""

    source: str = "amazon_polarity"  # see biasprobe.sentiment.data.open_source
    text: str = "content"  # title | content | both (Amazon data)
    tokenizer: str = "bert-base-uncased"  # packaged vocab, or a folder with vocab.txt
    max_length: int = 256  # tokens per sequence, [CLS]/[SEP] included
    validation_size: int = 10_000  # most validation examples (and held-out test examples)
    held_out_fraction: float = 0.1  # single-file sources: share of texts held out (the test)
    validation_fraction: float = 0.1  # share of the training texts carved out for validation
    shuffle_buffer: int = 100_000  # training examples shuffled at once
    augment: str | None = None  # null, or cda / cda:AXIS: counterfactual data augmentation


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation, evaluation and checkpoint schedule."""

    batch_size: int = 512
    lr: float = 1e-5  # AdamW learning rate (constant, as in the study)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    epochs: int = 1  # passes over the training data
    max_steps: int | None = None  # stop after this many optimiser steps
    grad_clip: float | None = None  # clip the gradients' global L2 norm to this
    eval_every: int = 500  # optimiser steps between evaluations
    eval_batch_size: int = 512
    checkpoint_every: int = 500  # optimiser steps between resumable checkpoints
    log_every: int = 1  # steps averaged into one train-loss log line
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    patience: int | None = None  # early stopping: evaluations without a better val accuracy


@dataclass(frozen=True)
class TrainConfig:
    """One training run: one experiment of the study."""

    experiment: int
    name: str
    model: ModelConfig
    data: DataConfig = DataConfig()
    train: TrainSettings = TrainSettings()
    description: str = ""
    path: str | None = None  # the YAML file it was read from


_SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainSettings}
_TOP_KEYS = ("experiment", "name", "description", "model", "data", "train")
#: Largest count a config may give (sizes, steps, lengths): tokenizers and torch index with
#: 32-bit integers.
MAX_INT = 2**31 - 1
#: Largest learning rate and weight decay (AdamW's step must stay within float32).
MAX_RATE = 1_000
#: Largest seed magnitude (torch.manual_seed takes 64-bit seeds).
MAX_SEED = 2**63 - 1
#: Most parameters a classifier built from a config may have: training one holds weights,
#: gradients and two AdamW moments, 16 bytes per parameter (16 GB at this limit).
MAX_PARAMETERS = 1_000_000_000
#: Most layers of a classifier (every layer is a module object, built before training).
MAX_LAYERS = 256
_POSITIVE_INT = {
    "max_length",
    "validation_size",
    "shuffle_buffer",
    "batch_size",
    "epochs",
    "eval_every",
    "eval_batch_size",
    "checkpoint_every",
    "log_every",
    "patience",
}


def _classifier_parameters(kind: str) -> dict[str, inspect.Parameter] | None:
    """Constructor parameters of the classifier ``kind``, or None when it cannot be inspected."""
    try:
        from biasprobe.sentiment import classifiers
    except ImportError:
        return None
    cls = getattr(classifiers, CLASSIFIER_CLASSES[kind], None)
    if cls is None:
        return None
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return params


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _check_value(name: str, value: Any, annotation: str) -> str | None:
    """Return a message when ``value`` does not fit the field annotation (as a string)."""
    optional = "None" in annotation
    if value is None:
        return None if optional else "must not be null"
    if "int" in annotation and "float" not in annotation:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, found {shown(value)}"
        if name in _POSITIVE_INT or name == "max_steps":
            if value < 1:
                return f"expected an integer >= 1, found {value}"
            if value > MAX_INT:
                return f"expected an integer <= {MAX_INT:,}, found {value}"
        elif not -MAX_SEED <= value <= MAX_SEED:
            return f"expected an integer from {-MAX_SEED:,} to {MAX_SEED:,}, found {value}"
        return None
    if "float" in annotation:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, found {shown(value)}"
        if not math.isfinite(value):
            return f"expected a finite number, found {value}"
        if name == "lr" and not 0 < value <= MAX_RATE:
            return f"expected a number > 0 and at most {MAX_RATE:,}, found {value}"
        if name in ("weight_decay",) and not 0 <= value <= MAX_RATE:
            return f"expected a number from 0 to {MAX_RATE:,}, found {value}"
        if name == "grad_clip" and not value > 0:
            return f"expected a number > 0 or null, found {value}"
        if name in ("held_out_fraction", "validation_fraction") and not 0 < value < 1:
            return f"expected a number in (0, 1), found {value}"
        return None
    if "str" in annotation:
        if not isinstance(value, str):
            return f"expected a string, found {shown(value)}"
        if name == "text" and value not in ("title", "content", "both"):
            return f"expected one of title, content, both; found {shown(value)}"
        if name == "augment":
            from biasprobe.sentiment.cda import parse_augment

            try:
                parse_augment(value)
            except UsageError as e:
                return e.message.replace("--augment ", "")
        return None
    return None


_HOLDS = "training configs hold only plain strings, numbers, lists and mappings"
_TITLE = "invalid training config"


def parse_config(text: str, path: str = "<config>") -> TrainConfig:
    """Validate YAML text into a :class:`TrainConfig`.

    Args:
        text: the YAML document.
        path: name used in error messages.

    Returns:
        The validated config.

    Raises:
        ConfigError: with every problem found, each as ``file:line: message``.
    """
    problems = Problems(path)
    root = compose(text, problems)
    if root is not None:
        check_nodes(root, problems, _HOLDS)
    if root is not None and not isinstance(root, yaml.MappingNode):
        problems.add(root, "expected a mapping")
    if root is None and not problems:
        problems.add(1, "expected a mapping")
    if problems:
        raise problems.error(ConfigError, _TITLE)
    assert root is not None
    top = mapping(root, problems, _TOP_KEYS) or {}
    values: dict[str, Any] = {}
    for key, tp in (("experiment", int), ("name", str), ("description", str)):
        if key not in top:
            if key != "description":
                problems.add(root, f"missing required key {key!r} ({_type_name(tp)})")
            continue
        value = plain_value(top[key][1], problems, key)
        if value is INVALID:
            continue
        if isinstance(value, bool) or not isinstance(value, tp):
            problems.add(top[key][1], f"{key}: expected {_type_name(tp)}, found {shown(value)}")
        else:
            values[key] = value
    model = _model(top, root, problems)
    for section, cls in _SECTIONS.items():
        if section not in top:
            values[section] = cls()
        else:
            built = _section(section, cls, top[section][1], problems)
            if built is not None:
                values[section] = built
    if model is not None and "data" in values:
        _check_positions(model, values["data"], top, problems)
    if problems:
        raise problems.error(ConfigError, _TITLE)
    assert model is not None
    return TrainConfig(model=model, path=path, **values)


def _model(
    top: dict[str, tuple[yaml.Node, yaml.Node]], root: yaml.Node, problems: Problems
) -> ModelConfig | None:
    """The ``model:`` section: a known kind and the keyword arguments its constructor takes."""
    if "model" not in top:
        problems.add(
            root, f"missing required section 'model' with a 'kind' ({', '.join(MODEL_KINDS)})"
        )
        return None
    mnode = top["model"][1]
    if not isinstance(mnode, yaml.MappingNode):
        problems.add(mnode, "model: expected a mapping with 'kind' and the classifier's arguments")
        return None
    mkeys = mapping(mnode, problems, None, where="model") or {}
    kind = plain_value(mkeys["kind"][1], problems, "model.kind") if "kind" in mkeys else None
    if kind is None:
        problems.add(mnode, f"model: missing 'kind' ({', '.join(MODEL_KINDS)})")
    elif kind is INVALID:
        kind = None
    elif not isinstance(kind, str) or kind not in MODEL_KINDS:
        problems.add(
            mkeys["kind"][1],
            f"model.kind: unknown kind {shown(kind)}; expected one of {', '.join(MODEL_KINDS)}",
        )
        kind = None
    params = _classifier_parameters(kind) if kind else None
    kwargs: dict[str, Any] = {}
    for key, (knode, vnode) in mkeys.items():
        if key == "kind":
            continue
        if params is not None and key not in params:
            problems.add(
                knode,
                f"model: unknown key {shown(key)} for kind {kind!r}{suggest(key, params)}; "
                f"expected one of {', '.join(params)}",
            )
            continue
        value = plain_value(vnode, problems, f"model.{key}")
        if value is INVALID:
            continue
        message = _check_model_value(key, value, params[key]) if params is not None else None
        if message:
            problems.add(vnode, f"model.{key}: {message}")
            continue
        kwargs[key] = value
    if kind is None:
        return None
    if not problems:
        message = _check_model_size(kind, kwargs)
        if message:
            problems.add(mnode, f"model: {message}")
            return None
    return ModelConfig(kind=kind, kwargs=kwargs)


def _check_model_value(name: str, value: Any, param: inspect.Parameter) -> str | None:
    """A message when a classifier argument does not fit its default's type and range."""
    default = param.default
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, found {shown(value)}"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, found {shown(value)}"
        if name == "num_labels":
            return None if value == 2 else f"expected 2 (negative, positive), found {value}"
        top = MAX_LAYERS if name == "num_layers" else MAX_INT
        if value < 1:
            return f"expected an integer >= 1, found {value}"
        if value > top:
            return f"expected an integer <= {top:,}, found {value}"
        return None
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, found {shown(value)}"
        if not math.isfinite(value):
            return f"expected a finite number, found {value}"
        if name == "dropout" and not 0 <= value < 1:
            return f"expected a number in [0, 1), found {value}"
        return None
    if isinstance(default, str) and not isinstance(value, str):
        return f"expected a string, found {shown(value)}"
    return None


def _check_model_size(kind: str, kwargs: dict[str, Any]) -> str | None:
    """A message when the classifier cannot be built or is too large to train.

    It is built on torch's ``meta`` device (shapes only, no memory), so an embedding table of
    10¹² rows is counted, not allocated. A pretrained encoder (``bert``) is sized by its own
    checkpoint when it is loaded (:func:`biasprobe.hub.check_config_plausible`).
    """
    if kind == "bert":
        return None
    try:
        import torch

        from biasprobe.sentiment.classifiers import build_classifier
    except ImportError:
        return None
    try:
        with torch.device("meta"):
            model = build_classifier(kind, **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        return f"cannot build {kind!r}: {e}"
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_PARAMETERS:
        return (
            f"a {kind!r} classifier with these sizes has {n:,} parameters, more than the "
            f"{MAX_PARAMETERS:,} biasprobe trains (16 bytes each with AdamW); use smaller sizes"
        )
    return None


def _section(section: str, cls: type, node: yaml.Node, problems: Problems) -> Any:
    """A ``data:`` or ``train:`` section built into its dataclass, or None when invalid."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{section}: expected a mapping")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, (_, vnode) in (mapping(node, problems, fields, where=section) or {}).items():
        value = plain_value(vnode, problems, f"{section}.{key}")
        if value is INVALID:
            continue
        annotation = str(fields[key].type)
        if isinstance(value, str) and "float" in annotation:
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it spells.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            if "float" in annotation and "int" not in annotation:
                value = float(value)
        message = _check_value(key, value, annotation)
        if message:
            problems.add(vnode, f"{section}.{key}: {message}")
            continue
        kwargs[key] = value
    return cls(**kwargs)


def _check_positions(
    model: ModelConfig,
    data: DataConfig,
    top: dict[str, tuple[yaml.Node, yaml.Node]],
    problems: Problems,
) -> None:
    """A Transformer's position table must hold ``data.max_length`` tokens."""
    if model.kind != "transformer":
        return
    positions = model.kwargs.get("sequence_length", 256)
    if isinstance(positions, int) and positions < data.max_length:
        mnode = top["model"][1]
        node = next((v for k, v in mnode.value if k.value == "sequence_length"), mnode)
        problems.add(
            node,
            f"model.sequence_length: {positions} positions cannot hold data.max_length "
            f"{data.max_length} tokens; expected sequence_length >= max_length",
        )


#: Largest config file read (a config is a few hundred bytes).
CONFIG_LIMIT = 1_000_000


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config file.

    Args:
        path: the YAML file.

    Returns:
        The validated :class:`TrainConfig`.

    Raises:
        ConfigError: the file is missing, unreadable or invalid.
    """
    from biasprobe.fsio import NotRegularFileError, read_regular_text

    p = Path(path)
    try:
        text = read_regular_text(p, limit=CONFIG_LIMIT, what="config file")
    except FileNotFoundError:
        raise ConfigError([Problem(str(p), None, "config file not found")]) from None
    except NotRegularFileError as e:
        raise ConfigError([Problem(str(p), None, e.message)]) from None
    except OSError as e:
        raise ConfigError([Problem(str(p), None, f"cannot read config file: {e}")]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(str(p), None, f"not UTF-8 text ({e.reason})")]) from None
    return parse_config(text, str(p))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain data, in the YAML layout (``path`` left out)."""
    return {
        "experiment": config.experiment,
        "name": config.name,
        "description": config.description,
        "model": {"kind": config.model.kind, **config.model.kwargs},
        "data": dataclasses.asdict(config.data),
        "train": dataclasses.asdict(config.train),
    }


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML) and re-validate.

    Args:
        config: the loaded config.
        overrides: e.g. ``["train.batch_size=32", "data.max_length=128"]``.

    Returns:
        A new validated config.

    Raises:
        UsageError: an override is not of the form ``section.key=value``.
        ConfigError: the result is invalid (problems name ``--set``).
    """
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts) or len(parts) > 2:
            raise UsageError(
                f"--set {item!r}: expected SECTION.KEY=VALUE (e.g. train.batch_size=32) "
                "or a top-level KEY=VALUE"
            )
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as e:
            raise UsageError(f"--set {item!r}: value is not valid YAML ({shown(str(e))})") from e
        if len(parts) == 1:
            data[parts[0]] = value
        else:
            section = data.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise UsageError(f"--set {item!r}: {parts[0]!r} is not a section")
            section[parts[1]] = value
    try:
        new = parse_config(yaml.safe_dump(data, sort_keys=False), "--set")
    except ConfigError as e:
        # Line numbers would point into a generated document: drop them, keep the key names.
        raise ConfigError([Problem("--set", None, p.message) for p in e.problems]) from None
    return dataclasses.replace(new, path=config.path)
