"""What the benchmark scripts share: the memory readers and the encoder's timed training step
and inference pass (model_speed.py, compile_speed.py).

The scripts run as `python benchmarks/<name>.py`, which puts benchmarks/ first on `sys.path`, so
each imports this module as `from common import ...`, with no `sys.path.insert`.
Only the standard library is imported here at module level: the speed and memory scripts import
this module before they set their thread count and before torch (their baseline RSS stays
theirs), and peers.py runs in the peers' own venv.
"""

from __future__ import annotations

import time


# ------------------------------------------------------------------------------ memory
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """The process's resident memory now, in MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The process's peak resident memory, in MB.

    `VmHWM`, not `ru_maxrss`: Linux carries `ru_maxrss` across `exec`, so a subprocess started by
    a large parent would report the parent's size as its own peak.
    """
    return _status_mb("VmHWM")


# ------------------------------------------------------------------------------ encoder step
def make_config(mixer: str, length: int, overrides: dict):
    """The encoder with `mixer` at context `length`, H = 96, patches 16 / 8, `overrides` on top."""
    from trellis_ts.forecaster.config import TrellisConfig

    base = dict(context_length=length, prediction_length=96, patch_len=16, patch_stride=8)
    return TrellisConfig(**(base | overrides | {"mixer": mixer, "model": "encoder"}))


class Bench:
    """One mixer's model, optimiser and inputs, with a timed training step and inference pass."""

    def __init__(self, config, batch: int, windows: int, seed: int = 0) -> None:
        import torch

        from trellis_ts.forecaster.sizing import model_spec
        from trellis_ts.models import build_model

        torch.manual_seed(seed)
        self.config = config
        self.model = build_model(model_spec(config))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, config.context_length, 1, generator=gen)
        self.y = torch.randn(batch, config.prediction_length, 1, generator=gen)
        self.contexts = torch.randn(windows, config.context_length, generator=gen).numpy()
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def train_step(self) -> tuple[float, float]:
        import torch.nn.functional as F

        cpu, wall = time.process_time(), time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        F.mse_loss(self.model(self.x), self.y).backward()
        self.optimizer.step()
        return time.process_time() - cpu, time.perf_counter() - wall

    def inference(self) -> tuple[float, float]:
        from trellis_ts.forecaster.training import forecast_contexts

        cpu, wall = time.process_time(), time.perf_counter()
        forecast_contexts(self.model, self.contexts)
        return time.process_time() - cpu, time.perf_counter() - wall
