"""The accuracy study on ETTh1 and Weather: recipe and settings search on validation loss, final
tables, ablations and lookback scaling.

    python benchmarks/study.py recipe             # baseline training recipes, validation only
    python benchmarks/study.py search             # Trellis encoder candidates, validation only
    python benchmarks/study.py select             # per (dataset, model, L): lowest validation loss
    python benchmarks/study.py lookback           # chosen settings at L = 96 .. 720, validation
    python benchmarks/study.py final              # L = 96 and the best long L, 4 horizons, 3 seeds
    python benchmarks/study.py ablations          # Trellis variants on ETTh1, 3 seeds
    python benchmarks/study.py budget             # Weather: 3x the epochs, validation only
    python benchmarks/study.py horizon            # ETTh1 Trellis at H = 720: against the overfit
    python benchmarks/study.py tables             # re-render every table from the JSON lines
    python benchmarks/study.py final --datasets Weather --models trellis --dry-run

Every run is one `trellis-ts benchmark` process (its peak RSS is its own) with
`OMP_NUM_THREADS=1`, `--jobs` at a time. A phase skips the runs its results file already holds,
so an interrupted phase resumes where it stopped; results are appended as each run ends.

No choice ever sees a test number: search runs use `--validation-only`, which keeps the test
rows out of the process, and `select` compares `best_val_loss` (the MSE of the scaled
validation windows at the restored best epoch), averaged over the searched horizons and seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path
from typing import Any

from common import canonical, job, run_jobs, run_key, settings_key

from trellis_ts.benchmark.results import mean_std, read_results, render_table, row_key

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIGS = REPO / "benchmarks" / "configs"
HEADLINE = REPO / "benchmarks" / "results.jsonl"
SEARCH_FILE = RESULTS / "study_search.jsonl"
LOOKBACK_FILE = RESULTS / "study_lookback.jsonl"
ABLATION_FILE = RESULTS / "study_ablations.jsonl"
BUDGET_FILE = RESULTS / "study_budget.jsonl"
HORIZON_FILE = RESULTS / "study_horizon.jsonl"
HORIZONS = (96, 192, 336, 720)
SEARCH_HORIZONS = (96, 720)
DATASETS = ("ETTh1", "Weather")
MODELS = ("trellis", "attention", "dlinear")

# Per dataset: the lookbacks of the final table (96 and the long one chosen on validation), and
# the training budget every model shares there. ETTh1's train split holds ~57k windows (all
# channels): an epoch is a full pass. Weather's holds ~760k: an epoch draws 32,768 of them
# (what two cores allow for 72 final runs), at most 12 epochs.
BUDGET: dict[str, dict[str, Any]] = {
    "ETTh1": {"max_epochs": 20, "early_stopping_patience": 5},
    "Weather": {"max_epochs": 12, "early_stopping_patience": 4, "windows_per_epoch": 32768},
}
# The encoders overfit ETTh1 within one pass (best epoch 1 of 6 at 57k windows an epoch), so
# they validate every 16,384 windows: early stopping then finds the best point within a pass,
# and 20 such epochs still allow ~5.7 passes.
ENCODER_BUDGET: dict[str, dict[str, Any]] = {"ETTh1": {"windows_per_epoch": 16384}}
# Weather's final runs restore their last epoch (the budget binds): the budget phase gives each
# model's chosen settings this many more epochs, on validation, at these lookbacks (seed 0).
LONGER_BUDGET: dict[str, dict[str, Any]] = {"Weather": {"max_epochs": 36}}
LONGER_BUDGET_LOOKBACKS = (96, 336)
# Weather's validation split holds ~100k windows: early stopping reads every 4th of them
# (common.VAL_STRIDE, which the runner applies to every run it launches).
# The long lookback of each model is chosen among these (on validation), per dataset.
LONG_LOOKBACKS = {"ETTh1": (336, 512, 720), "Weather": (336, 720)}
SEARCH_LOOKBACK = 336  # where the recipe and settings search runs

# ------------------------------------------------------------------------------ candidates
# Baselines: the training recipe. A "batch" here is univariate windows; the papers' batch of
# 32 (DLinear) or 128 (PatchTST) seven-channel ETTh1 windows is 224 or 896 of ours.
DLINEAR_GRID: list[dict[str, Any]] = [
    {"batch_size": 256, "learning_rate": 5e-3},
    {"batch_size": 256, "learning_rate": 1e-3},
    {"batch_size": 256, "learning_rate": 5e-3, "weight_decay": 0.0},
    # The DLinear paper's: 32 seven-channel windows a batch, lr 0.005 halved every epoch.
    {"batch_size": 224, "learning_rate": 5e-3, "lr_schedule": "exponential", "lr_decay": 0.5},
    {"batch_size": 256, "learning_rate": 5e-3, "ema_decay": 0.99},
]
# The PatchTST-style encoder at its paper's ETTh1 size (d_model 16, 3 layers, 4 heads, d_ff 128,
# dropout 0.3, patches 16/8), and neighbours.
PATCH = {"patch_len": 16, "patch_stride": 8}
ENCODER_SMALL = PATCH | {
    "d_model": 16,
    "n_layers": 3,
    "n_heads": 4,
    "ffn_mult": 8.0,
    "dropout": 0.3,
}
ATTENTION_GRID: list[dict[str, Any]] = [
    ENCODER_SMALL | {"batch_size": 256, "learning_rate": 1e-3},
    ENCODER_SMALL | {"batch_size": 256, "learning_rate": 3e-4},
    ENCODER_SMALL | {"batch_size": 256, "learning_rate": 1e-3, "linear_path": True},
    ENCODER_SMALL
    | {"batch_size": 256, "learning_rate": 1e-3, "linear_path": True, "ema_decay": 0.99},
]
RECIPE: dict[str, list[dict[str, Any]]] = {"dlinear": DLINEAR_GRID, "attention": ATTENTION_GRID}
# The Trellis encoder, with the linear path beside it: the exact phi=identity form (no bound
# on gamma) at two sizes, with the averaged weights, and the paper's stale silu form.
TRELLIS_SMALL = ENCODER_SMALL | {
    "n_heads": 2,
    "n_slots": 16,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "linear_path": True,
}
TRELLIS_GRID: list[dict[str, Any]] = [
    TRELLIS_SMALL,
    TRELLIS_SMALL | {"ema_decay": 0.99},
    TRELLIS_SMALL | {"phi": "silu", "chunk_size": 16},  # the paper's stale-gradient form
    PATCH
    | {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 2,
        "n_slots": 32,
        "ffn_mult": 4.0,
        "dropout": 0.2,
        "batch_size": 256,
        "learning_rate": 5e-4,
        "linear_path": True,
    },
]
SEARCH: dict[str, list[dict[str, Any]]] = {"trellis": TRELLIS_GRID}

# One choice of the chosen Trellis settings changed at a time (the first row is the reference).
ABLATIONS: dict[str, dict[str, Any]] = {
    "chosen": {},
    "phi=silu (stale chunks of 16)": {"phi": "silu", "chunk_size": 16},
    "phi=silu, chunk 4": {"phi": "silu", "chunk_size": 4},
    "between=l2_silu": {"between": "l2_silu"},
    "no forget gate": {"forget_gate": False},
    "m=32": {"n_slots": 32},
    "m=64": {"n_slots": 64},
    "head=pool": {"head": "pool"},
}

# Every ablation of the Trellis encoder on ETTh1 restores epoch 3-4 at H = 720 (attention with
# the same patches, sizes and head: 7-9). The horizon phase tries changes that slow or shrink
# the fit there, on validation, 3 seeds. The rule, fixed before the runs: the lowest mean wins
# H = 720 if it is below the reference's mean by more than twice the larger seed std of the two.
LONG_H = 720
LONG_H_CHANGES: dict[str, dict[str, Any]] = {
    "lr 3e-4": {"learning_rate": 3e-4},
    "dropout 0.5": {"dropout": 0.5},
    "1 layer": {"n_layers": 1},
    "patch stride 16 (half the tokens)": {"patch_stride": 16},
}


# ------------------------------------------------------------------------------ phases
def budget(dataset: str, model: str) -> dict[str, Any]:
    """The training budget every candidate of `model` gets on `dataset`."""
    extra = ENCODER_BUDGET.get(dataset, {}) if model != "dlinear" else {}
    return BUDGET[dataset] | extra


def _grid_jobs(grids: dict[str, list[dict[str, Any]]], datasets, seeds) -> list[dict[str, Any]]:
    return [
        job(dataset, model, budget(dataset, model) | candidate, L, H, seed, SEARCH_FILE, True)
        for dataset in datasets
        for model, grid in grids.items()
        for candidate in grid
        for L in (SEARCH_LOOKBACK,)
        for H in SEARCH_HORIZONS
        for seed in seeds
    ]


def recipe_jobs(datasets) -> list[dict[str, Any]]:
    # DLinear is cheap: three seeds show each recipe's spread; the encoders run seed 0.
    return _grid_jobs({"dlinear": DLINEAR_GRID}, datasets, seeds=(0, 1, 2)) + _grid_jobs(
        {"attention": ATTENTION_GRID}, datasets, seeds=(0,)
    )


def search_jobs(datasets) -> list[dict[str, Any]]:
    return _grid_jobs(SEARCH, datasets, seeds=(0,))


def _validation_results(path: Path, why: str) -> list[dict[str, Any]]:
    """The records of a validation-only phase's file; a test score in it stops the study (a
    choice made from that file could have seen the test rows)."""
    records = read_results(path)
    if any(r.get("mse") is not None for r in records):
        raise SystemExit(f"{path} holds test scores; {why}")
    return records


def candidate_scores(dataset: str, model: str, grid: list[dict[str, Any]], L: int):
    """Per candidate with runs: (mean validation loss over the searched horizons and seeds, the
    largest seed spread of a horizon, the candidate, its runs, {horizon: mean}, complete), where
    `complete` says every searched horizon has a run. A run recorded twice counts once."""
    records = [
        r
        for r in _validation_results(SEARCH_FILE, "a search file must not")
        if r["dataset"] == dataset and r["model"] == model and r["context_length"] == L
    ]
    rows = []
    for candidate in grid:
        key = settings_key(model, budget(dataset, model) | candidate)
        latest = {(r["horizon"], r["seed"]): r for r in records if canonical(r["config"]) == key}
        if not latest:
            continue
        by_h: dict[int, list[float]] = {}
        for (horizon, _), r in sorted(latest.items()):
            by_h.setdefault(horizon, []).append(r["best_val_loss"])
        mean = statistics.mean(statistics.mean(v) for v in by_h.values())
        spreads = [max(v) - min(v) for v in by_h.values() if len(v) > 1]
        spread = max(spreads) if spreads else None  # one seed: no spread
        per_h = {h: statistics.mean(v) for h, v in by_h.items()}
        complete = set(by_h) == set(SEARCH_HORIZONS)
        rows.append((mean, spread, candidate, list(latest.values()), per_h, complete))
    return rows


def select(datasets) -> None:
    """Each (dataset, model)'s lowest mean validation loss wins once every candidate of its grid
    has run at every searched horizon; writes the configs of `datasets` and the search table of
    every dataset (a model whose grid is incomplete is listed without a choice)."""
    grids = RECIPE | SEARCH
    heads = " | ".join(f"H={h}" for h in SEARCH_HORIZONS)
    lines = [
        f"| dataset | model | candidate | {heads} | mean | seed spread | epochs (best) | chosen |",
        "|---|---|---|" + "---:|" * (len(SEARCH_HORIZONS) + 2) + "---|---|",
    ]
    for dataset in DATASETS:  # the table keeps every dataset's rows; configs only for `datasets`
        searched = False
        for model, grid in grids.items():
            rows = candidate_scores(dataset, model, grid, SEARCH_LOOKBACK)
            searched = searched or bool(rows)
            finished = [row for row in rows if row[5]]
            done = len(finished) == len(grid)
            best = min(finished, key=lambda row: row[0]) if done else None
            if best is not None and dataset in datasets:
                _write_chosen(dataset, model, budget(dataset, model) | best[2])
            for mean, spread, candidate, runs, per_h, complete in rows:
                text = ", ".join(f"{k}={v}" for k, v in candidate.items())
                cells = " | ".join(
                    f"{per_h[h]:.4f}" if h in per_h else "not run" for h in SEARCH_HORIZONS
                )
                epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in runs[:6])
                mark = "**yes**" if best is not None and candidate is best[2] else ""
                lines.append(
                    f"| {dataset} | {model} | {text} | {cells} | "
                    f"{f'{mean:.4f}' if complete else '-'} | "
                    f"{'-' if spread is None else f'{spread:.4f}'} | "
                    f"{epochs} | {mark or ('' if done else 'grid incomplete')} |"
                )
        if dataset in datasets and not searched:
            _adopt(dataset, "ETTh1")
    (RESULTS / "study_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _adopt(dataset: str, source: str) -> None:
    """A dataset not searched takes the source dataset's chosen model settings, with its own
    training budget (its lookback is still chosen on its own validation split)."""
    for model in MODELS:
        own = budget(source, model)
        settings = {k: v for k, v in chosen(source, model).items() if k not in own}
        _write_chosen(dataset, model, budget(dataset, model) | settings)


def config_path(dataset: str, model: str) -> Path:
    """Where `select` writes (dataset, model)'s chosen settings."""
    return CONFIGS / f"{dataset.lower()}_{model}.json"


def _write_chosen(dataset: str, model: str, settings: dict[str, Any]) -> None:
    config_path(dataset, model).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def chosen(dataset: str, model: str) -> dict[str, Any]:
    path = config_path(dataset, model)
    if not path.is_file():
        raise SystemExit(f"{path} is missing; run the search and `select` first")
    return json.loads(path.read_text())


def lookback_jobs(datasets) -> list[dict[str, Any]]:
    """Each model's chosen settings at every lookback, on validation: the scaling with L and
    the choice of each model's long lookback (Weather: the long lookbacks only). A run the
    search already made (the chosen candidate itself, seed 0) is not asked again."""
    recorded = {run_key(r) for r in lookback_records()}
    jobs = [
        job(dataset, model, chosen(dataset, model), L, H, 0, LOOKBACK_FILE, True)
        for dataset in datasets
        for model in MODELS
        for L in sorted(
            {96, *LONG_LOOKBACKS[dataset]} if dataset == "ETTh1" else LONG_LOOKBACKS[dataset]
        )[::-1]
        for H in SEARCH_HORIZONS
    ]
    return [job for job in jobs if run_key(job) not in recorded]


def lookback_records() -> list[dict[str, Any]]:
    """The lookback phase's validation runs: its own file's, and the search's runs of each
    chosen setting at seed 0 (the same run, so it is not made twice; marked ``searched``)."""
    records = read_results(LOOKBACK_FILE) if LOOKBACK_FILE.is_file() else []
    return records + _chosen_runs(SEARCH_FILE, "searched", lambda r: r["seed"] == 0)


def _chosen_runs(path: Path, mark: str, keep) -> list[dict[str, Any]]:
    """The runs in `path` (another phase's file) of their (dataset, model)'s chosen settings at
    the searched horizons for which `keep(run)` holds, each marked ``mark``: a phase takes them
    as its own instead of making the same run again."""
    if not path.is_file():
        return []
    chosen_keys = {
        (dataset, model): settings_key(model, chosen(dataset, model))
        for dataset in DATASETS
        for model in MODELS
        if config_path(dataset, model).is_file()
    }
    return [
        r | {mark: True}
        for r in read_results(path)
        if r["horizon"] in SEARCH_HORIZONS
        and keep(r)
        and canonical(r["config"]) == chosen_keys.get((r["dataset"], r["model"]))
    ]


def best_lookbacks(datasets, fixed: int | None = None) -> dict[tuple[str, str], int]:
    """(dataset, model) → the long lookback (in LONG_LOOKBACKS) with the lowest mean validation
    loss, or `fixed` for every model when given (the lookback phase is then not needed)."""
    if fixed is not None:
        return {(dataset, model): fixed for dataset in datasets for model in MODELS}
    records = lookback_records()
    best = {}
    for dataset in datasets:
        for model in MODELS:
            key = settings_key(model, chosen(dataset, model))
            losses = {}
            for L in LONG_LOOKBACKS[dataset]:
                runs = [
                    r["best_val_loss"]
                    for r in records
                    if r["dataset"] == dataset
                    and r["model"] == model
                    and canonical(r["config"]) == key
                    and r["context_length"] == L
                ]
                if len(runs) == len(SEARCH_HORIZONS):
                    losses[L] = statistics.mean(runs)
            if len(losses) < len(LONG_LOOKBACKS[dataset]):
                raise SystemExit(
                    f"{dataset} {model}: the lookback runs are not all recorded in "
                    f"{LOOKBACK_FILE}; run the lookback phase first"
                )
            best[(dataset, model)] = min(losses, key=losses.get)
    return best


def lookback_table() -> str:
    """Validation loss per (dataset, model, L), their mean (the choice's criterion, in bold at
    the long lookback chosen once all are recorded) and the epochs run (best) per horizon."""
    records = lookback_records()
    heads = " | ".join(f"val loss H={H}" for H in SEARCH_HORIZONS)
    lines = [
        f"| dataset | model | L | tokens | {heads} | mean | epochs (best) | s / epoch |",
        "|---|---|---:|---:|" + "---:|" * (len(SEARCH_HORIZONS) + 1) + "---|---:|",
    ]
    keys = sorted({(r["dataset"], r["model"], r["context_length"]) for r in records})
    choice = {}  # (dataset, model) → its chosen long lookback, once all are recorded
    for dataset in sorted({key[0] for key in keys}):
        # Not every long lookback recorded yet: no choice to mark.
        with contextlib.suppress(SystemExit):
            choice |= best_lookbacks([dataset])
    for dataset, model, L in keys:
        runs = {
            r["horizon"]: r
            for r in records
            if (r["dataset"], r["model"], r["context_length"]) == (dataset, model, L)
        }
        c = next(iter(runs.values()))["config"]
        tokens = (L - c["patch_len"]) // c["patch_stride"] + 2 if model != "dlinear" else "-"
        cells = [f"{runs[H]['best_val_loss']:.4f}" if H in runs else "" for H in SEARCH_HORIZONS]
        mean = ""
        if set(runs) == set(SEARCH_HORIZONS):
            mean = f"{statistics.mean(r['best_val_loss'] for r in runs.values()):.4f}"
            if choice.get((dataset, model)) == L:
                mean = f"**{mean}**"
        epochs = ", ".join(
            f"{runs[H]['epochs']} ({runs[H]['best_epoch']})" for H in SEARCH_HORIZONS if H in runs
        )
        per_epoch = statistics.mean(r["train_seconds"] / max(r["epochs"], 1) for r in runs.values())
        # The searched runs shared the machine differently: their time is marked, not compared.
        searched = " (search)" if any(r.get("searched") for r in runs.values()) else ""
        lines.append(
            f"| {dataset} | {model} | {L} | {tokens} | "
            + " | ".join(cells)
            + f" | {mean} | {epochs} | {per_epoch:.1f}{searched} |"
        )
    return "\n".join(lines) + "\n"


def final_jobs(datasets, long_lookback=None, lookbacks=None, seeds=(0, 1, 2)):
    """Every model at its chosen long lookback and at L = 96 (or at `lookbacks` only), every
    horizon, three seeds (or `seeds`). In the order of the table's cells: a dataset and lookback
    at a time, seed by seed, every model of a seed before the next seed, so that a study stopped
    part-way leaves rows that compare the models on the same seeds."""
    long = {} if lookbacks else best_lookbacks(datasets, long_lookback)
    order = lookbacks or ("long", 96)
    return [
        job(dataset, model, chosen(dataset, model), L, H, seed, HEADLINE)
        for dataset in datasets
        for which in order
        for seed in seeds
        for model in MODELS
        for L in [long[(dataset, model)] if which == "long" else which]
        for H in HORIZONS[::-1]
    ]


def ablation_jobs(datasets, long_lookback=None, lookbacks=None) -> list[dict[str, Any]]:
    """The chosen Trellis settings on ETTh1 with one choice changed, three seeds each. The
    reference row's runs are the final table's (the same runs), so they are not asked again."""
    if lookbacks and len(lookbacks) > 1:  # its table has no L column: one lookback per file
        raise SystemExit(f"ablations run at one lookback; --lookbacks gave {lookbacks}")
    base = chosen("ETTh1", "trellis")
    L = (lookbacks or [best_lookbacks(["ETTh1"], long_lookback)[("ETTh1", "trellis")]])[0]
    recorded = {run_key(r) for r in _reference_runs(L)}
    jobs = [
        job("ETTh1", "trellis", base | change, L, H, seed, ABLATION_FILE)
        for change in ABLATIONS.values()
        for H in SEARCH_HORIZONS
        for seed in (0, 1, 2)
    ]
    return [job for job in jobs if run_key(job) not in recorded]


def _reference_runs(L: int) -> list[dict[str, Any]]:
    """The final table's test runs of the chosen Trellis settings on ETTh1 at L, seeds 0-2 (the
    ablations' reference row; marked ``final``)."""
    return _chosen_runs(
        HEADLINE,
        "final",
        lambda r: (
            (r["dataset"], r["model"], r["context_length"]) == ("ETTh1", "trellis", L)
            and r.get("features", "M") == "M"
            and r["seed"] in (0, 1, 2)
            and r.get("mse") is not None
        ),
    )


def ablation_records(L: int) -> list[dict[str, Any]]:
    """The ablations' runs at lookback L: their own file's and the reference row's."""
    records = (
        [r for r in read_results(ABLATION_FILE) if r["context_length"] == L]
        if ABLATION_FILE.is_file()
        else []
    )
    return records + _reference_runs(L)


def _span(values: list[int]) -> str:
    """'3' for one value, '3-7' for lowest-highest, '-' for none."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def ablation_table() -> str:
    """Test MSE per variant and horizon (mean ± std over the seeds) with the mean validation
    loss beside it, at the ablation file's lookback; the reference row (in bold) is the final
    table's runs."""
    own = read_results(ABLATION_FILE)
    lookbacks = {r["context_length"] for r in own}
    if len(lookbacks) != 1:
        raise SystemExit(
            f"{ABLATION_FILE} holds runs at lookbacks {sorted(lookbacks)}; the ablations run at one"
        )
    base = chosen("ETTh1", "trellis")
    records = own + _reference_runs(lookbacks.pop())
    horizons = " / ".join(map(str, SEARCH_HORIZONS))
    lines = [
        "| variant | "
        + " | ".join(f"H={H} MSE (mean ± std, 3 seeds)" for H in SEARCH_HORIZONS)
        + f" | validation loss (H={horizons}) | best epochs (H={horizons}) | s / epoch |",
        "|---|" + "---:|" * (len(SEARCH_HORIZONS) + 3),
    ]
    for name, change in ABLATIONS.items():
        key = settings_key("trellis", base | change)
        runs = [r for r in records if canonical(r["config"]) == key]
        if not runs:
            continue
        by_h = {H: [r for r in runs if r["horizon"] == H] for H in SEARCH_HORIZONS}
        cells = [mean_std([r["mse"] for r in by_h[H]]) for H in SEARCH_HORIZONS]
        # What a choice would be made on: the mean validation loss over the seeds.
        cells.append(
            " / ".join(
                f"{statistics.mean(r['best_val_loss'] for r in by_h[H]):.4f}"
                for H in SEARCH_HORIZONS
            )
        )
        # The epoch each run restored, lowest-highest over the seeds: an early best says overfit.
        best = [_span([r["best_epoch"] for r in by_h[H]]) for H in SEARCH_HORIZONS]
        cells.append(" / ".join(best))
        per_epoch = statistics.mean(r["train_seconds"] / max(r["epochs"], 1) for r in runs)
        # The final's runs shared the machine differently: their time is marked, not compared.
        final = " (final)" if any(r.get("final") for r in runs) else ""
        label = f"**{name}**" if not change else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {per_epoch:.1f}{final} |")
    return "\n".join(lines) + "\n"


def longer_budget_jobs(datasets) -> list[dict[str, Any]]:
    """Each model's chosen settings with LONGER_BUDGET's epochs, on validation (seed 0); the
    shorter budget's runs are the final table's (their validation loss is recorded there)."""
    return [
        job(
            dataset,
            model,
            chosen(dataset, model) | LONGER_BUDGET[dataset],
            L,
            H,
            0,
            BUDGET_FILE,
            True,
        )
        for dataset in datasets
        if dataset in LONGER_BUDGET
        for L in LONGER_BUDGET_LOOKBACKS
        for model in MODELS
        for H in SEARCH_HORIZONS
    ]


def budget_table() -> str:
    """Validation loss per (dataset, model, L) at the chosen budget (the final's seed-0 runs) and
    at the longer one, with the epochs run and restored: does more training still help, and does
    it change the order of the models?"""
    longer = _validation_results(BUDGET_FILE, "the budget phase runs on validation")
    pairs = {(r["dataset"], r["model"], r["context_length"]) for r in longer}
    reference = _chosen_runs(
        HEADLINE,
        "final",
        lambda r: r["seed"] == 0 and (r["dataset"], r["model"], r["context_length"]) in pairs,
    )
    heads = " | ".join(f"H={H}" for H in SEARCH_HORIZONS)
    lines = [
        f"| dataset | model | L | max epochs | {heads} | mean | epochs (best) | minutes |",
        "|---|---|---:|---:|" + "---:|" * (len(SEARCH_HORIZONS) + 1) + "---|---:|",
    ]
    groups: dict[tuple, dict[int, dict[str, Any]]] = {}
    for r in reference + [r for r in longer if r["seed"] == 0]:
        key = (r["dataset"], r["model"], r["context_length"], r["config"]["max_epochs"])
        groups.setdefault(key, {})[r["horizon"]] = r  # a run made again counts once, the later
    order = {model: i for i, model in enumerate(MODELS)}
    for key in sorted(groups, key=lambda k: (k[0], k[2], order[k[1]], k[3])):
        runs = groups[key]
        cells = [f"{runs[H]['best_val_loss']:.4f}" if H in runs else "" for H in SEARCH_HORIZONS]
        mean = (
            f"{statistics.mean(runs[H]['best_val_loss'] for H in SEARCH_HORIZONS):.4f}"
            if set(runs) >= set(SEARCH_HORIZONS)
            else ""
        )
        epochs = ", ".join(
            f"{runs[H]['epochs']} ({runs[H]['best_epoch']})" for H in SEARCH_HORIZONS if H in runs
        )
        minutes = sum(r["train_seconds"] for r in runs.values()) / 60
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
            + " | ".join(cells)
            + f" | {mean} | {epochs} | {minutes:.1f} |"
        )
    return "\n".join(lines) + "\n"


def horizon_jobs(datasets) -> list[dict[str, Any]]:
    """The chosen Trellis settings on ETTh1 at its long lookback and H = LONG_H with one change
    of LONG_H_CHANGES, seeds 0-2, on validation (the reference is the final table's runs)."""
    if "ETTh1" not in datasets:
        return []
    L = best_lookbacks(["ETTh1"])[("ETTh1", "trellis")]
    return [
        job(
            "ETTh1",
            "trellis",
            chosen("ETTh1", "trellis") | change,
            L,
            LONG_H,
            seed,
            HORIZON_FILE,
            True,
        )
        for seed in (0, 1, 2)
        for change in LONG_H_CHANGES.values()
    ]


def horizon_table() -> str:
    """Validation loss at H = LONG_H per change (mean ± std over seeds), beside the final
    table's runs of the chosen Trellis and attention settings at the same L and H, and which
    change (if any) the rule in LONG_H_CHANGES' comment adopts."""
    own = _validation_results(HORIZON_FILE, "the horizon phase runs on validation")
    L = own[0]["context_length"] if own else None
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for model in ("trellis", "attention"):
        final = _chosen_runs(
            HEADLINE,
            "final",
            lambda r, m=model: (
                r["seed"] in (0, 1, 2)
                and (r["dataset"], r["model"], r["context_length"], r["horizon"])
                == ("ETTh1", m, L, LONG_H)
            ),
        )
        rows.append(
            (f"chosen {'Trellis' if model == 'trellis' else 'attention'} (final runs)", final)
        )
    base = chosen("ETTh1", "trellis")
    for name, change in LONG_H_CHANGES.items():
        key = settings_key("trellis", base | change)
        rows.append((name, [r for r in own if canonical(r["config"]) == key]))
    lines = [
        f"| Trellis at L = {L}, H = {LONG_H} | validation loss (mean ± std) | seeds "
        "| epochs (best) | s / epoch |",
        "|---|---:|---:|---|---:|",
    ]
    stats = {}
    for name, runs in rows:
        if not runs:
            continue
        losses = [r["best_val_loss"] for r in runs]
        stats[name] = (
            statistics.mean(losses),
            statistics.stdev(losses) if len(losses) > 1 else 0.0,
            len(losses),
        )
        per_epoch = statistics.mean(r["train_seconds"] / max(r["epochs"], 1) for r in runs)
        lines.append(
            f"| {name} | {mean_std(losses)} | {len(runs)} | "
            f"{_span([r['epochs'] for r in runs])} "
            f"({_span([r['best_epoch'] for r in runs])}) | {per_epoch:.1f} |"
        )
    reference = stats.get(rows[0][0])
    changes = {n: v for n, v in stats.items() if n in LONG_H_CHANGES and v[2] == 3}
    if reference and len(changes) == len(LONG_H_CHANGES):
        name, (mean, std, _) = min(changes.items(), key=lambda item: item[1][0])
        margin = 2 * max(std, reference[1])
        verdict = (
            f"adopted at H = {LONG_H}: **{name}** ({mean:.4f} against {reference[0]:.4f}, "
            f"more than {margin:.4f} lower)"
            if reference[0] - mean > margin
            else f"none adopted: the lowest, {name} ({mean:.4f}), is not below the reference "
            f"({reference[0]:.4f}) by more than {margin:.4f}"
        )
        lines += ["", f"Rule (twice the larger seed std): {verdict}."]
    return "\n".join(lines) + "\n"


PEERS_FILE = RESULTS / "peers.jsonl"


def summary_table() -> str:
    """The headline: test MSE per (dataset, model, L) and horizon, mean ± std over seeds, the
    4-horizon average (mean ± std of each seed's average), and the minutes of all its runs (one
    core each: training and scoring); the peers' rows (`peers.py`) beside ours."""
    # Rows as `render_table`'s; a seed run again counts once, the later run.
    latest = {
        (*row_key(r), r["horizon"], r["seed"]): r
        for r in read_results(HEADLINE)
        if r.get("mse") is not None
    }
    groups: dict[tuple, dict[int, dict[int, float]]] = {}
    minutes: dict[tuple, float] = {}
    for (*key, H, seed), r in latest.items():
        key = tuple(key)
        groups.setdefault(key, {}).setdefault(H, {})[seed] = r["mse"]
        minutes[key] = minutes.get(key, 0.0) + (r["train_seconds"] + r["eval_seconds"]) / 60
    if PEERS_FILE.is_file():
        for r in read_results(PEERS_FILE):
            key = (r["dataset"], r["peer"], "", r["context_length"])
            groups.setdefault(key, {}).setdefault(r["horizon"], {})[r["seed"]] = r["mse"]
            minutes[key] = minutes.get(key, 0.0) + r["seconds"] / 60
    heads = " | ".join(f"H={H}" for H in HORIZONS)
    lines = [
        f"| dataset | model | config | L | {heads} | avg | seeds | minutes of all runs |",
        "|---|---|---|---:|" + "---:|" * (len(HORIZONS) + 3),
    ]
    order = {model: i for i, model in enumerate(MODELS)}  # ours first, then the peers
    rows = sorted(
        groups.items(),
        key=lambda kv: (kv[0][0], -kv[0][3], order.get(kv[0][1], 9), kv[0][1], kv[0][2]),
    )
    for key, by_h in rows:
        cells = [mean_std(list(by_h[H].values())) if H in by_h else "-" for H in HORIZONS]
        seeds = sorted(set.intersection(*(set(runs) for runs in by_h.values())))
        complete = set(by_h) == set(HORIZONS) and seeds
        average = (
            mean_std([statistics.mean(by_h[H][s] for H in HORIZONS) for s in seeds])
            if complete
            else "-"
        )
        counts = sorted({len(runs) for runs in by_h.values()})
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | "
            + " | ".join(cells)
            + f" | {average} | {'/'.join(map(str, counts))} | {minutes[key]:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_tables() -> None:
    if HEADLINE.is_file():
        (REPO / "benchmarks" / "results.md").write_text(
            summary_table() + "\nEvery run (mean ± std over seeds):\n\n" + render_table(HEADLINE)
        )
    if LOOKBACK_FILE.is_file():
        (RESULTS / "study_lookback.md").write_text(lookback_table())
    if ABLATION_FILE.is_file():
        (RESULTS / "study_ablations.md").write_text(ablation_table())
    if BUDGET_FILE.is_file():
        (RESULTS / "study_budget.md").write_text(budget_table())
    if HORIZON_FILE.is_file():
        (RESULTS / "study_horizon.md").write_text(horizon_table())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "phases",
        nargs="+",
        metavar="phase",
        choices=[
            "recipe",
            "search",
            "select",
            "lookback",
            "final",
            "ablations",
            "budget",
            "horizon",
            "tables",
        ],
    )
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--models", nargs="*", help="restrict the runs to these models")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one core each)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    parser.add_argument(
        "--long-lookback",
        type=int,
        metavar="L",
        help="final, ablations: every model's long lookback is L, instead of "
        "the lookback phase's choice (which is then not needed)",
    )
    parser.add_argument(
        "--lookbacks",
        type=int,
        nargs="+",
        metavar="L",
        help="final, ablations: run at these lookbacks only",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        metavar="S",
        help="final: run these seeds only (the table's rows want all three)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    CONFIGS.mkdir(parents=True, exist_ok=True)
    phase_jobs = {
        "recipe": lambda: recipe_jobs(args.datasets),
        "search": lambda: search_jobs(args.datasets),
        "lookback": lambda: lookback_jobs(args.datasets),
        "final": lambda: final_jobs(
            args.datasets, args.long_lookback, args.lookbacks, tuple(args.seeds)
        ),
        "ablations": lambda: ablation_jobs(args.datasets, args.long_lookback, args.lookbacks),
        "budget": lambda: longer_budget_jobs(args.datasets),
        "horizon": lambda: horizon_jobs(args.datasets),
    }
    jobs: list[dict[str, Any]] = []

    def run_pending() -> None:
        pending = [job for job in jobs if not args.models or job["model"] in args.models]
        if pending:
            run_jobs(pending, args.data_dir, args.jobs, args.dry_run)
        jobs.clear()

    for phase in args.phases:  # in order; a phase needing earlier results waits for them
        if phase == "select":
            run_pending()
            select(args.datasets)
        elif phase in phase_jobs:
            if phase in ("final", "ablations", "horizon"):
                run_pending()  # they need every lookback run
            jobs.extend(phase_jobs[phase]())
    run_pending()
    write_tables()


if __name__ == "__main__":
    main()
