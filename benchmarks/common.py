"""What the benchmark scripts share: the memory readers, the encoder's timed training step and
inference pass (model_speed.py, compile_speed.py), and the runner of `trellis-ts benchmark`
processes (study.py, covariates.py): resumable, and claim-based so that several processes can
share one phase.

The scripts run as `python benchmarks/<name>.py`, which puts benchmarks/ first on `sys.path`, so
each imports this module as `from common import ...`; a script never imports another script.
Only the standard library is imported here at module level: the speed and memory scripts import
this module before they set their thread count and before torch (their baseline RSS stays
theirs), and peers.py runs in the peers' own venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Weather's validation split holds ~100k windows: early stopping reads every 4th of them (every
# run launched here: the study's and the covariates' ltsf runs).
VAL_STRIDE = {"Weather": 4}


# ------------------------------------------------------------------------------ memory
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """The process's resident memory now, in MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The process's peak resident memory, in MB.

    `VmHWM`, not `ru_maxrss`: Linux carries `ru_maxrss` across `exec`, so a subprocess started by
    a large parent would report the parent's size as its own peak.
    """
    return _status_mb("VmHWM")


# ------------------------------------------------------------------------------ encoder step
def make_config(mixer: str, length: int, overrides: dict):
    """The encoder with `mixer` at context `length`, H = 96, patches 16 / 8, `overrides` on top."""
    from trellis_ts.forecaster.config import TrellisConfig

    base = dict(context_length=length, prediction_length=96, patch_len=16, patch_stride=8)
    return TrellisConfig(**(base | overrides | {"mixer": mixer, "model": "encoder"}))


class Bench:
    """One mixer's model, optimiser and inputs, with a timed training step and inference pass."""

    def __init__(self, config, batch: int, windows: int, seed: int = 0) -> None:
        import torch

        from trellis_ts.forecaster.sizing import model_spec
        from trellis_ts.models import build_model

        torch.manual_seed(seed)
        self.config = config
        self.model = build_model(model_spec(config))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, config.context_length, 1, generator=gen)
        self.y = torch.randn(batch, config.prediction_length, 1, generator=gen)
        self.contexts = torch.randn(windows, config.context_length, generator=gen).numpy()
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def train_step(self) -> tuple[float, float]:
        import torch.nn.functional as F

        cpu, wall = time.process_time(), time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        F.mse_loss(self.model(self.x), self.y).backward()
        self.optimizer.step()
        return time.process_time() - cpu, time.perf_counter() - wall

    def inference(self) -> tuple[float, float]:
        from trellis_ts.forecaster.training import forecast_contexts

        cpu, wall = time.process_time(), time.perf_counter()
        forecast_contexts(self.model, self.contexts)
        return time.process_time() - cpu, time.perf_counter() - wall


# ------------------------------------------------------------------------------ runs
def canonical(config: dict[str, Any]) -> str:
    """A run's settings without the runner's own fields and without fields at their default, so
    that a setting added to TrellisConfig later (at a default that keeps the old behaviour)
    leaves earlier records recognisable."""
    from trellis_ts.forecaster.config import TrellisConfig

    # "none" was target_transform's default when these records were made; the runner keeps it.
    defaults = TrellisConfig().to_dict() | {"target_transform": "none"}
    own = ("context_length", "prediction_length", "random_state", "verbose")
    kept = {k: v for k, v in config.items() if k not in own and defaults.get(k, object()) != v}
    return json.dumps(kept, sort_keys=True, default=str)


def settings_key(model: str, settings: dict[str, Any]) -> str:
    """`canonical` of the config `model` with `settings` resolves to."""
    from trellis_ts.benchmark.runner import resolve_config

    return canonical(resolve_config(model, settings).to_dict())


def job(
    dataset, model, settings, L, H, seed, results, validation_only=False, features="M"
) -> dict[str, Any]:
    """One `trellis-ts benchmark` run, appended to the JSON-lines file `results`."""
    return {
        "dataset": dataset,
        "model": model,
        "settings": settings,
        "L": L,
        "H": H,
        "seed": seed,
        "results": results,
        "validation_only": validation_only,
        "features": features,
    }


def run_key(job_or_record: dict[str, Any]) -> tuple:
    """What makes a run the same run, for a job and for the record it writes alike."""
    r = job_or_record
    features = r.get("features", "M")
    if "settings" in r:
        return (
            r["dataset"],
            features,
            r["model"],
            settings_key(r["model"], r["settings"]),
            r["L"],
            r["H"],
            r["seed"],
        )
    return (
        r["dataset"],
        features,
        r["model"],
        canonical(r["config"]),
        r["context_length"],
        r["horizon"],
        r["seed"],
    )


def _launch(job: dict[str, Any], data_dir: Path) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job["settings"], fh)
    command = [
        sys.executable,
        "-m",
        "trellis_ts",
        "benchmark",
        job["dataset"],
        "--data-dir",
        str(data_dir),
        "--context-length",
        str(job["L"]),
        "--horizons",
        str(job["H"]),
        "--model",
        job["model"],
        "--config",
        fh.name,
        "--seeds",
        str(job["seed"]),
        "--results",
        str(job["results"]),
        "--quiet",
        "--features",
        job["features"],
    ]
    if job["validation_only"]:
        command.append("--validation-only")
    command += ["--val-stride", str(VAL_STRIDE.get(job["dataset"], 1))]
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    label = (
        f"{job['dataset']} {job['features']} {job['model']} L={job['L']} H={job['H']} "
        f"seed={job['seed']} {job['settings']}"
    )
    print(f"start  {label}", flush=True)
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    os.unlink(fh.name)
    print(
        f"{'done  ' if done.returncode == 0 else f'FAILED ({done.returncode})'} {label}", flush=True
    )
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr, flush=True)
    return done.returncode


def run_jobs(jobs: list[dict[str, Any]], data_dir: Path, n_jobs: int, dry_run: bool) -> None:
    """Run the jobs not yet in their results file, ``n_jobs`` processes at a time."""
    from trellis_ts.benchmark.results import read_results

    done = set()
    for results in {job["results"] for job in jobs}:
        if results.is_file():
            done |= {(results, *run_key(r)) for r in read_results(results)}
    todo, seen = [], set()
    for job in jobs:
        key = (job["results"], *run_key(job))
        if key not in done and key not in seen:
            seen.add(key)
            todo.append(job)
    print(f"{len(jobs)} runs asked, {len(todo)} not yet recorded")
    if dry_run:
        for job in todo:
            print(
                f"would run {job['dataset']} {job['features']} {job['model']} L={job['L']} H={job['H']} "
                f"seed={job['seed']} -> {job['results'].name}: {job['settings']}"
            )
        return
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        codes = list(pool.map(lambda job: _claimed_launch(job, data_dir), todo))
    if any(codes):
        raise SystemExit(f"{sum(1 for c in codes if c)} run(s) failed; see the messages above")


def _claimed_launch(job: dict[str, Any], data_dir: Path) -> int:
    """Launch `job` unless another process holds it or has recorded it since this one started:
    several processes (on one machine, or sharing the results folder) can then run one phase.

    A claim is a file named by the run's key beside the results file, created atomically and
    holding the claimer's host and pid; a claim whose process is gone (on this host) is taken over.
    """
    from trellis_ts.benchmark.results import read_results

    key = (job["results"], *run_key(job))
    if job["results"].is_file() and key in {
        (job["results"], *run_key(r)) for r in read_results(job["results"])
    }:
        return 0
    claims = job["results"].with_suffix(".claims")
    claims.mkdir(exist_ok=True)
    claim = claims / (hashlib.sha1(repr(key).encode()).hexdigest()[:16] + ".claim")
    mine = f"{socket.gethostname()} {os.getpid()}"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        host, _, pid = claim.read_text().partition(" ")
        if host != socket.gethostname() or _alive(int(pid or 0)):
            print(
                f"skip   (claimed by {host} {pid}) {job['dataset']} {job['model']} "
                f"L={job['L']} H={job['H']} seed={job['seed']}",
                flush=True,
            )
            return 0
        claim.write_text(mine)  # its process died: take the run over
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(mine)
    try:
        return _launch(job, data_dir)
    finally:
        claim.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
