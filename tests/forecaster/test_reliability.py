"""Model files that cannot be trusted, training that diverges or dies, and random frames."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, TINY
from trellis_ts import TrellisForecaster
from trellis_ts.errors import ModelFileError, TrainingError, TrellisUserError
from trellis_ts.forecaster.persistence import CONFIG_FILE, WEIGHTS_FILE


def frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({
        "date": pd.date_range("2024-01-01", periods=n, freq="h"),
        "a": np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
        "b": np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n),
    })  # fmt: skip


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
