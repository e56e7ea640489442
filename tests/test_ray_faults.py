"""Faults on Ray: an actor killed mid-run (Ray restarts it and retries its batches: the run
ends with the local numbers), a model the workers cannot load (fails at once, naming the
model and the reason, nothing saved), and a driver interrupted mid-run (the actors stop, every
batch that returned is in the cache, and the same call resumes from it with the local
numbers). One local Ray instance for the session (``ray_local`` in conftest); skipped, with
the reason, when Ray is not installed."""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from biasprobe.backends.cached import open_cache
from biasprobe.backends.cached_sentences import wrap_scorer
from biasprobe.backends.registry import load
from biasprobe.distributed import RayEngine, RayOptions
from biasprobe.errors import ModelLoadError
from biasprobe.tasks.holistic import run_holistic

KW = {
    "axes": ["nonce"],
    "templates": ["I love {plural_noun_phrase}.", "I hate {plural_noun_phrase}."],
    "device": "cpu",
    "sample": 512,
    "seed": 3,
    "batch_size": 2,  # 256 batches: time to act mid-run
}


def actor_pids() -> list[int]:
    """Processes of biasprobe's Ray actors on this machine (Ray names them after the class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"_CallActor" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def when_batches_returned(engine: RayEngine, n: int, action) -> threading.Thread:
    """Run ``action`` in a thread once ``n`` batches have come back from Ray."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not (engine.runners and engine.runners[0].calls >= n):
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def local_result(tiny_gpt2):
    return run_holistic([str(tiny_gpt2)], cache=False, **KW)


def test_a_killed_actor_is_restarted_and_the_run_ends_with_the_local_numbers(
    ray_local, tiny_gpt2, local_result
):
    engine = RayEngine(RayOptions(actors=1, num_cpus=1))
    killed: list[int] = []

    def kill() -> None:
        (pid,) = actor_pids()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = when_batches_returned(engine, 5, kill)
    remote = run_holistic([str(tiny_gpt2)], cache=False, distribute=engine, **KW)
    thread.join(timeout=5)
    assert killed, "the actor was not killed mid-run"
    runner = engine.runners[0]
    assert killed[0] in runner.pids and len(runner.pids) == 2  # answered, died, replaced
    assert runner.calls == 256
    pd.testing.assert_frame_equal(remote.sentences, local_result.sentences, check_exact=True)
    pd.testing.assert_frame_equal(remote.summary, local_result.summary, check_exact=True)


def test_a_model_the_workers_cannot_load_fails_fast_naming_it(ray_local, tiny_gpt2, tmp_path):
    """The driver loads the model; the workers find its weights gone (as on a node without
    the files): the run stops with a ModelLoadError naming the model and the reason."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_gpt2, folder)

    def lose_weights(model, stage, done, total):
        if stage == "load" and done == 1:  # after the driver loaded it, before Ray starts
            (folder / "model.safetensors").unlink()

    engine = RayEngine(RayOptions(actors=2, num_cpus=0.5))
    with pytest.raises(ModelLoadError, match="could not be loaded on a Ray worker") as err:
        run_holistic([str(folder)], cache=False, distribute=engine, progress=lose_weights, **KW)
    assert repr(str(folder)) in str(err.value) and "model.safetensors" in str(err.value)
    assert engine.runners[0].calls == 0


def test_an_interrupted_driver_stops_its_actors_and_the_same_call_resumes(
    ray_local, tiny_gpt2, local_result, tmp_path
):
    cache = tmp_path / "cache"
    engine = RayEngine(RayOptions(actors=2, num_cpus=0.5))
    when_batches_returned(engine, 20, _thread.interrupt_main)
    with pytest.raises(KeyboardInterrupt):
        run_holistic([str(tiny_gpt2)], cache=cache, distribute=engine, **KW)
        time.sleep(30)  # the interrupt may land just after the run; then it lands here
    deadline = time.monotonic() + 30
    while actor_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert actor_pids() == []  # the actors of the interrupted run are gone

    texts = list(local_result.sentences["text"])
    store = open_cache(cache, True)
    try:
        stored = int(
            wrap_scorer(load(str(tiny_gpt2), "sentence-scorer"), store).stored(texts).sum()
        )
    finally:
        store.close()
    assert 0 < stored < len(texts)  # the batches that returned before the interrupt

    resumed_engine = RayEngine(RayOptions(actors=2, num_cpus=0.5))
    resumed = run_holistic([str(tiny_gpt2)], cache=cache, distribute=resumed_engine, **KW)
    info = resumed.meta["models"][0]["info"]["cache"]
    assert info["hits"] == stored and info["misses"] == len(texts) - stored
    pd.testing.assert_frame_equal(resumed.sentences, local_result.sentences, check_exact=True)
