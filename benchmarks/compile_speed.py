"""Does `torch.compile` speed up a training step of the full encoder? Eager against compiled.

    python benchmarks/compile_speed.py --mixer trellis --batch 128 --repeats 10

Single thread; CPU time per step (median) after warm-up, and the seconds the first compiled
step took (tracing and code generation). Writes one JSON line per run to
benchmarks/results/compile_speed.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import Bench, make_config

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixer", default="trellis")
    parser.add_argument("--length", type=int, default=336)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "compile_speed.jsonl")
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    row = {"mixer": args.mixer, "L": args.length, "batch": args.batch, "torch": torch.__version__}
    for mode in ("eager", "compiled"):
        bench = Bench(make_config(args.mixer, args.length, {}), args.batch, 64)
        if mode == "compiled":
            bench.model = torch.compile(bench.model)
        started = time.perf_counter()
        bench.train_step()
        row[f"{mode}_first_step_s"] = time.perf_counter() - started
        cpu = [bench.train_step()[0] for _ in range(args.repeats)]
        row[f"{mode}_step_cpu_s"] = statistics.median(cpu)
    row["speedup"] = row["eager_step_cpu_s"] / row["compiled_step_cpu_s"]
    print(json.dumps(row))
    with open(args.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
