"""Tuning: a small study, pruning, resuming, parallel workers, dead workers, bad inputs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO, TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import make_demo_frame
from trellis_ts.errors import ConfigError
from trellis_ts.tuning.search import load_space, make_storage, save_plots, summary_table, tune

DATA = make_demo_frame(n_steps=400, n_channels=2, seed=3)
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    "d_model": [8, 16],
}
BASE = {k: v for k, v in TINY.items() if k != "d_model"} | {"max_epochs": 2}  # d_model searched


def test_small_study_saves_a_loadable_best_model(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    study, best = tune(
        DATA,
        n_trials=3,
        storage=storage,
        space=SPACE,
        base_params=BASE,
        model_dir=tmp_path / "best",
    )
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3
    loaded = TrellisForecaster.load(tmp_path / "best")
    assert loaded.get_params()["d_model"] == study.best_trial.params["d_model"]
    assert len(loaded.predict()) == TINY["prediction_length"]
    table = summary_table(study)
    assert list(table["trial"]) == [0, 1, 2]
    assert [p.name for p in save_plots(study, tmp_path / "plots")][0] == "optimization_history.png"


def test_covariate_roles_in_fit_kwargs_reach_every_trial_and_the_best_model(tmp_path):
    # DATA's second channel as a past covariate: read as one, never forecast.
    channels = [c for c in DATA.columns if c != "date"]
    _, best = tune(
        DATA,
        n_trials=1,
        storage=f"sqlite:///{tmp_path / 'tune.db'}",
        space=SPACE,
        base_params=BASE,
        fit_kwargs={"past_covariates": channels[1:]},
    )
    assert list(best.history_.layout.past_covariates) == channels[1:]
    assert list(best.predict().columns) == ["date", channels[0]]


def test_no_plot_and_no_warning_without_a_completed_trial(tmp_path):
    import warnings

    import optuna

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params={}, distributions={}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert save_plots(study, tmp_path / "plots") == []


def test_a_hopeless_learning_rate_is_pruned(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    study = optuna.create_study(study_name="prune", storage=storage)
    for lr in (3e-3, 5e-3, 4e-3):
        study.enqueue_trial({"learning_rate": lr})
    study.enqueue_trial({"learning_rate": 1e-7})  # learns nothing in 4 epochs
    space = {"learning_rate": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True}}
    base = {**BASE, "max_epochs": 4, "early_stopping_patience": 10}
    study, _ = tune(
        DATA,
        n_trials=4,
        storage=storage,
        study_name="prune",
        space=space,
        base_params=base,
        refit=False,
    )
    last = study.trials[3]
    assert last.params["learning_rate"] == 1e-7
    assert last.state == TrialState.PRUNED
    assert max(last.intermediate_values) < 3  # stopped before its last epoch


def test_rerun_resumes_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    tune(DATA, n_trials=2, storage=storage, space=SPACE, base_params=BASE, refit=False)
    study, _ = tune(DATA, n_trials=3, storage=storage, space=SPACE, base_params=BASE, refit=False)
    assert [t.number for t in study.trials] == [0, 1, 2]


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.tuning.test_search import BASE, DATA, SPACE
    from trellis_ts.tuning.search import tune
    tune(DATA, n_trials={n}, storage={storage!r}, space=SPACE, base_params=BASE, refit=False,
         heartbeat_interval=1, grace_period=2)
""")


def test_two_workers_share_one_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    script = WORKER.format(repo=str(REPO), n=4, storage=storage)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0, p.stderr.read()[-2000:]
    study = optuna.load_study(study_name="trellis-ts", storage=storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) >= 4
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))


def test_a_killed_worker_leaves_the_study_usable(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    killer = (
        WORKER.format(repo=str(REPO), n=3, storage=storage)
        .replace("refit=False,", "refit=False, fit_kwargs={'callbacks': [Die()]},")
        .replace(
            "from trellis_ts.tuning.search import tune",
            textwrap.dedent("""
        import os, signal
        import lightning.pytorch as pl
        from trellis_ts.tuning.search import tune
        class Die(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                os.kill(os.getpid(), signal.SIGKILL)
    """),
        )
    )
    proc = subprocess.run(
        [sys.executable, "-c", killer], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    study = optuna.load_study(study_name="trellis-ts", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    import time

    time.sleep(3)  # past the grace period: the dead trial's heartbeat is stale
    study, best = tune(
        DATA,
        n_trials=3,
        storage=storage,
        space=SPACE,
        base_params=BASE,
        heartbeat_interval=1,
        grace_period=2,
    )
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
    assert best is not None


def test_bad_space_and_storage_are_config_errors(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("learning_rate: {type: float, low: 1e-2}\n")
    with pytest.raises(ConfigError, match="lacks"):
        load_space(bad)
    bad.write_text("lerning_rate: [0.1]\n")
    with pytest.raises(ConfigError, match="unknown parameter"):
        load_space(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="cannot open the study storage"):
        tune(DATA, n_trials=1, storage="nosuchdb://x/y", space=SPACE, base_params=BASE)
    # The heartbeat's seconds are checked as every positive-integer option (numpy ints pass).
    for name, value in (
        ("heartbeat_interval", 0),
        ("heartbeat_interval", 1.5),
        ("grace_period", -1),
        ("grace_period", True),
    ):
        with pytest.raises(ConfigError, match=f"{name}={value!r} must be a positive integer"):
            tune(
                DATA,
                n_trials=1,
                storage="nosuchdb://x/y",
                space=SPACE,
                base_params=BASE,
                **{name: value},
            )
    with pytest.raises(ConfigError, match="cannot open the study storage"):
        tune(
            DATA,
            n_trials=1,
            storage="nosuchdb://x/y",
            space=SPACE,
            base_params=BASE,
            heartbeat_interval=np.int64(5),
        )


def test_workers_opening_a_new_storage_together_all_succeed(tmp_path):
    # Creating a fresh database's tables is a race between workers started at once; before
    # the retry in make_storage about 1 worker in 16 failed here with a misleading ConfigError.
    code = "import sys; from trellis_ts.tuning.search import make_storage; make_storage(sys.argv[1], 60)"
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()[-1000:]


def test_a_missing_database_driver_names_the_package_and_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    expected = "driver 'psycopg' is not installed; install psycopg (pip install -c constraints.txt 'trellis-ts[tune]')"
    for url in (
        "postgresql://u:p@127.0.0.1/db",
        "postgres://u@127.0.0.1/db",
        "postgresql+psycopg://u@127.0.0.1/db",
    ):
        with pytest.raises(ConfigError, match=re.escape(expected)):
            make_storage(url)
    from typer.testing import CliRunner

    from trellis_ts.cli import commands as cli

    data = tmp_path / "s.csv"
    DATA.to_csv(data, index=False)
    result = CliRunner().invoke(
        cli.app,
        [
            "tune",
            str(data),
            "--trials",
            "1",
            "--model-dir",
            str(tmp_path / "m"),
            "--storage",
            "postgresql://u@127.0.0.1/db",
        ],
    )
    assert result.exit_code == 2, result.output
    assert (
        result.stderr.startswith("error: cannot open the study storage")
        and expected in result.stderr
    )
    assert not (tmp_path / "m").exists()
