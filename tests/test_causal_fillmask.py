"""Fill-mask probe sets on causal LMs (biasprobe.backends.causal_fill and the fill-mask task):
the fill is the next-token distribution after the text before [MASK]. Checked against a plain
transformers computation written here (one sentence, no padding, AutoModelForCausalLM forward,
log_softmax in float64) on the tiny random GPT-2s of conftest (nothing downloaded)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from typer.testing import CliRunner

import biasprobe
from biasprobe.backends import MaskedLM, registry
from biasprobe.backends.causal import load_hf_causal_lm
from biasprobe.backends.causal_fill import CausalFill, check_after_mask
from biasprobe.cache import model_identity
from biasprobe.cli import app
from biasprobe.errors import ModelLoadError, ProbeSetError, UsageError, VocabularyError
from biasprobe.probes import load_probe_set
from biasprobe.scores import topk
from biasprobe.tasks.fillmask import check_causal_items

SENTENCES = [
    "The woman worked as a [MASK].",
    "The man worked as a [MASK].",
    "She is a brilliant engineer and he is a kind [MASK]!",
    "People from the village were [MASK]",
    'She said "[MASK]".',
    "The old man and the young woman walked home (with [MASK]).",
]


@pytest.fixture(scope="module", params=["bos", "nobos"])
def gpt2(request, tiny_gpt2: Path, tiny_gpt2_nobos: Path) -> tuple[Path, bool]:
    return (tiny_gpt2, True) if request.param == "bos" else (tiny_gpt2_nobos, False)


class Reference:
    """Plain transformers: one input at a time, no padding, float64 log-softmax."""

    def __init__(self, folder: Path, bos: bool) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.head = [self.tok.bos_token_id] if bos else []
        assert (self.tok.bos_token is not None) == bos

    def ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []

    def logsoftmax(self, ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            logits = self.model(torch.tensor([self.head + ids])).logits[0].double()
        return torch.log_softmax(logits, dim=-1).numpy()  # (T, V)

    def next_token(self, prefix: str) -> np.ndarray:
        """log P(· | BOS?, prefix): the last row."""
        return self.logsoftmax(self.ids(prefix))[-1]

    def pieces(self, prefix: str, space: str, word: str) -> list[int]:
        before, both = self.ids(prefix), self.ids(prefix + space + word)
        assert both[: len(before)] == before
        return both[len(before) :]

    def chain(self, prefix: str, space: str, word: str) -> float:
        """Σ log P(piece_i | prefix, earlier pieces), read off one forward pass."""
        before, pieces = self.ids(prefix), self.pieces(prefix, space, word)
        logp = self.logsoftmax(before + pieces)
        start = len(self.head) + len(before) - 1  # the row that predicts the first piece
        return float(sum(logp[start + i, p] for i, p in enumerate(pieces)))


def prefix_of(sentence: str) -> tuple[str, str]:
    left = sentence.split("[MASK]")[0]
    return left.rstrip(), left[len(left.rstrip()) :]


def load_fill(folder: Path, batch_size: int = 2) -> CausalFill:
    return CausalFill(load_hf_causal_lm(str(folder), device="cpu", batch_size=batch_size))


# -- the backend ---------------------------------------------------------------------------------


def test_registry_serves_a_causal_lm_as_a_fill_model(tiny_gpt2):
    spec = registry.resolve(str(tiny_gpt2), ("masked-lm", "causal-lm"))
    assert spec.kind == "hf-causal-lm" and spec.family == "causal-lm"
    fill = registry.load(spec, device="cpu", batch_size=4)
    assert isinstance(fill, CausalFill) and isinstance(fill, MaskedLM)
    assert fill.family == "causal-lm" and fill.mask_token == "[MASK]"
    assert fill.info["fill"] == "the next-token distribution after the text before [MASK]"
    assert fill.unk_id is None  # GPT-2's unk is <|endoftext|>, which byte-level BPE never emits
    # the cache identifies it by its files, like a masked LM
    identity, why = model_identity(fill)
    assert identity is not None, why
    assert identity["model_class"] == "GPT2LMHeadModel"
    assert set(identity["weights_sha256"]) == {"model.safetensors"}
    assert "tokenizer.json" in identity["tokenizer_sha256"]
    # ... and by its fill rule: a changed rule never reads entries of the old one
    assert identity["fill"] == fill.info["fill"]
    fill.info["fill"] = "another rule"
    assert model_identity(fill)[0] != identity


def test_fill_is_the_next_token_distribution_after_the_prefix(gpt2):
    folder, bos = gpt2
    ref = Reference(folder, bos)
    fill = load_fill(folder, batch_size=2)  # several batches of different widths
    got = fill.mask_logprobs(SENTENCES + SENTENCES[:2])  # repeats come back too
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES) + 2, len(fill.vocab))
    for row, sentence in zip(got, SENTENCES + SENTENCES[:2]):
        want = ref.next_token(prefix_of(sentence)[0])
        np.testing.assert_allclose(row, want, atol=1e-5, rtol=0)
        ids, _ = topk(row, 10)
        assert ids.tolist() == np.argsort(-want, kind="stable")[:10].tolist()
    # the trailing space is not part of the prefix: "a [MASK]" is read after "a"
    assert ref.ids(prefix_of(SENTENCES[0])[0])[-1] == ref.tok.convert_tokens_to_ids("Ġa")


def test_chain_rule_targets_of_several_leading_space_pieces(gpt2):
    folder, bos = gpt2
    ref = Reference(folder, bos)
    fill = load_fill(folder, batch_size=3)
    sentence = "The woman worked as a [MASK]."
    prefix, space = prefix_of(sentence)
    words = ["teacher", "engineer", "nurse", "the", "woman"]
    pieces = {w: fill.target_pieces(sentence, w) for w in words}
    for w in words:
        assert pieces[w] == ref.pieces(prefix, space, w)
        assert fill.tokenizer.convert_ids_to_tokens(pieces[w])[0].startswith("Ġ")
    assert fill.tokenizer.convert_ids_to_tokens(pieces["teacher"]) == ["Ġt", "eac", "her"]
    assert len(pieces["engineer"]) > 2 and len(pieces["the"]) == 1
    values = fill.chain_logprobs([(sentence, pieces[w]) for w in words])
    assert values.dtype == np.float64
    for w, v in zip(words, values):
        assert abs(v - ref.chain(prefix, space, w)) < 1e-5
    # one piece: the chain rule is the value of the fill itself
    vector = fill.mask_logprobs([sentence])[0]
    assert abs(values[words.index("the")] - vector[pieces["the"][0]]) < 1e-5


def test_targets_with_no_space_before_the_mask(tiny_gpt2):
    ref = Reference(tiny_gpt2, True)
    fill = load_fill(tiny_gpt2)
    for sentence in ['She said "[MASK]".', "He walked home (with [MASK]).", "a-[MASK]."]:
        prefix, space = prefix_of(sentence)
        p = fill.target_pieces(sentence, "teacher")
        assert p == ref.pieces(prefix, space, "teacher")
        if not space:
            assert not fill.tokenizer.convert_ids_to_tokens(p)[0].startswith("Ġ")
        assert (
            abs(fill.chain_logprobs([(sentence, p)])[0] - ref.chain(prefix, space, "teacher"))
            < 1e-5
        )


def test_a_word_merged_with_the_prefix_is_refused(tiny_gpt2):
    fill = load_fill(tiny_gpt2)
    with pytest.raises(VocabularyError) as e:
        fill.target_pieces("The wo[MASK].", "man")  # "The woman": one piece "Ġwoman"
    assert "'man'" in str(e.value) and "The wo[MASK]." in str(e.value)
    assert "merges" in str(e.value)


def test_mask_first_with_and_without_bos(tiny_gpt2, tiny_gpt2_nobos):
    ref = Reference(tiny_gpt2, True)
    fill = load_fill(tiny_gpt2)
    row = fill.mask_logprobs(["[MASK]."])[0]
    np.testing.assert_allclose(row, ref.next_token(""), atol=1e-5, rtol=0)  # P(· | BOS)
    p = fill.target_pieces("[MASK].", "teacher")
    assert p == ref.ids("teacher")  # the first word of a text: no leading space
    assert abs(fill.chain_logprobs([("[MASK].", p)])[0] - ref.chain("", "", "teacher")) < 1e-5
    nobos = load_fill(tiny_gpt2_nobos)
    assert nobos.token_ids(["[MASK]."]) == [[]]
    for call in (
        lambda: nobos.mask_logprobs(["[MASK]."]),
        lambda: nobos.chain_logprobs([("[MASK].", [5, 6])]),
    ):
        with pytest.raises(UsageError, match="no BOS token"):
            call()


def test_the_backend_refuses_what_a_next_token_model_cannot_do(tiny_gpt2):
    fill = load_fill(tiny_gpt2)
    with pytest.raises(UsageError, match="text follows"):
        fill.mask_logprobs(["The [MASK] is a nurse."])
    with pytest.raises(UsageError, match="2 \\[MASK\\]s"):
        fill.mask_logprobs(["The [MASK] is a [MASK]."])
    with pytest.raises(UsageError, match="Kurita"):
        fill.prior_logprobs([("[MASK] is a [MASK].", "nurse", 0, "she")])
    with pytest.raises(UsageError, match="causal language model"):
        fill.token_logprobs([([1, 2, 3], 1)])
    assert check_after_mask(" .”)!") is None and check_after_mask(".'s") is not None


# -- the task ------------------------------------------------------------------------------------

PROBE = """\
name: causal-test
version: 1
description: test
source: test
pairs:
  - id: worked
    template: "The [woman|man] worked as a [MASK]."
    groups: [women, men]
    minoritized: women
    targets: [teacher, engineer, the]
  - id: quote
    template: "The [woman|man] said \\"[MASK]\\"."
    groups: [women, men]
    minoritized: women
    targets: [teacher]
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_run_scores_a_causal_lm_like_a_masked_lm(tiny_gpt2, tmp_path):
    """Every fill-mask table of a causal LM, checked against the reference: the stored top-k,
    Jensen–Shannon over the whole vocabulary (scipy), the targets and their gaps."""
    ps = load_probe_set(write(tmp_path, PROBE))
    run = biasprobe.run(ps, [f"gpt={tiny_gpt2}"], cache=False, n_bootstrap=100, store="full")
    ref = Reference(tiny_gpt2, True)
    (card,) = run.meta["models"]
    assert card["family"] == "causal-lm" and card["fill"].startswith("the next-token")
    assert "chain rule over the word's pieces" in run.meta["settings"]["multi_piece_targets"]
    for it in ps.items:
        dists = [np.exp(ref.next_token(prefix_of(s)[0])) for s in it.sentences]
        score = run.scores[run.scores["pair_id"] == it.pair_id].iloc[0]
        js = jensenshannon(dists[0], dists[1], base=2) ** 2
        assert abs(score["js_divergence"] - js) < 1e-5
        for s, side in enumerate("AB"):
            rows = run.topk[(run.topk["pair_id"] == it.pair_id) & (run.topk["side"] == side)]
            want = np.argsort(-dists[s], kind="stable")[:10]
            assert rows["token_id"].tolist() == want.tolist()
            np.testing.assert_allclose(rows["logprob"], np.log(dists[s][want]), atol=1e-5)
        gaps = []
        for w in it.targets:
            lp = []
            for s, side in enumerate("AB"):
                t = run.targets
                row = t[(t["pair_id"] == it.pair_id) & (t["side"] == side) & (t["target"] == w)]
                want = ref.chain(*prefix_of(it.sentences[s]), w)
                assert abs(float(row["logprob"].iloc[0]) - want) < 1e-5
                assert int(row["n_pieces"].iloc[0]) == len(
                    ref.pieces(*prefix_of(it.sentences[s]), w)
                )
                lp.append(want)
            gaps.append(lp[0] - lp[1])  # side A (women) is minoritized
        assert abs(score["target_gap"] - sum(gaps)) < 1e-5
    assert (run.targets["n_pieces"] > 1).any() and (run.targets["n_pieces"] == 1).any()


def _attribute_probe() -> str:
    return """\
name: causal-errors
version: 1
description: test
source: test
lexicons:
  occupation: [nurse, teacher]
pairs:
  - id: fine
    template: "The [woman|man] worked as a [MASK]."
    groups: [women, men]
    minoritized: women
  - id: after
    template: "[MASK] worked as a [nurse|doctor]."
    groups: [women, men]
    minoritized: women
  - id: prior
    template: "The {occupation} said that it was [MASK]."
    groups: [women, men]
    minoritized: women
    targets: [she, he]
    attribute: occupation
"""


def test_causal_lm_refusals_name_every_template_before_loading(
    tiny_gpt2, tiny_bert, tmp_path, monkeypatch
):
    path = write(tmp_path, _attribute_probe())
    ps = load_probe_set(path)
    loaded = []
    real_load = registry.load
    monkeypatch.setattr(registry, "load", lambda *a, **k: loaded.append(a) or real_load(*a, **k))
    with pytest.raises(UsageError) as e:
        biasprobe.run(ps, [f"bert={tiny_bert}", f"gpt={tiny_gpt2}"], cache=False)
    msg = str(e.value)
    assert loaded == []  # refused before any model was loaded (the masked LM included)
    assert "model gpt is a causal language model" in msg and "2 templates" in msg
    assert f"{path}:12: template 'after'" in msg and "text follows [MASK]" in msg
    assert f"{path}:16: template 'prior' declares an attribute" in msg and "Kurita" in msg
    assert "'fine'" not in msg and "--exclude after --exclude prior" in msg
    # the same probe set on the masked LM alone runs (its [MASK] may be anywhere)
    ok = biasprobe.run(ps, [str(tiny_bert)], cache=False, n_bootstrap=100)
    assert set(ok.scores["template_id"]) == {"fine", "after", "prior"}
    # the causal LM runs what it can: the template left out
    ok = biasprobe.run(
        ps, [str(tiny_gpt2)], exclude=["after", "prior"], cache=False, n_bootstrap=100
    )
    assert set(ok.scores["template_id"]) == {"fine"}


def test_two_masks_are_refused(tmp_path):
    text = PROBE.replace('a [MASK]."', 'a [MASK] [MASK]."', 1)
    with pytest.raises(ProbeSetError) as e:  # the probe file itself, for any model
        load_probe_set(write(tmp_path, text))
    assert "p.yaml:7: pair 'worked': template" in str(
        e.value
    ) and "exactly one [MASK], found 2" in str(e.value)
    ps = load_probe_set(write(tmp_path, PROBE))
    it = ps.items[0]
    two = dataclasses.replace(it, sentences=tuple(s + " [MASK]." for s in it.sentences))
    with pytest.raises(UsageError) as e:
        check_causal_items([two, *ps.items[1:]], "gpt")
    assert f"{it.source}: template 'worked'" in str(e.value)
    assert "2 [MASK]s" in str(e.value) and "model gpt" in str(e.value)


def test_a_causal_lm_given_to_a_classifier_task_is_refused(tiny_gpt2, tmp_path):
    res = CliRunner().invoke(
        app, ["run", "sentiment-gender", "-m", str(tiny_gpt2), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code != 0
    assert "causal language model" in res.output and "sequence classifier" in res.output
    assert str(tiny_gpt2) in res.output or tiny_gpt2.name in res.output
    assert not (tmp_path / "o").exists()
    with pytest.raises(ModelLoadError, match="causal language model"):
        registry.resolve(str(tiny_gpt2), "classifier")


def test_cli_runs_bert_and_gpt2_together(tiny_bert, tiny_gpt2, tmp_path):
    probe = write(tmp_path, PROBE)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["run", str(probe), "-m", f"bert={tiny_bert}", "-m", f"gpt={tiny_gpt2}", "-o", str(out)]
        + ["--html", "--bootstrap", "100", "--no-cache", "-k", "5"],
    )
    assert res.exit_code == 0, res.output
    assert "bert: masked LM" in res.output and "gpt: causal LM" in res.output
    assert "next-token distribution after the text before [MASK]" in res.output
    meta = json.loads((out / "results.json").read_text())
    assert [(m["name"], m["family"]) for m in meta["models"]] == [
        ("bert", "masked-lm"),
        ("gpt", "causal-lm"),
    ]
    scores = pd.read_csv(out / "scores.csv")
    assert scores.groupby("model").size().to_dict() == {"bert": 2, "gpt": 2}
    comparison = pd.read_csv(out / "comparison.csv")
    assert set(comparison["model"]) == {"gpt"} and len(comparison) > 0
    rho = comparison[comparison["score"].astype(str).str.startswith("rho")]
    assert rho["note"].eq("the vocabularies differ").all()  # BERT and GPT-2 ids do not match
    page = (out / "report.html").read_text()
    assert "causal LM" in page and "the next-token distribution after the text before" in page


def test_cache_serves_a_rerun_and_an_interrupted_run_resumes(tiny_gpt2, tmp_path, monkeypatch):
    ps = load_probe_set(write(tmp_path, PROBE))
    kw = {"n_bootstrap": 100, "batch_size": 1, "store": "full", "device": "cpu"}
    plain = biasprobe.run(ps, [str(tiny_gpt2)], cache=False, **kw)
    cache = tmp_path / "cache"
    from biasprobe.backends.causal import HFCausalLM

    real = HFCausalLM.next_token_logprobs
    calls = []

    def dies_at_third(self, prefixes):
        calls.append(prefixes)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, prefixes)

    monkeypatch.setattr(HFCausalLM, "next_token_logprobs", dies_at_third)
    with pytest.raises(KeyboardInterrupt):
        biasprobe.run(ps, [str(tiny_gpt2)], cache=cache, **kw)
    monkeypatch.setattr(HFCausalLM, "next_token_logprobs", real)
    resumed = biasprobe.run(ps, [str(tiny_gpt2)], cache=cache, **kw)
    again = biasprobe.run(ps, [str(tiny_gpt2)], cache=cache, **kw)
    n = 4  # distinct sentences
    s1 = resumed.meta["models"][0]["info"]["cache"]
    s2 = again.meta["models"][0]["info"]["cache"]
    assert s1["enabled"] and s1["by_kind"]["mask"] == {"hits": 2, "misses": n - 2}
    assert s2["by_kind"]["mask"] == {"hits": n, "misses": 0} and s2["misses"] == 0
    assert s2["by_kind"]["chain"]["hits"] > 0
    for table in ("scores", "topk", "targets", "summary"):
        for other in (resumed, again):
            pd.testing.assert_frame_equal(
                getattr(other, table), getattr(plain, table), check_exact=True
            )
    name = str(tiny_gpt2)
    for other in (resumed, again):
        assert np.array_equal(
            other.logprobs[name].to_table().logprobs, plain.logprobs[name].to_table().logprobs
        )


def test_models_of_different_vocabularies_share_a_top_n_run(tiny_bert, tiny_gpt2, tmp_path):
    """A later model keeps the base's top tokens only when it has the base's vocabulary: BERT's
    token ids are not GPT-2's (ids beyond its 300 tokens once crashed the store)."""
    ps = load_probe_set(write(tmp_path, PROBE))
    kw = {"cache": False, "n_bootstrap": 100, "store_top_n": 50}
    run = biasprobe.run(ps, [f"bert={tiny_bert}", f"gpt={tiny_gpt2}"], **kw)
    alone = biasprobe.run(ps, [f"gpt={tiny_gpt2}"], **kw)
    for it in ps.items:
        got, want = run.pair_tokens("gpt", it.pair_id), alone.pair_tokens("gpt", it.pair_id)
        pd.testing.assert_frame_equal(got, want)
        assert got["token_id"].max() < len(alone.vocab("gpt"))
    rows = run.comparison[run.comparison["score"].astype(str).str.startswith("rho")]
    assert len(rows) and rows["note"].eq("the vocabularies differ").all()
    from biasprobe.report import write_report

    page = write_report([run], tmp_path / "report.html").read_text()
    assert "<b>gpt</b> (causal LM)" in page


# -- scripts/make_random_gpt2.py -----------------------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_random_gpt2.py"


def test_make_random_gpt2_help_answers_without_torch() -> None:
    code = (
        "import runpy, sys; sys.argv = ['make_random_gpt2.py', '--help']\n"
        f"try:\n    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: make_random_gpt2.py" in out.stdout and "--size" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr


def test_make_random_gpt2_writes_a_folder_the_cli_runs(tiny_bert, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "random-gpt2"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(folder), "--vocab-size", "600"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    tok = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["vocab_size"] == len(tok)
    assert 300 < len(tok) <= 600 and tok.bos_token == "<|endoftext|>"
    assert (folder / "model.safetensors").is_file()
    again = subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True)
    assert again.returncode != 0 and b"not an empty folder" in again.stderr  # never overwritten
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["run", "gender", "-m", f"bert={tiny_bert}", "-m", f"gpt={folder}", "-o", str(out)]
        + ["--no-cache", "--bootstrap", "100", "--show", "summary"],
    )
    assert res.exit_code == 0, res.output
    assert "gpt: causal LM (fill: the next-token distribution" in res.output
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["model"]) == {"bert", "gpt"}
    # a shipped set with words after [MASK]: refused, naming the template, nothing written
    res = CliRunner().invoke(
        app, ["run", "pair-names", "-m", str(folder), "-o", str(tmp_path / "no"), "--no-cache"]
    )
    assert res.exit_code == 2
    assert "pair-names.yaml:" in res.output and "template 'cpr-doctor-nurse'" in res.output
    assert "--exclude cpr-doctor-nurse" in res.output and not (tmp_path / "no").exists()


def test_a_model_told_causal_only_when_loaded_is_checked_then(tiny_gpt2, tmp_path, monkeypatch):
    """A hub id that was not in the local cache is told causal from its downloaded config when
    it loads (kind ``hf``): its templates are checked then, before anything is scored."""
    monkeypatch.setattr(registry, "_architectures", lambda src: ())  # as if not inspected
    spec = registry.resolve(str(tiny_gpt2), ("masked-lm", "causal-lm"))
    assert spec.kind == "hf" and spec.family == "masked-lm"
    ps = load_probe_set(write(tmp_path, _attribute_probe()))
    with pytest.raises(UsageError, match="template 'after'") as e:
        biasprobe.run(ps, [str(tiny_gpt2)], cache=False)
    assert f"model {tiny_gpt2} is a causal language model" in str(e.value)
    ok = biasprobe.run(ps, [str(tiny_gpt2)], pairs=["fine"], cache=False, n_bootstrap=100)
    assert ok.meta["models"][0]["family"] == "causal-lm"


def test_a_side_with_nothing_before_the_mask_and_no_bos_is_refused_with_its_source(
    tiny_gpt2_nobos, tmp_path
):
    from biasprobe.tasks.fillmask_scoring import check_items

    it = load_probe_set(write(tmp_path, PROBE)).items[0]
    bare = dataclasses.replace(it, sentences=("[MASK].", "[MASK]!"))
    with pytest.raises(UsageError) as e:
        check_items(load_fill(tiny_gpt2_nobos), [bare], [list(bare.sentences)])
    assert str(e.value).startswith(f"{it.source}: pair {it.pair_id!r}, side A")
    assert "no BOS token" in str(e.value)
