"""Warm starts: `fit(df, warm_start=True)` and `trellis-ts fit --warm-start`, and atomic saves."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY as BASE_TINY
from trellis_ts import TrellisForecaster, cli
from trellis_ts.data import make_demo_frame
from trellis_ts.errors import ConfigError, DataError

TINY = {**BASE_TINY, "context_length": 24, "prediction_length": 6, "learning_rate": 5e-3}
DATA = make_demo_frame(n_steps=900, n_channels=2, seed=4)


def test_warm_start_continues_from_the_fitted_weights():
    first, everything = DATA.iloc[:500], DATA
    trained = TrellisForecaster(**{**TINY, "max_epochs": 6}).fit(first)
    scaling = trained.scaling_
    trained.set_params(max_epochs=1)
    trained.fit(everything, warm_start=True)
    scratch = TrellisForecaster(**{**TINY, "max_epochs": 1}).fit(everything)
    # one more epoch after six beats one epoch from scratch on the same validation windows
    assert trained.summary_.best_val_loss < 0.8 * scratch.summary_.best_val_loss
    assert trained.summary_.epochs == 1 and trained.summary_.extra["warm_start"] is True
    assert trained.scaling_ == scaling  # the fitted scaling is kept
    fc = trained.predict()  # from the end of the new data
    assert fc["date"].iloc[0] == everything["date"].iloc[-1] + pd.Timedelta("1h")
    assert trained.calibration_.counts[0] > 0


def test_a_tiny_learning_rate_leaves_the_model_as_it_was():
    model = TrellisForecaster(**{**TINY, "max_epochs": 2}).fit(DATA.iloc[:500])
    before = model.predict(DATA)
    model.set_params(learning_rate=1e-12, max_epochs=1, dropout=0.0)
    model.fit(DATA, warm_start=True)
    pd.testing.assert_frame_equal(model.predict(DATA), before, rtol=1e-4)


def test_rescale_recomputes_the_scaling(monkeypatch):
    from trellis_ts.forecaster.inputs import InputScaling

    model = TrellisForecaster(**TINY).fit(DATA.iloc[:300])
    fitted, fits = model.scaling_, []
    fit = InputScaling.fit
    monkeypatch.setattr(InputScaling, "fit", lambda *a, **k: fits.append(1) or fit(*a, **k))
    model.fit(DATA, warm_start=True)
    assert fits == [] and model.scaling_ == fitted  # kept, so not fitted only to be dropped
    model.fit(DATA, warm_start=True, rescale=True)
    assert fits == [1] and model.scaling_.categories == fitted.categories
    np.testing.assert_allclose(
        model.scaling_.target.mean, DATA[["load_1", "load_2"]].mean(), rtol=1e-12
    )


def test_warm_start_needs_a_fitted_model_and_the_same_model_and_series():
    with pytest.raises(ConfigError, match="not fitted; call fit"):
        TrellisForecaster(**TINY).fit(DATA, warm_start=True)
    model = TrellisForecaster(**TINY).fit(DATA.iloc[:300])
    with pytest.raises(ConfigError, match=r"d_model=16 -> 32 would change it"):
        model.set_params(d_model=32)
        model.fit(DATA, warm_start=True)
    model.set_params(d_model=16)
    with pytest.raises(DataError, match=r"lacks the fitted column\(s\) \['load_2'\]"):
        model.fit(DATA[["date", "load_1"]], warm_start=True)
    with pytest.raises(DataError, match=r"has column\(s\) \['extra'\] the model was not fitted on"):
        model.fit(DATA.assign(extra=1.0), warm_start=True)
    long = DATA.melt(id_vars="date", var_name="unique_id", value_name="y")
    with pytest.raises(DataError, match="long one"):
        model.fit(long.rename(columns={"date": "ds"}), warm_start=True)
    fitted_long = TrellisForecaster(**TINY).fit(long.rename(columns={"date": "ds"}))
    renamed = long.rename(columns={"date": "ds"}).replace({"unique_id": {"load_2": "new"}})
    with pytest.raises(
        DataError, match=r"lacks the fitted id\(s\) \['load_2'\] and has id\(s\) \['new'\]"
    ):
        fitted_long.fit(renamed, warm_start=True)
    # a failed warm start leaves the fitted model as it was
    assert fitted_long.predict().shape == (12, 3)


def test_validation_part_inside_the_trained_data_warns():
    model = TrellisForecaster(**TINY).fit(DATA.iloc[:600])
    with pytest.warns(UserWarning, match="inside the data the model was trained on"):
        model.fit(DATA.iloc[:400], warm_start=True)


# ------------------------------------------------------------------ command line

runner = CliRunner()
CLI_TINY = [
    "--context-length",
    "24",
    "--prediction-length",
    "6",
    "--patch-len",
    "8",
    "--patch-stride",
    "4",
    "--d-model",
    "16",
    "--n-layers",
    "1",
    "--n-slots",
    "8",
    "--max-epochs",
    "1",
    "--model",
    "encoder",
    "--quiet",
]


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_cli_warm_start_updates_the_model_in_place(tmp_path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    DATA.iloc[:500].to_csv(old, index=False)
    DATA.to_csv(new, index=False)
    model_dir = tmp_path / "model"
    result = runner.invoke(cli.app, ["fit", str(old), "--model-dir", str(model_dir), *CLI_TINY])
    assert result.exit_code == 0, result.output
    before = digest(model_dir)

    def run(*args):
        return runner.invoke(cli.app, [str(a) for a in args])

    # mistakes: one line, exit 2, the model untouched
    for args, message in [
        ((new, "--warm-start", "--d-model", "32"), "--d-model 16 -> 32 would change it"),
        ((tmp_path / "missing.csv", "--warm-start"), "does not exist"),
        ((new, "--rescale"), "--rescale only applies with --warm-start"),
        ((new, "--warm-start", "--target", "load_1"), "lacks the fitted column(s) ['load_2']"),
    ]:
        result = run("fit", args[0], "--model-dir", model_dir, *args[1:], "-q")
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert digest(model_dir) == before
    result = run("fit", new, "--model-dir", tmp_path / "none", "--warm-start", "-q")
    assert result.exit_code == 2 and "holds none; fit it first" in result.stderr

    result = run(
        "fit", new, "--model-dir", model_dir, "--warm-start", "--max-epochs", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epochs"] == 2
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["summary"]["warm_start"] is True and meta["config"]["max_epochs"] == 2
    assert meta["config"]["d_model"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "new.csv", "old.csv"]
    fc = pd.read_csv(io.StringIO(run("predict", "--model-dir", model_dir, "-q").stdout))
    assert pd.Timestamp(fc["date"].iloc[0]) == DATA["date"].iloc[-1] + pd.Timedelta("1h")


def test_concurrent_saves_to_one_directory_leave_one_whole_model(tmp_path):
    models = [TrellisForecaster(**TINY, random_state=s).fit(DATA.iloc[:300]) for s in (0, 1)]
    target = tmp_path / "model"
    errors = []

    def save(model):
        try:
            for _ in range(5):
                model.save(target)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(m,)) for m in models for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = TrellisForecaster.load(target)
    assert any(loaded.predict().equals(m.predict()) for m in models)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
