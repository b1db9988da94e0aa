"""Torch intra-op threads: one against all cores, on an idle and on a busy machine, for a tiny,
the default and a large encoder (what `trellis_ts.forecaster.threads` chooses from).

    python benchmarks/threads.py                 # appends to benchmarks/results/threads.jsonl
    python benchmarks/threads.py --busy 0 2      # with 0 and 2 extra busy processes

Each row times `--steps` training steps (forward, backward, Adam) of one size at one thread
count, in a fresh process; `--busy N` starts N processes spinning on the CPU beside it (the
machine as a shared laptop or CI runner sees it). The load average before each run is recorded,
so a row says how busy the machine already was.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    "tiny": dict(
        context_length=48,
        prediction_length=12,
        patch_len=8,
        patch_stride=4,
        d_model=16,
        n_heads=2,
        n_layers=1,
        n_slots=8,
    ),
    "default": dict(context_length=336, prediction_length=96),
    "large": dict(context_length=720, prediction_length=96, d_model=128, n_layers=3),
}
RESULTS = Path(__file__).resolve().parent / "results" / "threads.jsonl"


def one_run(size: str, threads: int, steps: int, batch: int) -> dict:
    import torch

    from trellis_ts.forecaster.config import TrellisConfig
    from trellis_ts.forecaster.sizing import model_spec
    from trellis_ts.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrellisConfig(**SIZES[size])
    model = build_model(model_spec(config))
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, config.context_length)
    y = torch.randn(batch, config.prediction_length)

    def step() -> None:
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - started) / steps
    parameters = sum(p.numel() for p in model.parameters())
    return {"size": size, "threads": threads, "parameters": parameters, "step_ms": seconds * 1e3}


def spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--busy", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.child[0], int(args.child[1]), args.steps, args.batch)))
        return
    cores = len(os.sched_getaffinity(0))
    for busy in args.busy:
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        try:
            for size in args.sizes:
                for threads in sorted({1, cores}):
                    load = os.getloadavg()[0]
                    done = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            size,
                            str(threads),
                            "--steps",
                            str(args.steps),
                            "--batch",
                            str(args.batch),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        env=os.environ | {"OMP_NUM_THREADS": str(threads)},
                    )
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    row |= {
                        "busy_processes": busy,
                        "load_before": round(load, 2),
                        "cores": cores,
                        "batch": args.batch,
                        "steps": args.steps,
                    }
                    print(json.dumps(row), flush=True)
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
        finally:
            for p in spinners:
                p.terminate()


if __name__ == "__main__":
    main()
