"""Forecasting networks, built from a `ModelSpec` (`spec`: the architecture, torch-free): the
patch encoder (`encoder`), the baselines (`baselines`), how covariates enter them
(`covariates`), and `build_model` (`build`), the one factory. Names load on first use, so
reading a `ModelSpec` never imports torch."""

from __future__ import annotations

import importlib

_HOMES = {"ModelSpec": "spec", "TrellisModel": "encoder", "build_model": "build"}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'trellis_ts.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
