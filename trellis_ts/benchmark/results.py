"""Benchmark records: one JSON line per run (appended as runs finish, so a study resumes), read
back and rendered as the results tables."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trellis_ts.errors import DataError

_NOT_IN_CONFIG_ID = ("context_length", "prediction_length", "random_state", "verbose")


# Fields added after results were recorded: at these values they leave a run's config id as it was.
_ID_NEUTRAL = {"target_transform": "none", "calendar_features": []}


def _config_id(config: dict[str, Any]) -> str:
    """Short hash of the settings that define a model (not L, H, the seed or verbosity)."""
    kept = {
        k: v
        for k, v in config.items()
        if k not in _NOT_IN_CONFIG_ID and _ID_NEUTRAL.get(k, object()) != v
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines results file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file {str(path)!r} does not exist; run the benchmark first")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(
                    f"line {number} of {str(path)!r} is not JSON; remove or repair it"
                ) from None
    return records


# ------------------------------------------------------------------------------ the table
def row_key(record: dict[str, Any]) -> tuple[str, str, str, int | str]:
    """(dataset and features, model, config id, L): the runs that one table row gathers, so that
    runs with other inputs or settings never share a row."""
    features = record.get("features", "M")
    name = record["dataset"] if features == "M" else f"{record['dataset']} {features}"
    lookback = record["context_length"]
    if record.get("lookback") == "whole history":  # a streaming model: every row before the origin
        lookback = f"whole history (linear {lookback})"
    return (name, record["model"], record.get("config_id", ""), lookback)


def render_table(source: str | Path | Iterable[dict[str, Any]]) -> str:
    """Markdown table: one row per dataset/model/config/L/H (mean ± sample std over seeds when
    several; a seed run twice counts once, the later run) and an "avg" row over the horizons.
    Validation-only records (a settings search, ``mse`` None) are left out."""
    records = read_results(source) if isinstance(source, str | Path) else list(source)
    records = [r for r in records if r.get("mse") is not None]
    groups: dict[tuple, dict[int, dict[int, dict]]] = {}
    for r in records:
        groups.setdefault(row_key(r), {}).setdefault(r["horizon"], {})[r["seed"]] = r
    lines = [
        "| Dataset | Model | Config | L | H | MSE | MAE | Seeds | Train s | Peak RSS MB | Params |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, model, config_id, L), by_h in sorted(groups.items(), key=lambda kv: str(kv[0])):
        lead = f"| {name} | {model} | {config_id} | {L} |"
        for h in sorted(by_h):
            runs = list(by_h[h].values())
            lines.append(
                f"{lead} {h} | {mean_std([r['mse'] for r in runs])} | "
                f"{mean_std([r['mae'] for r in runs])} | {len(runs)} | "
                f"{np.mean([r['train_seconds'] for r in runs]):.1f} | "
                f"{max(r['peak_rss_mb'] for r in runs):.0f} | {runs[-1]['parameters']} |"
            )
        if len(by_h) > 1:
            lines.append(f"{lead} avg | {_horizon_average(by_h)} | | | |")
    return "\n".join(lines) + "\n"


def _horizon_average(by_h: dict[int, dict[int, dict]]) -> str:
    """MSE | MAE | Seeds cells of the "avg" row: with the same seeds at every horizon, the mean ±
    std over seeds of each seed's horizon average; otherwise the mean of the horizons' means."""
    seed_sets = [tuple(sorted(runs)) for runs in by_h.values()]
    if len(set(seed_sets)) == 1:
        seeds = seed_sets[0]
        cells = [
            mean_std([np.mean([by_h[h][s][m] for h in by_h]) for s in seeds])
            for m in ("mse", "mae")
        ]
        return f"{cells[0]} | {cells[1]} | {len(seeds)}"
    cells = [
        np.mean([np.mean([r[m] for r in runs.values()]) for runs in by_h.values()])
        for m in ("mse", "mae")
    ]
    return f"{cells[0]:.4f} | {cells[1]:.4f} | mixed"


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """`mean ± sample std` of a table cell (the value alone for one run, empty for none)."""
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if len(values) else ""
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"
