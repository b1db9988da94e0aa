"""Tuning on a real PostgreSQL server: two command-line workers share one study, and the trial of
a worker that was killed is retried.

The server: `TRELLIS_TEST_POSTGRES_URL`, else the user and database that `.ci/postgres` creates
(CI's `.ci/run` starts the server with it before the tests). Without a reachable server the test
skips and says how to start one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO
from tests.tuning.test_search import BASE, DATA, SPACE
from trellis_ts import TrellisForecaster
from trellis_ts.tuning.search import make_storage

URL = os.environ.get(
    "TRELLIS_TEST_POSTGRES_URL", "postgresql://trellis:trellis@127.0.0.1/trellis_test"
)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def postgres_url() -> str:
    try:
        import psycopg
    except ImportError:
        pytest.skip(
            "psycopg is not installed; pip install -c constraints.txt -e '.[dev]' brings it"
        )
    try:
        with psycopg.connect(URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"no PostgreSQL server at {URL} ({str(exc).strip().splitlines()[0]}); start one with "
            "`bash .ci/postgres` as root (CI's .ci/run does) or set TRELLIS_TEST_POSTGRES_URL"
        )
    return URL


KILLED_WORKER = textwrap.dedent("""
    import os, signal, sys
    import lightning.pytorch as pl
    sys.path.insert(0, {repo!r})
    from tests.tuning.test_search import BASE, DATA, SPACE
    from trellis_ts.tuning.search import tune

    class Die(pl.Callback):  # the worker is killed in the middle of its first trial
        def on_train_epoch_start(self, trainer, pl_module):
            os.kill(os.getpid(), signal.SIGKILL)

    tune(DATA, n_trials=4, storage={url!r}, study_name={study!r}, space=SPACE, base_params=BASE,
         refit=False, heartbeat_interval=1, fit_kwargs={{"callbacks": [Die()]}})
""")


def test_two_workers_share_a_postgres_study_and_retry_a_killed_workers_trial(
    postgres_url, tmp_path
):
    study_name = f"test-{uuid.uuid4().hex[:12]}"
    storage = make_storage(postgres_url)
    data, space = tmp_path / "s.csv", tmp_path / "space.json"
    DATA.to_csv(data, index=False)
    space.write_text(json.dumps(SPACE))
    try:
        # 1. A worker dies during its trial: the trial stays RUNNING with a stale heartbeat.
        script = KILLED_WORKER.format(repo=str(REPO), url=postgres_url, study=study_name)
        killed = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
        )
        assert killed.returncode == -9, killed.stderr[-2000:]
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert [t.state for t in study.trials] == [TrialState.RUNNING]
        dead = study.trials[0]
        time.sleep(2.5)  # past the grace period (2 heartbeats of 1 s)

        # 2. The same command on two workers at once, as on two machines.
        options = [f"--{k.replace('_', '-')}={v}" for k, v in BASE.items() if k != "verbose"]
        command = [
            sys.executable,
            "-m",
            "trellis_ts",
            "tune",
            str(data),
            "--trials",
            "4",
            "--storage",
            postgres_url,
            "--study-name",
            study_name,
            "--space",
            str(space),
            "--heartbeat",
            "1",
            "--model-dir",
            str(tmp_path / "best"),
            "--json",
            *options,
        ]
        workers = [
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
            )
            for _ in range(2)
        ]
        outputs = [w.communicate(timeout=300) for w in workers]
        for w, (out, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, err[-2000:]
            assert json.loads(out)["storage"] == postgres_url

        study = optuna.load_study(study_name=study_name, storage=storage)
        trials = study.trials
        numbers = [t.number for t in trials]
        finished = [t for t in trials if t.state in FINISHED]
        retries = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
        print(f"\nPostgreSQL study {study_name!r} at {postgres_url}:")
        for t in trials:
            print(
                f"  trial {t.number}: {t.state.name:8} value={t.value} params={t.params} "
                f"retry_of={t.user_attrs.get('retry_of')}"
            )
        assert len(numbers) == len(set(numbers)) == len(trials)  # unique trial numbers
        # the dead worker's trial, failed by a live worker's heartbeat check
        assert trials[0].state == TrialState.FAIL
        assert 4 <= len(finished) <= 5  # the total is reached (a racing worker may add one)
        assert len(retries) == 1 and retries[0].params == dead.params  # retried once, same params
        assert retries[0].state in FINISHED
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        best = TrellisForecaster.load(tmp_path / "best")
        assert best.get_params()["d_model"] == study.best_trial.params["d_model"]
    finally:
        optuna.delete_study(study_name=study_name, storage=storage)
