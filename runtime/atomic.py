"""Write files so that a failure never leaves a half-written output (Standards: bad input)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

        with atomic_path(out / "table.csv") as tmp:
            tmp.write_text(csv_text)

    On an exception the temporary file is removed and ``target`` is untouched. The suffix is kept
    so writers that choose a codec by extension (OpenCV, matplotlib) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path, replace: bool = False, mark: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it takes ``target``'s place.

    ``target`` may be missing or an empty folder. A folder that is not empty is replaced only with
    ``replace`` (the caller has checked, with :mod:`sonoedge.runtime.outputs`, that it is an earlier
    output of its own); otherwise InputError, before anything is written. ``mark`` (the command's
    name) lists the written files in the folder's marker, so a later ``--overwrite`` knows them.
    """
    target = _real(target)
    _refuse_existing(target, replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if mark:
            from sonoedge.runtime.outputs import write_marker

            write_marker(tmp, mark)
        commit_dir(tmp, target, replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _real(target: str | Path) -> Path:
    """``target`` absolute with ``.`` and ``..`` gone, so ``-o .`` names a real folder and parent."""
    return Path(os.path.abspath(Path(target).expanduser()))


def _refuse_existing(target: Path, replace: bool) -> None:
    from sonoedge.runtime.errors import InputError
    from sonoedge.runtime.outputs import holds_cwd

    if target.exists() and not target.is_dir():
        raise InputError(f"output folder {target} is a file; give a folder name")
    if target.is_dir() and holds_cwd(target):
        raise InputError(f"output folder {target} is (or holds) the current directory, which would be replaced; "
                         "give a new folder name")
    if target.is_dir() and any(target.iterdir()) and not replace:
        raise InputError(f"output folder {target} is not empty; pass --overwrite to replace an earlier output, "
                         "or choose a new or empty folder")


def commit_dir(tmp: Path, target: str | Path, replace: bool = False) -> None:
    """Move the finished folder ``tmp`` onto ``target`` (missing, empty, or with ``replace`` an
    earlier output); the old folder is removed only after the new one is in place."""
    target = _real(target)
    _refuse_existing(target, replace)
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / "previous")
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old / "previous", target)  # put the earlier output back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
