"""Output files of the command line never destroy anything (trellis_ts.cli.outputs)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pandas as pd
import pytest

from tests.cli.test_commands import TINY, ok, run, write_wide
from trellis_ts.cli.outputs import _direct, check_outputs, staged_outputs
from trellis_ts.errors import ConfigError


def test_writing_through_a_symlink_writes_its_target(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    ok("forecast", data, *TINY, "-o", link)  # before: the link was replaced by a file
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert pd.read_csv(target).columns[0] == "date"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "link.csv", "real.csv"]


def test_a_fifo_is_written_directly_and_stays_a_fifo(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    ok("forecast", data, *TINY, "-o", fifo)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received and received[0].startswith("date,load_1")


def test_character_devices_are_written_in_place():
    # /dev/null is checked, never written, here: as root, a wrong answer would replace it.
    assert _direct(Path("/dev/null"))
    check_outputs(output=Path("/dev/null"))  # accepted


def test_output_that_is_the_input_is_refused_unless_force(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    before = data.read_bytes()
    result = run("forecast", data, *TINY, "-o", tmp_path / "." / "data.csv")
    assert (
        result.exit_code == 2
        and "is the input file" in result.stderr
        and "--force" in result.stderr
    )
    assert data.read_bytes() == before  # before: the data was replaced by the forecast
    link = tmp_path / "alias.csv"
    link.symlink_to(data)
    assert run("forecast", data, *TINY, "-o", link).exit_code == 2  # the same file by another name
    ok("forecast", data, *TINY, "-o", data, "--force")
    assert len(pd.read_csv(data)) == 6


def test_a_directory_or_two_outputs_on_one_file_are_refused(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    result = run("forecast", data, *TINY, "-o", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.stderr
    out = tmp_path / "same.png"
    result = run("forecast", data, *TINY, "-o", out, "--plot", out)
    assert result.exit_code == 2 and "name the same file" in result.stderr


def test_staging_beside_a_symlinked_file_leaves_nothing_on_failure(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.csv"
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    with pytest.raises(ValueError), staged_outputs() as stage:
        stage(link, lambda p: p.write_text("half"))
        raise ValueError("fails after the write")
    assert not target.exists() and list((tmp_path / "real").iterdir()) == []
    with pytest.raises(ConfigError, match="does not exist"):
        check_outputs(output=tmp_path / "nowhere" / "x.csv")


def test_saving_a_model_through_a_symlink_keeps_the_link(tmp_path):
    from tests.conftest import TINY as TINY_PARAMS
    from trellis_ts import TrellisForecaster

    real = tmp_path / "models" / "v1"
    real.parent.mkdir()
    link = tmp_path / "current"
    link.symlink_to(real, target_is_directory=True)
    f = TrellisForecaster(**TINY_PARAMS).fit(pd.read_csv(write_wide(tmp_path / "d.csv")))
    f.save(link)
    f.save(link)  # replacing the model behind the link
    assert link.is_symlink() and (real / "model.json").is_file()
    pd.testing.assert_frame_equal(TrellisForecaster.load(link).predict(), f.predict())


# ------------------------------------------------------------------ issue 32: planted links, model files


def test_a_link_planted_at_the_staging_name_is_never_followed(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    # The old staging name was predictable: .{name}.{pid}.tmp{suffix}, opened without O_EXCL.
    (shared / f".fc.csv.{os.getpid()}.tmp.csv").symlink_to(victim)
    ok("forecast", data, *TINY, "-o", shared / "fc.csv")
    assert victim.read_text() == "precious\n"  # before: overwritten by the forecast
    assert not (shared / "fc.csv").is_symlink()  # before: a link to the victim
    assert pd.read_csv(shared / "fc.csv").columns[0] == "date"
    assert stat.S_IMODE((shared / "fc.csv").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_outputs_never_replace_a_file_of_the_model_directory(tmp_path):
    data = write_wide(tmp_path / "data.csv")
    model = tmp_path / "m5"
    ok("fit", data, "--model-dir", model, *TINY)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    alias = tmp_path / "alias.json"
    os.link(model / "model.json", alias)  # a hard link is the same file too
    for args in (
        ["predict", data, "--model-dir", model, "-o", model / "model.json"],
        ["predict", data, "--model-dir", model, "-o", alias, "--force"],
        ["predict", data, "--model-dir", model, "--plot", model / "p.png"],
        ["evaluate", data, "--model-dir", model, "--forecasts", model / "weights.safetensors"],
        ["future-frame", data, "--model-dir", model, "-o", model / "f.csv"],
        ["forecast", data, *TINY, "--model-dir", model, "-o", model / "model.json"],
    ):
        result = run(*args)
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert "\n" not in line and "inside the model directory" in line and "outside it" in line
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    future = tmp_path / "future.csv"
    future.write_text("date\n")
    result = run("predict", data, "--model-dir", model, "--future", future, "-o", future)
    assert result.exit_code == 2 and "is the input file" in result.stderr


def test_a_full_disk_is_one_line_and_leaves_no_output(tmp_path, monkeypatch):
    import errno

    import trellis_ts.forecaster.persistence as persistence

    data = write_wide(tmp_path / "data.csv")
    out, model = tmp_path / "fc.csv", tmp_path / "m"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:  # the model cannot be saved: -o must not be left
        patch.setattr(persistence, "save_file", full_disk)
        result = run("forecast", data, *TINY, "-o", out, "--model-dir", model)
    assert result.exit_code == 2, result.output  # before: a traceback, exit 1, -o written
    line = result.stderr.strip()
    assert "\n" not in line and "cannot save the model to" in line and "No space left" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    ok("fit", data, *TINY, "--model-dir", model)
    real_to_csv = pd.DataFrame.to_csv

    def to_csv_fills_the_disk(self, path=None, *args, **kwargs):
        real_to_csv(self.head(1), path, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv_fills_the_disk)
    result = run("predict", data, "--model-dir", model, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: cannot write {out} (No space left on device); free some space or check the "
        "folder's permissions, then run the command again (nothing was written)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "m"]
