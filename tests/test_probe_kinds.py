"""Counterfactual probe sets (no mask), the shipped sentiment sets, and attribute slots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_probes import HEADER  # the same demo header as the main probe tests

from biasprobe.errors import ProbeSetError
from biasprobe.probes import COUNTERFACTUAL, FILL_MASK, MASK, load_probe_set

REPO = Path(__file__).resolve().parents[1]
SENTIMENT = sorted((REPO / "probes").glob("sentiment-*.yaml"))


def _load(tmp_path: Path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return load_probe_set(path)


def _messages(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(ProbeSetError) as info:
        _load(tmp_path, text)
    return [(p.line, p.message) for p in info.value.problems]


def test_counterfactual_set_expands_without_a_mask(tmp_path: Path) -> None:
    probe_set = _load(
        tmp_path,
        HEADER
        + """\
kind: counterfactual
lexicons:
  quality: [great, awful]
pairs:
  - id: feels
    template: "[He|She] feels [devastated|delighted] about the new job."
    groups: [men, women]
    contrast: [1]
  - id: review
    template: "My [son|daughter] wrote this review: the blender is {quality}."
    groups: [men, women]
""",
    )
    assert probe_set.kind == COUNTERFACTUAL
    assert {i.pair_id: i.sentences for i in probe_set.items} == {
        "feels/devastated": (
            "He feels devastated about the new job.",
            "She feels devastated about the new job.",
        ),
        "feels/delighted": (
            "He feels delighted about the new job.",
            "She feels delighted about the new job.",
        ),
        "review/great": (
            "My son wrote this review: the blender is great.",
            "My daughter wrote this review: the blender is great.",
        ),
        "review/awful": (
            "My son wrote this review: the blender is awful.",
            "My daughter wrote this review: the blender is awful.",
        ),
    }
    for item in probe_set.items:
        assert item.minoritized_group == "women" and item.targets == ()
        assert item.attribute is None and item.prior_sentences is None


def test_kind_defaults_to_fill_mask(tmp_path: Path) -> None:
    text = HEADER + 'pairs:\n  - id: a\n    template: "[She|He] is a [MASK]."\n'
    text += "    groups: [women, men]\n"
    assert _load(tmp_path, text).kind == FILL_MASK
    assert _load(tmp_path, text.replace("version: 1", "version: 1\nkind: fill-mask")).kind == (
        FILL_MASK
    )


def test_mixing_kinds_and_targets_are_file_line_errors(tmp_path: Path) -> None:
    found = _messages(
        tmp_path,
        HEADER
        + """\
kind: counterfactual
targets: [nurse]
pairs:
  - id: a
    template: "[She|He] is a [MASK]."
    groups: [women, men]
  - id: b
    template: "[She|He] is kind."
    groups: [women, men]
    targets: [x]
""",
    )
    assert found == [
        (
            9,
            "targets: a counterfactual set has no mask, so there is nothing to score targets "
            "at; remove 'targets'",
        ),
        (
            12,
            "pair 'a': template: a counterfactual set's templates hold no [MASK], found 1 (a set "
            "is either fill-mask or counterfactual; put fill-mask templates in a separate file)",
        ),
        (
            17,
            "pair 'b': targets: a counterfactual set has no mask, so there is nothing to score "
            "targets at; remove 'targets'",
        ),
    ]
    found = _messages(
        tmp_path,
        HEADER + 'pairs:\n  - id: a\n    template: "[She|He] is kind."\n    groups: [women, men]\n',
    )
    assert found == [(10, "pair 'a': template: expected exactly one [MASK], found none")]
    found = _messages(
        tmp_path, HEADER.replace("version: 1", "version: 1\nkind: counterfact") + "pairs: []\n"
    )
    assert found[0] == (
        3,
        "kind: expected 'fill-mask' or 'counterfactual', found 'counterfact' "
        "(did you mean 'counterfactual'?)",
    )


@pytest.mark.parametrize("path", SENTIMENT, ids=[p.name for p in SENTIMENT])
def test_shipped_sentiment_sets_counts_and_shape(path: Path) -> None:
    probe_set = load_probe_set(path)
    assert probe_set.kind == COUNTERFACTUAL
    templates = {item.template_id for item in probe_set.items}
    assert len(templates) >= 8
    assert len(probe_set.items) >= 200
    lexicon_items = [i for i in probe_set.items if i.fills]
    assert len(lexicon_items) >= 200, "at least 200 pairs come through lexicons"
    text = path.read_text(encoding="utf-8")
    assert "What it shows" in text and "Where every word list comes from" in text
    for item in probe_set.items:
        a, b = item.sentences
        assert MASK not in a and MASK not in b and a != b
        # Only the group term differs: the common prefix and suffix cover the rest.
        prefix = len(_common_prefix(a, b))
        suffix = len(_common_prefix(a[::-1], b[::-1]))
        diff_a = a[prefix : len(a) - suffix]
        assert len(diff_a.split()) <= 3, (item.pair_id, a, b)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_sentiment_set_counts_are_as_generated() -> None:
    counts = {p.stem: len(load_probe_set(p).items) for p in SENTIMENT}
    assert counts == {
        "sentiment-age": 324,
        "sentiment-gender": 370,
        "sentiment-race": 622,
        "sentiment-religion": 972,
        "sentiment-sexuality": 648,
    }


def test_sentiment_sets_are_up_to_date_with_their_script() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_sentiment_probes.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr


def test_holistic_bias_data_ships_with_its_licence() -> None:
    folder = REPO / "biasprobe" / "data" / "holistic-bias"
    assert "Attribution-ShareAlike 4.0" in (folder / "LICENSE-dataset.txt").read_text()
    readme = (folder / "README.md").read_text()
    assert "Smith" in readme and "CC BY-SA 4.0" in readme
    assert (folder / "v1.1" / "descriptors.json").is_file()


# --------------------------------------------------------------------------------------------
# Attribute slots (prior-normalised scoring, Kurita et al. 2019)

KURITA = """\
lexicons:
  occupation: [nurse, police officer]
  name:
    women: [Mary]
    men: [James]
pairs:
  - id: is-a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: occupation
  - id: name-said
    template: "{name}, the {occupation}, said that [MASK] was [late|early]."
    groups: [women, men]
    targets: [she, he]
    attribute: occupation
    contrast: []
"""


def _prior_by_hand(sentence: str, word: str) -> str:
    return sentence.replace(word, " ".join([MASK] * len(word.split())), 1)


def test_attribute_items_carry_prior_sentences(tmp_path: Path) -> None:
    probe_set = _load(tmp_path, HEADER + KURITA)
    items = {i.pair_id: i for i in probe_set.items}
    assert set(items) == {
        "is-a/nurse",
        "is-a/police-officer",
        "name-said/mary-james/nurse/late",
        "name-said/mary-james/nurse/early",
        "name-said/mary-james/police-officer/late",
        "name-said/mary-james/police-officer/early",
    }
    nurse = items["is-a/nurse"]
    assert nurse.sentences == ("[MASK] is a nurse.", "[MASK] is a nurse.")
    assert nurse.prior_sentences == ("[MASK] is a [MASK].", "[MASK] is a [MASK].")
    assert nurse.attribute == "nurse" and nurse.prior_mask_index == 0
    assert nurse.targets == ("he", "she") and nurse.minoritized_group == "women"
    officer = items["name-said/mary-james/police-officer/late"]
    assert officer.sentences == (
        "Mary, the police officer, said that [MASK] was late.",
        "James, the police officer, said that [MASK] was late.",
    )
    assert officer.prior_sentences == (
        "Mary, the [MASK] [MASK], said that [MASK] was late.",
        "James, the [MASK] [MASK], said that [MASK] was late.",
    )
    assert officer.prior_mask_index == 2  # two attribute masks come first
    for item in probe_set.items:
        assert item.prior_sentences is not None and item.attribute is not None
        for side in (0, 1):
            sentence, prior = item.sentences[side], item.prior_sentences[side]
            assert prior == _prior_by_hand(sentence, item.attribute)
            assert sentence.count(MASK) == 1
            assert prior.count(MASK) == 1 + len(item.attribute.split())
            # The target mask is the one left when the attribute masks are taken out.
            position = sentence.index(MASK)
            starts = [i for i in range(len(prior)) if prior.startswith(MASK, i)]
            before = prior[: starts[item.prior_mask_index]]
            assert (
                before.replace(" ".join([MASK] * len(item.attribute.split())), item.attribute)
                == sentence[:position]
            )


def test_attribute_errors(tmp_path: Path) -> None:
    found = _messages(
        tmp_path,
        HEADER
        + """\
lexicons:
  occupation: [nurse]
  job:
    women: [nurse]
    men: [doctor]
pairs:
  - id: a
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she]
    attribute: ocupation
  - id: b
    template: "[MASK] is a {job}."
    groups: [women, men]
    targets: [she, he]
    attribute: job
  - id: c
    template: "[MASK] is a {occupation}."
    groups: [men, women]
    targets: [he, she, they]
    attribute: occupation
""",
    )
    assert found == [
        (
            18,
            "pair 'a': attribute: the template has no slot {ocupation}; the attribute names one of "
            "its slots [occupation] (did you mean 'occupation'?)",
        ),
        (
            23,
            "pair 'b': attribute: lexicon 'job' is grouped; an attribute is the same word on both "
            "sides, so it needs a plain list of words",
        ),
        (
            27,
            "pair 'c': attribute: prior-normalised scoring needs exactly 2 targets, the word of "
            "side 'men' then the word of side 'women'; found 3",
        ),
    ]
    found = _messages(
        tmp_path,
        HEADER
        + """\
kind: counterfactual
lexicons:
  occupation: [nurse]
pairs:
  - id: a
    template: "[He|She] is a {occupation}."
    groups: [men, women]
    attribute: occupation
""",
    )
    assert found == [
        (
            15,
            "pair 'a': attribute: a counterfactual set has no mask, so there is no prior to "
            "normalise by; remove 'attribute'",
        )
    ]


def test_fill_mask_items_without_attribute_have_no_prior(tmp_path: Path) -> None:
    text = HEADER + 'pairs:\n  - id: a\n    template: "[She|He] is a [MASK]."\n'
    item = _load(tmp_path, text + "    groups: [women, men]\n").items[0]
    assert (item.attribute, item.prior_sentences, item.prior_mask_index) == (None, None, None)


def test_shipped_kurita_set() -> None:
    probe_set = load_probe_set(REPO / "probes" / "kurita-gender.yaml")
    assert probe_set.kind == FILL_MASK
    assert len(probe_set.items) == 58
    assert all(i.targets == ("he", "she") and i.prior_sentences for i in probe_set.items)
    item = next(i for i in probe_set.items if i.pair_id == "is-a/police-officer")
    assert item.prior_sentences == ("[MASK] is a [MASK] [MASK].",) * 2
