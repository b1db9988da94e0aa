"""The tune and benchmark commands, fit --resume, and multi-value options."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.cli.test_commands import TINY, ok, run
from trellis_ts.cli.research import expand_multi_value
from trellis_ts.data import make_demo_frame


def test_multi_value_options_become_repeated_flags():
    argv = ["benchmark", "ETTh1", "--horizons", "96", "192", "--seeds", "0", "1", "--model", "x"]
    assert expand_multi_value(argv) == [
        "benchmark",
        "ETTh1",
        "--horizons",
        "96",
        "--horizons",
        "192",
        "--seeds",
        "0",
        "--seeds",
        "1",
        "--model",
        "x",
    ]


def test_tune_saves_the_best_model_and_a_report(tmp_path):
    data = tmp_path / "train.csv"
    make_demo_frame(300, 2, seed=2).to_csv(data, index=False)
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 0.001, high: 0.01, log: true}\n")
    model_dir = tmp_path / "best"
    result = ok(
        "tune", data, "--trials", "2", "--space", space, "--model-dir", model_dir, "--json", *TINY
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["trials"] == 2 and summary["model_dir"] == str(model_dir.resolve())
    assert (model_dir / "model.json").is_file()
    assert (tmp_path / "best-tune" / "trials.csv").is_file()
    assert (tmp_path / "best-tune.db").is_file()  # the default SQLite storage
    # Running again with a higher total resumes the same study.
    ok("tune", data, "--trials", "3", "--space", space, "--model-dir", model_dir, *TINY)
    table = pd.read_csv(tmp_path / "best-tune" / "trials.csv")
    assert list(table["trial"]) == [0, 1, 2]


def test_tune_bad_storage_is_one_line_exit_2(tmp_path):
    data = tmp_path / "train.csv"
    make_demo_frame(300, 2).to_csv(data, index=False)
    result = run(
        "tune",
        data,
        "--trials",
        "1",
        "--storage",
        "nosuch://x",
        "--model-dir",
        tmp_path / "m",
        *TINY,
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open the study storage")
    assert len(result.stderr.strip().splitlines()) == 1


def test_benchmark_on_a_csv_appends_records(tmp_path):
    data = tmp_path / "series.csv"
    make_demo_frame(600, 2).to_csv(data, index=False)
    results = tmp_path / "results.jsonl"
    args = [
        "benchmark",
        data,
        "--context-length",
        "24",
        "--horizons",
        "6",
        "--horizons",
        "12",
        "--model",
        "dlinear",
        "--results",
        results,
        "--table",
        tmp_path / "t.md",
        "--quiet",
    ]
    ok(*args)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["horizon"] for r in records] == [6, 12]
    assert all(np.isfinite(r["mse"]) for r in records)
    assert "| " in (tmp_path / "t.md").read_text()
    bad = run("benchmark", "NoSuchSet", "--data-dir", tmp_path, "--horizons", "6")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
    # --validation-only: the settings search mode records the validation loss, no test score
    search = tmp_path / "search.jsonl"
    result = ok(
        "benchmark",
        data,
        "--context-length",
        "24",
        "--horizons",
        "6",
        "--model",
        "dlinear",
        "--results",
        search,
        "--validation-only",
        "--json",
    )
    (summary,) = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mse"] is None and np.isfinite(summary["best_val_loss"])
    (record,) = [json.loads(line) for line in search.read_text().splitlines()]
    assert record["scored_on"] == "validation only" and "test" not in record["borders"]


def test_fit_resume_without_checkpoint_trains_from_scratch(tmp_path):
    data = tmp_path / "d.csv"
    make_demo_frame(200, 2).to_csv(data, index=False)
    ok("fit", data, "--model-dir", tmp_path / "m", "--resume", *TINY)
    assert (tmp_path / "m" / "model.json").is_file()
    assert not (tmp_path / "m.checkpoints").exists()  # removed once the model is saved
