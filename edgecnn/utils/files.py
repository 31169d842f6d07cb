"""Atomic file writes: a temporary file in the destination folder, then a rename, so a
failure or Ctrl-C never leaves a half-written file at the destination."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile

from ..errors import EdgecnnError


def check_output_path(path: str) -> str:
    """The absolute output path; its folder must exist and be writable."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise EdgecnnError(f"output folder {folder} does not exist; create it or choose another "
                           f"path")
    if os.path.isdir(path):
        raise EdgecnnError(f"output path {path} is a folder; give a file name")
    if not os.access(folder, os.W_OK):
        raise EdgecnnError(f"output folder {folder} is not writable")
    return path


def atomic_write_bytes(path: str, data: bytes) -> None:
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path),
                               suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path`` for a writer that takes a file name (e.g.
    ``Model.save_weights``); renamed to ``path`` when the block succeeds, removed when it
    fails or is interrupted."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
