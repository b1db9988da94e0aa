"""Output files of the command line: checked before any work, never destroying anything.

* A path through a symlink writes the file the link points to (the link stays a link).
* A regular file is written to a temporary file beside it and renamed into place only when
  every output of the command succeeded (nothing partial is left); it keeps its permissions.
* A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is written directly,
  never replaced; a directory, a socket or a block device is refused.
* An output that is the input file is refused unless `--force`; two outputs naming one file too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from trellis_ts.errors import ConfigError

__all__ = ["check_outputs", "staged_outputs"]


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _direct(path: Path) -> bool:
    """True for an existing character device or FIFO: written in place, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_outputs(*, inputs: tuple[Path | None, ...] = (), force: bool = False,
                  **paths: Path | None) -> None:  # fmt: skip
    """Fail before any work when an output cannot be written or would destroy an input."""
    from trellis_ts.plotting import check_plot_path

    seen: dict[Path, str] = {}
    sources = [_real(p) for p in inputs if p is not None and Path(p).exists()]
    for option, path in paths.items():
        if path is None:
            continue
        flag = f"--{option.replace('_', '-')}"
        real = _real(path)
        if real.exists():
            mode = os.stat(real).st_mode
            if stat.S_ISDIR(mode):
                raise ConfigError(f"{flag} {path} is a directory; pass a file name")
            if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
                raise ConfigError(
                    f"{flag} {path} is not a regular file, a character device or a pipe; pass a "
                    "file name"
                )
        elif not real.parent.is_dir():
            raise ConfigError(
                f"{flag} {path}: directory {real.parent} does not exist; create it first"
            )
        if real in sources and not _direct(real) and not force:
            raise ConfigError(
                f"{flag} {path} is the input file: writing it would replace your data; pass "
                "another path (or --force to replace the input)"
            )
        if real in seen and not _direct(real):
            raise ConfigError(f"{flag} and {seen[real]} name the same file {path}; pass two paths")
        seen[real] = flag
        if option == "plot":
            check_plot_path(path)


@contextlib.contextmanager
def staged_outputs() -> Iterator[Callable[[Path, Callable[[Path], None]], None]]:
    """`stage(path, write)` writes to a temporary file beside `path` (beside the file a symlink
    points to); all are renamed into place when the block succeeds and removed when it fails,
    so nothing partial is left. Character devices and FIFOs are written directly."""
    staged: list[tuple[Path, Path]] = []

    def stage(path: Path, write: Callable[[Path], None]) -> None:
        real = _real(path)
        if _direct(real):
            write(real)
            return
        tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp{real.suffix}")
        staged.append((tmp, real))
        write(tmp)

    try:
        yield stage
        for tmp, real in staged:
            if real.is_file():
                shutil.copymode(real, tmp)  # a replaced file keeps its permissions
            os.replace(tmp, real)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
