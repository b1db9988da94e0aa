"""Speed and memory of the streaming forecaster beside the window model, measured in one run.

    python benchmarks/streaming_speed.py online     # update one row per series + predict, 10,000 series
    python benchmarks/streaming_speed.py history    # time per update at 1,000 vs 100,000 steps of history
    python benchmarks/streaming_speed.py backtest   # every origin of ETTh1's test split (step 1)
    python benchmarks/streaming_speed.py memory     # state bytes per series; 1,000,000 series allocated

Models are trained for one short epoch: these are speed figures, the weights do not matter.
Both models have the same size (d_model, heads, layers, slots); one thread. Results are appended
to benchmarks/results/streaming_speed.jsonl.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import peak_rss_mb, rss_mb  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "streaming_speed.jsonl"
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
QUICK = dict(max_epochs=1, min_steps=0, windows_per_epoch=256, verbose=False, num_threads=1)


def panel(n_series: int, length: int, start: int = 0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + length)
    values = np.sin(2 * np.pi * t / 24)[None] + 0.3 * rng.standard_normal((n_series, length))
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i}" for i in range(n_series)], length),
            "ds": np.tile(pd.Timestamp("2024-01-01") + pd.to_timedelta(t, "h"), n_series),
            "y": values.ravel(),
        }
    )


def timed_rounds(f, n_series: int, start: int, rounds: int, predict: bool = True) -> dict:
    """Median seconds of `update` (one new row per series) and of the `predict` after it."""
    updates, predicts = [], []
    for k in range(rounds):
        new = panel(n_series, 1, start + k, seed=100 + k)
        started = time.perf_counter()
        f.update(new)
        updates.append(time.perf_counter() - started)
        if predict:
            started = time.perf_counter()
            f.predict()
            predicts.append(time.perf_counter() - started)
    out = {"update_s": float(np.median(updates))}
    if predict:
        out["predict_s"] = float(np.median(predicts))
        out["both_s"] = float(np.median(np.add(updates, predicts)))
    return out


def online() -> dict:
    from trellis_ts import TrellisForecaster

    S, T = 10_000, 400
    df = panel(S, T)
    out = {"series": S, "history": T}
    for name, extra in (("streaming", {"streaming": True}), ("window", {})):
        f = TrellisForecaster(prediction_length=24, context_length=96, **QUICK, **extra).fit(df)
        out[name] = timed_rounds(f, S, T, 5)
    for part in ("update_s", "predict_s", "both_s"):
        out[f"ratio_{part[:-2]}"] = out["streaming"][part] / out["window"][part]
    return out


def history() -> dict:
    from trellis_ts import TrellisForecaster

    S = 100
    f = TrellisForecaster(prediction_length=24, context_length=96, streaming=True, **QUICK)
    f.fit(panel(S, 995))
    timed_rounds(f, S, 995, 5, predict=False)  # warm-up, not counted
    short = timed_rounds(f, S, 1_000, 60, predict=False)["update_s"]
    f.update(panel(S, 99_000 - 60, start=1_060))
    seen = int(f.stream_.seen.max())
    timed_rounds(f, S, 100_000, 5, predict=False)  # as many warm-up rounds
    long = timed_rounds(f, S, 100_005, 60, predict=False)["update_s"]
    return {
        "series": S,
        "history_short": 1_000,
        "history_long": seen,
        "update_s_short": short,
        "update_s_long": long,
        "ratio": long / short,
    }


def backtest() -> dict:
    from trellis_ts import TrellisForecaster

    df = pd.read_csv(DATA / "ETTh1.csv").iloc[:14400]
    out = {}
    for name, extra in (("streaming", {"streaming": True}), ("window", {})):
        f = TrellisForecaster(prediction_length=96, context_length=336, **QUICK, **extra)
        f.fit(df.iloc[:11520])
        started = time.perf_counter()
        table = f.backtest(df, step=1, n_windows=2880 - 96 + 1)
        out[name] = {"seconds": time.perf_counter() - started, "windows": len(table)}
    out["speedup"] = out["window"]["seconds"] / out["streaming"]["seconds"]
    return out


def memory() -> dict:
    from trellis_ts import TrellisForecaster
    from trellis_ts.forecaster.streaming.state import StreamState

    out = {}
    small = {"d_model": 32, "n_heads": 2, "n_slots": 8}
    for name, extra in (("default", {}), ("small", small)):
        f = TrellisForecaster(
            prediction_length=24, context_length=96, streaming=True, **QUICK, **extra
        ).fit(panel(4, 500))
        out[name] = {"settings": extra, "bytes_per_series": f.stream_.nbytes()}
    f_small = f
    before = rss_mb()
    state = StreamState.empty(f_small.model_, [f"s{i}" for i in range(1_000_000)], 0)
    out["small"]["million_series_rss_mb"] = rss_mb() - before
    out["small"]["million_series_bytes"] = state.nbytes() * len(state)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    mode = sys.argv[1]
    record = {"mode": mode} | {
        "online": online,
        "history": history,
        "backtest": backtest,
        "memory": memory,
    }[mode]()
    record["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
