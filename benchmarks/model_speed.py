"""Speed and memory of the full encoder: the Trellis mixer against softmax attention.

Both encoders get identical settings (only `mixer` differs) and are timed in one process,
interleaved repeat by repeat, single-threaded, so that a noisy machine slows both alike and the
ratio stays meaningful. The figures are medians of the process's CPU time per call (with one
thread, the work itself; other processes on a shared machine do not inflate it); the wall-clock
medians are recorded beside them in the JSON:

- training step: forward, MSE loss, backward and one AdamW step on `batch` univariate windows;
- inference: windows per second through `forecast_contexts` (the estimator's batched path,
  token-sized batches) under `torch.no_grad`.

Peak memory is measured apart, each (mixer, L, mode) in a fresh subprocess (peak RSS minus the
RSS before the measured call), because a process's peak RSS only ever grows.

    python benchmarks/model_speed.py                                # L in 96..8192, batch 32 and 256
    python benchmarks/model_speed.py --lengths 336 --batches 32 --config benchmarks/configs/x.json
    python benchmarks/model_speed.py --committed                    # the committed ETTh1 L=336 configs
    python benchmarks/model_speed.py --committed --trellis '{"chunk_size": 64}' --out results/x
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import Bench, make_config, peak_rss_mb, rss_mb

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).parent
MIXERS = ("trellis", "attention")


def inference_windows(length: int) -> int:
    """Enough windows for a stable rate, fewer at long contexts."""
    return max(64, min(2048, 2048 * 336 // length))


def time_pair(length: int, batch: int, repeats: int, overrides: dict, mode: str) -> dict:
    """Interleaved timing of both mixers at one setting; medians over `repeats`."""
    windows = inference_windows(length)
    benches = {
        m: Bench(make_config(m, length, overrides.get(m, overrides.get("*", {}))), batch, windows)
        for m in MIXERS
    }
    run = {m: (b.train_step if mode == "train" else b.inference) for m, b in benches.items()}
    for fn in run.values():  # warm-up (allocator, lazy init)
        fn()
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in MIXERS}
    for r in range(repeats):
        order = MIXERS if r % 2 == 0 else MIXERS[::-1]
        for m in order:
            times[m].append(run[m]())
    row = {
        "L": length,
        "mode": mode,
        "batch": batch if mode == "train" else None,
        "tokens": benches["trellis"].config.n_patches,
        "repeats": repeats,
    }
    for m in MIXERS:
        med = statistics.median(cpu for cpu, _ in times[m])
        row[f"{m}_s"] = med
        row[f"{m}_wall_s"] = statistics.median(wall for _, wall in times[m])
        row[f"{m}_params"] = benches[m].parameters
        if mode == "infer":
            row[f"{m}_windows_per_s"] = windows / med
            row["windows"] = windows
    row["ratio"] = row["trellis_s"] / row["attention_s"]
    return row


def peak_memory(mixer: str, length: int, batch: int, mode: str, overrides: dict) -> float:
    """Peak RSS growth (MB) of one training step or one inference pass, in this process."""
    bench = Bench(make_config(mixer, length, overrides), batch, inference_windows(length))
    base = rss_mb()
    (bench.train_step if mode == "train" else bench.inference)()
    return max(peak_rss_mb() - base, 0.0)


def memory_in_subprocess(mixer: str, length: int, batch: int, mode: str, overrides: dict) -> float:
    spec = json.dumps(
        {"mixer": mixer, "L": length, "batch": batch, "mode": mode, "overrides": overrides}
    )
    out = subprocess.run(
        [sys.executable, __file__, "--memory-one", spec], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def render(rows: list[dict], title: str) -> str:
    train = [r for r in rows if r["mode"] == "train"]
    infer = [r for r in rows if r["mode"] == "infer"]
    lines = [title, ""]
    if train:
        lines += [
            "Training step (forward, backward, AdamW), median CPU seconds:",
            "",
            "| L | tokens | batch | Trellis s | attention s | Trellis / attention "
            "| Trellis peak MB | attention peak MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in train:
            lines.append(
                f"| {r['L']} | {r['tokens']} | {r['batch']} | {r['trellis_s']:.4f} "
                f"| {r['attention_s']:.4f} | **{r['ratio']:.2f}** "
                f"| {_mb(r.get('trellis_peak_mb'))} | {_mb(r.get('attention_peak_mb'))} |"
            )
    if infer:
        lines += [
            "",
            "Inference (`forecast_contexts`, token-sized batches), windows per CPU second:",
            "",
            "| L | tokens | windows | Trellis windows/s | attention windows/s "
            "| Trellis / attention time | Trellis peak MB | attention peak MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in infer:
            lines.append(
                f"| {r['L']} | {r['tokens']} | {r['windows']} | {r['trellis_windows_per_s']:,.0f} "
                f"| {r['attention_windows_per_s']:,.0f} | **{r['ratio']:.2f}** "
                f"| {_mb(r.get('trellis_peak_mb'))} | {_mb(r.get('attention_peak_mb'))} |"
            )
    return "\n".join(lines)


def _mb(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[96, 336, 720, 2048, 2880, 8192])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config", help="JSON of TrellisConfig fields for both mixers")
    parser.add_argument(
        "--committed",
        action="store_true",
        help="each mixer with its committed ETTh1 L=336 config (lengths: 336)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument(
        "--out",
        help="writes <out>.json and <out>.md (default: results/"
        "model_speed, or results/model_speed_committed with --committed)",
    )
    parser.add_argument(
        "--trellis",
        type=json.loads,
        default={},
        help="JSON of fields for the Trellis side only, on top (e.g. '{\"chunk_size\": 64}')",
    )
    parser.add_argument("--memory-one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    if args.memory_one:
        spec = json.loads(args.memory_one)
        print(peak_memory(spec["mixer"], spec["L"], spec["batch"], spec["mode"], spec["overrides"]))
        return

    overrides: dict = {"*": json.loads(Path(args.config).read_text())} if args.config else {"*": {}}
    lengths = args.lengths
    title = "Full encoder, identical settings (defaults, patch 16 / stride 8, H=96)"
    if args.config:
        title = f"Full encoder, identical settings from {args.config} (H=96)"
    if args.committed:
        overrides = {m: _committed(m) for m in MIXERS}
        lengths = [336]
        title = "Each mixer with its committed ETTh1 L=336 config (benchmarks/configs/), H=96"
    if args.trellis:
        overrides["trellis"] = overrides.get("trellis", overrides.get("*", {})) | args.trellis
        title += f"; Trellis also {json.dumps(args.trellis)}"
    rows = []
    for length in lengths:
        jobs = [("train", b) for b in args.batches] + ([] if args.no_inference else [("infer", 0)])
        for mode, batch in jobs:
            row = time_pair(length, batch, args.repeats, overrides, mode)
            if not args.no_memory:
                for m in MIXERS:
                    row[f"{m}_peak_mb"] = memory_in_subprocess(
                        m, length, batch, mode, overrides.get(m, overrides.get("*", {}))
                    )
            row["threads"] = torch.get_num_threads()
            row["load_1min"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    text = render(rows, title)
    print(text)
    name = "model_speed_committed" if args.committed else "model_speed"
    out = Path(args.out) if args.out else HERE / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    out.with_suffix(".md").write_text(text + "\n")


def _committed(mixer: str) -> dict:
    config = json.loads((HERE / "configs" / f"etth1_{mixer}_L336.json").read_text())
    return config


if __name__ == "__main__":
    main()
