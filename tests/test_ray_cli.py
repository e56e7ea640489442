"""The Ray engine's interface: ``--engine``/``--ray-*`` on every run command and
``engine=``/``ray=`` on the library's run functions.

Bad or misplaced options, and Ray missing, exit 2 with a message naming the option and write
nothing; the options reach :class:`~biasprobe.distributed.RayEngine` unchanged; the local engine
passes ``distribute=None`` and never imports ``biasprobe.distributed`` (or Ray). None of these
start Ray (the engine loop is replaced by a stub that records its ``distribute``). One test runs
``biasprobe holistic run`` on Ray for real and is skipped when Ray is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biasprobe.cli import app
from biasprobe.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
GENDER = REPO / "probes" / "gender.yaml"
SENTIMENT = REPO / "probes" / "sentiment-gender.yaml"
RECORDED = "recorded:bert-large-uncased-whole-word-masking"  # a shipped recording
runner = CliRunner()

#: Every run command, as (name, model fixture, arguments before the engine options).
COMMANDS = {
    "run-fill-mask": ("tiny_bert", lambda m, o: ["run", GENDER, "-m", m, "-o", o, "-q"]),
    "run-counterfactual": (
        "tiny_hf_classifier",
        lambda m, o: ["run", SENTIMENT, "-m", m, "-o", o, "-p", "love-being*", "-q"],
    ),
    "crows": ("tiny_gpt2", lambda m, o: ["crows", "-m", m, "-o", o, "--limit", "4", "-q"]),
    "holistic-run": (
        "tiny_gpt2",
        lambda m, o: ["holistic", "run", "-m", m, "-o", o, "--sample", "8", "-q"],
    ),
}


def invoke(args: list, cwd: Path, cache: Path):
    """The command run from ``cwd`` (so a default reports/ folder would land there) with the
    result cache in ``cache``."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        env = {"BIASPROBE_CACHE_DIR": str(cache), "COLUMNS": "200"}
        return runner.invoke(app, [str(a) for a in args], env=env)
    finally:
        os.chdir(old)


@pytest.fixture
def place(tmp_path):
    """(working folder, --out folder, cache folder) of one command; ``written()`` lists
    everything that appeared under them."""
    work = tmp_path / "work"
    work.mkdir()

    class Place:
        cwd, out, cache = work, tmp_path / "out", tmp_path / "cache"

        @staticmethod
        def written() -> list[str]:
            return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p != work)

    return Place


def _command(request, name: str, out: Path) -> list:
    fixture, build = COMMANDS[name]
    return build(str(request.getfixturevalue(fixture)), out)


BAD = [
    (["--engine", "ray", "--ray-actors", "0"], "--ray-actors must be at least 1, got 0"),
    (["--engine", "ray", "--ray-cpus", "-1"], "--ray-cpus must be a number ≥ 0, got -1.0"),
    (["--engine", "ray", "--ray-gpus", "nan"], "--ray-gpus must be a number ≥ 0, got nan"),
    (
        ["--ray-actors", "2"],
        "--ray-actors applies to the Ray engine: add --engine ray (this run's engine is local)",
    ),
    (
        ["--engine", "local", "--ray-cpus", "2", "--ray-address", "auto"],
        "--ray-cpus, --ray-address apply to the Ray engine: add --engine ray",
    ),
    (["--engine", "spark"], "--engine must be local or ray, not 'spark'"),
    (
        ["--engine", "ray", "--ray-object-store-mb", "10"],
        "--ray-object-store-mb must be at least 75 (Ray's minimum), got 10",
    ),
    (
        ["--engine", "ray", "--ray-object-store-mb", "100", "--ray-address", "10.0.0.1:6379"],
        "--ray-object-store-mb sizes a local Ray instance; with --ray-address the run joins",
    ),
]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(("options", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_engine_options_exit_2_naming_the_option_and_write_nothing(
    request, place, command, options, message
):
    res = invoke([*_command(request, command, place.out), *options], place.cwd, place.cache)
    assert res.exit_code == 2, res.output
    assert f"error: {message}" in " ".join(res.output.split())
    assert place.written() == []


def test_an_object_store_size_with_ray_address_set_is_refused(request, place, monkeypatch):
    """$RAY_ADDRESS joins a cluster as --ray-address does (Ray reads it): no local store."""
    args = [*_command(request, "crows", place.out), "--engine", "ray"]
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    res = invoke([*args, "--ray-object-store-mb", "100"], place.cwd, place.cache)
    assert res.exit_code == 2, res.output
    assert "with $RAY_ADDRESS the run joins a cluster" in " ".join(res.output.split())
    assert place.written() == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ray_not_installed_says_how_to_install_it_and_writes_nothing(
    request, place, command, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    args = [*_command(request, command, place.out), "--engine", "ray", "--ray-actors", "2"]
    res = invoke(args, place.cwd, place.cache)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "error: the Ray engine needs Ray, which is not installed" in text
    assert "pip install 'biasprobe[ray]'" in text
    assert place.written() == []


class Stop(UsageError):
    """Raised by the stub engine loop: the run stops before any model is looked at."""


@pytest.fixture
def loop(monkeypatch):
    """The engine loop replaced by a stub recording each call's ``distribute``; Ray counts as
    installed (it is neither imported nor started: building a RayEngine does neither)."""
    import biasprobe.distributed.options as options
    import biasprobe.engine

    calls: list = []

    def stub(task, specs, **kw):
        calls.append(kw.get("distribute"))
        raise Stop("stopped before any model")

    monkeypatch.setattr(biasprobe.engine, "run", stub)
    monkeypatch.setattr(options, "ray_installed", lambda: True)
    return calls


RAY_ARGS = [
    "--engine", "ray", "--ray-actors", "2", "--ray-cpus", "0.5", "--ray-gpus", "1",
    "--ray-object-store-mb", "100",
]  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_command_line_options_reach_the_ray_engine(request, place, command, loop):
    from biasprobe.distributed import RayEngine, RayOptions

    res = invoke([*_command(request, command, place.out), *RAY_ARGS], place.cwd, place.cache)
    assert res.exit_code == 2 and "stopped before any model" in res.output, res.output
    (engine,) = loop
    assert type(engine) is RayEngine
    assert engine.options == RayOptions(
        actors=2, num_cpus=0.5, num_gpus=1.0, object_store_memory=100 * 2**20
    )
    address = ["--engine", "ray", "--ray-address", "ray://head:10001"]
    res = invoke([*_command(request, command, place.out), *address], place.cwd, place.cache)
    assert res.exit_code == 2 and "stopped before any model" in res.output, res.output
    assert loop[1].options == RayOptions(address="ray://head:10001")  # the rest: defaults
    res = invoke(_command(request, command, place.out), place.cwd, place.cache)
    assert res.exit_code == 2 and "stopped before any model" in res.output, res.output
    assert loop[2] is None  # the local engine: no hook
    assert place.written() == []


def _api_calls():
    """Each library run function, called with a model and extra keywords."""
    import biasprobe
    from biasprobe.tasks.counterfactual import run_downstream
    from biasprobe.tasks.crows import run_crows
    from biasprobe.tasks.holistic import run_holistic

    gender = biasprobe.load_probe_set(GENDER)
    sentiment = biasprobe.load_probe_set(SENTIMENT)
    return {
        "run": lambda **kw: biasprobe.run(gender, ["m"], **kw),
        "run_downstream": lambda **kw: run_downstream(sentiment, ["m"], **kw),
        "run_crows": lambda **kw: run_crows("m", **kw),
        "run_holistic": lambda **kw: run_holistic("m", sample=8, **kw),
    }


API = ["run", "run_downstream", "run_crows", "run_holistic"]


@pytest.mark.parametrize("function", API)
def test_engine_ray_builds_the_ray_engine_and_local_passes_no_hook(loop, function):
    from biasprobe.distributed import RayEngine, RayOptions

    call = _api_calls()[function]
    with pytest.raises(Stop):
        call(engine="ray", ray={"actors": 3, "num_cpus": 0.25, "address": "auto"})
    assert type(loop[-1]) is RayEngine
    assert loop[-1].options == RayOptions(actors=3, num_cpus=0.25, address="auto")
    given = RayOptions(actors=2, num_gpus=1.0, rows_per_call=4)
    with pytest.raises(Stop):
        call(engine="ray", ray=given)
    assert type(loop[-1]) is RayEngine and loop[-1].options is given
    with pytest.raises(Stop):
        call(engine="ray")
    assert loop[-1].options == RayOptions()
    with pytest.raises(Stop):
        call()
    assert loop[-1] is None
    with pytest.raises(Stop):
        call(engine="local")
    assert loop[-1] is None

    def hook(backend, model, load):
        return backend

    with pytest.raises(Stop):  # a hook given directly reaches the engine loop unchanged
        call(distribute=hook)
    assert loop[-1] is hook
    assert len(loop) == 6


@pytest.mark.parametrize("function", API)
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"engine": "spark"}, "engine must be 'local' or 'ray', not 'spark'"),
        ({"engine": "local", "ray": {"actors": 2}}, "ray= options apply to engine='ray'"),
        ({"ray": {}}, "ray= options apply to engine='ray'"),
        ({"engine": "ray", "ray": {"actor": 2}}, "ray= has unknown option(s) 'actor'; the "),
        ({"engine": "ray", "ray": {"actors": 0}}, "ray actors must be a whole number ≥ 1"),
        ({"engine": "ray", "ray": 2}, "ray= must be a RayOptions or a dict of its fields"),
        ({"engine": "ray", "distribute": print}, "give engine='ray' or distribute=, not both"),
    ],
)
def test_bad_engine_keywords_are_usage_errors(loop, function, kw, message):
    with pytest.raises(UsageError) as info:
        _api_calls()[function](**kw)
    assert not isinstance(info.value, Stop) and message in str(info.value)
    assert loop == []  # refused before the engine loop


@pytest.mark.parametrize("function", API)
def test_engine_ray_without_ray_names_the_extra(monkeypatch, function):
    import biasprobe.engine

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    monkeypatch.setattr(biasprobe.engine, "run", lambda *a, **k: pytest.fail("engine ran"))
    with pytest.raises(UsageError, match=r"needs Ray, which is not installed: pip install "):
        _api_calls()[function](engine="ray")


def test_the_local_engine_imports_neither_ray_nor_biasprobe_distributed(tmp_path):
    """``import biasprobe`` and a local run never import Ray, nor ``biasprobe.distributed``
    (which imports torch: a recorded model's run stays torch-free); building the Ray engine
    does not import Ray either."""
    code = textwrap.dedent(
        f"""
        import sys
        import biasprobe
        from biasprobe.cli import app
        probes = biasprobe.load_probe_set({str(REPO / "probes" / "pair-names.yaml")!r})
        r = biasprobe.run(probes, [{RECORDED!r}], exclude=["cpr-*"], engine="local")
        r.save({str(tmp_path / "run")!r})
        gone = [m for m in ("ray", "biasprobe.distributed", "torch") if m in sys.modules]
        assert not gone, gone
        from biasprobe.distributed.options import distribute_for, ray_installed
        if ray_installed():
            hook = distribute_for("ray", {{"actors": 2}})
            assert hook.options.actors == 2 and "ray" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------------------------------------ on Ray, for real


def test_holistic_run_on_ray_writes_the_local_engines_sentences(
    ray_local, tiny_gpt2, tmp_path, monkeypatch
):
    """``biasprobe holistic run --engine ray`` (one actor, half a CPU) writes the very
    sentences table ``--engine local`` writes, every batch computed on Ray."""
    import numpy as np
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import biasprobe.distributed.options as options
    from biasprobe.distributed import RayEngine

    built: list[RayEngine] = []

    class Recording(RayEngine):
        def __init__(self, opts):
            super().__init__(opts)
            built.append(self)

    monkeypatch.setattr(options, "RayEngine", Recording)
    common = ["holistic", "run", "-m", str(tiny_gpt2), "--sample", "48", "--seed", "1"]
    common += ["-a", "nonce", "--device", "cpu", "--no-cache", "--no-html", "-q"]
    ray_args = ["--engine", "ray", "--ray-actors", "1", "--ray-cpus", "0.5"]
    tables = {}
    for name, extra in (("local", ["--engine", "local"]), ("ray", ray_args)):
        out = tmp_path / name
        res = runner.invoke(app, [*common, "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        tables[name] = pd.read_csv(out / "sentences.csv", keep_default_na=False)
    (engine,) = built
    assert engine.options.num_cpus == 0.5 and engine.options.actors == 1
    assert [r.calls > 0 for r in engine.runners] == [True]  # computed on Ray
    assert len(tables["ray"]) == 48
    pd.testing.assert_frame_equal(tables["ray"], tables["local"], check_exact=True)
    # and the numbers are the model's: log P(sentence) straight from transformers
    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    got = tables["ray"]["log_likelihood"].to_numpy()[:6]
    ref = []
    for text in tables["ray"]["text"][:6]:
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        ref.append(sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids))))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
