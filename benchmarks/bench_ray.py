"""HolisticBias on Ray against the local engine, in one process: the overhead of Ray.

The model is GPT-2-small-shaped (12 layers, hidden 768, 1,024 positions; random weights and a
byte-level BPE of at most 8,192 tokens trained on shipped text by scripts/make_random_gpt2.py,
so its output layer is smaller than gpt2's 50,257): the compute cost of gpt2's blocks without
its weights, which cannot be downloaded here. The sentences are a seeded
stratified sample of the HolisticBias v1.1 likelihood-bias subset on the two "I love / I hate"
templates over every axis (:func:`biasprobe.tasks.holistic.run_holistic`, ``sample=``).

One process, one local Ray instance (``ray.init``, timed on its own), the result cache off,
in this order:

* local: the engine as ``biasprobe holistic run`` runs it (torch's threads on every core);
* Ray, 1 actor with every core (``RayOptions(actors=1, num_cpus=<cores>)``): the overhead;
* Ray, 2 actors with half the cores each.

Each Ray run's sentences table is asserted identical to the local one (exact float64). Prints
wall times, ratios to the local time, sentences/s, and each Ray run's start-up (actor pool
start and model load, until its first batch came back).

Usage: python benchmarks/bench_ray.py [--sentences 13200] [--batch-size 16] [--smoke]
       (--smoke: a tiny GPT-2 and 128 sentences of one axis, to check that it runs)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's biasprobe, not an installed one
TEMPLATES = ["I love {plural_noun_phrase}.", "I hate {plural_noun_phrase}."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=13200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    try:
        import ray
    except ImportError:
        print("Ray is not installed (pip install 'biasprobe[ray]'): nothing to compare")
        print("bench_ray: skipped")
        return
    import pandas as pd
    import torch

    from biasprobe.distributed import RayEngine, RayOptions
    from biasprobe.tasks.holistic import run_holistic

    cores = os.cpu_count() or 1
    sentences = 128 if args.smoke else args.sentences
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "gpt2"
        size = "tiny" if args.smoke else "small"
        subprocess.run(
            [sys.executable, str(REPO / "scripts/make_random_gpt2.py"), str(model), "--size", size],
            check=True,
            capture_output=True,
        )
        load = os.getloadavg()[0]
        began = time.perf_counter()
        ray.init(
            num_cpus=cores,
            object_store_memory=256 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
        init_s = time.perf_counter() - began
        kw = {
            "axes": ["nonce"] if args.smoke else None,
            "templates": TEMPLATES,
            "sample": sentences,
            "seed": 0,
            "device": "cpu",
            "batch_size": args.batch_size,
            "cache": False,
        }
        runs = [
            ("local", None),
            ("Ray, 1 actor", RayOptions(actors=1, num_cpus=cores)),
            ("Ray, 2 actors", RayOptions(actors=2, num_cpus=cores / 2)),
        ]
        print(
            f"{size} GPT-2, {sentences} HolisticBias sentences, batch size {args.batch_size}, "
            f"{cores} cores, torch {torch.__version__}, ray {ray.__version__}; "
            f"load average at start {load:.1f}; ray.init {init_s:.1f} s"
        )
        base, seconds, same = None, {}, True
        for label, options in runs:
            engine = RayEngine(options) if options else None
            torch.set_num_threads(cores)
            began = time.perf_counter()
            result = run_holistic([str(model)], distribute=engine, **kw)
            seconds[label] = time.perf_counter() - began
            n = len(result.sentences)
            line = f"{label:>14}: {seconds[label]:7.1f} s  {n / seconds[label]:6.1f} sentences/s"
            if base is None:
                base = result.sentences
            else:
                equal = base.equals(result.sentences)
                pd.testing.assert_frame_equal(result.sentences, base, check_exact=True)
                same = same and equal
                runner = engine.runners[0]
                line += (
                    f"  {seconds[label] / seconds['local']:.2f}x local"
                    f"  (start-up {runner.startup_s[0]:.1f} s, {runner.calls} batches, "
                    f"{len(runner.pids)} actor processes)"
                )
            print(line, flush=True)
        ray.shutdown()
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print(f"identical sentences tables: {same}")


if __name__ == "__main__":
    main()
