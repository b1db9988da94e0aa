"""Covariates in the data layer: roles, reading beside the targets, static values, windows,
calendar features, the scaler and the future frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trellis_ts.data import (
    ColumnRoles,
    Scaler,
    SeriesSet,
    WindowDataset,
    calendar_features_for,
    calendar_values,
    to_panel,
)
from trellis_ts.data.features.future import future_frame, read_future
from trellis_ts.data.features.scaling import location_scale
from trellis_ts.data.windows import final_windows
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.inputs import InputScaling


def wide(n=10):
    t = np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "a": t,
            "b": 10 + t,
            "p": 100 + t,
            "f": 200 + t,
        }
    )


def long():
    rows = []
    for i, (sid, n) in enumerate([("x", 5), ("y", 3)]):
        for k in range(n):
            rows.append(
                {
                    "id": sid,
                    "ds": pd.Timestamp("2024-01-01") + pd.Timedelta(days=k),
                    "v": 10.0 * i + k,
                    "p": 100.0 * i + k,
                    "f": -k,
                    "region": f"r{i}",
                    "size": float(i),
                }
            )
    return pd.DataFrame(rows)


def test_roles_normalise_names_and_refuse_a_column_twice():
    roles = ColumnRoles.of(past="p", future=["f", "g"], static=None)
    assert (roles.past, roles.future, roles.static) == (("p",), ("f", "g"), ())
    assert roles.dynamic == ("p", "f", "g") and roles.role_of("g") == "future"
    with pytest.raises(DataError, match="lists column 'p' twice"):
        ColumnRoles.of(past=["p", "p"])
    with pytest.raises(DataError, match="both a past and a static covariate"):
        ColumnRoles.of(past=["p"], static=["p"])


def test_wide_covariates_are_one_group_shared_by_the_targets():
    panel = to_panel(wide(), past_covariates=["p"], future_covariates=["f"])
    assert panel.names == ("a", "b")  # covariates are not default targets
    cov = panel.covariates
    assert len(cov.past) == 1 and list(cov.group) == [0, 0]
    np.testing.assert_array_equal(cov.past[0][:, 0], 100 + np.arange(10.0))
    np.testing.assert_array_equal(cov.future[0][:, 0], 200 + np.arange(10.0))
    assert panel.layout.past_covariates == ("p",) and panel.layout.future_covariates == ("f",)


def test_covariate_rows_follow_sorting_gaps_and_the_missing_policy():
    df = wide().iloc[::-1].drop(index=4).reset_index(drop=True)  # reversed, one hour missing
    df.loc[2, "p"] = np.nan  # hour 7
    with pytest.warns(UserWarning, match="sorted"):
        panel = to_panel(df, past_covariates=["p"], fill_gaps=True, missing="interpolate")
    np.testing.assert_allclose(panel.covariates.past[0][:, 0], 100 + np.arange(10.0))
    with pytest.raises(DataError, match="past covariate 'p' has 1 missing"):
        to_panel(wide().assign(p=lambda d: d["p"].where(d.index != 3)), past_covariates=["p"])


def test_long_covariates_are_per_series_with_static_values():
    df = long().sample(frac=1.0, random_state=0)  # any row order
    with pytest.warns(UserWarning, match="sorted"):
        panel = to_panel(
            df,
            id_col="id",
            time_col="ds",
            target="v",
            past_covariates=["p"],
            future_covariates="f",
            static_covariates=["region", "size"],
        )
    cov = panel.covariates
    assert list(cov.group) == [0, 1] and len(cov.past) == 2  # one group per series
    by_name = dict(zip(panel.names, range(2), strict=True))
    np.testing.assert_array_equal(cov.past[by_name["x"]][:, 0], np.arange(5.0))
    np.testing.assert_array_equal(cov.future[by_name["y"]][:, 0], -np.arange(3.0))
    assert cov.static.loc[by_name["y"], "region"] == "r1" and cov.static["size"].dtype == float


def test_static_values_must_be_constant_and_present():
    df = long()
    df.loc[6, "region"] = "r9"
    with pytest.raises(DataError, match="varies within series 'y' \\('r1' and 'r9'\\)"):
        to_panel(df, id_col="id", time_col="ds", target="v", static_covariates=["region"])
    df = long()
    df.loc[2, "size"] = np.nan
    with pytest.raises(DataError, match="static covariate 'size' is empty in series 'x'"):
        to_panel(df, id_col="id", time_col="ds", target="v", static_covariates=["size"])
    with pytest.raises(DataError, match="varies within the frame"):
        to_panel(wide(), static_covariates=["p"])


def test_windows_carry_the_covariates_of_their_positions():
    series = SeriesSet(
        target=[np.arange(20.0), np.arange(20.0) + 100],
        past_feat_dynamic_real=[np.arange(20.0)[:, None] + 1000],
        feat_dynamic_real=[np.stack([np.arange(20.0) + 2000, -np.arange(20.0)], axis=1)],
        feat_static_real=np.array([[1.0], [2.0]]),
        feat_static_cat=np.array([[1], [2]]),
        group=np.array([0, 0]),
    )
    data = WindowDataset(series, 5, 3)
    assert data.dynamic.untyped_storage().nbytes() == 4 * 20 * 3  # one copy for both series
    for i in (0, len(data) - 1):
        s, start = data.locate(i)
        item = data[i]
        np.testing.assert_array_equal(
            item["past_feat_dynamic_real"][:, 0], 1000 + np.arange(start - 5, start)
        )
        np.testing.assert_array_equal(
            item["feat_dynamic_real"][:, 0], 2000 + np.arange(start - 5, start + 3)
        )
        assert item["feat_static_cat"].tolist() == [s + 1]
    batch = data.gather(np.arange(len(data)))
    for i in (0, 7, len(data) - 1):
        for name, value in data[i].items():
            torch.testing.assert_close(batch[name][i], value)


def test_final_windows_take_the_horizon_of_the_known_covariates():
    series = SeriesSet(
        target=[np.arange(10.0)],
        past_feat_dynamic_real=[np.ones((10, 1))],
        feat_dynamic_real=[np.arange(13.0)[:, None]],
    )
    inputs = final_windows(series, 4, 3)
    assert inputs["past_target"].tolist() == [[6, 7, 8, 9]]
    assert inputs["feat_dynamic_real"][0, :, 0].tolist() == list(range(6, 13))
    with pytest.raises(ValueError, match="past the targets"):
        final_windows(series, 4, 2)


def test_calendar_features_by_frequency_and_their_range():
    assert calendar_features_for("auto", "h") == ("hour", "dayofweek", "dayofmonth", "dayofyear")
    assert calendar_features_for("auto", "15min")[0] == "minute"
    assert calendar_features_for("auto", "D") == ("dayofweek", "dayofmonth", "dayofyear")
    assert calendar_features_for("auto", "MS") == ("month",)
    assert calendar_features_for("auto", 1) == () and calendar_features_for((), "h") == ()
    with pytest.raises(ConfigError, match="need timestamps"):
        calendar_features_for(("hour",), 1)
    times = pd.date_range("2024-01-01", periods=24 * 400, freq="h")
    values = calendar_values(times, ["hour", "dayofweek", "dayofyear", "weekofyear", "month"])
    assert values.min() >= -0.5 and values.max() <= 0.5
    assert values[0, 0] == -0.5 and values[23, 0] == 0.5  # hour 0 and hour 23


def test_one_scaling_rule():
    assert location_scale(np.array([1.0, 3.0])) == (2.0, 1.0)
    assert location_scale(np.full(1000, 0.1)) == pytest.approx((0.1, 0.1))  # rounding noise
    assert location_scale(np.full(5, 1e12))[1] == 1e12 and location_scale(np.zeros(3)) == (0.0, 1.0)
    scaler = Scaler.fit_rows(["u", "v"], np.array([[0.0, 10.0], [2.0, 30.0]]))
    np.testing.assert_allclose(scaler.transform([[1.0, 20.0]]), [[0.0, 0.0]])
    assert Scaler.from_dict(scaler.to_dict()) == scaler and scaler.lookup(["v", "w"])[1] is None


def test_covariate_scaling_is_per_column_over_all_series():
    panel = to_panel(
        long(),
        id_col="id",
        time_col="ds",
        target="v",
        past_covariates=["p"],
        static_covariates=["region", "size"],
    )
    scaling = InputScaling.fit(panel)
    everything = np.concatenate([p[:, 0] for p in panel.covariates.past])
    assert scaling.dynamic.mean[0] == pytest.approx(everything.mean())
    assert scaling.categories == {"region": ("r0", "r1")} and scaling.static.names == ("size",)
    series = scaling.series_set(panel)
    assert series.feat_static_cat.tolist() == [[1], [2]]
    assert InputScaling.from_dict(scaling.to_dict()) == scaling


def test_future_frame_and_reading_it_back():
    panel = to_panel(long(), id_col="id", time_col="ds", target="v", future_covariates=["f"])
    frame = future_frame(panel, 2, ("dayofweek",))
    assert list(frame.columns) == ["id", "ds", "f", "dayofweek"] and len(frame) == 4
    assert frame.groupby("id")["ds"].min().to_dict() == {
        "x": pd.Timestamp("2024-01-06"),
        "y": pd.Timestamp("2024-01-04"),
    }
    frame["f"] = [1.0, 2.0, 3.0, 4.0]
    values = read_future(frame, panel, 2)
    assert [v[:, 0].tolist() for v in values] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(DataError, match="no rows for series 'y'"):
        read_future(frame[frame["id"] == "x"], panel, 2)
    with pytest.raises(DataError, match="timestamp 2024-01-06 00:00:00 twice"):
        read_future(pd.concat([frame, frame.iloc[:1]]), panel, 2)
    with pytest.raises(DataError, match="non-numeric value 'soon'"):
        read_future(frame.astype({"f": object}).assign(f="soon"), panel, 2)


def test_first_members_and_future_rows_of_many_series_match_a_scan_per_series():
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 9, size=300)
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(300) * 7, lengths),
            "ds": np.concatenate(
                [pd.date_range("2024-01-01", periods=n, freq="D") for n in lengths]
            ),
            "v": rng.normal(size=lengths.sum()),
            "f": 0.0,
        }
    )
    panel = to_panel(df, id_col="id", time_col="ds", target="v", future_covariates=["f"])
    cov = panel.covariates.take(rng.permutation(300)[:200].repeat(2))  # groups in mixed order
    assert cov.first_members() == [int(np.argmax(cov.group == g)) for g in range(len(cov.past))]
    assert panel.covariates.first_members() == list(range(300))

    future = future_frame(panel, 3)
    future["f"] = rng.normal(size=len(future))
    extra = future.groupby("id").tail(1).assign(ds=lambda x: x["ds"] + pd.Timedelta(days=1))
    future = pd.concat([future, extra]).sample(frac=1.0, random_state=0)  # shuffled, longer
    got = read_future(future, panel, 3)
    for i, values in enumerate(got):
        rows = future[future["id"] == panel.ids[i]].set_index("ds")["f"]
        wanted = pd.date_range(panel.index[i][-1], periods=4, freq="D")[1:]
        np.testing.assert_array_equal(values[:, 0], rows.reindex(wanted).to_numpy())
