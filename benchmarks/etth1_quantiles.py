"""Quantile forecasts on ETTh1: weighted quantile loss and 80% band coverage on the test split.

    python benchmarks/etth1_quantiles.py                       # ../shared/datasets/ETTh1.csv
    python benchmarks/etth1_quantiles.py --max-epochs 2 --windows-per-epoch 1024   # quicker

On a shared machine keep `--threads 1` (the default): with more torch threads than free cores,
OpenMP's spin-waiting made a training step about 100x slower here.

Protocol (../shared/datasets/README.md): lookback L = 336, horizon H = 96, all 7 channels, train
rows [0, 8640), validation [8640 - L, 11520), test [11520 - L, 14400), every window start
(stride 1), a standard scaler fitted on the train rows only. The model is
`TrellisForecaster(loss="quantile")` with levels 0.1, ..., 0.9, fitted on rows [0, 11520) with
`val_fraction=0.25`, which holds out exactly the validation rows for early stopping.

Reported, on the test windows: wQL = 2 * sum(pinball) / sum(|y|) averaged over the nine levels,
on the standard-scaled values (the protocol's units) and on the raw values (as GluonTS's
`mean_wQuantileLoss` would compute it); coverage of the 10-90% band; MSE and MAE of the median
on the scaled values (comparable to published ETTh1 numbers). Results go to
benchmarks/results/etth1_quantiles.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trellis_ts import TrellisForecaster
from trellis_ts.forecaster.training import forecast_contexts
from trellis_ts.metrics import quantile_metrics

REPO = Path(__file__).resolve().parents[1]
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
TRAIN_END, VAL_END, TEST_END = 8640, 11520, 14400
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def read_etth1(path: Path) -> pd.DataFrame:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ETTH1_SHA256:
        raise SystemExit(f"{path} has sha256 {digest}; expected the published {ETTH1_SHA256}")
    return pd.read_csv(path, parse_dates=["date"])


def test_windows(values: np.ndarray, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 window of the test split: contexts `[C, n, L]`, targets `[C, n, H]`."""
    block = values[VAL_END - L : TEST_END].T  # [C, L + test rows]
    windows = np.lib.stride_tricks.sliding_window_view(block, L + H, axis=1)  # [C, n, L + H]
    return windows[..., :L], windows[..., L:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/ETTh1.csv")
    parser.add_argument("--context-length", type=int, default=336)
    parser.add_argument("--prediction-length", type=int, default=96)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--windows-per-epoch", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/etth1_quantiles")
    args = parser.parse_args()
    L, H = args.context_length, args.prediction_length
    torch.set_num_threads(args.threads)

    frame = read_etth1(args.data)
    channels = [c for c in frame.columns if c != "date"]
    values = frame[channels].to_numpy(np.float64)
    forecaster = TrellisForecaster(
        prediction_length=H,
        context_length=L,
        d_model=args.d_model,
        n_layers=args.n_layers,
        loss="quantile",
        quantiles=QUANTILES,
        max_epochs=args.max_epochs,
        windows_per_epoch=args.windows_per_epoch,
        val_fraction=(VAL_END - TRAIN_END) / VAL_END,  # validation targets = rows [8640, 11520)
        random_state=args.seed,
        verbose=False,
    )
    started = time.perf_counter()
    forecaster.fit(frame.iloc[:VAL_END])
    fit_seconds = time.perf_counter() - started

    # Forecast every test window with the fitted model and the fit's per-channel scaling.
    contexts, truth = test_windows(values, L, H)
    mean = forecaster.scaling_.target.mean[:, None, None]
    scale = forecaster.scaling_.target.scale[:, None, None]
    n_channels, n_windows = contexts.shape[:2]
    scaled = ((contexts - mean) / scale).reshape(n_channels * n_windows, L).astype(np.float32)
    started = time.perf_counter()
    out = forecast_contexts(forecaster.model_, scaled).reshape(n_channels, n_windows, H, -1)
    predict_seconds = time.perf_counter() - started
    qpred = out * scale[..., None] + mean[..., None]  # [C, n, H, Q], data units

    # The protocol's units: a standard scaler fitted on the train rows.
    train_mean = values[:TRAIN_END].mean(0)[:, None, None]
    train_std = values[:TRAIN_END].std(0)[:, None, None]
    truth_z = (truth - train_mean) / train_std
    qpred_z = (qpred - train_mean[..., None]) / train_std[..., None]
    levels = np.array(QUANTILES)
    median = QUANTILES.index(0.5)
    scaled_metrics = quantile_metrics(truth_z, qpred_z, levels)
    raw_metrics = quantile_metrics(truth, qpred, levels)
    result = {
        "dataset": "ETTh1",
        "context_length": L,
        "prediction_length": H,
        "test_windows": int(n_channels * n_windows),
        "wql_scaled": scaled_metrics["wql"],
        "wql_raw": raw_metrics["wql"],
        "coverage_10_90": scaled_metrics["coverage"],  # the same in either unit
        "mse_median_scaled": float(np.mean((qpred_z[..., median] - truth_z) ** 2)),
        "mae_median_scaled": float(np.mean(np.abs(qpred_z[..., median] - truth_z))),
        "fit_seconds": round(fit_seconds, 1),
        "predict_seconds": round(predict_seconds, 1),
        "epochs": forecaster.summary_.epochs,
        "best_epoch": forecaster.summary_.best_epoch,
        "parameters": forecaster.summary_.parameters,
        "settings": {k: v for k, v in vars(args).items() if k not in ("data", "out")},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(json.dumps(result, indent=2))


def markdown(r: dict) -> str:
    s = r["settings"]
    return f"""# ETTh1 quantile forecasts (L={r["context_length"]}, H={r["prediction_length"]})

`python benchmarks/etth1_quantiles.py --max-epochs {s["max_epochs"]} --windows-per-epoch \
{s["windows_per_epoch"]} --d-model {s["d_model"]} --n-layers {s["n_layers"]} --seed {s["seed"]} \
--threads {s["threads"]}`

TrellisForecaster(loss="quantile", quantiles 0.1..0.9), {r["parameters"]:,} parameters, fitted
in {r["fit_seconds"]} s ({r["epochs"]} epochs, best {r["best_epoch"]}) on {r["machine"]}.
Test split rows [11520 - L, 14400), every window start: {r["test_windows"]:,} windows (7 channels).

| metric | value |
|---|---|
| wQL, standard-scaled values (train-rows scaler) | {r["wql_scaled"]:.4f} |
| wQL, raw values | {r["wql_raw"]:.4f} |
| coverage of the 10-90% band (nominal 0.80) | {r["coverage_10_90"]:.3f} |
| MSE of the median, scaled | {r["mse_median_scaled"]:.4f} |
| MAE of the median, scaled | {r["mae_median_scaled"]:.4f} |

wQL = 2 * sum of pinball losses / sum of |y| over all windows, steps and channels, averaged over
the nine levels.
"""


if __name__ == "__main__":
    main()
