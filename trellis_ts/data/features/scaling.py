"""The one scaler: per-column location and scale, fitted once and saved as JSON.

The estimator scales each target series and each covariate column with it, the benchmark
scales every channel of a dataset by its train rows, and the GluonTS estimator scales the
covariates of its training data: one rule everywhere. RevIN inside the model then normalises
each target window on top of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Scaler", "location_scale"]

# A standard deviation this small next to the mean is rounding noise of a constant column
# (np.std of 1,000 copies of 0.1 is 1.4e-17): dividing by it would blow the noise up.
_RELATIVE_NOISE = 64 * np.finfo(np.float64).eps


def location_scale(values: np.ndarray) -> tuple[float, float]:
    """Mean and scale of one column ``[n]``: its standard deviation, or for a constant column
    the size of its level (so 1e12 stays near 1 after scaling), or 1 for an all-zero one."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0, 1.0
    mean, std = float(np.mean(values)), float(np.std(values))
    if np.isfinite(std) and std > _RELATIVE_NOISE * abs(mean) and std > 0:
        return mean, std
    return mean, abs(mean) if mean != 0 else 1.0


@dataclass(frozen=True, eq=False)
class Scaler:
    """Named columns' ``mean`` and ``scale`` (float64 ``[K]``): ``(x - mean) / scale``."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, names: Sequence[str], columns: Iterable[np.ndarray]) -> Scaler:
        """One ``location_scale`` per column; ``columns[k]`` holds every value of column k."""
        stats = np.array([location_scale(c) for c in columns], dtype=np.float64).reshape(-1, 2)
        if len(stats) != len(names):
            raise ValueError(f"got {len(stats)} columns for {len(names)} names")
        return cls(tuple(str(n) for n in names), stats[:, 0].copy(), stats[:, 1].copy())

    @classmethod
    def fit_rows(cls, names: Sequence[str], rows: np.ndarray) -> Scaler:
        """Statistics of each column of ``rows`` ``[T, K]``."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        return cls.fit(names, rows.T)

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scaler) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  (arrays inside: not hashable)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``[..., K]`` scaled column-wise."""
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.scale

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.scale + self.mean

    def lookup(self, names: Sequence[str]) -> list[tuple[float, float] | None]:
        """``(mean, scale)`` of each name, or None for a name this scaler has not seen."""
        known = {
            n: (float(m), float(s))
            for n, m, s in zip(self.names, self.mean, self.scale, strict=True)
        }
        return [known.get(str(n)) for n in names]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scaler:
        return cls(
            tuple(values["names"]),
            np.asarray(values["mean"], dtype=np.float64),
            np.asarray(values["scale"], dtype=np.float64),
        )
