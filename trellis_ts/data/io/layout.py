"""How a frame was laid out: `FrameLayout`.

It is what `to_panel` learned about the user's frame (wide or long, the time, id and value
columns, which columns are covariates of which kind); it holds names only, never values, and
saves as JSON with `dataclasses.asdict`. `trellis_ts.data.io.writing.to_frame` writes results back
with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FrameLayout"]


@dataclass(frozen=True)
class FrameLayout:
    """The input frame's format and column roles (labels as the user gave them).

    * ``format``: "wide" (one column per series) or "long" (``id_col``, ``time_col``,
      ``target_col``, one row per series and time step);
    * ``time_col``: None when time is the index (wide), whose name is then ``index_name``;
    * ``columns``: wide: the target columns' original labels (they may be non-str, e.g. 0..C-1
      from a numpy array), so results are written back under exactly those labels;
    * the covariate columns by role: known up to the forecast origin (``past_covariates``),
      known over the horizon too (``future_covariates``), constant per series
      (``static_covariates``);
    * ``time_format``: the style of week, quarter or year-month labels the time was written in
      (`1991 W06` is ``%G W%V``, `1998 Q1` ``%Y Q%q``), for writing timestamps back in it; None
      for other time values (`trellis_ts.data.io.dates.format_times`).
    """

    format: str
    time_col: Any = None
    id_col: Any = None
    target_col: Any = None
    index_name: Any = None
    columns: tuple | None = None
    past_covariates: tuple = ()
    future_covariates: tuple = ()
    static_covariates: tuple = ()
    time_format: str | None = None

    @property
    def time_in_index(self) -> bool:
        """Whether the frame's time is its index rather than a column (wide frames only)."""
        return self.format == "wide" and self.time_col is None

    @property
    def covariates(self) -> tuple:
        """Every covariate column, past then future then static."""
        return self.past_covariates + self.future_covariates + self.static_covariates

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FrameLayout:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
