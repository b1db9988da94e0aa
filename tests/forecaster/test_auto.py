"""model="auto": candidates scored on validation windows, a weighted forecast, its summary,
intervals and save/load; the statistical candidates' budget on long series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trellis_ts import TrellisForecaster
from trellis_ts.forecaster import statistical
from trellis_ts.forecaster.auto import LABELS, plan
from trellis_ts.forecaster.config import TrellisConfig

SMALL = dict(
    d_model=16, n_heads=2, n_layers=1, n_slots=8, chunk_size=4, max_epochs=1, verbose=False
)


def monthly(n: int = 120, noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """A seasonal monthly series: the same year over and over, plus a little noise."""
    rng = np.random.default_rng(seed)
    year = np.array([3, 4, 6, 8, 9, 10, 9, 8, 6, 5, 4, 3], dtype=float)
    y = 10 + year[np.arange(n) % 12] + noise * rng.standard_normal(n)
    return pd.DataFrame({"month": pd.date_range("2010-01-01", periods=n, freq="MS"), "sales": y})


@pytest.fixture(scope="module")
def fitted() -> TrellisForecaster:
    return TrellisForecaster(model="auto", **SMALL).fit(monthly())


def test_auto_forecasts_with_the_statistical_models_where_they_are_best(fitted):
    choice = fitted.auto_.choice
    assert set(choice.scores) == {"seasonal_naive", "ets", "theta", "dlinear", "encoder"}
    # One epoch of a network cannot repeat a clean season; the statistical models can.
    assert set(choice.weights) <= {"seasonal_naive", "ets", "theta"}
    assert choice.best in {"seasonal_naive", "ets", "theta"}
    assert sum(choice.weights.values()) == pytest.approx(1.0)
    assert choice.ensemble_score <= min(choice.scores.values()) + 1e-12
    assert not fitted.auto_.networks  # networks without weight are not kept


def test_summary_names_the_choice_and_every_candidates_validation_score(fitted):
    auto = fitted.summary_.extra["auto"]
    assert auto["chosen"].startswith("auto chose ")
    for name, score in auto["scores"].items():
        assert f"{LABELS[name]} {score:.3g}" in auto["chosen"]
    assert auto["windows"] > 0 and auto["holdout"] >= fitted.config_.prediction_length


def test_forecast_intervals_and_save_load_round_trip(fitted, tmp_path):
    before = fitted.predict(level=[80])
    assert list(before.columns) == ["month", "sales", "sales_lo80", "sales_hi80"]
    assert (before["sales_lo80"] <= before["sales"]).all()
    assert (before["sales"] <= before["sales_hi80"]).all()
    fitted.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")
    assert loaded.config_.model == "auto"
    pd.testing.assert_frame_equal(loaded.predict(level=[80]), before)
    assert loaded.summary_.extra["auto"]["chosen"] == fitted.summary_.extra["auto"]["chosen"]


def test_a_saved_auto_model_keeps_its_networks(tmp_path, monkeypatch):
    # Weights forced onto a network: its safetensors file comes back with the model.
    from trellis_ts.forecaster import auto

    monkeypatch.setattr(
        auto, "greedy_ensemble", lambda *a, **k: {"seasonal_naive": 0.5, "dlinear": 0.5}
    )
    f = TrellisForecaster(model="auto", **SMALL).fit(monthly(noise=2.0))
    f.save(tmp_path / "m")
    assert (tmp_path / "m" / "candidates" / "dlinear" / "weights.safetensors").is_file()
    loaded = TrellisForecaster.load(tmp_path / "m")
    assert list(loaded.auto_.networks) == ["dlinear"]
    pd.testing.assert_frame_equal(loaded.predict(), f.predict())
    scored = loaded.evaluate(monthly(noise=2.0), n_windows=2)
    assert scored["n_windows"] == 2 and np.isfinite(scored["mase"])


def test_ets_and_theta_are_models_of_their_own():
    f = TrellisForecaster(model="theta", **SMALL).fit(monthly())
    assert f.auto_.choice.weights == {"theta": 1.0}
    assert len(f.predict()) == f.config_.prediction_length


def test_long_series_cap_the_statistical_models_and_say_so():
    config = TrellisConfig(model="auto", prediction_length=24, context_length=96)
    long = pd.DataFrame(
        {
            "t": pd.date_range("2020-01-01", periods=2500, freq="h"),
            "y": np.sin(np.arange(2500) / 3.8),
        }
    )
    from trellis_ts.data import to_panel

    names, holdout, _, notes = plan(config, to_panel(long))
    assert "attention" in names and holdout == 72
    assert any("last 2,000 steps" in n for n in notes)


def test_statistical_candidates_over_budget_are_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(statistical, "STATS_BUDGET_SECONDS", 0.0)
    frame = pd.concat([monthly(seed=s).assign(id=str(s)) for s in range(3)])
    f = TrellisForecaster(model="auto", **SMALL).fit(
        frame, id_col="id", time_col="month", target="sales"
    )
    notes = f.auto_.choice.notes
    assert any(n.startswith("AutoETS skipped") for n in notes)
    assert "ets" not in f.auto_.choice.scores and "seasonal_naive" in f.auto_.choice.scores
    assert "AutoETS skipped" in f.summary_.extra["auto"]["chosen"]


def test_warm_start_of_an_auto_model_is_refused(fitted):
    from trellis_ts.errors import ConfigError

    with pytest.raises(ConfigError, match="warm_start"):
        fitted.fit(monthly(), warm_start=True)


def test_evaluate_shows_the_baselines_beside_the_model(fitted, tmp_path):
    import json

    from typer.testing import CliRunner

    from trellis_ts.cli import commands

    fitted.save(tmp_path / "m")
    data = tmp_path / "data.csv"
    monthly(150).to_csv(data, index=False)
    args = [
        "evaluate",
        str(data),
        "--model-dir",
        str(tmp_path / "m"),
        "--n-windows",
        "2",
        "--baselines",
        "--json",
        "-q",
    ]
    result = CliRunner().invoke(commands.app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(record["baselines"]) == {"seasonal_naive", "ets", "theta"}
    assert all(np.isfinite(v) for v in record["baselines"].values())


def test_covariates_reach_the_networks_and_the_statistical_models_say_they_ignore_them():
    df = monthly(noise=0.5)
    df["promo"] = (np.arange(len(df)) % 5 == 0).astype(float)
    df["sales"] += 3 * df["promo"]
    f = TrellisForecaster(model="auto", **SMALL).fit(df, future_covariates=["promo"])
    assert "the statistical candidates ignore the covariates" in f.auto_.choice.notes
    future = f.make_future_frame()
    future["promo"] = 1.0
    forecast = f.predict(future=future, level=[50])
    assert len(forecast) == f.config_.prediction_length
    assert np.isfinite(forecast[["sales", "sales_lo50", "sales_hi50"]].to_numpy()).all()


def test_forecasts_of_a_series_never_negative_stay_at_or_above_zero():
    # A count falling to zero: AutoTheta's trend goes below it, the forecast is floored at 0.
    y = np.maximum(0.0, np.linspace(60, 0, 96) + np.tile([0.0, 2.0, 0.0, 1.0], 24))
    df = pd.DataFrame({"t": pd.date_range("2015-01-01", periods=96, freq="MS"), "n": y})
    f = TrellisForecaster(model="theta", **SMALL).fit(df)
    forecast = f.predict(level=[50])
    assert (forecast[["n", "n_lo50", "n_hi50"]].to_numpy() >= 0).all()
