"""Peers run by their own library on the identical protocol: NeuralForecast's PatchTST and DLinear.

    /path/to/peers-venv/bin/python benchmarks/peers.py            # ETTh1, L=336, H=96 and 720
    python benchmarks/peers.py --models PatchTST --horizons 96 --seeds 0

Needs `neuralforecast` (the `peers` extra, or the separate venv of benchmarks/README.md). Each
(model, H, seed) runs in a fresh process, so its wall time and peak memory (VmHWM) are its own.

The protocol is the runner's (trellis_ts/benchmark/runner.py): ETTh1's rows [0, 14400) scaled by the
train rows' per-channel mean and std; NeuralForecast's `cross_validation` with
`val_size = test_size = 2880`, `step_size=1` and no refit trains once on the train rows, early
stops on the validation rows, and forecasts every test window (2880 − H + 1 per channel); MSE
and MAE on the scaled values over every window, step and channel.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from common import peak_rss_mb

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "peers.jsonl"
L = 336
VAL_ROWS = TEST_ROWS = 4 * 30 * 24  # ETTh1's four-month validation and test periods

# The paper's ETTh1 sizes for PatchTST (as the attention encoder's recipe search starts from);
# NeuralForecast's defaults otherwise, trained on MSE (its default loss is MAE). Both early-stop
# on the validation rows, checked every 100 steps of 1,024 windows.
TRAINING = {
    "max_steps": 2000,
    "val_check_steps": 100,
    "early_stop_patience_steps": 5,
    "scaler_type": "identity",
    "enable_progress_bar": False,
    "logger": False,
    "enable_model_summary": False,
    "accelerator": "cpu",
}
MODELS = {
    "PatchTST": {
        "encoder_layers": 3,
        "n_heads": 4,
        "hidden_size": 16,
        "linear_hidden_size": 128,
        "dropout": 0.3,
        "fc_dropout": 0.3,
        "head_dropout": 0.0,
        "patch_len": 16,
        "stride": 8,
        "revin": True,
        "revin_subtract_last": False,
        "learning_rate": 1e-4,
    },
    "DLinear": {"moving_avg_window": 25, "learning_rate": 1e-3},
}


def scaled_long_frame(data_dir: Path):
    """ETTh1's first 14,400 rows in long format, scaled by the train rows' statistics."""
    import pandas as pd

    from trellis_ts.benchmark.protocol import split_borders
    from trellis_ts.benchmark.registry import load_dataset
    from trellis_ts.data.features.scaling import Scaler

    data = load_dataset("ETTh1", data_dir)
    borders = split_borders(data.split, len(data.values), L)
    end = borders["test"][1]
    scaler = Scaler.fit_rows(data.channels, data.values[slice(*borders["train"])])
    values = scaler.transform(data.values[:end])
    frames = [
        pd.DataFrame({"unique_id": name, "ds": data.time[:end], "y": values[:, c]})
        for c, name in enumerate(data.channels)
    ]
    return pd.concat(frames, ignore_index=True)


def run_one(model_name: str, horizon: int, seed: int, data_dir: Path) -> dict:
    import numpy as np
    import torch
    from neuralforecast import NeuralForecast, models
    from neuralforecast import __version__ as nf_version

    torch.set_num_threads(1)
    frame = scaled_long_frame(data_dir)
    from neuralforecast.losses.pytorch import MSE

    model_class = getattr(models, model_name)
    model = model_class(
        h=horizon,
        input_size=L,
        random_seed=seed,
        loss=MSE(),
        valid_loss=MSE(),
        **MODELS[model_name],
        **TRAINING,
    )
    started = time.perf_counter()
    forecasts = NeuralForecast(models=[model], freq="h").cross_validation(
        df=frame, val_size=VAL_ROWS, test_size=TEST_ROWS, n_windows=None, step_size=1
    )
    seconds = time.perf_counter() - started
    error = forecasts[model_name].to_numpy() - forecasts["y"].to_numpy()
    windows = forecasts.groupby("unique_id")["cutoff"].nunique()
    return {
        "dataset": "ETTh1",
        "peer": f"neuralforecast.{model_name}",
        "context_length": L,
        "horizon": horizon,
        "seed": seed,
        "mse": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
        "test_windows_per_channel": int(windows.min()),
        "scored_rows": len(forecasts),
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "settings": MODELS[model_name] | TRAINING,
        "neuralforecast": nf_version,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def render(path: Path = RESULTS) -> str:
    import statistics

    rows: dict[tuple, list[dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault((r["peer"], r["horizon"]), []).append(r)
    lines = [
        "| peer | L | H | MSE | MAE | seeds | train + forecast s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    from trellis_ts.benchmark.results import mean_std

    for (peer, horizon), runs in sorted(rows.items()):
        lines.append(
            f"| {peer} | {L} | {horizon} | {mean_std([r['mse'] for r in runs])} | "
            f"{statistics.mean(r['mae'] for r in runs):.4f} | {len(runs)} | "
            f"{statistics.mean(r['seconds'] for r in runs):.0f} | "
            f"{max(r['peak_rss_mb'] for r in runs):,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--horizons", nargs="+", type=int, default=[96, 720])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name, horizon, seed = args.one.split(":")
        print(json.dumps(run_one(name, int(horizon), int(seed), args.data_dir)))
        return
    done = set()
    if RESULTS.is_file():
        done = {
            (r["peer"], r["horizon"], r["seed"])
            for r in map(json.loads, RESULTS.read_text().splitlines())
        }
    for name in args.models:
        for horizon in args.horizons:
            for seed in args.seeds:
                if (f"neuralforecast.{name}", horizon, seed) in done:
                    continue
                print(f"start {name} H={horizon} seed={seed}", flush=True)
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        f"{name}:{horizon}:{seed}",
                        "--data-dir",
                        str(args.data_dir),
                    ],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{name} H={horizon} seed={seed} failed")
                record = out.stdout.strip().splitlines()[-1]
                with RESULTS.open("a") as fh:
                    fh.write(record + "\n")
                print(record, flush=True)
    (RESULTS.parent / "peers.md").write_text(render())
    print(render())


if __name__ == "__main__":
    main()
