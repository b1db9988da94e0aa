"""Honest exit codes and reports: signals, tune's outcome, predict's own time, fast errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import TINY, ok, run, write_wide
from tests.conftest import REPO
from trellis_ts.data import make_demo_frame

SMALL = ["--d-model", "16", "--n-layers", "1", "--n-slots", "8", "--quiet"]


def _cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trellis_ts", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(path, proc, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_fit_with_its_status_and_keeps_the_checkpoint(signum, status, tmp_path):
    data = tmp_path / "data.csv"
    make_demo_frame(600, 2).to_csv(data, index=False)
    model_dir = tmp_path / "m"
    checkpoint = tmp_path / "m.checkpoints" / "last.ckpt"
    proc = _cli(
        "fit",
        data,
        "--model-dir",
        model_dir,
        "--max-epochs",
        "500",
        "--model",
        "encoder",
        "--early-stopping-patience",
        "500",
        "--context-length",
        "48",
        *SMALL,
    )
    _wait_for(checkpoint, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr  # before: SIGTERM exited 0 without a model
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted by {name}: nothing was saved to {model_dir}; the last finished epoch is "
        f"kept in {checkpoint.parent}: rerun the same command with --resume to continue"
    )
    assert not model_dir.exists() and checkpoint.is_file()
    ok(
        "fit",
        data,
        "--model-dir",
        model_dir,
        "--max-epochs",
        "2",
        "--model",
        "encoder",
        "--context-length",
        "48",
        *SMALL,
        "--resume",
    )
    assert (model_dir / "model.json").is_file()


def test_a_signal_stops_tune_and_says_the_study_is_kept(tmp_path):
    data = tmp_path / "data.csv"
    make_demo_frame(600, 2).to_csv(data, index=False)
    proc = _cli(
        "tune",
        data,
        "--model-dir",
        tmp_path / "best",
        "--trials",
        "50",
        "--max-epochs",
        "500",
        "--early-stopping-patience",
        "500",
        "--pruner",
        "none",
        "--context-length",
        "48",
        *SMALL,
    )
    _wait_for(tmp_path / "best-tune.db", proc)
    time.sleep(3)  # inside a trial
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM: the study 'trellis-ts' keeps its finished trials" in stderr


def _tune_data(tmp_path):
    data = tmp_path / "train.csv"
    make_demo_frame(300, 2, seed=2).to_csv(data, index=False)
    return data


def test_tune_keeps_every_setting_fixed_on_the_command_line(tmp_path):
    data = _tune_data(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("context_length: [96, 192]\nlearning_rate: [0.001, 0.003]\n")
    result = ok(
        "tune", data, "--trials", "2", "--space", space, "--model-dir", tmp_path / "m", *TINY
    )
    assert "entries for --context-length are left out" in result.stderr  # said so
    table = pd.read_csv(tmp_path / "m-tune" / "trials.csv")
    assert "context_length" not in table.columns and "learning_rate" in table.columns
    study = __import__("optuna").load_study(
        study_name="trellis-ts", storage=f"sqlite:///{tmp_path / 'm-tune.db'}"
    )
    assert {t.user_attrs["params"]["context_length"] for t in study.trials} == {24}


def test_tune_says_why_trials_were_pruned_and_fails_when_none_completed(tmp_path):
    data = _tune_data(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("n_heads: [3]\n")  # d_model 16 is not a multiple: every trial fails
    out = tmp_path / "m"
    result = run(
        "tune",
        data,
        "--trials",
        "2",
        "--space",
        space,
        "--model-dir",
        out,
        *[a for a in TINY if a != "--quiet"],
    )
    assert result.exit_code == 2  # before: exit 0, "nothing was saved", no reason
    assert "Trial 0 pruned: cannot fit this data: --d-model 16 is not divisible by --n-heads 3" in (
        result.stderr
    )
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no trial completed (2 pruned); most often: cannot fit")
    assert not out.exists() and (tmp_path / "m-tune" / "trials.csv").is_file()


def test_predict_json_reports_its_own_time(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    model_dir = tmp_path / "m"
    ok("fit", data, "--model-dir", model_dir, *TINY)
    fitted = json.loads((model_dir / "model.json").read_text())["summary"]
    started = time.perf_counter()
    record = json.loads(
        ok("predict", "--model-dir", model_dir, "-o", tmp_path / "fc.csv", "--json").stdout
    )
    wall = time.perf_counter() - started
    assert 0 < record["seconds"] <= wall  # its own time (before: the fit's seconds)
    assert record["fit"] == {
        "epochs": fitted["epochs"],
        "best_val_loss": fitted["best_val_loss"],
        "seconds": round(fitted["seconds"], 3),
    }
    assert "epochs" not in record
    record = json.loads(ok("evaluate", data, "--model-dir", model_dir, "--json").stdout)
    assert record["seconds"] > 0 and record["fit"]["epochs"] == fitted["epochs"]


def test_version():
    import trellis_ts

    assert ok("--version").stdout.strip() == f"trellis-ts {trellis_ts.__version__}"


SETUP = "import sys, runpy; sys.argv = ['trellis-ts', *sys.argv[1:]]\n"
PROBE = (
    SETUP
    + """
try:
    runpy.run_module('trellis_ts', run_name='__main__')
except SystemExit as exc:
    print('status', exc.code, 'torch' in sys.modules, 'lightning' in sys.modules)
"""
)


@pytest.mark.parametrize(
    "args",
    [
        ["forecast", "missing.csv"],
        ["forecast", "{bad}"],
        ["forecast", "--demo", "--mixer", "lstm"],
        ["forecast", "{short}"],
        ["fit", "{bad}", "--model-dir", "m"],
        ["tune", "{short}", "--model-dir", "m"],
        ["predict", "--model-dir", "nowhere"],
        ["--help"],
        ["forecast", "{negative}", "--target-transform", "log1p"],
        ["forecast", "{dup}"],
        ["fit", "{nul}", "--model-dir", "m"],
    ],
)
def test_bad_files_and_options_answer_before_torch_loads(args, tmp_path):
    write_issue_32_files(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("Month,y\n01/01/1949,1\n01/02/1949,2\n01/03/1949,3\n")
    short = tmp_path / "short.csv"
    pd.DataFrame({"date": pd.date_range("2024", periods=8, freq="h"), "v": np.arange(8)}).to_csv(
        short, index=False
    )
    argv = [
        a.format(bad=bad, short=short, negative="negative.csv", dup="dup.csv", nul="nul.csv")
        for a in args
    ]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = done.stdout.strip().splitlines()[-1]
    expected = "0" if args == ["--help"] else "2"
    assert status == f"status {expected} False False", done.stdout + done.stderr


def write_issue_32_files(folder):
    """A duplicated header, a file of NULs (no text), negative values for log1p."""
    (folder / "dup.csv").write_text("date,a,a\n2024-01-01,1,2\n2024-01-02,3,4\n")
    with open(folder / "nul.csv", "wb") as fh:
        fh.truncate(64 << 20)  # 64 MB of NULs (sparse): refused from its first bytes
    frame = make_demo_frame(300, 2)
    frame.loc[100, "load_2"] = -1.0
    frame.to_csv(folder / "negative.csv", index=False)


def test_duplicated_names_binary_files_and_negatives_for_log1p_are_one_clear_line(tmp_path):
    write_issue_32_files(tmp_path)
    line = _one_line(run("forecast", tmp_path / "dup.csv"))
    assert "names more than one column 'a'" in line  # before: silently renamed a.1
    started = time.perf_counter()
    line = _one_line(run("fit", tmp_path / "nul.csv", "--model-dir", tmp_path / "m"))
    assert "is not a text file (it holds NUL bytes from offset 0)" in line  # before: "--freq"
    assert time.perf_counter() - started < 2
    line = _one_line(run("forecast", tmp_path / "negative.csv", "--target-transform", "log1p"))
    assert "series 'load_2' has a negative value (-1)" in line and "--target-transform none" in line
    from trellis_ts.cli.app import cli_words

    assert cli_words("incomplete (it lacks the entry 'time_col')") == (
        "incomplete (it lacks the entry 'time_col')"  # before: '--time-col'
    )
    assert cli_words("pass time_col='x'") == "pass --time-col x"


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_neither_pandas_nor_torch(flag, tmp_path):
    # What keeps them at a fifth of a second: a module-level import of pandas or numpy in the
    # modules the command line reads at start (config, options) would cost ~0.3 s more.
    probe = SETUP + (
        "try:\n    runpy.run_module('trellis_ts', run_name='__main__')\n"
        "except SystemExit:\n"
        "    print(sorted(m for m in ('pandas', 'numpy', 'torch') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, flag],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


# ------------------------------------------------------------------ issue 32: the checkpoint folder


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_fit_never_deletes_a_checkpoint_folder_it_did_not_write(tmp_path):
    from tests.cli.test_commands import TINY as CLI_TINY

    data = write_wide(tmp_path / "d.csv")
    folder = tmp_path / "results.checkpoints"
    folder.mkdir()
    (folder / "notes.txt").write_text("notes\n")
    line = _one_line(run("fit", data, "--model-dir", tmp_path / "results", *CLI_TINY))
    assert "holds files trellis-ts did not write (notes.txt)" in line  # before: exit 0, rmtree
    assert (folder / "notes.txt").read_text() == "notes\n"
    assert not (tmp_path / "results").exists()
    ok("fit", data, "--model-dir", tmp_path / "m", *CLI_TINY)
    line = _one_line(
        run(
            "fit",
            data,
            "--model-dir",
            tmp_path / "results",
            "--warm-start",
            "--max-epochs",
            "1",
            "--quiet",
        )
    )
    assert "notes.txt" in line
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "m.checkpoints").symlink_to(elsewhere, target_is_directory=True)
    line = _one_line(
        run(
            "fit",
            data,
            "--model-dir",
            tmp_path / "m",
            "--warm-start",
            "--max-epochs",
            "1",
            "--quiet",
        )
    )
    assert "is a symbolic link" in line
    assert list(elsewhere.iterdir()) == []  # before: a last.ckpt was left there
    (tmp_path / "m.checkpoints").unlink()
    ok("fit", data, "--model-dir", tmp_path / "m", "--warm-start", "--max-epochs", "1", "--quiet")
    assert not (tmp_path / "m.checkpoints").exists()  # its own folder is removed after the save


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_whole_checkpoint(
    tmp_path, monkeypatch
):
    import errno

    import lightning.pytorch as pl
    import torch

    from tests.cli.test_commands import TINY as CLI_TINY

    data = write_wide(tmp_path / "d.csv")
    original = pl.Trainer.save_checkpoint
    calls = []

    def disk_fills_up(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) == 1:
            return original(self, filepath, *args, **kwargs)
        with open(filepath, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", disk_fills_up)
    tiny = CLI_TINY[:-3]  # without --max-epochs 1
    assert CLI_TINY[-3:] == ["--max-epochs", "1", "--quiet"]
    line = _one_line(
        run(
            "fit",
            data,
            "--model-dir",
            tmp_path / "m",
            *tiny,
            "--max-epochs",
            "3",
            "--early-stopping-patience",
            "9",
            "--quiet",
        )
    )
    assert "No space left on device" in line and "--resume" in line
    folder = tmp_path / "m.checkpoints"
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]  # no staging file left
    assert torch.load(folder / "last.ckpt", weights_only=True)["epoch"] == 0  # whole, not torn
    assert not (tmp_path / "m").exists()


def test_resume_from_a_checkpoint_that_cannot_continue_is_one_line(tmp_path):
    import torch

    from tests.cli.test_commands import TINY as CLI_TINY
    from trellis_ts import TrellisForecaster

    data = write_wide(tmp_path / "d.csv")
    kept = tmp_path / "kept"
    params = dict(
        context_length=24,
        prediction_length=6,
        patch_len=8,
        patch_stride=4,
        d_model=16,
        n_layers=1,
        n_slots=8,
        max_epochs=3,
        early_stopping_patience=9,
        verbose=False,
    )
    TrellisForecaster(**params).fit(pd.read_csv(data), checkpoint_dir=kept)
    good = (kept / "last.ckpt").read_bytes()
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"epoch": 1, "state_dict": Planted()}, tmp_path / "planted.ckpt")
    tiny = CLI_TINY[:-3] + ["--quiet"]  # without --max-epochs 1
    cases = [
        (good, ["--max-epochs", "1"], "beyond --max-epochs 1; resume with --max-epochs 2 or more"),
        (
            good,
            ["--max-epochs", "5", "--d-model", "32"],
            "written by a fit with other model options",
        ),
        (good[: len(good) // 2], ["--max-epochs", "5"], "truncated or not a checkpoint"),
        ((tmp_path / "planted.ckpt").read_bytes(), ["--max-epochs", "5"], "not a checkpoint"),
    ]
    for i, (content, extra, expected) in enumerate(cases):
        model_dir = tmp_path / f"m{i}"
        (tmp_path / f"m{i}.checkpoints").mkdir()
        (tmp_path / f"m{i}.checkpoints" / "last.ckpt").write_bytes(content)
        line = _one_line(run("fit", data, "--model-dir", model_dir, *tiny, *extra, "--resume"))
        assert expected in line, line  # before: MisconfigurationException, RuntimeError, OSError
        assert not model_dir.exists()
    assert not marker.exists()


def test_warm_start_on_negative_values_for_log1p_answers_before_torch_loads(tmp_path):
    from tests.cli.test_commands import TINY as CLI_TINY

    write_issue_32_files(tmp_path)
    positive = write_wide(tmp_path / "positive.csv", n=300)
    ok("fit", positive, "--model-dir", tmp_path / "m", *CLI_TINY, "--target-transform", "log1p")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "fit", "negative.csv", "--model-dir", "m", "--warm-start"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == "status 2 False False", done.stdout + done.stderr
    assert "series 'load_2' has a negative value (-1)" in done.stderr  # before: after torch, 6 s
