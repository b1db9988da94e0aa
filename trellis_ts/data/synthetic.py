"""Built-in demo data: correlated multi-seasonal sensor-like channels.

Each channel mixes a few shared latent seasonal factors (daily, weekly and a slower ~monthly cycle
at hourly frequency) with its own weights, adds a gentle trend, then gets its own level, scale and
Gaussian noise. The shared factors make channels correlated; the per-channel weights make them
distinct. Everything is drawn from one seeded numpy Generator, so a seed fixes the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from trellis_ts.errors import ConfigError, positive_int

__all__ = ["make_demo_frame", "make_demo_series", "make_promotion_frame"]

# Real-world cycle lengths; each becomes a period in steps at the requested frequency.
_CYCLES = (
    pd.Timedelta(days=1),
    pd.Timedelta(days=7),
    pd.Timedelta(days=30.4375),
    pd.Timedelta(days=365.25),
)
_MAX_FACTORS = 3


def _step(freq: str, start: str) -> pd.Timedelta:
    """Duration of one step (calendar offsets such as 'MS' use their first step)."""
    try:
        off = to_offset(freq)
        first_two = pd.date_range(start, periods=2, freq=off)
    except (ValueError, TypeError):
        raise ConfigError(
            f"freq={freq!r} / start={start!r} is not a valid pandas frequency alias and start "
            "date; use e.g. freq='h' and start='2021-01-01'."
        ) from None
    return first_two[1] - first_two[0]


def make_demo_series(
    n_steps: int = 2000,
    n_channels: int = 7,
    *,
    freq: str = "h",
    start: str = "2021-01-01",
    seed: int = 0,
    noise: float = 0.1,
) -> np.ndarray:
    """Demo values, float64 ``[n_steps, n_channels]``, all finite and positive (~10..500).

    ``noise`` is the Gaussian noise std relative to the std of the seasonal signal (0: noiseless).
    """
    n_steps = positive_int(n_steps, "n_steps", example=2000)
    n_channels = positive_int(n_channels, "n_channels", example=7)
    if not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise={noise!r} must be a finite number >= 0, e.g. 0.1.")
    step = _step(freq, start)
    periods = [c / step for c in _CYCLES if c / step >= 2][:_MAX_FACTORS]
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)

    # Latent factors [T, K]: a sine plus a second harmonic (so daily profiles are not pure sines),
    # scaled to unit variance so every factor contributes comparably.
    factors = np.zeros((n_steps, len(periods)))
    for k, period in enumerate(periods):
        ph1, ph2 = rng.uniform(0.0, 2.0 * np.pi, size=2)
        a2 = rng.uniform(0.2, 0.6)
        wave = np.sin(2 * np.pi * t / period + ph1) + a2 * np.sin(4 * np.pi * t / period + ph2)
        factors[:, k] = wave / np.sqrt(0.5 * (1.0 + a2**2))

    # Positive mixing weights, normalised per channel: the signal has unit variance in every
    # channel and channels sharing large weights on a factor are strongly correlated.
    weights = rng.uniform(0.1, 1.0, size=(len(periods), n_channels))
    weights /= np.sqrt((weights**2).sum(axis=0, keepdims=True)) if len(periods) else 1.0
    signal = factors @ weights  # [T, C]

    slope = rng.uniform(-0.5, 0.5, size=n_channels)  # total drift over the series, in signal stds
    signal += np.outer(t / max(n_steps - 1, 1), slope)

    level = rng.uniform(50.0, 300.0, size=n_channels)
    # Scale <= 20% of the level keeps values positive: |signal| rarely exceeds ~3 stds.
    scale = level * rng.uniform(0.08, 0.2, size=n_channels)
    if noise > 0:  # drawn last, so the noiseless signal is identical for every noise level
        signal += noise * rng.standard_normal((n_steps, n_channels))
    return level + scale * signal


def make_demo_frame(
    n_steps: int = 2000,
    n_channels: int = 7,
    *,
    freq: str = "h",
    start: str = "2021-01-01",
    seed: int = 0,
    noise: float = 0.1,
) -> pd.DataFrame:
    """Wide demo frame: a "date" column then channels "load_1".."load_C" (``n_steps`` rows)."""
    values = make_demo_series(n_steps, n_channels, freq=freq, start=start, seed=seed, noise=noise)
    frame = pd.DataFrame(values, columns=[f"load_{i + 1}" for i in range(values.shape[1])])
    frame.insert(0, "date", pd.date_range(start, periods=values.shape[0], freq=to_offset(freq)))
    return frame


def make_promotion_frame(
    n_steps: int = 730,
    n_series: int = 10,
    *,
    start: str = "2022-01-01",
    seed: int = 0,
    promo_rate: float = 0.1,
    promo_lift: float = 0.8,
    noise: float = 0.05,
) -> pd.DataFrame:
    """Daily sales of ``n_series`` stores driven by a promotions calendar (a long frame).

    Columns ``unique_id`` ("store_0", ...), ``ds``, ``y`` (sales), ``promo`` (1 on promotion
    days, drawn at random with probability ``promo_rate``, independently per store and day: no
    pattern in the past predicts them), ``temperature`` (a noisy yearly cycle that sales do not
    depend on) and ``region`` (a static label). Sales are a store level times a weekly and a
    yearly cycle, lifted by ``promo_lift`` on promotion days, with Gaussian noise of ``noise``
    times the level: a future-known input that a model cannot forecast from the past alone.
    """
    n_steps = positive_int(n_steps, "n_steps", example=730)
    n_series = positive_int(n_series, "n_series", example=3)
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)
    frames = []
    for i in range(n_series):
        level = rng.uniform(50.0, 200.0)
        weekly = 0.3 * np.sin(2 * np.pi * t / 7 + rng.uniform(0, 2 * np.pi))
        yearly = 0.1 * np.sin(2 * np.pi * t / 365.25 + rng.uniform(0, 2 * np.pi))
        promo = (rng.random(len(t)) < promo_rate).astype(np.float64)
        sales = level * (1 + weekly + yearly) * (1 + promo_lift * promo)
        sales += noise * level * rng.standard_normal(len(t))
        temperature = 12 + 10 * np.sin(2 * np.pi * (t - 100) / 365.25) + rng.normal(0, 2, len(t))
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"store_{i}",
                    "ds": pd.date_range(start, periods=len(t), freq="D"),
                    "y": sales,
                    "promo": promo,
                    "temperature": temperature,
                    "region": ("north", "south", "east")[i % 3],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
