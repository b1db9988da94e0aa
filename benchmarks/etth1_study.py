"""The ETTh1 study: settings search on validation loss, results table, ablations, lookback scaling.

    python benchmarks/etth1_study.py search     # candidates at H=96, validation loss only
    python benchmarks/etth1_study.py select     # pick each (model, L)'s settings; write configs
    python benchmarks/etth1_study.py final      # chosen settings, 4 horizons -> results.{jsonl,md}
    python benchmarks/etth1_study.py ablations  # Trellis variants at L=336, H=96 and 720
    python benchmarks/etth1_study.py lookback   # H=96, L=96..2880, Trellis vs attention

Every run is one `trellis-ts benchmark` process (so its peak RSS is its own), `--jobs` of them at
a time, each with `OMP_NUM_THREADS=1` (on this 2-core machine more torch threads than free cores
made training 10-100x slower). A phase skips the runs its results file already holds, so an
interrupted phase resumes where it stopped.

The search never sees a test number: its runs use `--validation-only`, which keeps the test
rows out of the process, and `select` compares `best_val_loss` (MSE of the scaled validation
windows at the restored best epoch) alone. Settings are chosen per (model, L) at H=96 and used
unchanged for every horizon.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trellis_ts.benchmark import read_results, render_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIGS = REPO / "benchmarks" / "configs"
SEARCH_FILE = RESULTS / "etth1_search.jsonl"
CONTEXTS = (96, 336)
HORIZONS = (96, 192, 336, 720)

# Shared by every encoder candidate (Trellis and attention alike): patches of 8 steps without
# overlap, 2 layers of 4 heads, batch 32, 4096 training windows per epoch, at most 10 epochs
# with early stopping after 3 without a better validation loss. The neighbourhood comes from
# the earlier Optuna study on the validation rows (benchmarks/results/etth1_tuning.md).
ENCODER_BASE: dict[str, Any] = {
    "patch_len": 8, "patch_stride": 8, "n_layers": 2, "n_heads": 4, "n_slots": 32,
    "chunk_size": 4, "batch_size": 32, "windows_per_epoch": 4096, "max_epochs": 10,
    "early_stopping_patience": 3,
}  # fmt: skip
ENCODER_GRID: list[dict[str, Any]] = [
    {"d_model": 32, "learning_rate": 3e-3, "dropout": 0.15},
    {"d_model": 32, "learning_rate": 1e-3, "dropout": 0.15},
    {"d_model": 32, "learning_rate": 3e-3, "dropout": 0.3},
    {"d_model": 64, "learning_rate": 1e-3, "dropout": 0.15},
    {"d_model": 64, "learning_rate": 1e-3, "dropout": 0.3},
    {"d_model": 32, "learning_rate": 3e-3, "dropout": 0.15, "patch_len": 16},
]
DLINEAR_BASE: dict[str, Any] = {"batch_size": 32, "max_epochs": 10, "early_stopping_patience": 3}
DLINEAR_GRID: list[dict[str, Any]] = [{"learning_rate": lr} for lr in (3e-4, 1e-3, 3e-3, 1e-2)]
SEARCH: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "trellis": (ENCODER_BASE, ENCODER_GRID),
    "attention": (ENCODER_BASE, ENCODER_GRID),
    "dlinear": (DLINEAR_BASE, DLINEAR_GRID),
}

# Ablations of the chosen L=336 Trellis settings (one field changed at a time).
ABLATIONS: dict[str, dict[str, Any]] = {
    "phi=identity": {"phi": "identity"},
    "phi=tanh": {"phi": "tanh"},
    "between=l2_silu": {"between": "l2_silu"},
    "between=softmax": {"between": "softmax"},
    "chunk_size=1": {"chunk_size": 1},
    "chunk_size=4": {"chunk_size": 4},
    "chunk_size=16": {"chunk_size": 16},
    "no forget gate": {"forget_gate": False},
    "m=16": {"n_slots": 16},
    "m=32": {"n_slots": 32},
    "m=64": {"n_slots": 64},
    "head=pool": {"head": "pool"},
    "head=flatten": {"head": "flatten"},
}
ABLATION_HORIZONS = (96, 720)
# Ablations run on a shorter fixed budget (the chosen settings again under it as the reference).
ABLATION_BUDGET: dict[str, Any] = {"max_epochs": 3}
LOOKBACKS = (96, 336, 720, 1440, 2880)
# The lookback runs share one fixed budget so their epochs are comparable across L.
LOOKBACK_BUDGET: dict[str, Any] = {"max_epochs": 3}


# ------------------------------------------------------------------------------ running
def _run_key(record: dict[str, Any]) -> tuple:
    return (record["model"], record["config_id"], record["context_length"], record["horizon"],
            record["seed"])  # fmt: skip


def _done_all(jobs: list[dict[str, Any]]) -> set[tuple]:
    """(results file, model, config id, L, H, seed) of every run already recorded."""
    done = set()
    for results in {job["results"] for job in jobs}:
        if results.is_file():
            done |= {(results, *_run_key(r)) for r in read_results(results)}
    return done


def _config_id(model: str, settings: dict[str, Any]) -> str:
    from trellis_ts.benchmark import _config_id, resolve_config

    return _config_id(resolve_config(model, settings).to_dict())


def _job(model, settings, L, H, seed, results: Path, data_dir: Path, validation_only=False):
    return {"model": model, "settings": settings, "L": L, "H": H, "seed": seed,
            "results": results, "data_dir": data_dir, "validation_only": validation_only}  # fmt: skip


def _launch(job: dict[str, Any]) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job["settings"], fh)
    command = [sys.executable, "-m", "trellis_ts", "benchmark", "ETTh1",
               "--data-dir", str(job["data_dir"]), "--context-length", str(job["L"]),
               "--horizons", str(job["H"]), "--model", job["model"], "--config", fh.name,
               "--seeds", str(job["seed"]), "--results", str(job["results"]), "--quiet"]  # fmt: skip
    if job["validation_only"]:
        command.append("--validation-only")
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    label = f"{job['model']} L={job['L']} H={job['H']} seed={job['seed']} {job['settings']}"
    print(f"start  {label}", flush=True)
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    os.unlink(fh.name)
    status = "done  " if done.returncode == 0 else f"FAILED ({done.returncode})"
    print(f"{status} {label}", flush=True)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr, flush=True)
    return done.returncode


def run_jobs(jobs: list[dict[str, Any]], n_jobs: int, dry_run: bool = False) -> None:
    """Run the jobs not yet in their results file, ``n_jobs`` processes at a time."""
    done, todo, keys = _done_all(jobs), [], set()
    for job in jobs:  # ablation variants equal to the chosen settings run once
        key = (job["results"], job["model"], _config_id(job["model"], job["settings"]), job["L"],
               job["H"], job["seed"])  # fmt: skip
        if key not in done and key not in keys:
            keys.add(key)
            todo.append(job)
    print(f"{len(jobs)} runs asked, {len(todo)} not yet recorded; running them")
    if dry_run:
        for job in todo:
            print(f"would run {job['model']} L={job['L']} H={job['H']} seed={job['seed']} "
                  f"-> {job['results'].name}: {job['settings']}")  # fmt: skip
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        codes = list(pool.map(_launch, todo))
    if any(codes):
        raise SystemExit(f"{sum(1 for c in codes if c)} run(s) failed; see the messages above")


# ------------------------------------------------------------------------------ phases
def search_jobs(data_dir: Path) -> list[dict[str, Any]]:
    jobs = []
    for model, (base, grid) in SEARCH.items():
        for L in CONTEXTS:
            for candidate in grid:
                jobs.append(_job(model, base | candidate, L, 96, 0, SEARCH_FILE, data_dir, True))
    return jobs


def select(search_file: Path = SEARCH_FILE) -> dict[tuple[str, int], dict[str, Any]]:
    """The lowest-validation-loss settings of each (model, L); writes configs and a table."""
    records = read_results(search_file)
    if any(r.get("mse") is not None for r in records):
        raise SystemExit(f"{search_file} holds test scores; a search file must not")
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    lines = ["| model | L | candidate | validation loss | epochs (best) | train s | chosen |",
             "|---|---:|---|---:|---:|---:|---|"]  # fmt: skip
    for model, (base, grid) in SEARCH.items():
        for L in CONTEXTS:
            rows = []
            for candidate in grid:
                cid = _config_id(model, base | candidate)
                found = [r for r in records if r["model"] == model and r["config_id"] == cid
                         and r["context_length"] == L]  # fmt: skip
                if found:
                    rows.append((found[-1]["best_val_loss"], candidate, found[-1]))
            if len(rows) < len(grid):
                raise SystemExit(f"{model} L={L}: {len(rows)} of {len(grid)} candidates recorded "
                                 f"in {search_file}; finish the search first")  # fmt: skip
            best = min(rows, key=lambda row: row[0])
            chosen[(model, L)] = base | best[1]
            for loss, candidate, r in rows:
                text = ", ".join(f"{k}={v}" for k, v in candidate.items())
                lines.append(f"| {model} | {L} | {text} | {loss:.4f} | {r['epochs']} "
                             f"({r['best_epoch']}) | {r['train_seconds']:.0f} | "
                             f"{'**yes**' if candidate is best[1] else ''} |")  # fmt: skip
    CONFIGS.mkdir(parents=True, exist_ok=True)
    for (model, L), settings in chosen.items():
        path = CONFIGS / f"etth1_{model}_L{L}.json"
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (RESULTS / "etth1_search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return chosen


def _chosen(model: str, L: int) -> dict[str, Any]:
    path = CONFIGS / f"etth1_{model}_L{L}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing; run the search and `select` first")
    return json.loads(path.read_text())


def final_jobs(data_dir: Path, seeds=(0, 1, 2)) -> list[dict[str, Any]]:
    """Every model at both lookbacks and all horizons, 3 seeds each (the longest runs first)."""
    results = REPO / "benchmarks" / "results.jsonl"
    return [_job(model, _chosen(model, L), L, H, s, results, data_dir)
            for model in ("trellis", "attention", "dlinear") for L in sorted(CONTEXTS)[::-1]
            for s in seeds for H in HORIZONS]  # fmt: skip


def ablation_jobs(data_dir: Path) -> list[dict[str, Any]]:
    base = _chosen("trellis", 336) | ABLATION_BUDGET
    results = RESULTS / "etth1_ablations.jsonl"
    jobs = [_job("trellis", base | change, 336, H, 0, results, data_dir)
            for H in ABLATION_HORIZONS for change in ABLATIONS.values()]  # fmt: skip
    return sorted(jobs, key=lambda job: job["settings"]["chunk_size"])  # C=1 is the slowest


def lookback_jobs(data_dir: Path) -> list[dict[str, Any]]:
    results = RESULTS / "etth1_lookback.jsonl"
    return [_job(model, _chosen(model, 336) | LOOKBACK_BUDGET, L, 96, 0, results, data_dir)
            for L in sorted(LOOKBACKS)[::-1] for model in ("trellis", "attention")]  # fmt: skip


def ablation_table() -> str:
    base = _chosen("trellis", 336) | ABLATION_BUDGET
    records = read_results(RESULTS / "etth1_ablations.jsonl")
    base_id = _config_id("trellis", base)
    lines = ["| variant | " + " | ".join(f"H={H} MSE | H={H} MAE" for H in ABLATION_HORIZONS)
             + " | s / epoch | peak RSS MB |",
             "|---|" + "---:|---:|" * len(ABLATION_HORIZONS) + "---:|---:|"]  # fmt: skip
    for name, change in ABLATIONS.items():
        cid = _config_id("trellis", base | change)
        runs = {r["horizon"]: r for r in records if r["config_id"] == cid}
        if not runs:
            continue
        cells = [f"{runs[H]['mse']:.4f} | {runs[H]['mae']:.4f}" if H in runs else "| "
                 for H in ABLATION_HORIZONS]  # fmt: skip
        per_epoch = [r["train_seconds"] / r["epochs"] for r in runs.values()]
        label = f"**{name}** (chosen)" if cid == base_id else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {sum(per_epoch) / len(per_epoch):.1f}"
                     f" | {max(r['peak_rss_mb'] for r in runs.values()):.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def lookback_table() -> str:
    records = read_results(RESULTS / "etth1_lookback.jsonl")
    lines = ["| L | tokens | model | MSE | MAE | epochs (best) | s / epoch | peak RSS MB | params |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in sorted(records, key=lambda r: (r["context_length"], r["model"])):
        c = r["config"]
        tokens = (r["context_length"] - c["patch_len"]) // c["patch_stride"] + 1
        lines.append(f"| {r['context_length']} | {tokens} | {r['model']} | {r['mse']:.4f} | "
                     f"{r['mae']:.4f} | {r['epochs']} ({r['best_epoch']}) | "
                     f"{r['train_seconds'] / r['epochs']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['parameters']:,} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", nargs="+", metavar="phase",
                        choices=["search", "select", "final", "ablations", "lookback", "tables"],
                        help="search, select, final, ablations, lookback or tables; several "
                             "run phases share one pool of processes")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one core each)")
    parser.add_argument("--models", nargs="*", help="restrict the runs to these models")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    phase_jobs = {"search": search_jobs, "final": final_jobs, "ablations": ablation_jobs,
                  "lookback": lookback_jobs}  # fmt: skip
    jobs: list[dict[str, Any]] = []

    def run_pending() -> None:
        pending = [job for job in jobs if not args.models or job["model"] in args.models]
        if pending:
            run_jobs(pending, args.jobs, args.dry_run)
        jobs.clear()

    for phase in args.phases:  # in order; the run phases between two selects share one pool
        if phase == "select":
            run_pending()
            select()
        elif phase in phase_jobs:
            jobs.extend(phase_jobs[phase](args.data_dir))
    run_pending()
    write_tables()


def write_tables() -> None:
    """Render every table whose results file exists."""
    if (RESULTS / "etth1_ablations.jsonl").is_file():
        (RESULTS / "etth1_ablations.md").write_text(ablation_table())
    if (RESULTS / "etth1_lookback.jsonl").is_file():
        (RESULTS / "etth1_lookback.md").write_text(lookback_table())
    headline = REPO / "benchmarks" / "results.jsonl"
    if headline.is_file():
        (REPO / "benchmarks" / "results.md").write_text(render_table(headline))


if __name__ == "__main__":
    main()
