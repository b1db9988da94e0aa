"""benchmarks/study.py, the accuracy study's runner: what it writes and in which order it runs,
without running any model (it reads the committed search records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def study(tmp_path, monkeypatch, load_script):
    module = load_script("study")
    if not module.SEARCH_FILE.is_file():
        pytest.skip(f"{module.SEARCH_FILE} is not in this checkout")
    committed = sorted(module.CONFIGS.glob("etth1_*.json"))  # ETTh1's choices, adopted below
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(module, "CONFIGS", tmp_path / "configs")
    module.RESULTS.mkdir()
    module.CONFIGS.mkdir()
    for path in committed:
        (module.CONFIGS / path.name).write_text(path.read_text())
    return module


def test_select_for_one_dataset_keeps_the_other_datasets_rows_and_configs(study):
    study.select(["Weather"])  # Weather is not searched: it adopts ETTh1's choices
    table = (study.RESULTS / "study_search.md").read_text()
    assert table.count("| ETTh1 | trellis |") >= 2 and "**yes**" in table
    written = sorted(p.name for p in study.CONFIGS.glob("weather_*.json"))
    assert written == ["weather_attention.json", "weather_dlinear.json", "weather_trellis.json"]
    committed = REPO / "benchmarks" / "configs" / "etth1_trellis.json"
    assert (study.CONFIGS / "etth1_trellis.json").read_text() == committed.read_text()
    trellis = json.loads((study.CONFIGS / "weather_trellis.json").read_text())
    assert trellis["max_epochs"] == study.BUDGET["Weather"]["max_epochs"]  # its own budget
    assert trellis["windows_per_epoch"] == study.BUDGET["Weather"]["windows_per_epoch"]


def test_final_runs_go_seed_by_seed_with_every_model_of_a_seed_together(study):
    study.select(["Weather"])
    jobs = study.final_jobs(["Weather"], lookbacks=[96, 336], seeds=(0, 1))
    assert len(jobs) == 2 * 2 * len(study.MODELS) * len(study.HORIZONS)
    cells = [(job["L"], job["seed"]) for job in jobs]
    assert cells == sorted(cells, key=lambda c: ([96, 336].index(c[0]), c[1]))
    first = jobs[: len(study.MODELS) * len(study.HORIZONS)]
    assert {job["model"] for job in first} == set(study.MODELS)
    assert {(job["L"], job["seed"]) for job in first} == {(96, 0)}
    assert [job["H"] for job in first[: len(study.HORIZONS)]] == sorted(study.HORIZONS)[::-1]


def test_lookback_reuses_the_searched_run_and_chooses_on_validation(study, monkeypatch):
    monkeypatch.setattr(study, "LOOKBACK_FILE", study.RESULTS / "study_lookback.jsonl")
    jobs = study.lookback_jobs(["ETTh1"])
    asked = {(job["model"], job["L"]) for job in jobs}
    assert ("trellis", 336) not in asked  # the search ran the chosen candidate at L = 336
    assert {("trellis", L) for L in (96, 512, 720)} <= asked
    searched = [r for r in study.lookback_records() if r["model"] == "trellis"]
    assert sorted(r["horizon"] for r in searched) == list(study.SEARCH_HORIZONS)
    with pytest.raises(SystemExit, match="lookback runs are not all recorded"):
        study.best_lookbacks(["ETTh1"])
    # Record the other long lookbacks: L = 512 a little better than the searched 336, 720 worse.
    lines = []
    for model in study.MODELS:
        base = next(r for r in study.lookback_records() if r["model"] == model)
        base = {k: v for k, v in base.items() if k != "searched"}  # these are the phase's own
        for L, shift in ((512, -0.01), (720, 0.01)):
            for H in study.SEARCH_HORIZONS:
                at_336 = next(
                    r for r in study.lookback_records() if r["model"] == model and r["horizon"] == H
                )
                lines.append(
                    json.dumps(
                        base
                        | {
                            "context_length": L,
                            "horizon": H,
                            "best_val_loss": at_336["best_val_loss"] + shift,
                        }
                    )
                )
    study.LOOKBACK_FILE.write_text("\n".join(lines) + "\n")
    assert set(study.best_lookbacks(["ETTh1"]).values()) == {512}
    table = study.lookback_table()
    assert table.count("| ETTh1 | trellis |") == 3  # 336 (searched), 512, 720
    assert table.count("(search) |") == len(study.MODELS)  # the L = 336 rows


def test_ablations_take_the_reference_row_from_the_final_table(study, monkeypatch, capsys):
    monkeypatch.setattr(study, "ABLATION_FILE", study.RESULTS / "study_ablations.jsonl")
    reference = study.ablation_records(336)
    if len(reference) != 2 * 3:
        pytest.skip("the final table's ETTh1 Trellis runs at L = 336 are not in this checkout")
    jobs = study.ablation_jobs(["ETTh1"], lookbacks=[336])
    assert len(jobs) == (len(study.ABLATIONS) - 1) * len(study.SEARCH_HORIZONS) * 3
    base = study.settings_key("trellis", study.chosen("ETTh1", "trellis"))
    assert all(study.settings_key("trellis", job["settings"]) != base for job in jobs)
    # One variant's runs recorded (a copy of the reference's with another setting and MSE).
    variant = study.ABLATIONS["no forget gate"]
    lines = [
        json.dumps(
            {k: v for k, v in r.items() if k != "final"}
            | {"config": r["config"] | variant, "mse": r["mse"] + 0.1}
        )
        for r in reference
    ]
    study.ABLATION_FILE.write_text("\n".join(lines) + "\n")
    study.run_jobs(study.ablation_jobs(["ETTh1"], lookbacks=[336]), Path("."), 1, dry_run=True)
    assert (
        f"{len(jobs)} runs asked, {len(jobs) - len(lines)} not yet recorded"
        in capsys.readouterr().out
    )
    table = study.ablation_table()
    assert table.count("(final) |") == 1 and "| **chosen** |" in table
    assert "| no forget gate |" in table and "| m=32 |" not in table
    # The epochs restored per horizon, lowest-highest over the seeds, from the runs themselves.
    row = next(line for line in table.splitlines() if line.startswith("| no forget gate |"))
    epochs = {
        H: sorted({r["best_epoch"] for r in reference if r["horizon"] == H})
        for H in study.SEARCH_HORIZONS
    }
    cells = row.split(" | ")
    assert cells[4] == " / ".join(
        str(e[0]) if len(e) == 1 else f"{e[0]}-{e[-1]}" for e in epochs.values()
    )
    # Beside the test MSE, the validation loss a choice would be made on (mean over the seeds).
    validation = [
        sum(r["best_val_loss"] for r in reference if r["horizon"] == H) / 3
        for H in study.SEARCH_HORIZONS
    ]
    assert cells[3] == " / ".join(f"{v:.4f}" for v in validation)


def test_the_budget_phase_runs_weather_longer_on_validation_beside_the_final_runs(
    study, monkeypatch
):
    monkeypatch.setattr(study, "BUDGET_FILE", study.RESULTS / "study_budget.jsonl")
    study.select(["Weather"])
    jobs = study.longer_budget_jobs(["ETTh1", "Weather"])  # ETTh1 has no longer budget
    assert {job["dataset"] for job in jobs} == {"Weather"}
    assert all(job["validation_only"] and job["seed"] == 0 for job in jobs)
    longer = study.LONGER_BUDGET["Weather"]["max_epochs"]
    assert {job["settings"]["max_epochs"] for job in jobs} == {longer}
    assert len(jobs) == len(study.LONGER_BUDGET_LOOKBACKS) * len(study.MODELS) * 2
    final = [
        r
        for r in study.read_results(study.HEADLINE)
        if r["dataset"] == "Weather"
        and r["model"] == "dlinear"
        and r["context_length"] == 96
        and r["seed"] == 0
        and r["horizon"] in study.SEARCH_HORIZONS
    ]
    if len(final) != 2:
        pytest.skip("the final table's Weather DLinear runs at L = 96 are not in this checkout")
    # DLinear's longer runs recorded (copies of the final's, validation only, 0.01 lower).
    lines = [
        json.dumps(
            {k: v for k, v in r.items() if k not in ("mse", "mae")}
            | {
                "config": r["config"] | {"max_epochs": longer},
                "best_val_loss": r["best_val_loss"] - 0.01,
            }
        )
        for r in final
    ]
    study.BUDGET_FILE.write_text("\n".join(lines) + "\n")
    rows = [line for line in study.budget_table().splitlines() if line.startswith("| Weather |")]
    assert [line.split(" | ")[3] for line in rows] == [
        str(final[0]["config"]["max_epochs"]),
        str(longer),
    ]
    means = [float(line.split(" | ")[6]) for line in rows]
    assert means[1] == pytest.approx(means[0] - 0.01, abs=1e-4)
    # A test score in the budget file is refused: the phase must not see test rows.
    study.BUDGET_FILE.write_text(json.dumps(json.loads(lines[0]) | {"mse": 0.2}) + "\n")
    with pytest.raises(SystemExit, match="holds test scores"):
        study.budget_table()


def test_the_horizon_phase_adopts_a_change_only_beyond_twice_the_seed_spread(study, monkeypatch):
    monkeypatch.setattr(study, "HORIZON_FILE", study.RESULTS / "study_horizon.jsonl")
    jobs = study.horizon_jobs(["ETTh1", "Weather"])  # ETTh1 only
    assert len(jobs) == 3 * len(study.LONG_H_CHANGES)
    assert all(
        job["validation_only"] and job["H"] == study.LONG_H and job["dataset"] == "ETTh1"
        for job in jobs
    )
    assert study.horizon_jobs(["Weather"]) == []
    L = jobs[0]["L"]
    key = study.settings_key("trellis", study.chosen("ETTh1", "trellis"))
    final = [
        r
        for r in study.read_results(study.HEADLINE)
        if r["dataset"] == "ETTh1"
        and r["model"] == "trellis"
        and r["context_length"] == L
        and r["horizon"] == study.LONG_H
        and r["seed"] in (0, 1, 2)
        and study.canonical(r["config"]) == key
    ]
    if len(final) != 3:
        pytest.skip("the final table's ETTh1 Trellis runs at H = 720 are not in this checkout")
    losses = [r["best_val_loss"] for r in final]
    spread = max(losses) - min(losses)

    def record(shifts: dict[str, float]) -> str:
        table_lines = []
        for name, change in study.LONG_H_CHANGES.items():
            for r in final:
                table_lines.append(
                    json.dumps(
                        {k: v for k, v in r.items() if k not in ("mse", "mae")}
                        | {
                            "config": r["config"] | change,
                            "best_val_loss": r["best_val_loss"] + shifts.get(name, 0.0),
                        }
                    )
                )
        study.HORIZON_FILE.write_text("\n".join(table_lines) + "\n")
        return study.horizon_table()

    first = next(iter(study.LONG_H_CHANGES))
    table = record({first: -(4 * spread + 0.01)})  # far below the reference
    assert (
        "| chosen Trellis (final runs) |" in table and "| chosen attention (final runs) |" in table
    )
    assert f"adopted at H = {study.LONG_H}: **{first}**" in table
    table = record({first: -0.1 * spread})  # within the seeds' spread
    assert "none adopted" in table and first in table.splitlines()[-1]
    study.HORIZON_FILE.write_text(
        json.dumps(json.loads(study.HORIZON_FILE.read_text().splitlines()[0]) | {"mse": 0.4}) + "\n"
    )
    with pytest.raises(SystemExit, match="holds test scores"):
        study.horizon_table()
