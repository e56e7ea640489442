"""Training throughput (examples/s) of the study's configs, against the original study's times.

Each config's classifier, at the config's sizes, is trained for a few AdamW steps on batches of
random WordPiece ids padded to a fixed length (compute does not depend on the text, and fixed
length matches the study's padding to 256). The first ``--warmup`` steps are not timed. The
script prints examples/s and the time one pass over Amazon Polarity's 3.6M reviews would take
at that rate, next to the original study's GPU times.

    .venv/bin/python benchmarks/bench_sentiment_train.py                      # CPU, batch 32
    .venv/bin/python benchmarks/bench_sentiment_train.py --device cuda --batch-size 512

Config 6 (frozen bert-base-uncased) is measured only when its weights load; otherwise it is
reported as skipped.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from biasprobe.errors import BiasprobeError
from biasprobe.sentiment.config import load_config
from biasprobe.sentiment.train import build_model, count_parameters, resolve_device

REPO = Path(__file__).resolve().parents[1]
AMAZON_TRAIN = 3_600_000
# The original study's train times for one pass over 3.6M examples on its GPU (seconds).
STUDY_SECONDS = {1: 986.0, 2: 1487.0, 3: 2502.0, 4: 4527.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(config_path: Path, device: torch.device, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps of one config; return its row of the report."""
    cfg = load_config(config_path)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    vocab = cfg.model.kwargs.get("vocabulary_size", 30522)
    gen = torch.Generator().manual_seed(0)
    b, t = args.batch_size, args.max_length
    ids = torch.randint(1000, vocab, (b, t), generator=gen)  # (B, T)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    mask = torch.ones(b, t, dtype=torch.long)
    labels = torch.randint(0, 2, (b,), generator=gen)
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elapsed = 0.0
    for step in range(args.warmup + args.steps):
        _sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = model(ids, mask, labels)
        loss.backward()
        opt.step()
        _sync(device)
        if step >= args.warmup:
            elapsed += time.perf_counter() - start
    rate = args.steps * b / elapsed
    total, _ = count_parameters(model)
    row = {
        "experiment": cfg.experiment,
        "name": cfg.name,
        "params": total,
        "examples_per_s": rate,
        "amazon_pass_s": AMAZON_TRAIN / rate,
        "study_s": STUDY_SECONDS.get(cfg.experiment),
    }
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--configs",
        nargs="*",
        type=Path,
        default=sorted((REPO / "configs" / "sentiment").glob("*.yaml")),
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the GRU encoder config, 1 step of 2 × 16 tokens"
    )
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.max_length, args.steps, args.warmup = 2, 16, 1, 0
        args.configs = [REPO / "configs" / "sentiment" / "1-gru-encoder.yaml"]
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device {device} ({name or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; batch {args.batch_size}, length "
        f"{args.max_length}, {args.steps} timed steps after {args.warmup} warm-up steps"
    )
    header = (
        f"{'exp':>3}  {'config':<22} {'params':>11} {'examples/s':>11} "
        f"{'3.6M pass (s)':>14} {'study GPU (s)':>14} {'ratio':>7}"
    )
    print(header)
    for path in args.configs:
        try:
            row = measure(path, device, args)
        except BiasprobeError as e:
            print(f"{'':>3}  {path.stem:<22} skipped: {e.message.splitlines()[0][:90]}")
            continue
        study = row["study_s"]
        ratio = f"{row['amazon_pass_s'] / study:7.2f}" if study else f"{'-':>7}"
        print(
            f"{row['experiment']:>3}  {row['name']:<22} {row['params']:>11,} "
            f"{row['examples_per_s']:>11.1f} {row['amazon_pass_s']:>14.0f} "
            f"{study if study else '-':>14} {ratio}"
            + (f"  peak {row['peak_mib']:.0f} MiB" if "peak_mib" in row else ""),
            flush=True,
        )
    print("ratio = our time for one 3.6M-example pass at this rate / the study's GPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
