"""The streaming forecaster on the long-term-forecasting protocol, and its read-length study.

    python benchmarks/streaming.py accuracy --dataset ETTh1 --horizon 96 --seed 0 --mixer trellis
    python benchmarks/streaming.py readlength --dataset ETTh1 --horizon 96 --seed 0
    python benchmarks/streaming.py --table

Protocol (../shared/datasets/README.md): the standard scaler of the train rows; the model is
fitted on the train rows with the validation rows held out for early stopping (val_fraction is
the validation share of the rows before the test split; settings were not chosen on test); every
test window (stride 1) is scored, MSE and MAE on the scaled values averaged over windows, steps
and channels. A streaming model's lookback is the whole history: each test origin's forecast
reads every row before it (train, validation and earlier test rows), in one pass.

Settings are chosen on `val_mse`: the same scoring on every validation window.

`readlength` scores the same test windows when the model may read only the last N steps before
each origin (N in 336, 720, 2880; every 8th origin, to bound the cost of N separate reads).
Results are appended to benchmarks/results/streaming.jsonl (one line per run; resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
RESULTS = Path(__file__).resolve().parent / "results" / "streaming.jsonl"
SPLITS = {  # train end, validation end, test end (rows)
    "ETTh1": (8640, 11520, 14400),
    "Weather": (36887, 42157, 52696),
}
FILES = {"ETTh1": "ETTh1.csv", "Weather": "weather.csv"}


def scaled_frame(dataset: str) -> pd.DataFrame:
    train_end, _, test_end = SPLITS[dataset]
    df = pd.read_csv(DATA / FILES[dataset], encoding="latin-1").iloc[:test_end]
    df.columns = ["date", *[f"c{i}" for i in range(df.shape[1] - 1)]]
    values = df.iloc[:, 1:]
    mean, std = values.iloc[:train_end].mean(), values.iloc[:train_end].std(ddof=0)
    df.iloc[:, 1:] = (values - mean) / std
    df["date"] = pd.to_datetime(df["date"])
    return df


def forecaster(args, val_fraction: float):
    from trellis_ts import TrellisForecaster

    settings = {
        "prediction_length": args.horizon,
        "context_length": 336,
        "streaming": True,
        "mixer": args.mixer,
        "patch_len": 16,
        "norm_window": args.norm_window,
        "burn_in_tokens": args.burn_in,
        "crop_tokens": args.crop,
        "target_transform": "none",
        "val_fraction": val_fraction,
        "random_state": args.seed,
        "max_epochs": args.max_epochs,
        "min_steps": args.min_steps,
        "verbose": False,
    }
    return TrellisForecaster(**(settings | dict(_setting(item) for item in args.set)))


def _setting(item: str) -> tuple[str, object]:
    """`key=value` of --set, the value read as JSON when it parses (numbers, true, null)."""
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def accuracy(args) -> dict:
    import torch

    torch.set_num_threads(1)
    train_end, val_end, test_end = SPLITS[args.dataset]
    df = scaled_frame(args.dataset)
    f = forecaster(args, (val_end - train_end) / val_end)
    started = time.perf_counter()
    f.fit(df.iloc[:val_end])
    fit_seconds = time.perf_counter() - started
    n_val = val_end - train_end - args.horizon + 1
    with warnings.catch_warnings():  # the validation part was seen for early stopping only
        warnings.simplefilter("ignore")
        val = f.backtest(df.iloc[:val_end], step=1, n_windows=n_val)
    n_test = test_end - val_end - args.horizon + 1
    started = time.perf_counter()
    table = f.backtest(df, step=1, n_windows=n_test)
    seconds = time.perf_counter() - started
    record = {
        "kind": "accuracy",
        "test_mse": float(table["mse"].mean()),
        "test_mae": float(table["mae"].mean()),
        "val_mse": float(val["mse"].mean()),
        "val_loss": f.summary_.best_val_loss,
        "epochs": f.summary_.epochs,
        "best_epoch": f.summary_.best_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "backtest_seconds": round(seconds, 2),
        "windows": len(table),
        "state_bytes_per_series": f.summary_.extra["streaming"]["state_bytes_per_series"],
        "parameters": f.summary_.parameters,
    }
    if args.save:
        f.save(args.save)
    return record


def readlength(args) -> dict:
    """Test MSE when each origin's forecast reads only the last N steps (a fresh state)."""
    import torch

    from trellis_ts import TrellisForecaster

    torch.set_num_threads(1)
    _, val_end, test_end = SPLITS[args.dataset]
    df = scaled_frame(args.dataset)
    f = TrellisForecaster.load(args.model)
    H = f.config_.prediction_length
    origins = np.arange(val_end, test_end - H + 1, 8)
    out = {}
    for n in (336, 720, 2880, None):
        errors = []
        started = time.perf_counter()
        for o in origins:
            part = df.iloc[(0 if n is None else o - n) : o]
            forecast = f.predict(part).iloc[:, 1:].to_numpy()
            truth = df.iloc[o : o + H, 1:].to_numpy()
            errors.append(((forecast - truth) ** 2).mean())
        out[str(n or "all")] = {
            "test_mse": float(np.mean(errors)),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return {"kind": "readlength", "origins": len(origins), "by_length": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", choices=["accuracy", "readlength"])
    parser.add_argument("--dataset", default="ETTh1", choices=list(SPLITS))
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixer", default="trellis")
    parser.add_argument("--norm-window", type=int, default=None)
    parser.add_argument("--burn-in", type=int, default=32)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--min-steps", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], help="more settings: key=value")
    parser.add_argument("--save", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if args.table:
        for line in RESULTS.read_text().splitlines():
            print(line)
        return
    run = accuracy if args.mode == "accuracy" else readlength
    record = {
        "dataset": args.dataset,
        "horizon": args.horizon,
        "seed": args.seed,
        "mixer": args.mixer,
        "norm_window": args.norm_window,
        "burn_in": args.burn_in,
        "crop": args.crop,
        "max_epochs": args.max_epochs,
        "min_steps": args.min_steps,
        "set": args.set,
    } | run(args)
    record["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps(record), file=sys.stderr)


if __name__ == "__main__":
    main()
