"""One exception family for user mistakes.

Every error a user can cause (bad data, bad configuration, a broken model directory) is a
`TrellisUserError`. Its message names the offending value and says how to fix it; the command
line prints it as one line and exits with status 2. Anything else escaping the library is a bug.
`positive_int` is the one check (and message) every positive-integer option shares.
"""

from __future__ import annotations

from numbers import Integral


class TrellisUserError(ValueError):
    """A mistake in the user's data, configuration or files (never a bug in the library)."""


class DataError(TrellisUserError):
    """The input data cannot be used as given (missing columns, NaNs, too short, ...)."""


class ConfigError(TrellisUserError):
    """A hyperparameter or option has an invalid value."""


class ModelFileError(TrellisUserError):
    """A model directory is missing, corrupted, or from an incompatible format version."""


class OutputError(TrellisUserError):
    """A file or directory could not be written (a full disk, no permission); nothing partial
    was left in its place."""


class TrainingError(TrellisUserError):
    """Training could not produce a usable model with these settings (e.g. the loss diverged)."""


def positive_int(value: object, name: str, example: int | None = None) -> int:
    """``value`` as an int, or a ConfigError naming ``name`` (and ``example``, a value that
    would do) if it is not a positive integer; numpy integers pass, bools and floats do not."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        hint = "" if example is None else f", e.g. {example}"
        raise ConfigError(f"{name}={value!r} must be a positive integer{hint}.")
    return int(value)


class Interrupted(KeyboardInterrupt):
    """Training was stopped by a signal (SIGINT or SIGTERM); `signum` says which.

    A KeyboardInterrupt, so code that cleans up after Ctrl-C (Optuna marks the trial failed)
    does so for SIGTERM too. The command line exits with 128 + `signum` (130, 143).
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")
