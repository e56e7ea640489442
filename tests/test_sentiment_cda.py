"""Counterfactual data augmentation: swapping rules and its use in training (issue 9)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biasprobe.errors import UsageError
from biasprobe.sentiment.cda import augment, load_swapper, parse_augment
from biasprobe.sentiment.cli import app
from biasprobe.sentiment.data import Example


@pytest.fixture(scope="module")
def swap():
    return load_swapper("gender").swap


@pytest.mark.parametrize(
    "text, expected",
    [
        ("He loved it.", "She loved it."),
        ("HE loved it", "SHE loved it"),
        ("she said he was right", "he said she was right"),
        ("The man's best film", "The woman's best film"),
        ("Her new film is a mess", "His new film is a mess"),  # possessive her -> his
        ("I saw her.", "I saw him."),  # object her -> him
        ("They gave her the prize", "They gave him the prize"),  # before a determiner
        ("told her that it works", "told him that it works"),
        ("his finest hour", "her finest hour"),
        ("the prize is his.", "the prize is hers."),
        ("the prize is hers", "the prize is his"),
        ("ask him", "ask her"),
        ("He himself", "She herself"),
        ("John and Mary", "Mary and John"),
        ("Mr. Smith", "Mrs. Smith"),
        ("the boys and their fathers", "the girls and their mothers"),
    ],
)
def test_swaps(swap, text, expected):
    assert swap(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a shelf of mankind's history",
        "Hermann Hesse and Johnson",
        "the theme is heroic, shepherd, manly, heresy",
        "nothing gendered here at all",
    ],
)
def test_words_containing_group_words_are_untouched(swap, text):
    assert swap(text) == text


def test_swapping_twice_restores_unambiguous_text(swap):
    text = "My son and his father met the king."
    assert swap(swap(text)) == text


def test_augment_keeps_every_example_and_adds_twins():
    s = load_swapper("gender")
    examples = [Example("he is great", 1), Example("a dull shelf", 0), Example("Mary wept", 0)]
    out = list(augment(examples, s))
    assert out == [
        Example("he is great", 1),
        Example("she is great", 1),
        Example("a dull shelf", 0),
        Example("Mary wept", 0),
        Example("John wept", 0),
    ]


def test_word_pair_file_is_checked(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("# header\na\tb\nking\tqueen\nqueen\tprincess\n")
    with pytest.raises(UsageError, match=r"x.tsv:4: the word 'queen' is listed twice"):
        load_swapper(path=bad)
    bad.write_text("a\tb\nking queen\n")
    with pytest.raises(UsageError, match=r"x.tsv:2: expected two words"):
        load_swapper(path=bad)
    gender = Path(load_swapper.__globals__["cda_dir"]()) / "gender.tsv"
    head = gender.read_text().splitlines()[:8]
    assert any("come from" in line for line in head)


def test_parse_augment():
    assert parse_augment(None) is None and parse_augment("cda") == "gender"
    assert parse_augment("cda:gender") == "gender"
    with pytest.raises(UsageError, match="no word-pair list for axis 'planets'"):
        parse_augment("cda:planets")
    with pytest.raises(UsageError, match="expected cda"):
        parse_augment("mixup")


def test_train_with_augment_adds_the_swapped_twins(tmp_path):
    data = tmp_path / "d.csv"
    rows = [
        (f"{w} film number {i} was {'great' if i % 2 else 'dull'}", i % 2)
        for i, w in enumerate(["he", "a", "she", "the", "his", "our"] * 10)
    ]
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "experiment: 0\nname: bow\nmodel:\n  kind: bow\n  num_buckets: 64\n"
        "data:\n  max_length: 16\ntrain:\n  batch_size: 8\n  lr: 0.05\n  eval_every: 5\n"
        "  device: cpu\n"
    )
    runner = CliRunner()
    base = ["train", str(cfg), "--data", str(data), "--max-steps", "3", "--no-progress"]
    plain = runner.invoke(app, [*base, "--out", str(tmp_path / "plain")])
    cda = runner.invoke(app, [*base, "--out", str(tmp_path / "cda"), "--augment", "cda:gender"])
    assert plain.exit_code == 0 and cda.exit_code == 0, cda.output
    p = json.loads((tmp_path / "plain" / "summary.json").read_text())
    c = json.loads((tmp_path / "cda" / "summary.json").read_text())
    from biasprobe.sentiment.data import open_source, split_validation

    train_texts = list(split_validation(open_source(str(data)), 0.1, 10_000).train())
    gendered = sum(t.text.split()[0] in ("he", "she", "his") for t in train_texts)
    assert c["augment"] == "cda:gender" and c["augmented_added"] == gendered > 0
    assert c["train_examples"] == p["train_examples"] + gendered
    assert c["validation_examples"] == p["validation_examples"]
    assert c["test_examples"] == p["test_examples"]
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "x"), "--augment", "cda:nope"])
    assert bad.exit_code == 2 and "no word-pair list" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_augment_with_three_groups_adds_one_twin_per_other_group():
    s = load_swapper("religion")
    out = list(augment([Example("The imam smiled", 1), Example("no group word", 0)], s))
    assert out == [
        Example("The imam smiled", 1),
        Example("The rabbi smiled", 1),
        Example("The priest smiled", 1),
        Example("no group word", 0),
    ]
    assert parse_augment("cda:race") == "race" and parse_augment("cda:religion") == "religion"
