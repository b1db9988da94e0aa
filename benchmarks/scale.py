"""Scaling benchmarks: long contexts, many series, batched inference (trellis vs attention).

    python benchmarks/scale.py long-context   # L = 512, 2048, 8192: s/step, s/epoch, peak memory
    python benchmarks/scale.py many-series    # 2,000 series x 2,000 steps, long frame: fit, predict
    python benchmarks/scale.py inference      # forecast_contexts on 10,000 windows: windows/s

Every measurement runs in a fresh subprocess (as in benchmarks/op_speed.py), so its peak
resident memory (`ru_maxrss`) is its own; "peak extra" is that peak minus the RSS just before
the measured part (data already built). Each row records `os.getloadavg()` before and after:
on a shared machine, compare rows taken at similar load. A measurement that fails or runs past
`--timeout` is recorded as such, not dropped. Results: benchmarks/results/<name>.{md,json}.
Run with OMP_NUM_THREADS set to the cores you really have free (the script defaults it to 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import rss_mb

RESULTS = Path(__file__).resolve().parent / "results"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _timer():
    """A Lightning callback timing each training step, training epoch and validation pass."""
    import lightning.pytorch as pl

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self.epochs: list[float] = []
            self.validations: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._step = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps.append(time.perf_counter() - self._step)  # forward, backward, optimiser

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._epoch = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.epochs.append(time.perf_counter() - self._epoch)

        def on_validation_start(self, trainer, pl_module) -> None:
            self._validation = time.perf_counter()

        def on_validation_end(self, trainer, pl_module) -> None:
            self.validations.append(time.perf_counter() - self._validation)

    return Timer()


# ---------------------------------------------------------------------------- measurements
def long_context(
    mixer: str, L: int, batch: int, steps: int, channels: int, horizon: int, chunk_size: int
) -> dict:
    """One epoch of `steps` training steps (windows_per_epoch = steps x batch), then predict."""
    import numpy as np

    from trellis_ts import TrellisForecaster
    from trellis_ts.data import make_demo_frame

    frame = make_demo_frame(
        n_steps=L + horizon + 4 * steps * batch // channels, n_channels=channels
    )
    forecaster = TrellisForecaster(
        context_length=L,
        prediction_length=horizon,
        patch_len=16,
        patch_stride=8,
        mixer=mixer,
        head="pool",
        chunk_size=chunk_size,
        batch_size=batch,
        max_epochs=1,
        windows_per_epoch=steps * batch,
        val_fraction=0.0,
        accelerator="cpu",
        devices=1,
        verbose=False,
    )
    timer = _timer()
    base, load = rss_mb(), _load()
    started = time.perf_counter()
    forecaster.fit(frame, callbacks=[timer])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    forecast = forecaster.predict()
    predict_seconds = time.perf_counter() - started
    assert np.isfinite(forecast.drop(columns="date").to_numpy()).all()
    return {
        "mixer": mixer,
        "L": L,
        "tokens": forecaster.config_.n_patches,
        "batch": batch,
        "chunk_size": chunk_size if mixer == "trellis" else "-",
        "steps": len(timer.steps),
        "s_per_step": statistics.median(timer.steps[1:]),
        "s_first_step": timer.steps[0],
        "s_per_epoch": timer.epochs[0],
        "fit_s": fit_seconds,
        "predict_s": predict_seconds,
        "parameters": forecaster.summary_.parameters,
        "rss_before_mb": base,
        "peak_rss_mb": _peak_mb(),
        "peak_extra_mb": _peak_mb() - base,
        "load_before": load,
        "load_after": _load(),
    }


def many_series_frame(n_series: int, n_steps: int):
    """Long frame `[unique_id, ds, y]` of demo series (ids as strings, rows grouped by id)."""
    import numpy as np
    import pandas as pd

    from trellis_ts.data import make_demo_series

    values = make_demo_series(n_steps, n_series, seed=0)  # [T, N]
    ids = np.array([f"series_{i:05d}" for i in range(n_series)], dtype=object)
    return pd.DataFrame(
        {
            "unique_id": np.repeat(ids, n_steps),
            "ds": np.tile(pd.date_range("2020-01-01", periods=n_steps, freq="h").values, n_series),
            "y": values.T.ravel(),
        }
    )


def many_series(
    n_series: int,
    n_steps: int,
    windows_per_epoch: int,
    epochs: int,
    L: int,
    horizon: int,
    batch: int,
    val_fraction: float,
) -> dict:
    """Fit a small model on a long frame with `windows_per_epoch` subsampling, then predict."""
    import numpy as np

    from trellis_ts import TrellisForecaster

    before_frame = rss_mb()
    frame = many_series_frame(n_series, n_steps)
    frame_rss_mb = rss_mb() - before_frame
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20  # counts shared id strings per row
    forecaster = TrellisForecaster(
        context_length=L,
        prediction_length=horizon,
        patch_len=16,
        patch_stride=8,
        d_model=32,
        n_heads=4,
        n_layers=1,
        n_slots=16,
        head="pool",
        batch_size=batch,
        max_epochs=epochs,
        windows_per_epoch=windows_per_epoch,
        val_fraction=val_fraction,
        accelerator="cpu",
        devices=1,
        verbose=False,
    )
    timer = _timer()
    base, load = rss_mb(), _load()
    started = time.perf_counter()
    forecaster.fit(frame, callbacks=[timer])
    fit_seconds = time.perf_counter() - started
    peak_fit = _peak_mb()
    started = time.perf_counter()
    forecast = forecaster.predict()
    predict_seconds = time.perf_counter() - started
    assert len(forecast) == n_series * horizon and np.isfinite(forecast["y"]).all()
    assert forecast["unique_id"].iloc[::horizon].tolist() == frame["unique_id"].unique().tolist()
    summary = forecaster.summary_
    val_s = statistics.mean(timer.validations or [0.0])  # Lightning validates inside the epoch
    return {
        "series": n_series,
        "steps": n_steps,
        "rows": len(frame),
        "frame_mb": frame_mb,
        "frame_rss_mb": frame_rss_mb,
        "L": L,
        "H": horizon,
        "epochs": summary.epochs,
        "windows_per_epoch": windows_per_epoch,
        "batch": batch,
        "train_windows": summary.train_windows,
        "val_windows": summary.val_windows,
        "copied_windows_mb": summary.train_windows * (L + horizon) * 4 / 2**20,
        "fit_s": fit_seconds,
        "train_epoch_s": statistics.mean(timer.epochs) - val_s,
        "val_s": val_s,
        "predict_s": predict_seconds,
        "parameters": summary.parameters,
        "rss_before_mb": base,
        "peak_rss_fit_mb": peak_fit,
        "peak_rss_mb": _peak_mb(),
        "peak_extra_mb": _peak_mb() - base,
        "load_before": load,
        "load_after": _load(),
    }


def inference(mixer: str, L: int, windows: int, batch: int, horizon: int) -> dict:
    """`forecast_contexts` over `windows` context windows of the demo series, `batch` at a time."""
    import lightning.pytorch as pl

    from trellis_ts.data import WindowDataset, make_demo_series
    from trellis_ts.forecaster.config import TrellisConfig
    from trellis_ts.forecaster.sizing import model_spec
    from trellis_ts.forecaster.training import forecast_contexts
    from trellis_ts.models import build_model

    channels = 8
    values = make_demo_series(L + horizon + windows // channels, channels)
    values = (values - values.mean(0)) / values.std(0)
    data = WindowDataset(list(values.T), L, horizon)
    contexts = data.gather(range(windows))["past_target"].numpy()  # [windows, L]
    config = TrellisConfig(
        context_length=L,
        prediction_length=horizon,
        patch_len=16,
        patch_stride=8,
        mixer=mixer,
        head="pool",
    )
    pl.seed_everything(0, verbose=False)
    model = build_model(
        model_spec(config)
    ).eval()  # untrained: the speed does not depend on the weights
    forecast_contexts(model, contexts[:batch], batch_size=batch)  # warm-up
    base, load = rss_mb(), _load()
    started = time.perf_counter()
    out = forecast_contexts(model, contexts, batch_size=batch)
    seconds = time.perf_counter() - started
    assert out.shape == (windows, horizon)
    return {
        "mixer": mixer,
        "L": L,
        "tokens": config.n_patches,
        "windows": windows,
        "batch": batch,
        "seconds": seconds,
        "windows_per_s": windows / seconds,
        "rss_before_mb": base,
        "peak_rss_mb": _peak_mb(),
        "peak_extra_mb": _peak_mb() - base,
        "load_before": load,
        "load_after": _load(),
    }


MEASURES = {"long-context": long_context, "many-series": many_series, "inference": inference}


# ---------------------------------------------------------------------------- tables
def _fmt(value, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: list[tuple[str, str, int]], rows: list[dict]) -> list[str]:
    """Markdown rows from `(title, key, digits)` columns; failed rows show their reason."""
    lines = [
        "| " + " | ".join(t for t, _, _ in header) + " |",
        "|" + "|".join("---:" for _ in header) + "|",
    ]
    for row in rows:
        cells = [_fmt(row[k], d) if k in row else "" for _, k, d in header]
        if "error" in row:  # the reason goes in the first column it has no value for
            cells[cells.index("")] = f"**not measured: {row['error']}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


LOAD = [("load before", "load_before", 2), ("load after", "load_after", 2)]
TABLES = {
    "long-context": [
        ("L", "L", 0),
        ("tokens", "tokens", 0),
        ("mixer", "mixer", 0),
        ("batch", "batch", 0),
        ("chunk", "chunk_size", 0),
        ("s / step", "s_per_step", 3),
        ("s / epoch", "s_per_epoch", 1),
        ("fit s", "fit_s", 1),
        ("predict s", "predict_s", 2),
        ("peak RSS MB", "peak_rss_mb", 0),
        ("peak extra MB", "peak_extra_mb", 0),
        ("params", "parameters", 0),
        *LOAD,
    ],
    "many-series": [
        ("series", "series", 0),
        ("steps", "steps", 0),
        ("rows", "rows", 0),
        ("frame MB (deep)", "frame_mb", 0),
        ("frame RSS MB", "frame_rss_mb", 0),
        ("train windows", "train_windows", 0),
        ("val windows", "val_windows", 0),
        ("epochs", "epochs", 0),
        ("fit s", "fit_s", 1),
        ("train s / epoch", "train_epoch_s", 1),
        ("validation s / epoch", "val_s", 1),
        ("predict s", "predict_s", 2),
        ("peak RSS MB", "peak_rss_mb", 0),
        ("peak extra MB", "peak_extra_mb", 0),
        ("copied windows would be MB", "copied_windows_mb", 0),
        *LOAD,
    ],
    "inference": [
        ("L", "L", 0),
        ("tokens", "tokens", 0),
        ("mixer", "mixer", 0),
        ("windows", "windows", 0),
        ("batch", "batch", 0),
        ("s", "seconds", 2),
        ("windows / s", "windows_per_s", 0),
        ("peak extra MB", "peak_extra_mb", 0),
        *LOAD,
    ],
}


# ---------------------------------------------------------------------------- driver
def _jobs(args) -> list[dict]:
    if args.command == "long-context":
        return [
            dict(
                mixer=m,
                L=L,
                batch=args.batch_size,
                steps=args.steps,
                channels=args.channels,
                horizon=args.horizon,
                chunk_size=args.chunk_size,
            )
            for L in args.lengths
            for m in args.mixers
        ]
    if args.command == "many-series":
        return [
            dict(
                n_series=args.series,
                n_steps=args.steps,
                L=args.context_length,
                windows_per_epoch=args.windows_per_epoch,
                epochs=args.epochs,
                horizon=args.horizon,
                batch=args.batch_size,
                val_fraction=vf,
            )
            for vf in args.val_fractions
        ]
    return [
        dict(mixer=m, L=L, windows=args.windows, batch=args.batch_size, horizon=args.horizon)
        for L in args.lengths
        for m in args.mixers
    ]


def _run_one(command: str, job: dict, timeout: float) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, __file__, "_one", command, json.dumps(job)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return job | {"error": f"over the {timeout:.0f} s limit", "load_before": _load()}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return job | {"error": f"exit {done.returncode}: {last[:200]}", "load_before": _load()}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lc = sub.add_parser("long-context", help="training step time and memory as L grows")
    lc.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    lc.add_argument("--mixers", nargs="+", default=["trellis", "attention"])
    lc.add_argument("--batch-size", type=int, default=32)
    lc.add_argument("--steps", type=int, default=16, help="training steps in the one epoch")
    lc.add_argument("--channels", type=int, default=4)
    lc.add_argument("--horizon", type=int, default=96)
    lc.add_argument("--chunk-size", type=int, default=16, help="the trellis mixer's chunk size")
    ms = sub.add_parser("many-series", help="fit and predict on a long frame of many series")
    ms.add_argument("--series", type=int, default=2000)
    ms.add_argument("--steps", type=int, default=2000, help="time steps per series")
    ms.add_argument("--windows-per-epoch", type=int, default=20_000)
    ms.add_argument("--epochs", type=int, default=2)
    ms.add_argument("--context-length", type=int, default=96)
    ms.add_argument("--horizon", type=int, default=24)
    ms.add_argument("--batch-size", type=int, default=256)
    ms.add_argument("--val-fractions", type=float, nargs="+", default=[0.2])
    inf = sub.add_parser("inference", help="forecast_contexts throughput on many windows")
    inf.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    inf.add_argument("--mixers", nargs="+", default=["trellis", "attention"])
    inf.add_argument("--windows", type=int, default=10_000)
    inf.add_argument("--batch-size", type=int, default=1024)
    inf.add_argument("--horizon", type=int, default=96)
    for p in (lc, ms, inf):
        p.add_argument("--timeout", type=float, default=400, help="seconds per measurement")
        p.add_argument("--name", help="output file stem (default scale_<command>)")
        p.add_argument("--no-write", action="store_true", help="print only")
    one = sub.add_parser("_one")  # internal: one measurement, in its own process
    one.add_argument("kind", choices=sorted(MEASURES))
    one.add_argument("job")
    args = parser.parse_args()
    if args.command == "_one":
        print(json.dumps(MEASURES[args.kind](**json.loads(args.job))))
        return

    import torch

    rows = []
    for job in _jobs(args):
        rows.append(_run_one(args.command, job, args.timeout))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    meta = {
        "command": " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1 (default)"),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    text = "\n".join(
        [
            f"`{meta['command']}` ({meta['date']}, {meta['cpus']} CPUs, "
            f"OMP_NUM_THREADS={meta['omp_num_threads']}, torch {meta['torch']})",
            "",
            *_table(TABLES[args.command], rows),
        ]
    )
    print(text)
    if not args.no_write:
        stem = args.name or "scale_" + args.command.replace("-", "_")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stem}.md").write_text(text + "\n")
        (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
