"""Model files that cannot be trusted, training that diverges or dies, and random frames."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import time

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, TINY
from trellis_ts import TrellisForecaster
from trellis_ts.errors import ModelFileError, OutputError, TrainingError, TrellisUserError
from trellis_ts.forecaster.persistence import CONFIG_FILE, WEIGHTS_FILE


def frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "a": np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
            "b": np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n),
        }
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "good"
    TrellisForecaster(**TINY).fit(frame()).save(path)
    return path


def copy_model(src, dst):
    dst.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


class _Payload:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_without_running(saved_model, tmp_path):
    model = copy_model(saved_model, tmp_path / "evil")
    marker = tmp_path / "pwned"
    (model / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        TrellisForecaster.load(model)
    assert not marker.exists()


def test_model_file_errors(saved_model, tmp_path):
    with pytest.raises(ModelFileError, match="not a trellis-ts model directory"):
        TrellisForecaster.load(tmp_path / "nowhere")
    newer = copy_model(saved_model, tmp_path / "newer")
    meta = json.loads((newer / CONFIG_FILE).read_text())
    meta["format_version"] = 99
    (newer / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="upgrade trellis-ts"):
        TrellisForecaster.load(newer)
    truncated = copy_model(saved_model, tmp_path / "truncated")
    data = (truncated / WEIGHTS_FILE).read_bytes()
    (truncated / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        TrellisForecaster.load(truncated)
    garbled = copy_model(saved_model, tmp_path / "garbled")
    (garbled / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupted"):
        TrellisForecaster.load(garbled)
    mismatch = copy_model(saved_model, tmp_path / "mismatch")
    meta = json.loads((mismatch / CONFIG_FILE).read_text())
    meta["config"]["d_model"] = 32
    (mismatch / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="does not match its configuration"):
        TrellisForecaster.load(mismatch)


def test_save_is_atomic_and_refuses_to_overwrite_other_directories(saved_model, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"...")
    model = TrellisForecaster.load(saved_model)
    with pytest.raises(ModelFileError, match="not a trellis-ts model directory"):
        model.save(other)
    assert os.listdir(other) == ["cat.jpg"]
    model.save(tmp_path / "again")
    model.save(tmp_path / "again")  # replacing a model directory is fine
    assert sorted(os.listdir(tmp_path / "again")) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no staging left behind


class _PoisonWeights(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


def test_nan_loss_stops_with_a_hint():
    with pytest.raises(TrainingError, match="lower learning_rate"):
        TrellisForecaster(**TINY).fit(frame(), callbacks=[_PoisonWeights()])


def test_killed_fit_resumes_from_its_last_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import os, signal, sys
        import lightning.pytorch as pl
        sys.path.insert(0, {str(REPO)!r})
        from tests.conftest import TINY
        from tests.forecaster.test_reliability import frame
        from trellis_ts import TrellisForecaster

        class Crash(pl.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                if trainer.current_epoch == 1:  # after the second epoch's checkpoint
                    os.kill(os.getpid(), signal.SIGKILL)

        params = {{**TINY, "max_epochs": 4, "early_stopping_patience": 10}}
        TrellisForecaster(**params).fit(frame(), checkpoint_dir={str(ckpt)!r}, callbacks=[Crash()])
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (ckpt / "last.ckpt").is_file()
    params = {**TINY, "max_epochs": 4, "early_stopping_patience": 10}
    f = TrellisForecaster(**params).fit(frame(), checkpoint_dir=ckpt, resume=True)
    assert f.summary_.extra["resumed_from"].endswith("last.ckpt")
    assert f.summary_.epochs == 4
    assert np.isfinite(f.predict()[["a", "b"]].to_numpy()).all()


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 90),
    channels=st.integers(1, 3),
    data=st.data(),
    scale=st.sampled_from([1e-9, 1.0, 1e12]),
)
def test_random_finite_frames_forecast_finite_or_raise_user_errors(n, channels, data, scale):
    values = np.array(data.draw(st.lists(finite, min_size=n * channels, max_size=n * channels)))
    df = pd.DataFrame(
        values.reshape(n, channels) * scale, columns=[f"c{i}" for i in range(channels)]
    )
    df.insert(0, "date", pd.date_range("2024-01-01", periods=n, freq="D"))
    params = {**TINY, "context_length": 24, "prediction_length": 6}
    try:
        fc = TrellisForecaster(**params).fit(df).predict()
    except TrellisUserError:
        return
    assert np.isfinite(fc.drop(columns="date").to_numpy()).all()
    assert len(fc) == 6


# ------------------------------------------------------------------ issue 32: loading and saving


def test_a_load_always_sees_one_whole_model_while_another_process_saves(saved_model, tmp_path):
    """A writer process swaps two different models (sizes and values) into one path for about
    two seconds while this process loads it in a loop: every load is one of the two, whole."""
    from trellis_ts.forecaster.persistence import load_state

    other = tmp_path / "other"
    TrellisForecaster(**{**TINY, "d_model": 8}).fit(frame(seed=1)).save(other)
    first = {}
    for label, src in (("A", saved_model), ("B", other)):
        copy = copy_model(src, tmp_path / label)
        meta = json.loads((copy / CONFIG_FILE).read_text())
        meta["data_summary"] = label  # in the JSON; the history values are in the weights
        (copy / CONFIG_FILE).write_text(json.dumps(meta))
        first[label] = float(load_state(copy).history.values[0][0])
    assert first["A"] != first["B"]
    target = tmp_path / "shared"
    copy_model(tmp_path / "A", target)
    # A forked writer: a second process without a second start-up of torch.
    ready, done = multiprocessing.get_context("fork").Queue(), None
    writer = multiprocessing.get_context("fork").Process(
        target=_swap_models, args=(tmp_path / "A", tmp_path / "B", target, ready)
    )
    writer.start()
    assert ready.get(timeout=60) == "ready"
    loads, seen, deadline = 0, set(), time.monotonic() + 60
    while writer.is_alive() and time.monotonic() < deadline:
        state = load_state(target)  # before: 'does not match', a RuntimeError, or a silent mix
        label = state.data_summary
        assert float(state.history.values[0][0]) == first[label]
        assert state.config.d_model == (16 if label == "A" else 8)
        loads, seen = loads + 1, seen | {label}
    done = ready.get(timeout=60)
    writer.join(timeout=60)
    assert writer.exitcode == 0 and done > 10 and loads > 10 and seen == {"A", "B"}, (done, loads)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _swap_models(a, b, target, queue, seconds=2.0):
    """The writer of the test above: save A and B alternately to `target` for `seconds`."""
    from trellis_ts.forecaster.persistence import load_state, save_state

    states = [load_state(a), load_state(b)]
    queue.put("ready")
    saves, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        save_state(states[saves % 2], target)
        saves += 1
    queue.put(saves)


@pytest.mark.parametrize(
    ("field", "value"), [("d_model", 8192), ("n_layers", 100_000), ("n_layers", 10**9)]
)
def test_an_edited_size_in_model_json_is_refused_before_allocating(
    saved_model, tmp_path, field, value
):
    edited = copy_model(saved_model, tmp_path / "edited")
    meta = json.loads((edited / CONFIG_FILE).read_text())
    meta["config"][field] = value
    if field == "d_model":
        meta["config"]["n_heads"] = 2
    (edited / CONFIG_FILE).write_text(json.dumps(meta))
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match="does not match its configuration") as info:
        TrellisForecaster.load(edited)  # before: 6-7.5 GB and 33 s, or "can't allocate"
    assert time.perf_counter() - started < 2.0
    assert "re-save the model" in str(info.value)


def test_bad_values_in_model_json_are_one_line_errors(saved_model, tmp_path):
    from tests.cli.test_commands import run

    cases = {
        "quantiles": lambda m: m["config"].__setitem__("quantiles", "0.5"),
        "nested": lambda m: None,  # written below
        "history": lambda m: m["history"].pop("layout"),
    }
    data = tmp_path / "d.csv"
    frame().to_csv(data, index=False)
    for name, edit in cases.items():
        model = copy_model(saved_model, tmp_path / name)
        meta = json.loads((model / CONFIG_FILE).read_text())
        edit(meta)
        text = json.dumps(meta)
        if name == "nested":  # too deep for json.loads: a RecursionError before
            text = text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
        (model / CONFIG_FILE).write_text(text)
        with pytest.raises(ModelFileError, match="re-save the model") as info:
            TrellisForecaster.load(model)
        if name == "quantiles":
            assert "quantiles='0.5' is not a list of numbers" in str(info.value)
        result = run("predict", data, "--model-dir", model)
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith("error: ") and "--" not in line, line


def test_a_save_keeps_permissions_sweeps_killed_saves_and_fails_in_one_line(
    saved_model, tmp_path, monkeypatch
):
    import errno
    import stat

    import trellis_ts.forecaster.persistence as persistence

    model = TrellisForecaster.load(saved_model)
    target = tmp_path / "m"
    model.save(target)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask  # before: 0o700
    assert stat.S_IMODE((target / CONFIG_FILE).stat().st_mode) == 0o666 & ~mask
    target.chmod(0o750)
    (target / WEIGHTS_FILE).chmod(0o640)
    # A save killed midway leaves its staging folder, named after a process that is gone.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f".m.trellis-save-{dead}-abc123"
    copy_model(saved_model, stale)
    foreign = tmp_path / ".m.notes"
    foreign.mkdir()
    model.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750  # before: reset to 0o700
    assert stat.S_IMODE((target / WEIGHTS_FILE).stat().st_mode) == 0o640
    assert not stale.exists() and foreign.is_dir()  # only the toolkit's own, dead, staging

    def full_disk(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(persistence, "save_file", full_disk)
    before = (target / WEIGHTS_FILE).read_bytes()
    with pytest.raises(OutputError, match="No space left on device"):
        model.save(target)
    assert (target / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.notes", "m"]
