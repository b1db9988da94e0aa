"""The checkpoint folder of `trellis-ts fit`: `<model-dir>.checkpoints`, holding `last.ckpt`.

Torch-free, so that the command line checks the folder before any model code loads. The folder
is the toolkit's own: one that holds anything else (files it did not write) or is a symbolic
link is refused before training, and after the model is saved only the files it wrote are
removed (then the folder, if that left it empty). Nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from trellis_ts.errors import ConfigError

__all__ = ["CHECKPOINT_FILE", "check_checkpoint_dir", "is_own_file", "remove_checkpoints"]

CHECKPOINT_FILE = "last.ckpt"
# A checkpoint is written as .last.ckpt.<12 hex>.tmp and renamed over last.ckpt (training.py).
STAGING = re.compile(r"^\.last\.ckpt\.[0-9a-f]{12}\.tmp$")


def is_own_file(name: str) -> bool:
    """Whether a file name in the checkpoint folder is one trellis-ts writes."""
    return name == CHECKPOINT_FILE or bool(STAGING.match(name))


def check_checkpoint_dir(folder: Path, option: str = "--model-dir") -> None:
    """ConfigError unless `folder` is absent or a real folder holding only the toolkit's files."""
    if folder.is_symlink():
        raise ConfigError(
            f"{folder} is a symbolic link; fit keeps its checkpoint in a folder of its own beside "
            f"{option} and removes it when done: remove the link or choose another {option}"
        )
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(
            f"{folder} exists and is not a folder; fit keeps its checkpoint there: move it away or "
            f"choose another {option}"
        )
    foreign = sorted(p.name for p in folder.iterdir() if not is_own_file(p.name) or not p.is_file())
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ConfigError(
            f"{folder} holds files trellis-ts did not write ({shown}); fit keeps its checkpoint "
            f"there and removes the folder when done: move them away or choose another {option}"
        )


def remove_checkpoints(folder: Path) -> None:
    """Delete the toolkit's files in `folder`, then the folder if nothing else is left."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for path in folder.iterdir():
        if is_own_file(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: someone else's files stay
        folder.rmdir()
