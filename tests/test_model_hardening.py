"""Damaged model folders (issue 17, items 4e, 4c, 12 and 15): each is refused with a clear error
naming the model, before anything heavy is built, without blocking and without running code."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.errors import ModelLoadError
from biasprobe.hub import resolve_model_source

REPO = Path(__file__).resolve().parent.parent
GENDER = REPO / "probes" / "gender.yaml"
runner = CliRunner()


def run(model: Path, out: Path):
    return runner.invoke(app, ["run", str(GENDER), "-m", str(model), "-q", "-o", str(out)])


def copy_of(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def assert_clean_error(res, *needles: str, code: int = 1) -> None:
    assert res.exit_code == code, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    for needle in needles:
        assert needle in res.output, res.output


@pytest.fixture()
def never_built(monkeypatch):
    """Fail loudly if a masked LM is loaded with from_pretrained; count BERT layers built."""
    from transformers import AutoModelForMaskedLM
    from transformers.models.bert import modeling_bert

    calls: dict[str, int] = {"from_pretrained": 0, "layers": 0}

    def no_load(*args, **kwargs):
        calls["from_pretrained"] += 1
        raise RuntimeError("from_pretrained was called")

    init = modeling_bert.BertLayer.__init__

    def counting(self, *args, **kwargs):
        calls["layers"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(AutoModelForMaskedLM, "from_pretrained", no_load)
    monkeypatch.setattr(modeling_bert.BertLayer, "__init__", counting)
    return calls


# ------------------------------------------------------------------ 4e: implausible configs


def test_config_claiming_10000_layers_is_refused_before_building(tiny_bert, tmp_path, never_built):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    edit_config(ckpt, num_hidden_layers=10_000)
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "num_hidden_layers 10,000", "model.safetensors")
    assert "Nothing was built" in res.output
    # The count came from (at most) a one- and a two-layer model on the meta device.
    assert never_built["from_pretrained"] == 0
    assert never_built["layers"] <= 3
    assert not (tmp_path / "o").exists()


def test_vocabulary_of_a_billion_is_refused_before_building(tiny_bert, tmp_path, never_built):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    edit_config(ckpt, vocab_size=10**9)
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "vocab_size 1,000,000,000", "parameters")
    assert "above report" not in res.output
    assert never_built["from_pretrained"] == 0


def test_float_vocabulary_names_the_field(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    edit_config(ckpt, vocab_size=1e9)
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "config.json", "vocab_size")
    assert "above report" not in res.output


def test_mismatched_shapes_are_explained_not_referred_to_a_hidden_report(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    edit_config(ckpt, vocab_size=30_000)  # plausible in size, wrong in shape
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "do not match", "config.json")
    assert "above report" not in res.output


def test_weights_capacity_is_the_exact_stored_count(tiny_bert):
    from biasprobe.hub import weights_capacity

    # independent count: every tensor of the file, loaded
    stored = sum(t.numel() for t in load_file(tiny_bert / "model.safetensors").values())
    held, files = weights_capacity(tiny_bert)
    assert held == stored and files == "model.safetensors"


def test_truncated_safetensors_is_called_damaged(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, "model.safetensors", "truncated")


def test_the_real_configs_pass_the_plausibility_check(tiny_bert, tiny_roberta, tmp_path):
    from transformers import AutoConfig, AutoModelForMaskedLM

    from biasprobe.hub import check_config_plausible, implied_parameters

    for folder in (tiny_bert, tiny_roberta):
        src = resolve_model_source(str(folder))
        config = AutoConfig.from_pretrained(str(folder))
        check_config_plausible(src, config, AutoModelForMaskedLM)
        built = AutoModelForMaskedLM.from_pretrained(str(folder))
        assert implied_parameters(AutoModelForMaskedLM, config) == sum(
            p.numel() for p in built.parameters()
        )


def test_classifier_config_claiming_10000_layers_is_refused(tiny_hf_classifier, tmp_path):
    from biasprobe.backends.classifiers import load_classifier

    ckpt = copy_of(tiny_hf_classifier, tmp_path / "clf")
    edit_config(ckpt, num_hidden_layers=10_000)
    with pytest.raises(ModelLoadError, match="num_hidden_layers 10,000"):
        load_classifier(str(ckpt), device="cpu")


# ------------------------------------------------------------------ 12: NaN weights


def _poison(folder: Path, name: str = "model.safetensors") -> None:
    tensors = load_file(folder / name)
    tensors = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in tensors.items()
    }
    save_file(tensors, folder / name, metadata={"format": "pt"})


def test_nan_weights_are_a_clear_error_naming_the_model(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "nan-ckpt")
    _poison(ckpt)
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "NaN or infinite", "damaged")
    assert not (tmp_path / "o").exists()


def test_classifier_with_nan_weights_is_refused(tiny_hf_classifier, tmp_path):
    from biasprobe.backends.classifiers import load_classifier

    ckpt = copy_of(tiny_hf_classifier, tmp_path / "clf")
    _poison(ckpt)
    with pytest.raises(ModelLoadError, match="NaN or infinite") as info:
        load_classifier(str(ckpt), device="cpu")
    assert str(ckpt) in str(info.value)


# ------------------------------------------------------------------ 15 and 4c: messages, FIFOs


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_never_runs_and_unsafe_loading_is_never_advised(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "pickled")
    (ckpt / "model.safetensors").unlink()
    marker = tmp_path / "PAYLOAD-RAN"
    with open(ckpt / "pytorch_model.bin", "wb") as f:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _Payload(marker)}, f, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, str(ckpt), "refuses to load", "safetensors")
    assert not marker.exists()
    assert "weights_only" not in res.output and "False" not in res.output
    # torch's "Detected pickle protocol 4" UserWarning (with its source line) is not shown
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [
        str(w.message) for w in caught
    ]


def test_fifo_config_json_is_named_as_a_fifo(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    os.mkfifo(ckpt / "config.json")
    res = run(ckpt, tmp_path / "o")
    assert_clean_error(res, "config.json is a FIFO")
    assert "missing" not in res.output


def _unblock(fifo: Path, done: threading.Event) -> None:
    """If a reader is stuck on ``fifo``, open and close its write end so it sees end-of-file."""
    if not done.wait(20):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.parametrize("name", ["tokenizer_config.json", "vocab.txt", "tokenizer.json"])
def test_fifo_tokenizer_file_is_refused_without_blocking(tiny_bert, tmp_path, name):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    (ckpt / name).unlink()
    os.mkfifo(ckpt / name)
    done = threading.Event()
    guard = threading.Thread(target=_unblock, args=(ckpt / name, done), daemon=True)
    guard.start()
    try:
        with pytest.raises(ModelLoadError, match=f"{name} is a FIFO"):
            import biasprobe

            biasprobe.load_backend(str(ckpt), device="cpu")
    finally:
        done.set()


def test_symlink_loop_is_called_a_symlink_loop(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    res = run(loop, tmp_path / "o")
    assert_clean_error(res, "symlink loop")
    assert "does not exist" not in res.output
    # a bare name (it would read as a hub id) is still the local loop
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ModelLoadError, match="symlink loop"):
            resolve_model_source("loop")
    finally:
        os.chdir(cwd)


def test_symlink_loop_inside_a_model_folder(tiny_bert, tmp_path):
    ckpt = copy_of(tiny_bert, tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    (ckpt / "config.json").symlink_to(ckpt / "config.json")
    with pytest.raises(ModelLoadError, match="config.json is a symlink loop"):
        resolve_model_source(str(ckpt))


def _small_configs():
    import transformers as T

    sizes = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, vocab_size=500)
    sizes.update(intermediate_size=64, max_position_embeddings=64)
    return {
        "albert": T.AlbertConfig(embedding_size=16, **sizes),  # layers share their weights
        "distilbert": T.DistilBertConfig(
            dim=32, n_layers=3, n_heads=2, hidden_dim=64, vocab_size=500
        ),
        "electra": T.ElectraConfig(embedding_size=16, **sizes),
        "deberta-v2": T.DebertaV2Config(**sizes),
        "funnel": T.FunnelConfig(
            block_sizes=[1, 1, 1], d_model=32, n_head=2, d_head=16, d_inner=64
        ),
    }


@pytest.mark.parametrize("arch", ["albert", "distilbert", "electra", "deberta-v2", "funnel"])
def test_other_architectures_are_counted_exactly_or_not_judged(arch, tmp_path):
    from transformers import AutoConfig, AutoModelForMaskedLM

    from biasprobe.hub import check_config_plausible, implied_parameters

    model = AutoModelForMaskedLM.from_config(_small_configs()[arch])
    model.save_pretrained(str(tmp_path))
    config = AutoConfig.from_pretrained(str(tmp_path))
    implied = implied_parameters(AutoModelForMaskedLM, config)
    if arch == "funnel":  # its layer count is derived (block_sizes): no verdict, no refusal
        assert implied is None
    else:  # counted from one- and two-layer models, extrapolated to three
        assert implied == sum(p.numel() for p in model.parameters())
    src = resolve_model_source(str(tmp_path), need_tokenizer=False)
    check_config_plausible(src, config, AutoModelForMaskedLM)
