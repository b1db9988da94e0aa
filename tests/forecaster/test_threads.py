"""Torch threads chosen per fit and forecast: the user's number, else the idle cores, one for a
small model or a busy machine; torch's own setting restored after."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import make_demo_frame
from trellis_ts.errors import ConfigError
from trellis_ts.forecaster import threads


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)


def test_idle_cores_for_a_large_model_one_when_busy_or_small(four_cores, monkeypatch):
    big = threads.SMALL_MODEL * 10
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert threads.choose_threads(None, big) == 4
    assert threads.choose_threads(None, threads.SMALL_MODEL - 1) == 1
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.3, 0.0, 0.0))
    assert threads.choose_threads(None, big) == 2
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert threads.choose_threads(None, big) == 1
    assert threads.choose_threads(3, big) == 3  # the user's number wins


def test_omp_num_threads_in_the_environment_is_left_alone(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads(None, 10) is None


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with threads.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_fit_uses_and_reports_the_threads_asked(monkeypatch):
    seen = []
    real = threads.torch_threads

    def spy(n):
        seen.append(n)
        return real(n)

    monkeypatch.setattr("trellis_ts.forecaster.training.torch_threads", spy)
    f = TrellisForecaster(**TINY, num_threads=1).fit(make_demo_frame(n_steps=200, n_channels=1))
    assert seen == [1, 1] and f.summary_.extra["threads"] == 1  # training, then calibration
    with pytest.raises(ConfigError, match="num_threads"):
        TrellisForecaster(**TINY, num_threads=0).fit(make_demo_frame(n_steps=200, n_channels=1))
