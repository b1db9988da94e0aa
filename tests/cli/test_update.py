"""`trellis-ts update NEW.csv --model-dir M`, then `trellis-ts predict --model-dir M` without a
data file: the same forecast as predicting from the whole history, a failed update leaves M as
it was, outputs into M stay refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.test_commands import TINY, ok, run, write_long, write_wide


def files(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}


@pytest.mark.parametrize(
    "layout, options",
    [
        ("wide", []),
        ("long", ["--id-col", "store", "--time-col", "date", "--target", "sales"]),
    ],
)
def test_update_then_predict_without_data_is_a_fresh_predict(layout, options, tmp_path):
    whole = (write_wide if layout == "wide" else write_long)(tmp_path / "all.csv")
    df = pd.read_csv(whole)
    times = sorted(df["date"].unique())
    fit, a, b = (tmp_path / f"{n}.csv" for n in ("fit", "a", "b"))
    df[df["date"] < times[90]].to_csv(fit, index=False)
    df[(df["date"] >= times[90]) & (df["date"] < times[101])].to_csv(a, index=False)
    df[df["date"] >= times[101]].to_csv(b, index=False)
    model_dir = tmp_path / "model"
    ok("fit", fit, "--model-dir", model_dir, *options, *TINY)
    fresh = ok("predict", whole, "--model-dir", model_dir, "-q", "--level", "80").stdout

    said = ok("update", a, "--model-dir", model_dir).stdout.strip().splitlines()
    n_series = 3
    rows = len(pd.read_csv(a))
    assert said == [
        f"Added {rows} rows to {n_series} series of {model_dir}; the history now ends at "
        f"{pd.Timestamp(times[100])}."
    ]
    record = json.loads(ok("update", b, "--model-dir", model_dir, "--json").stdout)
    assert record["series"] == n_series and record["updates"] == 2
    assert record["end"] == str(pd.Timestamp(times[-1]))

    out = tmp_path / "fc.csv"
    ok("predict", "--model-dir", model_dir, "-q", "--level", "80", "-o", out)
    got, want = pd.read_csv(out), pd.read_csv(io.StringIO(fresh))
    pd.testing.assert_frame_equal(got, want, rtol=1e-6)  # float tolerance: the same numbers


def test_a_failed_update_leaves_the_model_directory_as_it_was(tmp_path):
    whole = write_wide(tmp_path / "all.csv")
    df = pd.read_csv(whole)
    df.iloc[:150].to_csv(tmp_path / "fit.csv", index=False)
    model_dir = tmp_path / "model"
    ok("fit", tmp_path / "fit.csv", "--model-dir", model_dir, *TINY)
    before = files(model_dir)
    cases = {
        "overlap.csv": (df.iloc[140:], "at or before its last timestamp"),
        "gap.csv": (df.iloc[155:], "missing timestamp"),
        "extra.csv": (df.iloc[150:].assign(extra=1.0), "extra column 'extra'"),
        "short.csv": (df.iloc[150:].drop(columns=df.columns[1]), "lack column"),
    }
    for name, (rows, message) in cases.items():
        rows.to_csv(tmp_path / name, index=False)
        result = run("update", tmp_path / name, "--model-dir", model_dir)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert files(model_dir) == before
    result = run("update", "--model-dir", model_dir)
    assert result.exit_code == 2 and "no data given" in result.stderr
    result = run("update", tmp_path / "fit.csv", "--model-dir", tmp_path / "nothing")
    assert result.exit_code == 2 and "not a trellis-ts model directory" in result.stderr


def test_predict_without_data_still_refuses_outputs_into_the_model_dir(tmp_path):
    whole = write_wide(tmp_path / "all.csv")
    model_dir = tmp_path / "model"
    ok("fit", whole, "--model-dir", model_dir, *TINY)
    before = files(model_dir)
    result = run("predict", "--model-dir", model_dir, "-o", model_dir / "fc.csv")
    assert result.exit_code == 2 and "model" in result.stderr
    assert files(model_dir) == before


def test_a_streaming_model_updates_its_state_on_the_command_line(tmp_path):
    whole = write_wide(tmp_path / "all.csv")
    df = pd.read_csv(whole)
    df.iloc[:120].to_csv(tmp_path / "fit.csv", index=False)
    df.iloc[120:133].to_csv(tmp_path / "a.csv", index=False)  # ends inside a patch
    df.iloc[133:].to_csv(tmp_path / "b.csv", index=False)
    model_dir = tmp_path / "model"
    streaming = [a for a in TINY if a not in ("--patch-stride", "4", "--model", "encoder")]
    ok("fit", tmp_path / "fit.csv", "--model-dir", model_dir, "--streaming", *streaming)
    assert json.loads((model_dir / "model.json").read_text())["stream"] is not None
    fresh = ok("predict", whole, "--model-dir", model_dir, "-q").stdout
    ok("update", tmp_path / "a.csv", "--model-dir", model_dir)
    ok("update", tmp_path / "b.csv", "--model-dir", model_dir)
    out = tmp_path / "fc.csv"
    ok("predict", "--model-dir", model_dir, "-q", "-o", out)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(io.StringIO(fresh)), rtol=1e-5)
