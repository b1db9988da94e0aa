"""Covariates: does a model read them, and where do they pay? Three studies.

    python benchmarks/covariates.py synthetic    # promotions: none / past / future covariate, 3 seeds
    python benchmarks/covariates.py design       # horizon tokens vs a linear head for future inputs
    python benchmarks/covariates.py ltsf         # ETTh1 and Weather, "S" against "MS", L=336
    python benchmarks/covariates.py normalise    # ETTh1 "MS": covariates scaled per window or not
    python benchmarks/covariates.py tables       # re-render the tables from the JSON lines

`--models trellis attention` limits a phase to some models; run two processes (one model each)
on a 2-core machine. Every result is appended to `benchmarks/results/covariates_*.jsonl` as its
run ends, and a phase skips the runs its file already holds, so it resumes where it stopped.

* synthetic: `make_promotion_frame` (10 stores, 730 days; sales lifted 80% on random promotion
  days). Each model is fitted on the first 600 days of every store three ways: without the
  promotions, with them as a past covariate (known up to the forecast origin), and as a future
  covariate (known over the horizon); then scored on every window (step 1) of the last 130 days,
  which no fit saw. L = 56 days, H = 14.
* design: the same data and future covariate, with the known horizon values entering the
  encoder as extra tokens after the context (the library's design) or through a linear map of
  the horizon values added to the head's output (the alternative measured against it).
* normalise: how covariates are scaled, chosen on validation loss only: ETTh1 "MS" as below
  (attention, H = 96 and 720, seeds 0-2, `--validation-only`), with the covariates scaled by
  the train rows (the library's design) or, in addition, normalised per window by their own
  context's mean and standard deviation (as RevIN does the target; the horizon's known values
  with the context's statistics).
* ltsf: the standard protocol of `trellis_ts.benchmark.runner` on ETTh1 and Weather, target `OT`:
  "S" (OT from its own history) against "MS" (OT with every other channel as a past
  covariate), L = 336, H = 96 and 720, Trellis and attention encoders with the committed ETTh1
  L=336 settings, seeds 0, 1, 2; one `trellis-ts benchmark` process per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import job, run_jobs

from trellis_ts.benchmark.results import mean_std, read_results, render_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CONFIGS = REPO / "benchmarks" / "configs"
SYNTHETIC = RESULTS / "covariates_synthetic.jsonl"
DESIGN = RESULTS / "covariates_design.jsonl"
LTSF = RESULTS / "covariates_ltsf.jsonl"
NORMALISE = RESULTS / "covariates_normalise.jsonl"
SEEDS = (0, 1, 2)
ARMS = {
    "none": {},
    "past": {"past_covariates": ["promo"]},
    "future": {"future_covariates": ["promo"]},
}
L, H, TRAIN_DAYS = 56, 14, 600
ENCODER = dict(
    prediction_length=H,
    context_length=L,
    patch_len=7,
    patch_stride=7,
    d_model=32,
    n_heads=4,
    n_layers=2,
    n_slots=16,
    max_epochs=30,
    early_stopping_patience=4,
    batch_size=64,
    learning_rate=1e-3,
    dropout=0.1,
    verbose=False,
)
MODELS = {
    "trellis": ENCODER | {"mixer": "trellis"},
    "attention": ENCODER | {"mixer": "attention"},
    "dlinear": {k: v for k, v in ENCODER.items() if k not in ("n_slots", "d_model", "n_heads")}
    | {"model": "dlinear", "learning_rate": 3e-3},
}


def promotion_split():
    import pandas as pd

    from trellis_ts.data import make_promotion_frame

    df = make_promotion_frame(n_steps=730, n_series=10, seed=0)
    cut = df["ds"].min() + pd.Timedelta(days=TRAIN_DAYS)
    return df[df["ds"] < cut], df[df["ds"] >= cut - pd.Timedelta(days=L)]


def _done(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    return {(r["model"], r["arm"], r["seed"]) for r in read_results(path)}


def synthetic(
    models: list[str], path: Path = SYNTHETIC, arms=ARMS, variant: str = "tokens"
) -> None:
    from trellis_ts import TrellisForecaster

    train, test = promotion_split()
    done = _done(path)
    for seed in SEEDS:
        for model in models:
            for arm, columns in arms.items():
                if (model, arm, seed) in done:
                    continue
                forecaster = TrellisForecaster(**MODELS[model], random_state=seed)
                started = time.perf_counter()
                forecaster.fit(train, **columns)
                seconds = time.perf_counter() - started
                scores = forecaster.evaluate(test, step=1)
                record = {
                    "model": model,
                    "arm": arm,
                    "seed": seed,
                    "variant": variant,
                    "mse": scores["mse"],
                    "mae": scores["mae"],
                    "windows": scores["n_windows"],
                    "epochs": forecaster.summary_.epochs,
                    "best_epoch": forecaster.summary_.best_epoch,
                    "parameters": forecaster.summary_.parameters,
                    "train_seconds": round(seconds, 1),
                    "settings": MODELS[model],
                }
                print(json.dumps({k: v for k, v in record.items() if k != "settings"}), flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")


def design(models: list[str]) -> None:
    """The alternative design: the horizon's known values through a linear map into the output."""
    import torch
    from torch import nn

    import trellis_ts.forecaster.lightning_module as lightning_module
    from trellis_ts.models import TrellisModel, build_model
    from trellis_ts.models.covariates import ModelInputs
    from trellis_ts.modules.revin import normalize

    class HeadVariant(nn.Module):
        """Known covariates over the context enter the tokens (as past ones do); over the horizon,
        Linear(H * F -> H) of their values is added to the encoder's normalised forecast."""

        def __init__(self, config, inputs: ModelInputs) -> None:
            super().__init__()
            self.config, self.inputs = config, inputs
            context = ModelInputs(
                past_feat_dynamic_real=inputs.past_feat_dynamic_real + inputs.feat_dynamic_real
            )
            self.encoder = TrellisModel(config, context)
            self.future = nn.Linear(H * inputs.feat_dynamic_real, H)

        def forward(self, past_target, past_feat_dynamic_real=None, feat_dynamic_real=None):
            history = feat_dynamic_real[:, :L]
            if past_feat_dynamic_real is not None:
                history = torch.cat([past_feat_dynamic_real, history], dim=-1)
            _, stats = normalize(past_target[..., None])
            y = self.encoder(past_target, past_feat_dynamic_real=history)
            return y + self.future(feat_dynamic_real[:, L:].flatten(1)) * stats.std[:, 0]

    def build(config, inputs=None):
        if inputs is not None and inputs.feat_dynamic_real:
            return HeadVariant(config, inputs)
        return build_model(config, inputs)

    lightning_module.build_model = build  # the training system builds the variant
    synthetic([m for m in models if m != "dlinear"], DESIGN, {"future": ARMS["future"]}, "head")


def normalise(data_dir: Path) -> None:
    """ETTh1 "MS" validation losses with and without per-window normalisation of covariates."""
    import torch

    from trellis_ts.benchmark.runner import run_benchmark
    from trellis_ts.models.covariates import CovariateEncoder

    plain = CovariateEncoder.forward

    def per_window(self, tokens, past_feat_dynamic_real=None, feat_dynamic_real=None, **static):
        L = past_feat_dynamic_real.shape[1] if past_feat_dynamic_real is not None else None
        out = {}
        for name, value in (
            ("past_feat_dynamic_real", past_feat_dynamic_real),
            ("feat_dynamic_real", feat_dynamic_real),
        ):
            if value is None:
                continue
            context = value[:, : L or value.shape[1] - self.prediction_length]
            mean = context.mean(1, keepdim=True)
            std = torch.sqrt(context.var(1, keepdim=True, unbiased=False) + 1e-5)
            out[name] = (value - mean) / std
        return plain(self, tokens, **out, **static)

    settings = json.loads((CONFIGS / "etth1_attention_L336.json").read_text())
    done = set()
    if NORMALISE.is_file():
        done = {(r["variant"], r["horizon"], r["seed"]) for r in read_results(NORMALISE)}
    for variant, forward in (("train rows", plain), ("per window", per_window)):
        CovariateEncoder.forward = forward
        for h in (96, 720):
            for seed in SEEDS:
                if (variant, h, seed) in done:
                    continue
                (record,) = run_benchmark(
                    "ETTh1",
                    data_dir,
                    336,
                    [h],
                    model="attention",
                    config=settings,
                    seeds=[seed],
                    results_path=None,
                    score_test=False,
                    features="MS",
                    verbose=False,
                )
                record["variant"] = variant
                print(variant, h, seed, record["best_val_loss"], flush=True)
                with NORMALISE.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
    CovariateEncoder.forward = plain


def normalise_table() -> str:
    records = read_results(NORMALISE)
    lines = [
        "| covariates scaled by | H | validation loss (mean ± std, 3 seeds) | per seed |",
        "|---|---:|---:|---|",
    ]
    for variant in ("train rows", "per window"):
        for h in (96, 720):
            losses = [
                r["best_val_loss"]
                for r in sorted(records, key=lambda r: r["seed"])
                if r["variant"] == variant and r["horizon"] == h
            ]
            if losses:
                lines.append(
                    f"| {variant} | {h} | {mean_std(losses)} | "
                    f"{', '.join(f'{v:.4f}' for v in losses)} |"
                )
    return "\n".join(lines) + "\n"


def ltsf_jobs(models: list[str]) -> list[dict[str, Any]]:
    # Dataset by dataset, seed by seed: each finished seed gives every model's S/MS pair.
    settings = {m: json.loads((CONFIGS / f"etth1_{m}_L336.json").read_text()) for m in models}
    return [
        job(dataset, model, settings[model], 336, h, seed, LTSF, features=features)
        for dataset in ("ETTh1", "Weather")
        for seed in SEEDS
        for model in models
        for h in (96, 720)
        for features in ("S", "MS")
    ]


# ------------------------------------------------------------------------------ tables
def synthetic_table() -> str:
    records = read_results(SYNTHETIC) + (read_results(DESIGN) if DESIGN.is_file() else [])
    lines = [
        "| model | promotions given | test MSE (mean ± std, 3 seeds) | MAE | per seed | "
        "MSE without / with | epochs | params |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for model in MODELS:
        base = {r["seed"]: r["mse"] for r in records if r["model"] == model and r["arm"] == "none"}
        for variant, arm in (
            ("tokens", "none"),
            ("tokens", "past"),
            ("tokens", "future"),
            ("head", "future"),
        ):
            runs = sorted(
                (
                    r
                    for r in records
                    if r["model"] == model
                    and r["arm"] == arm
                    and r.get("variant", "tokens") == variant
                ),
                key=lambda r: r["seed"],
            )
            if not runs:
                continue
            label = {
                "none": "no",
                "past": "as a past covariate",
                "future": "as a future covariate",
            }[arm]
            if variant == "head":
                label += " (through the head)"
            ratios = [base[r["seed"]] / r["mse"] for r in runs if r["seed"] in base]
            per_seed = ", ".join(f"{r['mse']:.1f}" for r in runs)
            ratio = f"{min(ratios):.1f}x to {max(ratios):.1f}x" if ratios and arm != "none" else ""
            lines.append(
                f"| {model} | {label} | {mean_std([r['mse'] for r in runs], 1)} | "
                f"{statistics.mean(r['mae'] for r in runs):.2f} | "
                f"{per_seed} | {ratio} | "
                f"{', '.join(str(r['epochs']) for r in runs)} | {runs[0]['parameters']:,} |"
            )
    return "\n".join(lines) + "\n"


def ltsf_table() -> str:
    records = [r for r in read_results(LTSF) if r.get("mse") is not None]
    lines = [
        "| dataset | model | H | S: OT alone | MS: + other channels as past covariates | "
        "MS - S | MS better on seeds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["dataset"], r["model"], r["horizon"]) for r in records})
    for dataset, model, h in keys:
        by = {
            f: {
                r["seed"]: r["mse"]
                for r in records
                if (r["dataset"], r["model"], r["horizon"], r["features"]) == (dataset, model, h, f)
            }
            for f in ("S", "MS")
        }
        seeds = sorted(set(by["S"]) & set(by["MS"]))
        diff = (
            statistics.mean(by["MS"][s] for s in seeds) - statistics.mean(by["S"][s] for s in seeds)
            if seeds
            else float("nan")
        )
        better = sum(by["MS"][s] < by["S"][s] for s in seeds)
        lines.append(
            f"| {dataset} | {model} | {h} | {mean_std(list(by['S'].values()), 5)} | "
            f"{mean_std(list(by['MS'].values()), 5)} | {diff:+.5f} | "
            f"{better} of {len(seeds)} |"
        )
    return "\n".join(lines) + "\n"


def write_tables() -> None:
    if SYNTHETIC.is_file():
        (RESULTS / "covariates_synthetic.md").write_text(synthetic_table())
    if LTSF.is_file():
        (RESULTS / "covariates_ltsf.md").write_text(ltsf_table() + "\n" + render_table(LTSF))
    if NORMALISE.is_file():
        (RESULTS / "covariates_normalise.md").write_text(normalise_table())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "phases", nargs="+", choices=["synthetic", "design", "normalise", "ltsf", "tables"]
    )
    parser.add_argument("--models", nargs="*", default=["trellis", "attention", "dlinear"])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--jobs", type=int, default=1, help="ltsf runs at a time (one core each)")
    parser.add_argument("--dry-run", action="store_true", help="ltsf: list the runs, run nothing")
    args = parser.parse_args()
    for phase in args.phases:
        if phase == "synthetic":
            synthetic(args.models)
        elif phase == "design":
            design(args.models)
        elif phase == "normalise":
            normalise(args.data_dir)
        elif phase == "ltsf":
            models = [m for m in args.models if m != "dlinear"]
            run_jobs(ltsf_jobs(models), args.data_dir, args.jobs, args.dry_run)
    write_tables()


if __name__ == "__main__":
    main()
