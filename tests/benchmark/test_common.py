"""benchmarks/common.py, what the benchmark scripts share: how the scripts reach it, and the
runner's resuming and claims (without launching any run)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.benchmark.conftest import BENCHMARKS

SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def _imported(path) -> set[str]:
    """The top-level names of every module `path` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_a_script_reaches_another_only_through_common_and_never_edits_sys_path(path):
    siblings = {p.stem for p in SCRIPTS} - {path.stem}
    assert _imported(path) & siblings <= {"common"}
    edits = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr in ("insert", "append")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "path"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "sys"
    ]
    assert not edits, f"{path.name} edits sys.path at line(s) {edits}"


def test_common_imports_only_the_standard_library_at_module_level():
    # The speed and memory scripts import it before setting their threads and importing torch;
    # peers.py runs in the peers' own venv.
    tree = ast.parse((BENCHMARKS / "common.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module.split(".")[0])
    assert top <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.fixture
def common(load_script):
    return load_script("common")


def test_a_job_and_the_record_of_its_run_have_one_key(common, tmp_path, monkeypatch):
    from trellis_ts.benchmark.runner import resolve_config

    settings = {"learning_rate": 5e-3, "max_epochs": 3}
    job = common.job("ETTh1", "dlinear", settings, 96, 192, 1, tmp_path / "r.jsonl")
    config = resolve_config("dlinear", settings).to_dict()
    record = {
        "dataset": "ETTh1",
        "model": "dlinear",
        "seed": 1,
        "context_length": 96,
        "horizon": 192,
        "config": config | {"context_length": 96, "prediction_length": 192, "random_state": 1},
    }
    assert common.run_key(job) == common.run_key(record)
    assert common.run_key(job) != common.run_key(record | {"features": "S"})
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n")
    other = common.job("ETTh1", "dlinear", settings, 96, 720, 1, tmp_path / "r.jsonl")
    launched = []
    monkeypatch.setattr(common, "_launch", lambda job, data_dir: launched.append(job) or 0)
    common.run_jobs([job, other, other], tmp_path, 1, dry_run=False)
    assert launched == [other]  # the recorded run is skipped, the repeated one runs once


def _claim(common, job):
    """The claim file of `job`: named by its key, beside its results file."""
    key = (job["results"], *common.run_key(job))
    claims = job["results"].with_suffix(".claims")
    claims.mkdir(exist_ok=True)
    return claims / (hashlib.sha1(repr(key).encode()).hexdigest()[:16] + ".claim")


def test_a_claimed_run_is_skipped_while_its_process_lives_and_taken_over_after(
    common, tmp_path, monkeypatch
):
    job = common.job("ETTh1", "dlinear", {}, 96, 96, 0, tmp_path / "r.jsonl")
    launched = []

    def launch(job, data_dir):
        launched.append(_claim(common, job).read_text())  # held by this process while it runs
        return 0

    monkeypatch.setattr(common, "_launch", launch)
    claim = _claim(common, job)
    claim.write_text(f"{socket.gethostname()} {os.getpid()}")  # a live process holds it
    assert common._claimed_launch(job, tmp_path) == 0 and launched == []
    gone = subprocess.Popen(["true"])
    gone.wait()
    claim.write_text(f"{socket.gethostname()} {gone.pid}")  # its process has ended
    assert common._claimed_launch(job, tmp_path) == 0
    assert launched == [f"{socket.gethostname()} {os.getpid()}"] and not claim.exists()
