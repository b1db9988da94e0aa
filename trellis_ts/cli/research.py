"""The research commands of the command line: `tune` (Optuna) and `benchmark` (the protocol).

They register on the app of `trellis_ts.cli.app` and use the shared machinery there
(one-line user errors, data and model options, staged outputs).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from trellis_ts.cli.app import (
    app,
    cli_words,
    stopped_by_signals,
    user_errors,
)
from trellis_ts.cli.inputs import DataSource, prepare
from trellis_ts.cli.options import (
    Json,
    Quiet,
    check_model_dir,
    data_options,
    model_options,
)
from trellis_ts.cli.outputs import staged_outputs
from trellis_ts.errors import TrainingError

# Options that take several values after one flag (`--horizons 96 192 336 720`); `main`
# rewrites them into repeated flags, which is what Typer parses.
MULTI_VALUE_OPTIONS = ("--horizons", "--seeds", "--level")


def expand_multi_value(argv: list[str]) -> list[str]:
    """`--horizons 96 192` → `--horizons 96 --horizons 192` (only integer values are taken)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] in MULTI_VALUE_OPTIONS:
            flag, i = argv[i], i + 1
            first = True
            while i < len(argv) and argv[i].lstrip("-").isdigit() and not argv[i].startswith("--"):
                out += ([] if first else [flag]) + [argv[i]]
                first, i = False, i + 1
            continue
        i += 1
    return out


@app.command()
@user_errors
@model_options
@data_options(covariates=True)
def tune(
    data: DataSource,
    model_dir: Annotated[
        Path,
        typer.Option(help="Save the best model, refit on all the data, here.", show_default=False),
    ],
    trials: Annotated[int, typer.Option(help="Finished trials the study should reach.")] = 20,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL (default: sqlite:///<model-dir>-tune.db). Any RDB URL "
            "(postgresql://..., mysql://...) lets many workers share the study."
        ),
    ] = None,
    study_name: Annotated[
        str, typer.Option(help="Study name in the storage (rerun to resume).")
    ] = "trellis-ts",
    space: Annotated[
        Path | None, typer.Option(help="YAML/JSON search space (default: the built-in one).")
    ] = None,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    heartbeat: Annotated[
        int,
        typer.Option(
            help="Seconds between a worker's heartbeats: a trial whose worker is silent for twice "
            "this long is marked failed and retried by another worker."
        ),
    ] = 60,
    quiet: Quiet = False,
    as_json: Json = False,
    settings: dict | None = None,
) -> None:
    """Search hyperparameters with Optuna (pruned, resumable, parallel) and save the best model.

    Trials fit on the data and are scored by their validation loss (the end of each series is
    held out); keep your test period out of the CSV. Model options given here are fixed for
    every trial (the space never overrides them); the space, sized to the data by default,
    searches the rest. The status is not 0 when no trial completed.
    """
    check_model_dir(model_dir)
    model_dir = model_dir.resolve()
    storage = storage or f"sqlite:///{model_dir.with_name(model_dir.name + '-tune.db')}"
    panel = prepare(data, settings)  # bad options and data fail before torch and Optuna load
    from trellis_ts.tuning.search import save_plots, summary_table
    from trellis_ts.tuning.search import tune as run_study

    kept = f"the study {study_name!r} keeps its finished trials in {storage}; rerun the same command to continue it"
    with contextlib.redirect_stdout(sys.stderr), stopped_by_signals(lambda: kept):
        study, best = run_study(
            panel,
            n_trials=trials,
            timeout=timeout,
            storage=storage,
            study_name=study_name,
            space=space,
            base_params=settings or {},
            pruner=pruner,
            fit_kwargs=data.columns,
            model_dir=model_dir,
            heartbeat_interval=heartbeat,
        )
    table = summary_table(study)
    report_dir = model_dir.with_name(model_dir.name + "-tune")
    report_dir.mkdir(exist_ok=True)
    with staged_outputs() as stage:
        stage(report_dir / "trials.csv", lambda p: table.to_csv(p, index=False))
    plots = save_plots(study, report_dir)
    states = table["state"].value_counts().to_dict() if len(table) else {}
    summary = {
        "command": "tune",
        "storage": storage,
        "study_name": study_name,
        "trials": len(table),
        "states": states,
        "best_val_loss": None if best is None else study.best_value,
        "best_params": None if best is None else study.best_trial.params,
        "model_dir": None if best is None else str(model_dir),
        "outputs": [str(report_dir / "trials.csv"), *map(str, plots)],
    }
    pruned = table[table["state"] == "PRUNED"] if len(table) else table
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    elif not quiet:
        typer.echo(table.drop(columns="note", errors="ignore").to_string(index=False), err=True)
        for _, row in pruned.iterrows():
            why = cli_words(row["note"]) if row["note"] else "no reason recorded"
            typer.echo(f"Trial {row['trial']} pruned: {why}", err=True)
        typer.echo(f"Trials by state: {states}", err=True)
        if best is not None:
            typer.echo(
                f"Best validation loss {study.best_value:.4g} (trial {study.best_trial.number}); "
                f"refit and saved to {model_dir}",
                err=True,
            )
        typer.echo(f"Wrote {report_dir}/ (trials.csv, plots)", err=True)
    if best is None:
        reasons = pruned["note"].value_counts() if len(pruned) else None
        why = (
            f"; most often: {reasons.index[0]}"
            if reasons is not None and len(reasons) and reasons.index[0]
            else ""
        )
        counts = ", ".join(f"{n} {state.lower()}" for state, n in states.items()) or "no trials"
        raise TrainingError(
            f"no trial completed ({counts}){why}; nothing was saved. Fix that (or widen the "
            "space, or raise max_epochs) and rerun the same command"
        )


@app.command()
@user_errors
def benchmark(
    dataset: Annotated[
        str,
        typer.Argument(help="A registered dataset (e.g. ETTh1) or a CSV path.", show_default=False),
    ],
    data_dir: Annotated[Path, typer.Option(help="Folder holding the dataset files.")] = Path(
        "datasets"
    ),
    context_length: Annotated[int, typer.Option(help="Lookback L.")] = 336,
    horizons: Annotated[
        list[int] | None, typer.Option(help="Horizons, e.g. --horizons 96 192 336 720.")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="trellis, attention, dlinear, seasonal_naive, or streaming and "
            "streaming_attention (whole-history lookback)."
        ),
    ] = "trellis",
    config: Annotated[
        Path | None, typer.Option(help="JSON/YAML file of model settings (TrellisConfig fields).")
    ] = None,
    seeds: Annotated[list[int] | None, typer.Option(help="Seeds, e.g. --seeds 0 1 2.")] = None,
    results: Annotated[Path, typer.Option(help="Append result records (JSON lines) here.")] = Path(
        "benchmarks/results.jsonl"
    ),
    table: Annotated[
        Path | None, typer.Option(help="Write the markdown table of all results here.")
    ] = None,
    features: Annotated[
        str,
        typer.Option(
            help="M (every channel forecast), S (the target alone) or MS (the target, with every "
            "other channel as a past covariate)."
        ),
    ] = "M",
    target: Annotated[
        str | None,
        typer.Option(help="The forecast column of S and MS (default: OT, else the last column)."),
    ] = None,
    validation_only: Annotated[
        bool,
        typer.Option(
            help="Choose settings: record the validation loss, never touch the test rows."
        ),
    ] = False,
    val_stride: Annotated[
        int,
        typer.Option(
            help="Early-stop on every n-th validation window (all test windows are scored)."
        ),
    ] = 1,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Run the long-term-forecasting protocol and record MSE/MAE, wall time and peak memory.

    Fixed row splits, a scaler fitted on the train rows only, every test window scored.
    """
    from trellis_ts.benchmark.runner import run_benchmark

    with contextlib.redirect_stdout(sys.stderr):
        records = run_benchmark(
            dataset,
            data_dir,
            context_length,
            horizons or [96, 192, 336, 720],
            model=model,
            config=config,
            seeds=seeds or [0],
            results_path=results,
            table_path=table,
            score_test=not validation_only,
            features=features,
            target=target,
            val_stride=val_stride,
            verbose=not quiet,
        )
    if as_json:
        keep = (
            "dataset",
            "model",
            "seed",
            "context_length",
            "horizon",
            "mse",
            "mae",
            "best_val_loss",
            "train_seconds",
            "peak_rss_mb",
            "parameters",
            "epochs",
        )
        typer.echo(json.dumps([{k: r.get(k) for k in keep} for r in records], default=str))
    elif not quiet:
        for r in records:
            scores = (
                f"validation loss {r['best_val_loss']:.4f}"
                if r["mse"] is None
                else f"MSE {r['mse']:.4f} MAE {r['mae']:.4f}"
            )
            typer.echo(
                f"{r.get('dataset')} {features} {model} L={r.get('context_length')} H={r.get('horizon')} "
                f"seed={r.get('seed')}: {scores} ({r.get('train_seconds', 0):.0f} s)",
                err=True,
            )
        typer.echo(f"Appended {len(records)} record(s) to {results}", err=True)
