"""Sentiment training: data, config validation, the training loop, resume, outputs, CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.util
import json
import random
from pathlib import Path

import pytest
import scipy.stats
import torch
from torch import nn
from typer.testing import CliRunner

from biasprobe.errors import BiasprobeError, UsageError
from biasprobe.sentiment.cli import app
from biasprobe.sentiment.config import ConfigError, apply_overrides, load_config, parse_config
from biasprobe.sentiment.data import (
    DataUnavailableError,
    batches,
    load_tokenizer,
    open_source,
    packaged_vocab_dir,
    shuffled,
)
from biasprobe.sentiment.train import TrainingInterrupted, load_trained, train

REPO = Path(__file__).resolve().parents[1]
SHARED_VOCAB = REPO.parent / "shared" / "data" / "pair-fill-in-the-blank" / "vocab.txt"
CONFIGS = sorted((REPO / "configs" / "sentiment").glob("*.yaml"))

POSITIVE = ["great", "wonderful", "superb", "delightful", "excellent", "moving", "brilliant"]
NEGATIVE = ["awful", "boring", "dreadful", "terrible", "dull", "tedious", "horrible"]
NOUNS = ["film", "movie", "story", "cast", "ending", "script", "plot", "score"]


def _sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = POSITIVE if label else NEGATIVE
        rows.append((f"the {rng.choice(NOUNS)} was {rng.choice(words)} number {i}", label))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, int]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


class MeanPoolClassifier(nn.Module):
    """Tiny classifier with the classifiers' forward contract (mean of embeddings, dropout)."""

    def __init__(self, vocabulary_size: int = 30522, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, dim)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(dim, 2)
        self.fail_at_call: int | None = None
        self.calls = 0

    def forward(self, input_ids, mask, labels=None):
        if self.training:
            self.calls += 1
            if self.fail_at_call is not None and self.calls == self.fail_at_call:
                raise KeyboardInterrupt
        m = mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (self.embedding(input_ids) * m).sum(1) / m.sum(1)  # (B, dim)
        logits = self.head(self.dropout(pooled))  # (B, 2)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return loss, logits


def _model() -> MeanPoolClassifier:
    torch.manual_seed(11)  # injected models are initialised by the caller
    return MeanPoolClassifier()


def _config(data: Path, **train_kwargs):
    base = {
        "batch_size": 8,
        "lr": 0.05,
        "eval_every": 3,
        "eval_batch_size": 16,
        "checkpoint_every": 100,
        "seed": 3,
        "device": "cpu",
    }
    base.update(train_kwargs)
    text = (
        "experiment: 1\nname: tiny\nmodel:\n  kind: gru_encoder\n"
        f"data:\n  source: {json.dumps(str(data))}\n  max_length: 16\n"
        "  validation_size: 64\n  held_out_fraction: 0.25\n  shuffle_buffer: 1000\n"
        "train:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in base.items())
    )
    return parse_config(text, "tiny.yaml")


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def _has_classifiers() -> bool:
    try:
        from biasprobe.sentiment.classifiers import build_classifier  # noqa: F401
    except ImportError:
        return False
    return True


needs_classifiers = pytest.mark.skipif(
    not _has_classifiers(), reason="biasprobe.sentiment.classifiers is not available"
)

# --------------------------------------------------------------------------- data


def test_packaged_vocab_is_the_bert_base_uncased_vocab():
    packaged = (packaged_vocab_dir() / "vocab.txt").read_bytes()
    assert len(packaged.splitlines()) == 30522
    if SHARED_VOCAB.is_file():
        assert packaged == SHARED_VOCAB.read_bytes()


def test_tokenizer_ids_match_vocab_lines():
    lines = (packaged_vocab_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {tok: i for i, tok in enumerate(lines)}
    tok = load_tokenizer()
    ids = tok("Hello World")["input_ids"]
    assert ids == [index["[CLS]"], index["hello"], index["world"], index["[SEP]"]]


def test_tokenizer_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="no vocab.txt"):
        load_tokenizer(str(tmp_path))


def test_amazon_csv_layout_labels_and_text_fields(tmp_path):
    rows = [("2", "Great", "Loved it."), ("1", "Bad", "Broke at once, sadly.")]
    for name in ("train.csv", "test.csv"):
        with (tmp_path / name).open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    src = open_source(str(tmp_path), text_field="both")
    got = [(e.text, e.label) for e in src.train()]
    assert got == [("Great. Loved it.", 1), ("Bad. Broke at once, sadly.", 0)]
    assert [e.text for e in open_source(str(tmp_path), text_field="title").held_out()] == [
        "Great",
        "Bad",
    ]


def test_amazon_csv_bad_row_names_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text('"2","t","c"\n"5","t","c"\n')
    (tmp_path / "test.csv").write_text('"1","t","c"\n')
    with pytest.raises(DataUnavailableError, match=r"train\.csv:2: expected 3 columns label"):
        list(open_source(str(tmp_path)).train())


def test_amazon_csv_folder_without_files(tmp_path):
    (tmp_path / "train.csv").write_text('"2","t","c"\n')
    with pytest.raises(DataUnavailableError, match="missing test.csv"):
        open_source(str(tmp_path))


def test_held_out_split_is_disjoint_deterministic_and_keeps_duplicates_together(tmp_path):
    rows = _sentiment_rows(400) + [("the same text twice", 1)] * 2
    src = open_source(str(_write_csv(tmp_path / "d.csv", rows)), held_out_fraction=0.2)
    train_texts = [e.text for e in src.train()]
    held = [e.text for e in src.held_out()]
    assert not set(train_texts) & set(held)
    assert len(train_texts) + len(held) == len(rows)
    assert 40 <= len(held) <= 120  # about 20 % of 402
    again = open_source(str(tmp_path / "d.csv"), held_out_fraction=0.2)
    assert [e.text for e in again.held_out()] == held


def test_labelled_file_with_bad_label(tmp_path):
    path = _write_csv(tmp_path / "d.csv", [("fine", 1), ("meh", 7)])
    with pytest.raises(DataUnavailableError, match=r"d\.csv:3: label '7'"):
        open_source(str(path))


def test_missing_data_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="not found: expected 'amazon_polarity'"):
        open_source(str(tmp_path / "nowhere.csv"))


def test_hub_source_without_datasets_names_the_offline_alternatives():
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("the datasets package is installed here")
    with pytest.raises(DataUnavailableError, match="needs the 'datasets' package.*--data"):
        open_source("amazon_polarity")


def test_shuffled_is_a_seeded_permutation_with_a_small_buffer():
    items = list(range(100))
    a = list(shuffled(items, buffer_size=10, seed=1))
    assert sorted(a) == items and a != items
    assert a == list(shuffled(items, buffer_size=10, seed=1))
    assert a != list(shuffled(items, buffer_size=10, seed=2))


def test_batches_pad_truncate_and_mask(tmp_path):
    src = open_source(str(_write_csv(tmp_path / "d.csv", _sentiment_rows(40))))
    examples = list(src.train())[:5]
    out = list(batches(examples, load_tokenizer(), batch_size=2, max_length=6))
    assert [len(b) for b in out] == [2, 2, 1]
    for b in out:
        assert b.input_ids.shape == b.mask.shape and b.input_ids.shape[1] == 6
        assert b.input_ids.dtype == torch.long and (b.input_ids[:, 0] == 101).all()
        assert (b.input_ids[:, -1] == 102).all()  # truncated: every text is longer than 6
    assert [x for b in out for x in b.labels.tolist()] == [e.label for e in examples]
    short = next(batches(examples[:1], load_tokenizer(), 1, 64))
    assert short.mask.sum().item() == short.input_ids.shape[1]  # no padding alone


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.train.batch_size == 512 and cfg.data.max_length == 256
    assert cfg.train.lr == pytest.approx(1e-5) and cfg.train.epochs == 1


def test_six_configs_cover_the_study():
    kinds = [load_config(p).model.kind for p in CONFIGS]
    assert [load_config(p).experiment for p in CONFIGS] == [1, 2, 3, 4, 5, 6]
    assert kinds == ["gru_encoder", "gru_attention"] + ["transformer"] * 3 + ["bert"]


def test_bad_keys_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "experiment: 1\n"
        "name: x\n"
        "model:\n"
        "  kind: gru_encoder\n"
        "train:\n"
        "  batch_sise: 4\n"
        "  lr: fast\n"
        "colour: red\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "3 problems" in msg
    assert f"{path}:6: train: unknown key 'batch_sise'" in msg
    assert f"{path}:7: train.lr: expected a number, found 'fast'" in msg
    assert f"{path}:8: unknown key 'colour'" in msg


def test_unknown_model_kind_and_missing_name(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config("experiment: 2\nmodel:\n  kind: lstm\n", "c.yaml")
    msg = str(info.value)
    assert "c.yaml:1: missing required key 'name'" in msg
    assert "c.yaml:3: model.kind: unknown kind 'lstm'" in msg


@needs_classifiers
def test_unknown_model_argument_is_reported(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml:5: model: unknown key 'hiden_size'"):
        parse_config(
            "experiment: 1\nname: x\nmodel:\n  kind: gru_encoder\n  hiden_size: 3\n", "c.yaml"
        )


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_validated():
    cfg = load_config(CONFIGS[0])
    new = apply_overrides(cfg, ["train.batch_size=32", "data.source=rotten_tomatoes"])
    assert new.train.batch_size == 32 and new.data.source == "rotten_tomatoes"
    assert apply_overrides(cfg, ["train.lr=1e-3"]).train.lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer >= 1"):
        apply_overrides(cfg, ["train.batch_size=0"])
    with pytest.raises(UsageError, match="expected SECTION.KEY=VALUE"):
        apply_overrides(cfg, ["batch_size"])


# --------------------------------------------------------------------------- training


def test_tiny_run_overfits_a_small_batch(tmp_path):
    # 12 training texts, batch 16: every step sees the same 12 examples (reshuffled).
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(16))
    cfg = _config(data, batch_size=16, epochs=60, lr=0.1, eval_every=20)
    summary = train(cfg, tmp_path / "run", model=_model())
    losses = [r["train_loss"] for r in _log(tmp_path / "run") if r["kind"] == "train"]
    assert summary["steps"] == 60 == len(losses)
    assert losses[-1] < 0.2 * losses[0]
    assert sum(losses[-5:]) / 5 < 0.1


def test_gradients_are_zeroed_each_step(tmp_path):
    # With accumulated gradients, step 2 would apply grad1 + grad2; check it applies grad2 only.
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(64))
    cfg = _config(data, max_steps=2, lr=0.1, weight_decay=0.0)
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    model.dropout.p = 0.0
    seen = []
    original = model.forward

    def spy(ids, mask, labels=None):
        if model.training:
            seen.append(
                {
                    n: p.grad.clone() if p.grad is not None else None
                    for n, p in model.named_parameters()
                }
            )
        return original(ids, mask, labels)

    model.forward = spy
    train(cfg, tmp_path / "run", model=model)
    assert len(seen) == 2 and all(g is None for g in seen[1].values())


def test_summary_reports_best_over_training_not_last(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(200))
    cfg = _config(data, max_steps=12, eval_every=2)
    summary = train(cfg, tmp_path / "run", model=_model())
    evals = [r for r in _log(tmp_path / "run") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 4, 6, 8, 10, 12]
    best = max(evals, key=lambda r: r["val_accuracy"])
    assert summary["best_val_accuracy"] == best["val_accuracy"]
    assert summary["final_val_accuracy"] == evals[-1]["val_accuracy"]
    assert summary["validation_examples"] == evals[0]["val_examples"] > 0
    # validation is carved from the training split by a salted hash; the held-out split is the test
    source = open_source(str(data), held_out_fraction=0.25)
    train_texts = list(source.train())
    p = min(0.1, 64 / len(train_texts))  # data.validation_fraction (default), validation_size
    val = [
        e
        for e in train_texts
        if int.from_bytes(hashlib.sha1(("validation\0" + e.text).encode()).digest()[:8], "big")
        / 2**64
        < p
    ]
    positive = sum(e.label for e in val) / len(val)
    assert summary["validation_examples"] == len(val)
    assert summary["train_examples"] == len(train_texts) - len(val)
    assert summary["val_majority_accuracy"] == pytest.approx(max(positive, 1 - positive))
    held = list(source.held_out())[:64]
    assert summary["test_examples"] == len(held)
    assert not {e.text for e in held} & {e.text for e in val}
    k = summary["test_correct"]
    ci = scipy.stats.binomtest(k, len(held)).proportion_ci(method="wilson")
    assert summary["test_accuracy"] == pytest.approx(k / len(held))
    assert summary["test_accuracy_ci_low"] == pytest.approx(ci.low)
    assert summary["test_accuracy_ci_high"] == pytest.approx(ci.high)
    assert summary["params_total"] == 30522 * 8 + 8 * 2 + 2
    assert summary["peak_memory_mib"] > 0 and summary["train_time_s"] > 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def _train_losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["train_loss"]) for r in _log(run) if r["kind"] == "train"]


def test_resume_after_max_steps_equals_uninterrupted_run(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(200))
    full = train(_config(data, max_steps=9), tmp_path / "full", model=_model())
    train(_config(data, max_steps=3), tmp_path / "part", model=_model())
    resumed = train(_config(data, max_steps=9), tmp_path / "part", model=_model())
    assert resumed["resumed_at"] == [3]
    assert _train_losses(tmp_path / "part") == _train_losses(tmp_path / "full")
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["best_val_accuracy"] == full["best_val_accuracy"]


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(200))
    train(_config(data, max_steps=8), tmp_path / "full", model=_model())
    crashing = _model()
    crashing.fail_at_call = 6  # Ctrl-C during step 6
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5"):
        train(_config(data, max_steps=8), tmp_path / "part", model=crashing)
    assert not (tmp_path / "part" / "summary.json").exists()
    summary = train(_config(data, max_steps=8), tmp_path / "part", model=_model())
    assert summary["resumed_at"] == [5] and summary["steps"] == 8
    assert _train_losses(tmp_path / "part") == _train_losses(tmp_path / "full")
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_config(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(100))
    train(_config(data, max_steps=2), tmp_path / "run", model=_model())
    with pytest.raises(BiasprobeError, match=r"different config.*train.lr: 0.05 -> 0.01"):
        train(_config(data, max_steps=4, lr=0.01), tmp_path / "run", model=_model())


def test_unavailable_device_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(20))
    with pytest.raises(BiasprobeError, match="CUDA is not available"):
        train(_config(data, device="cuda"), tmp_path / "run", model=_model())


# --------------------------------------------------------------------------- real classifiers


@needs_classifiers
def test_real_gru_classifier_trains_and_loads_by_path(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(200))
    cfg = _config(data, max_steps=6, eval_every=3, lr=0.01)
    cfg = dataclasses.replace(
        cfg,
        model=dataclasses.replace(
            cfg.model,
            kwargs={"vocabulary_size": 30522, "embedding_size": 8, "hidden_size": 8},
        ),
    )
    summary = train(cfg, tmp_path / "run")
    trained = load_trained(tmp_path / "run", which="final")
    texts = ["the film was great", "the plot was dull"]
    probs = trained.predict_proba(texts)
    assert probs.shape == (2,) and ((probs > 0) & (probs < 1)).all()
    # Same numbers as the network built independently from the saved weights.
    from safetensors.torch import load_file

    from biasprobe.sentiment.classifiers import build_classifier

    net = build_classifier("gru_encoder", vocabulary_size=30522, embedding_size=8, hidden_size=8)
    net.load_state_dict(load_file(str(tmp_path / "run" / "model.safetensors")))
    net.eval()
    enc = load_tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        _, logits = net(enc["input_ids"], enc["attention_mask"])
    assert torch.allclose(torch.from_numpy(probs), logits.softmax(-1)[:, 1], atol=1e-6)
    assert load_trained(tmp_path / "run").summary == summary


def test_load_trained_on_a_missing_folder(tmp_path):
    with pytest.raises(BiasprobeError, match="is not a trained sentiment run"):
        load_trained(tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_has_help_for_every_command():
    runner = CliRunner()
    for command in ("train", "compare"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output


def test_cli_missing_data_gives_error_without_traceback(tmp_path):
    result = CliRunner().invoke(
        app, ["train", str(CONFIGS[0]), "--data", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: data source")
    assert "Traceback" not in result.output


def test_cli_bad_config_gives_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiment: 1\nname: x\nmodel:\n  kind: gru_encoder\ndata:\n  txt: title\n")
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert f"{path}:6: data: unknown key 'txt'" in result.stderr


@needs_classifiers
def test_cli_train_then_compare_writes_every_output(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(120))
    runner = CliRunner()
    runs = []
    for exp, kind, size_args in [
        (2, "gru_attention", ["model.embedding_size=8", "model.hidden_size=8"]),
        (1, "gru_encoder", ["model.embedding_size=8", "model.hidden_size=8"]),
    ]:
        cfg = tmp_path / f"{exp}.yaml"
        cfg.write_text(f"experiment: {exp}\nname: {kind}\nmodel:\n  kind: {kind}\n")
        out = tmp_path / f"run{exp}"
        sets = [
            "data.max_length=16",
            "train.batch_size=8",
            "train.eval_every=2",
            "train.lr=0.01",
            "train.eval_batch_size=32",
            *size_args,
        ]
        args = ["train", str(cfg), "--data", str(data), "--max-steps", "4", "--out", str(out)]
        args += [x for s in sets for x in ("--set", s)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "best validation accuracy" in result.stdout
        runs.append(str(out))
    report = tmp_path / "report"
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    png = ["--png"] if has_mpl else ["--no-png"]  # PNG drawing is tested when matplotlib is here
    result = runner.invoke(app, ["compare", *runs, "--out", str(report), *png])
    assert result.exit_code == 0, result.output
    if has_mpl:
        assert (report / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report / "learning_curves.html").read_text()
    assert page.count("<figcaption>") == 3 and "1 gru_encoder" in page
    md = (report / "results.md").read_text().splitlines()
    assert md[2].startswith("| 1 | gru_encoder") and md[3].startswith("| 2 | gru_attention")
    assert sum("**" in line for line in md[2:4]) >= 1
    assert any(line.startswith("- **bold**") for line in md)
    import pandas as pd

    frame = pd.read_csv(report / "results.csv")
    assert frame["experiment"].tolist() == [1, 2]
    best = frame["best_val_accuracy"].max()
    assert frame["is_best"].tolist() == (frame["best_val_accuracy"] == best).tolist()
    tex = (report / "results.tex").read_text()
    assert r"\textbf{" in tex and r"\begin{tabular}" in tex and "gru\\_encoder" in tex


def test_cli_compare_unfinished_run(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "has not finished" in result.stderr


def test_early_stopping_after_patience_evaluations_without_progress(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(200))
    # a learning rate too small to change any prediction: validation accuracy never improves
    cfg = _config(data, lr=1e-12, eval_every=2, epochs=5, patience=3)
    summary = train(cfg, tmp_path / "run", model=_model())
    evals = [r["step"] for r in _log(tmp_path / "run") if r["kind"] == "eval"]
    assert evals == [0, 2, 4, 6] and summary["steps"] == 6
    assert summary["stopped_early_by_patience"] is True and summary["patience"] == 3
    assert summary["best_step"] == 0
    # patience from the API replaces the config's value
    summary = train(cfg, tmp_path / "run2", model=_model(), patience=1)
    assert summary["steps"] == 2 and summary["patience"] == 1


def test_patience_must_be_positive(tmp_path):
    data = _write_csv(tmp_path / "d.csv", _sentiment_rows(40))
    with pytest.raises(ConfigError, match="train.patience: expected an integer >= 1"):
        _config(data, patience=0)
