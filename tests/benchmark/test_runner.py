"""The benchmark runner (trellis_ts.benchmark.runner) and the dataset registry (trellis_ts.benchmark.registry)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.conftest import ETTH1
from trellis_ts.benchmark.protocol import (
    evaluate_windows,
    prepare_splits,
    split_borders,
    split_windows,
)
from trellis_ts.benchmark.registry import DATASETS, dataset_spec, file_sha256, load_dataset
from trellis_ts.benchmark.results import render_table
from trellis_ts.benchmark.runner import resolve_config, run_benchmark
from trellis_ts.data import Scaler
from trellis_ts.errors import ConfigError, DataError

RECORD_FIELDS = {
    "dataset",
    "model",
    "config",
    "seed",
    "context_length",
    "horizon",
    "mse",
    "mae",
    "train_seconds",
    "peak_rss_mb",
    "parameters",
    "epochs",
    "best_epoch",
    "versions",
    "timestamp",
    "cpu_count",
    "test_windows",
}


def write_csv(path, rows, channels=3, freq="h", seed=0):
    """A wide benchmark-style CSV: a `date` column and `channels` numeric columns."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    data = {"date": pd.date_range("2016-07-01", periods=rows, freq=freq).astype(str)}
    for c in range(channels):
        data[f"ch{c}"] = np.sin(2 * np.pi * t / 24 + c) + 0.1 * rng.standard_normal(rows) + c
    pd.DataFrame(data).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------ splits
@pytest.mark.parametrize(
    ("L", "val", "test"),
    [(96, (8544, 11520), (11424, 14400)), (336, (8304, 11520), (11184, 14400))],
)
def test_ett_hourly_borders(L, val, test):
    # 12 months of 30 days = 8640 hours train, 4 months = 2880 hours each for val and test.
    assert split_borders("ett_hourly", 17420, L) == {"train": (0, 8640), "val": val, "test": test}


def test_ett_minute_borders_are_four_times_the_hourly():
    assert split_borders("ett_minute", 69680, 96) == {
        "train": (0, 34560),
        "val": (34560 - 96, 46080),
        "test": (46080 - 96, 57600),
    }


@pytest.mark.parametrize(
    ("n", "train", "val", "test"),
    [(1000, 700, 100, 200), (1001, 700, 101, 200), (966, 676, 97, 193)],
)
def test_ratio_borders_use_int_truncation(n, train, val, test):
    L = 36
    borders = split_borders("ratio_7_1_2", n, L)
    assert borders == {
        "train": (0, train),
        "val": (train - L, train + val),
        "test": (n - test - L, n),
    }


def test_ratio_borders_of_a_csv_given_by_path(tmp_path):
    data = load_dataset(write_csv(tmp_path / "mine.csv", 1000), data_dir=None)
    assert data.split == "ratio_7_1_2" and data.freq == "h" and data.values.shape == (1000, 3)
    assert split_borders(data.split, 1000, 96) == {
        "train": (0, 700),
        "val": (604, 800),
        "test": (704, 1000),
    }


def test_split_errors_name_the_problem():
    with pytest.raises(DataError, match="14400 rows"):
        split_borders("ett_hourly", 14000, 96)
    with pytest.raises(DataError, match="context_length=800"):
        split_borders("ratio_7_1_2", 1000, 800)


def test_scaler_is_fitted_on_train_rows_only():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(1000, 4))
    borders = split_borders("ratio_7_1_2", 1000, 48)
    scaler, rows = prepare_splits(values, borders)
    spoiled = values.copy()
    spoiled[700:] = 1e6  # huge values only in rows after the training part
    scaler_spoiled, rows_spoiled = prepare_splits(spoiled, borders)
    np.testing.assert_array_equal(scaler.mean, scaler_spoiled.mean)
    np.testing.assert_array_equal(scaler.scale, scaler_spoiled.scale)
    np.testing.assert_allclose(scaler.mean, values[:700].mean(0))
    np.testing.assert_allclose(scaler.scale, values[:700].std(0, ddof=0))  # population std
    np.testing.assert_allclose(rows["train"], rows_spoiled["train"])
    assert rows["val"].shape == (100 + 48, 4) and rows["test"].shape == (200 + 48, 4)
    constant = Scaler.fit_rows(["a", "b"], np.ones((10, 2)))
    np.testing.assert_array_equal(constant.scale, [1.0, 1.0])


# ------------------------------------------------------------------------------ windows, metrics
class RepeatLastHorizon(nn.Module):
    """A fake model with a known forecast: 0.9 × the last H context steps."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon

    def forward(self, past_target: torch.Tensor) -> torch.Tensor:
        return 0.9 * past_target[:, -self.horizon :]


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_every_test_window_is_scored_like_plain_numpy(batch_size):
    rng = np.random.default_rng(1)
    T, C, L, H = 120, 3, 24, 12
    rows = rng.standard_normal((T, C))
    windows = split_windows(rows, L, H)
    assert list(windows.windows_per_series) == [T - L - H + 1] * C
    assert len(windows) % 7 != 0  # the last batch of 7 is partial and must be kept
    scores = evaluate_windows(RepeatLastHorizon(H), windows, batch_size=batch_size)
    errors = [
        0.9 * rows[s - H : s, c].astype(np.float32) - rows[s : s + H, c].astype(np.float32)
        for c in range(C)
        for s in range(L, T - H + 1)
    ]
    errors = np.stack(errors).astype(np.float64)
    assert scores["windows"] == C * (T - L - H + 1) == len(errors)
    assert scores["mse"] == pytest.approx(np.mean(errors**2), rel=1e-6)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-6)


# ------------------------------------------------------------------------------ configs
def test_model_names_map_to_config_fields(tmp_path):
    assert resolve_config("attention").mixer == "attention"
    assert resolve_config("trellis").model == "encoder"
    assert resolve_config("dlinear", max_epochs=2).max_epochs == 2
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("d_model: 32\nn_heads: 4\n")
    assert resolve_config("trellis", yaml_file).d_model == 32
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps({"d_model": 32, "widht": 3}))
    with pytest.raises(ConfigError, match="widht"):
        resolve_config("trellis", json_file)
    with pytest.raises(ConfigError, match="--model"):
        resolve_config("trellis", {"mixer": "attention"})
    with pytest.raises(ConfigError, match="seasonal_naive"):
        resolve_config("naive")


# ------------------------------------------------------------------------------ registry
def test_registry_errors_name_the_fix(tmp_path):
    assert dataset_spec("etth1") is DATASETS["ETTh1"] and dataset_spec("ECL").name == "Electricity"
    with pytest.raises(DataError, match="ETTh1, ETTh2"):
        load_dataset("ETTh3", tmp_path)
    with pytest.raises(DataError, match=r"weather\.csv.*put it in"):
        load_dataset("Weather", tmp_path)
    (tmp_path / "ETTh1.csv").write_text("date,a\n2020-01-01,1\n")
    with pytest.raises(DataError, match="sha256"):
        load_dataset("ETTh1", tmp_path)
    bad = tmp_path / "text.csv"
    bad.write_text("date,a,b\n2020-01-01,1,x\n2020-01-02,2,y\n")
    with pytest.raises(DataError, match=r"\['b'\] are not numeric"):
        load_dataset(bad)


def test_etth1_checksum_passes_and_a_corrupted_copy_fails(etth1_path, tmp_path):
    assert file_sha256(etth1_path) == DATASETS["ETTh1"].sha256
    data = load_dataset("ETTh1", etth1_path.parent)
    assert data.shape == (17420, 8) and data.expected_shape_ok and data.split == "ett_hourly"
    assert load_dataset(etth1_path).name == "ETTh1"  # a registry file given by path
    raw = bytearray(etth1_path.read_bytes())
    raw[-3] = ord("9") if raw[-3] != ord("9") else ord("8")
    (tmp_path / "ETTh1.csv").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupted"):
        load_dataset("ETTh1", tmp_path)


def test_weather_checksum_split_and_its_non_utf8_header():
    path = ETTH1.parent / "weather.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    data = load_dataset("Weather", path.parent)  # sha256 verified on load
    assert data.shape == (52696, 22) and data.expected_shape_ok and data.freq == "10min"
    assert (
        data.channels[0] == "p (mbar)"
        and data.channels[-1] == "OT"
        and len(set(data.channels)) == 21
    )
    borders = split_borders(data.split, len(data.values), 96)
    assert borders == {"train": (0, 36887), "val": (36887 - 96, 42157), "test": (42157 - 96, 52696)}


# ------------------------------------------------------------------------------ end to end
def test_tiny_run_appends_a_record_and_renders_a_table(tmp_path):
    write_csv(tmp_path / "ETTh2.csv", 17420, channels=7)
    results, table = tmp_path / "out" / "results.jsonl", tmp_path / "out" / "table.md"
    tiny = dict(
        max_epochs=1,
        d_model=16,
        n_heads=2,
        n_layers=1,
        n_slots=8,
        chunk_size=4,
        patch_len=8,
        patch_stride=4,
        windows_per_epoch=256,
        batch_size=64,
        verbose=False,
    )
    records = run_benchmark(
        "ETTh2",
        tmp_path,
        48,
        [12],
        model="trellis",
        seeds=[0],
        results_path=results,
        table_path=table,
        **tiny,
    )
    lines = results.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) >= RECORD_FIELDS and record == json.loads(json.dumps(records[0]))
    assert record["config"]["mixer"] == "trellis" and record["config"]["d_model"] == 16
    assert record["test_windows"] == (2880 + 48 - 48 - 12 + 1) * 7
    assert record["borders"] == {"train": [0, 8640], "val": [8592, 11520], "test": [11472, 14400]}
    assert set(record["versions"]) >= {"trellis_ts", "torch", "lightning", "python"}
    assert record["epochs"] == 1 and record["parameters"] > 0 and np.isfinite(record["mse"])
    assert record["expected_shape_ok"] is True
    assert "| ETTh2 | trellis |" in table.read_text()


def test_val_stride_thins_the_early_stopping_windows_but_never_the_test(tmp_path):
    write_csv(tmp_path / "ETTh2.csv", 17420, channels=2)
    tiny = dict(
        max_epochs=1,
        d_model=16,
        n_heads=2,
        n_layers=1,
        n_slots=8,
        patch_len=8,
        patch_stride=4,
        windows_per_epoch=128,
        batch_size=64,
        verbose=False,
    )
    (record,) = run_benchmark(
        "ETTh2", tmp_path, 48, [12], model="trellis", results_path=None, val_stride=4, **tiny
    )
    per_channel = 2880 + 48 - 48 - 12 + 1
    assert record["val_windows"] == 2 * (-(-per_channel // 4)) and record["val_stride"] == 4
    assert record["test_windows"] == 2 * per_channel


def test_seasonal_naive_run_on_a_csv_path(tmp_path):
    path = write_csv(tmp_path / "small.csv", 400)
    records = run_benchmark(
        path, None, 48, [12, 24], model="seasonal_naive", results_path=None, verbose=False
    )
    assert [r["horizon"] for r in records] == [12, 24]
    assert records[0]["config"]["season_length"] == 24 and records[0]["parameters"] == 0
    # test rows: the last int(400 * 0.2) = 80 plus the 48-row context
    assert records[0]["test_windows"] == (80 + 48 - 48 - 12 + 1) * 3
    with pytest.raises(DataError, match="val split"):
        run_benchmark(path, None, 48, [96], model="seasonal_naive", results_path=None)


def test_table_has_mean_std_over_seeds_and_an_average_row():
    def rec(h, seed, mse):
        return {
            "dataset": "D",
            "model": "m",
            "config_id": "c",
            "context_length": 8,
            "horizon": h,
            "seed": seed,
            "mse": mse,
            "mae": mse / 2,
            "train_seconds": 1.0,
            "peak_rss_mb": 10.0,
            "parameters": 5,
        }

    records = [rec(1, 0, 9.0), rec(1, 0, 1.0), rec(1, 1, 3.0), rec(2, 0, 3.0), rec(2, 1, 5.0)]
    lines = render_table(records).splitlines()
    assert "| D | m | c | 8 | 1 | 2.0000 ± 1.4142 |" in lines[2]  # seed 0 rerun: the later counts
    assert "| 2 | 4.0000 ± 1.4142 |" in lines[3]
    assert "| avg | 3.0000 ± 1.4142 | 1.5000 ± 0.7071 | 2 |" in lines[4]


def test_validation_only_runs_never_touch_the_test_rows(tmp_path, monkeypatch):
    import trellis_ts.benchmark.runner as bm

    write_csv(tmp_path / "ETTh2.csv", 17420, channels=3)
    seen = []
    real_prepare = bm.prepare_splits
    monkeypatch.setattr(
        bm, "prepare_splits", lambda v, b, n: seen.append(set(b)) or real_prepare(v, b, n)
    )
    monkeypatch.setattr(bm, "evaluate_windows", lambda *a, **k: pytest.fail("test rows scored"))
    results = tmp_path / "search.jsonl"
    tiny = dict(
        max_epochs=1,
        d_model=16,
        n_heads=2,
        n_layers=1,
        n_slots=8,
        chunk_size=4,
        patch_len=8,
        patch_stride=4,
        windows_per_epoch=128,
        batch_size=64,
        verbose=False,
    )
    (record,) = run_benchmark(
        "ETTh2",
        tmp_path,
        48,
        [12],
        model="attention",
        seeds=[0],
        results_path=results,
        score_test=False,
        **tiny,
    )
    assert seen == [{"train", "val"}]
    assert record["mse"] is None and record["mae"] is None and record["test_windows"] is None
    assert record["scored_on"] == "validation only" and "test" not in record["borders"]
    assert np.isfinite(record["best_val_loss"]) and record["val_windows"] == (2880 - 12 + 1) * 3
    # the table leaves validation-only records out
    assert "| ETTh2 |" not in render_table(results)


@pytest.mark.parametrize("model", ["streaming", "streaming_attention"])
def test_a_streaming_run_scores_the_same_test_windows_from_the_whole_history(tmp_path, model):
    write_csv(tmp_path / "ETTh2.csv", 17420, channels=2)
    tiny = dict(
        max_epochs=1,
        d_model=16,
        n_heads=2,
        n_layers=1,
        n_slots=8,
        patch_len=8,
        windows_per_epoch=32,
        crop_tokens=16,
        burn_in_tokens=8,
        verbose=False,
    )
    (record,) = run_benchmark("ETTh2", tmp_path, 48, [12], model=model, results_path=None, **tiny)
    assert record["test_windows"] == 2 * (2880 + 48 - 48 - 12 + 1)  # as the window model's
    assert record["lookback"] == "whole history" and record["config"]["streaming"] is True
    assert record["config"]["patch_stride"] == 8 and np.isfinite(record["mse"])
    assert "whole history (linear 48)" in render_table([record])
