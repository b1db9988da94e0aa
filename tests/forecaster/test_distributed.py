"""Distributed data-parallel training through the estimator: 2 CPU processes over gloo.

Lightning's "ddp" strategy starts the other ranks by running the current command line again,
so the fit never runs inside the pytest process: a small script does, in a subprocess, and the
test loads what it saved. ("ddp_spawn" is not used: it trains in spawned children and hands only
the weights back, so the parent's `summary_` would report 0 epochs; see benchmarks/README.md.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import DDPStrategy

from tests.conftest import REPO, TINY
from trellis_ts import TrellisConfig, TrellisForecaster
from trellis_ts.data import make_demo_frame
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.forecaster.training import make_trainer
from trellis_ts.models import build_model

# Every rank runs this whole file; each saves its own copy of the model, so the test can check
# that the replicas agree. A user script would save on rank 0 only.
FIT_SCRIPT = """
import json
import sys

import torch.distributed as dist

from trellis_ts import TrellisForecaster
from trellis_ts.data import make_demo_frame


def main():
    out, params = sys.argv[1], json.loads(sys.argv[2])
    frame = make_demo_frame(n_steps=400, n_channels=3, seed=0)
    forecaster = TrellisForecaster(**params).fit(frame)
    rank = dist.get_rank() if dist.is_initialized() else -1  # Lightning keeps the group open
    forecaster.save(f"{out}/rank{rank}")


if __name__ == "__main__":
    main()
"""

DDP_PARAMS = TINY | dict(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp")


def test_device_settings_pass_through_to_lightning(tmp_path):
    config = TrellisConfig(**(DDP_PARAMS | {"num_nodes": 2}))
    trainer = make_trainer(config, [], str(tmp_path))
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_devices == 2 and trainer.num_nodes == 2
    assert isinstance(trainer.accelerator, CPUAccelerator)  # so the process group uses gloo


@pytest.fixture(scope="module")
def ddp_models(tmp_path_factory) -> Path:
    """Fit with 2 DDP ranks in a subprocess; returns the directory holding rank0/ and rank1/."""
    root = tmp_path_factory.mktemp("ddp")
    script = root / "fit_ddp.py"
    script.write_text(FIT_SCRIPT)
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("MASTER_PORT", None)  # let Lightning pick a free port
    # A session of its own, so a hang can be ended with both ranks (rank 1 is rank 0's child).
    run = subprocess.Popen(
        [sys.executable, str(script), str(root), json.dumps(DDP_PARAMS)],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = run.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        pytest.fail("the 2-process DDP fit did not finish in 240 s")
    assert run.returncode == 0, stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in stderr  # really two processes
    return root


def test_ddp_fit_loads_and_predicts_with_the_trained_weights(ddp_models):
    ranks = [TrellisForecaster.load(ddp_models / f"rank{r}") for r in (0, 1)]
    main = ranks[0]
    assert main.summary_.epochs == 2 and main.summary_.best_epoch is not None
    assert main.config_.strategy == "ddp" and main.config_.devices == 2

    # DDP all-reduces the gradients, so both replicas end with the same weights...
    trained = main.model_.state_dict()
    for name, value in ranks[1].model_.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0)
    # ...and they are not the weights the fit started from (train_model seeds, then builds).
    pl.seed_everything(main.config_.random_state, verbose=False)
    initial = build_model(model_spec(main.config_)).eval()
    unchanged = [k for k, v in initial.state_dict().items() if torch.equal(v, trained[k])]
    assert not unchanged

    forecast = main.predict()
    frame = make_demo_frame(n_steps=400, n_channels=3, seed=0)
    assert list(forecast.columns) == list(frame.columns) and len(forecast) == 12
    values = forecast.drop(columns="date").to_numpy()
    assert np.isfinite(values).all()
    main.model_ = initial  # the same forecaster with untrained weights predicts otherwise
    untrained = main.predict().drop(columns="date").to_numpy()
    assert np.abs(values - untrained).max() > 1e-3
