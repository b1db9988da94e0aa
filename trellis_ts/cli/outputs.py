"""Output files of the command line: checked before any work, never destroying anything.

* A path through a symlink writes the file the link points to (the link stays a link).
* A regular file is written to a temporary file beside it and renamed into place only when
  every output of the command succeeded (nothing partial is left); it keeps its permissions.
  The temporary file is created exclusively under an unpredictable name (`mkstemp`) and written
  through its own descriptor, so a link planted in the folder is never followed.
* A character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is written directly,
  never replaced; a directory, a socket or a block device is refused.
* An output that is an input file (also through a link) is refused unless `--force`; two outputs
  naming one file too; so is any output inside the model directory (never with `--force`).
* A write that fails (a full disk) is one `OutputError` naming the file; nothing is left.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from trellis_ts.errors import ConfigError, OutputError

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


def _same(a: Path, b: Path) -> bool:
    """Whether two existing paths are one file (one name, a symlink or a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outputs(
    *,
    inputs: tuple[Path | None, ...] = (),
    force: bool = False,
    model_dir: Path | None = None,
    **paths: Path | None,
) -> None:
    """Fail before any work when an output cannot be written or would destroy an input.

    `inputs` (the data, --future) may be replaced with `force`; the files of `model_dir` (read
    by predict and evaluate, written by forecast) never are."""
    from trellis_ts.plotting import check_plot_path

    seen: dict[Path, str] = {}
    sources = [Path(p) for p in inputs if p is not None and Path(p).exists()]
    model_real = None if model_dir is None else _real(model_dir)
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
        if (
            model_real is not None
            and not _direct(real)
            and (
                _inside(real, model_real)
                or _inside(Path(os.path.abspath(path)), model_real)
                or any(_same(real, f) for f in _model_files(model_real))
            )
        ):
            raise ConfigError(
                f"{flag} {path} is inside the model directory {model_dir}: writing it would damage "
                "the model; pass a path outside it"
            )
        if any(_same(real, src) for src in sources) and not _direct(real) and not force:
            raise ConfigError(
                f"{flag} {path} is the input file: writing it would replace your data; pass "
                "another path (or --force to replace the input)"
            )
        if real in seen and not _direct(real):
            raise ConfigError(f"{flag} and {seen[real]} name the same file {path}; pass two paths")
        seen[real] = flag
        if option == "plot":
            check_plot_path(path)


def _model_files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    except OSError:
        return []


def _default_mode() -> int:
    """The mode a new file gets from open(): 0o666 less the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fd_path(fd: int, fallback: Path) -> Path:
    """A name that opens the file of `fd` itself, whatever its directory entry becomes (Linux's
    /proc/self/fd); elsewhere the temporary name."""
    proc = Path(f"/proc/self/fd/{fd}")
    return proc if proc.exists() else fallback


@contextlib.contextmanager
def staged_outputs() -> Iterator[Callable[[Path, Callable[[Path], None]], None]]:
    """`stage(path, write)` writes to a temporary file beside `path` (beside the file a symlink
    points to); all are renamed into place when the block succeeds and removed when it fails,
    so nothing partial is left. Character devices and FIFOs are written directly.

    The temporary file is made by `mkstemp` (O_EXCL, a random name: a planted link is never
    followed) and `write` receives a path to that very file. A failed write (a full disk)
    raises `OutputError` naming the output."""
    staged: list[tuple[int, Path, Path]] = []

    def stage(path: Path, write: Callable[[Path], None]) -> None:
        real = _real(path)
        if _direct(real):
            _written(path, write, real)
            return
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{real.name}.", suffix=f".tmp{real.suffix}", dir=real.parent
            )
        except OSError as exc:
            raise OutputError(_cannot_write(path, exc)) from None
        staged.append((fd, Path(name), real))
        _written(path, write, _fd_path(fd, Path(name)))

    try:
        yield stage
        for fd, tmp, real in staged:
            try:
                mode = os.stat(real).st_mode if real.is_file() else None
                os.fchmod(fd, stat.S_IMODE(mode) if mode is not None else _default_mode())
                os.fsync(fd)
                if not _names(tmp, fd):
                    raise OutputError(
                        f"the temporary file {tmp} was replaced by another program while writing "
                        f"{real}; nothing was written, run the command again"
                    )
                os.replace(tmp, real)
            except OSError as exc:
                raise OutputError(_cannot_write(real, exc)) from None
    finally:
        for fd, tmp, _ in staged:
            if _names(tmp, fd):  # not renamed into place: remove it (never another's file)
                tmp.unlink()
            os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` is (still) the file open as `fd`."""
    try:
        named, mine = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


def _written(path: Path, write: Callable[[Path], None], target: Path) -> None:
    try:
        write(target)
    except OSError as exc:
        raise OutputError(_cannot_write(path, exc)) from None


def _cannot_write(path: Path, exc: OSError) -> str:
    return (
        f"cannot write {path} ({exc.strerror or exc}); free some space or check the "
        "folder's permissions, then run the command again (nothing was written)"
    )
