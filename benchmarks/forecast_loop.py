"""The forecasting loop, measured: conformal interval coverage and warm starts.

    OMP_NUM_THREADS=1 python benchmarks/forecast_loop.py coverage     # ETTh1 + the demo series
    OMP_NUM_THREADS=1 python benchmarks/forecast_loop.py warm-start   # ETTh1

Both use ETTh1's standard protocol (../shared/datasets/README.md; the splits of
`trellis_ts.benchmark.protocol.split_borders`): L = 336, H = 96, all 7 channels, every test window
(stride 1), errors and widths in the units of a standard scaler fitted on the train rows. The
model is the attention encoder at the committed ETTh1 settings
(`benchmarks/configs/etth1_attention_L336.json`), so each fit takes minutes on one core.

coverage: `TrellisForecaster` fitted on the train + validation rows with `val_fraction` set so
that its validation part is exactly the protocol's validation rows (early stopping and
conformal calibration), then `backtest(test rows, step=1, level=[80, 95])`: the share of test
values inside each interval and its mean width, for a point (MSE) and a quantile model
(levels 0.1, 0.5, 0.9), with the thresholds per series (the default on this data) and pooled
over series. The same on the synthetic demo series (`make_demo_frame`, split 7:1:2), with
5,000 hourly steps ("demo": a 500-step calibration part, shorter than the series' ~730-step
monthly cycle) and a year of them ("demo-year": 876 steps, more than one cycle).

warm-start: a fit from scratch on the first 70% of the train rows, then `fit(all train rows,
warm_start=True)` for 2 epochs, against a fit from scratch on all train rows (each with its
own validation part, the last `val_fraction` of what it is given); test MSE/MAE and wall time.

Records are appended to benchmarks/results/<name>.jsonl as each run finishes and the markdown
table next to it is rewritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trellis_ts import TrellisForecaster
from trellis_ts.benchmark.protocol import split_borders
from trellis_ts.benchmark.registry import load_dataset
from trellis_ts.benchmark.runner import load_config
from trellis_ts.data import make_demo_frame

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIG = REPO / "benchmarks" / "configs" / "etth1_attention_L336.json"
L, H = 336, 96
LEVELS = [80, 95]


def settings(**extra) -> dict:
    values = load_config(CONFIG) | {
        "mixer": "attention",
        "context_length": L,
        "prediction_length": H,
        "verbose": False,
    }
    return values | extra


def etth1(data_dir: Path):
    """ETTh1 as a wide frame (checksum verified) and its protocol borders at lookback L."""
    data = load_dataset("ETTh1", data_dir)
    frame = pd.DataFrame(data.values, columns=list(data.channels))
    frame.insert(0, "date", data.time)
    return frame, split_borders(data.split, len(frame), L)


def demo(n_steps: int):
    """The synthetic demo series, `n_steps` hourly steps, and 7:1:2 borders at lookback L."""
    frame = make_demo_frame(n_steps=n_steps)
    return frame, split_borders("ratio_7_1_2", len(frame), L)


def train_std(frame: pd.DataFrame, borders) -> pd.Series:
    rows = frame.iloc[slice(*borders["train"])].drop(columns="date")
    return rows.std(ddof=0)


def append(name: str, record: dict, render) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    (RESULTS / f"{name}.md").write_text(render(records))
    print(json.dumps(record), flush=True)


def machine() -> dict:
    return {
        "machine": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# ------------------------------------------------------------------------------ coverage
def coverage(args) -> None:
    sets = {
        "ETTh1": lambda: etth1(args.data_dir),
        "demo": lambda: demo(5000),
        "demo-year": lambda: demo(8760),
    }
    for dataset in args.datasets:
        frame, borders = sets[dataset]()
        fit_rows = frame.iloc[: borders["val"][1]]
        val_rows = borders["val"][1] - borders["train"][1]
        test = frame.iloc[slice(*borders["test"])]
        std = train_std(frame, borders).to_numpy()
        for loss in args.losses:
            extra = {"loss": loss, "quantiles": (0.1, 0.5, 0.9)} if loss == "quantile" else {}
            params = settings(
                val_fraction=val_rows / len(fit_rows), random_state=args.seed, **extra
            )
            started = time.perf_counter()
            model = TrellisForecaster(**params).fit(fit_rows)
            fit_seconds = time.perf_counter() - started
            calibration = model.calibration_
            pooled = dataclasses.replace(
                calibration,
                thresholds=calibration.thresholds[:1],
                groups=[],
                counts=calibration.counts[:1],
            )
            for label, cal in (("per series", calibration), ("pooled", pooled)):
                model.calibration_ = cal
                result = model.rolling_forecasts(test, step=1, level=LEVELS)
                record = {
                    "dataset": dataset,
                    "loss": loss,
                    "calibration": label,
                    "seed": args.seed,
                    "test_windows": int(len(result.windows.series)),
                    "calibration_windows": calibration.counts[0],
                    "fit_seconds": round(fit_seconds, 1),
                    "epochs": model.summary_.epochs,
                    **machine(),
                }
                scale = std[result.windows.series][:, None]
                truth = result.windows.targets
                record["mse"] = float(np.mean(((result.point - truth) / scale) ** 2))
                for lvl, (low, high) in result.bounds.items():
                    record[f"coverage{lvl}"] = float(np.mean((truth >= low) & (truth <= high)))
                    record[f"width{lvl}"] = float(np.mean((high - low) / scale))
                if loss == "quantile":  # the model's own 10-90% band, before conformalisation
                    low, high = result.output[..., 0], result.output[..., -1]
                    record["band_coverage"] = float(np.mean((truth >= low) & (truth <= high)))
                    record["band_width"] = float(np.mean((high - low) / scale))
                append("conformal_coverage", record, render_coverage)
            model.calibration_ = calibration


def render_coverage(records: list[dict]) -> str:
    lines = [
        "# Conformal interval coverage (L=336, H=96, every test window)",
        "",
        "Written by `benchmarks/forecast_loop.py coverage`. Coverage: share of test values inside "
        "the interval (goal: within 2 points of nominal). Width: mean interval width in units of "
        "the train rows' standard deviation. The quantile model's own 10-90% band (before "
        "conformalisation) is in the last columns.",
        "",
        "| data | model | thresholds | cov 80 | width 80 | cov 95 | width 95 | MSE | own 10-90 band cov / width | calib. windows | test windows | fit s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        band = (
            f"{100 * r['band_coverage']:.1f}% / {r['band_width']:.2f}"
            if "band_coverage" in r
            else ""
        )
        model = "point (MSE)" if r["loss"] == "mse" else "quantile 0.1/0.5/0.9"
        lines.append(
            f"| {r['dataset']} | {model} | {r['calibration']} | {100 * r['coverage80']:.1f}% | "
            f"{r['width80']:.2f} | {100 * r['coverage95']:.1f}% | {r['width95']:.2f} | "
            f"{r['mse']:.4f} | {band} | {r['calibration_windows']} | {r['test_windows']} | "
            f"{r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ warm start
def warm_start(args) -> None:
    frame, borders = etth1(args.data_dir)
    train_end = borders["train"][1]
    first = frame.iloc[: int(0.7 * train_end)]
    everything = frame.iloc[:train_end]
    test = frame.iloc[slice(*borders["test"])]
    std = train_std(frame, borders).to_numpy()

    def score(model) -> dict:
        result = model.rolling_forecasts(test, step=1)
        scale = std[result.windows.series][:, None]
        err = (result.point - result.windows.targets) / scale
        return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}

    def timed(label: str, rows: str, fit) -> TrellisForecaster:
        started = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - started
        record = {
            "run": label,
            "rows": rows,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "epochs": model.summary_.epochs,
            "best_val_loss": model.summary_.best_val_loss,
            **score(model),
            **machine(),
        }
        append("warm_start", record, render_warm_start)
        return model

    params = settings(random_state=args.seed)
    n_first = len(first)
    base = timed(
        "scratch on the first 70%",
        f"[0, {n_first})",
        lambda: TrellisForecaster(**params).fit(first),
    )
    base.set_params(max_epochs=args.warm_epochs)
    timed(
        f"warm start, {args.warm_epochs} epochs",
        f"[0, {train_end})",
        lambda: base.fit(everything, warm_start=True),
    )
    timed(
        "scratch on all", f"[0, {train_end})", lambda: TrellisForecaster(**params).fit(everything)
    )


def render_warm_start(records: list[dict]) -> str:
    lines = [
        "# Warm start on ETTh1 (attention encoder, L=336, H=96)",
        "",
        "Written by `benchmarks/forecast_loop.py warm-start`. Test MSE/MAE over every test window "
        "on standard-scaled values; seconds = wall time of `fit` (training, validation and "
        "calibration), one thread. Best val loss is on each fit's own validation part in its own "
        "scaling (the warm start keeps the scaling of the 70% fit), so compare the test columns.",
        "",
        "| run | fit rows | epochs | best val loss | test MSE | test MAE | seconds | seed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['run']} | {r['rows']} | {r['epochs']} | {r['best_val_loss']:.4f} | "
            f"{r['mse']:.4f} | {r['mae']:.4f} | {r['seconds']:.0f} | {r['seed']} |"
        )
    return "\n".join(lines) + "\n"


def render(name: str) -> None:
    """Rewrite benchmarks/results/<name>.md from its .jsonl."""
    path = RESULTS / f"{name}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = render_coverage if name == "conformal_coverage" else render_warm_start
    (RESULTS / f"{name}.md").write_text(table(records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["coverage", "warm-start"])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--datasets", nargs="+", default=["ETTh1", "demo", "demo-year"])
    parser.add_argument("--losses", nargs="+", default=["mse", "quantile"])
    parser.add_argument("--warm-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    coverage(args) if args.what == "coverage" else warm_start(args)


if __name__ == "__main__":
    main()
