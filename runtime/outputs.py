"""Where a command may write: the one output-safety rule of every sonoedge command.

No command deletes or overwrites what it did not create:

- an output that exists already (a file, or a folder that is not empty) is refused unless the user
  passes ``--overwrite``;
- with ``--overwrite``, a command that fills a folder with files of fixed names (a report, a demo,
  a training run) replaces only those files and leaves every other file in the folder alone;
  a command that writes a whole folder (PNG frames, a bundle, a phantom data set) replaces it
  only when every file in it is one a sonoedge command wrote there (listed in the folder's
  marker, :data:`MARKER`, or in a bundle's manifest), never a folder that holds anything else;
- an output is never an input, never inside an input folder, and a whole-folder output never
  holds an input;
- a folder is never replaced while it is (or holds) the current directory.

Every refusal is an :class:`InputError`: one sentence naming the path and the fix.

    check_file("out.png", inputs=["in.png"], overwrite=args.overwrite)
    check_fill_folder("report/", ["table.md", "table.csv"], inputs=[low, high], overwrite=False)
    check_whole_folder("frames/", inputs=["clip.mp4"], overwrite=True, foreign=marked_foreign)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from sonoedge.runtime.errors import InputError

MARKER = ".sonoedge-output.json"  # the files a sonoedge command wrote into a whole-folder output
OVERWRITE = "--overwrite"

PathLike = str | os.PathLike


def resolved(path: PathLike) -> Path:
    """``path`` absolute, with ``~``, ``.``, ``..`` and symbolic links resolved."""
    return Path(path).expanduser().resolve()


def check_not_input(output: PathLike, inputs: Iterable[PathLike | None], may_hold_inputs: bool = True) -> None:
    """Refuse an output that is an input, lies inside an input folder or (``may_hold_inputs``
    False: a folder that will be replaced) holds an input."""
    out = resolved(output)
    for given in inputs:
        if given is None or str(given) == "" or "://" in str(given):
            continue
        src = resolved(given)
        if out == src or (out.exists() and src.exists() and os.path.samefile(out, src)):
            raise InputError(f"output {output} is the input {given}; choose another output path so the input is kept")
        if src.is_dir() and src in out.parents:
            raise InputError(f"output {output} is inside the input folder {given}; write it outside that folder")
        if not may_hold_inputs and out in src.parents:
            raise InputError(f"output folder {output} holds the input {given}; choose a folder that does not contain it")


def check_writable(folder: PathLike, output: PathLike | None = None) -> None:
    """Refuse a folder that cannot be made or written (a file in its way, a read-only place)."""
    folder = Path(folder).expanduser().absolute()
    named = output if output is not None else folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write {named}: {existing} is a file, not a folder; choose another output path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {named}: {existing} is read-only or not writable by this user; "
                         "choose a writable output path")


def check_file(output: PathLike, inputs: Iterable[PathLike | None] = (), overwrite: bool = False) -> Path:
    """A single-file output: not an input, not an existing folder, not an existing file unless
    ``overwrite``, and its folder writable. Returns the path as given."""
    path = Path(output)
    check_not_input(path, inputs)
    if path.is_dir():
        raise InputError(f"output {output} is a folder; give a file name inside it, e.g. {path / ('out' + (path.suffix or '.png'))}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InputError(f"output {output} exists already; pass {OVERWRITE} to replace it, or choose another name")
    check_writable(path.parent, path)
    return path


def _non_empty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def check_fill_folder(output: PathLike, names: Iterable[str], inputs: Iterable[PathLike | None] = (),
                      overwrite: bool = False) -> Path:
    """A folder the command fills with files of fixed ``names``: refused when it is a file, when it
    is not empty (unless ``overwrite``, which replaces only ``names``), or when it is or holds an input
    among ``names``. Returns the path as given."""
    path = Path(output)
    check_not_input(path, inputs)
    for name in names:
        check_not_input(path / name, inputs)
    if path.exists() and not path.is_dir():
        raise InputError(f"output folder {output} is a file; give a folder name")
    if _non_empty(path) and not overwrite:
        shown = ", ".join(names)
        raise InputError(f"output folder {output} is not empty; pass {OVERWRITE} to replace the files this command writes "
                         f"there ({shown}; nothing else is touched), or choose a new or empty folder")
    check_writable(path, path)
    return path


def marked_foreign(folder: Path) -> list[Path]:
    """Files in ``folder`` that its :data:`MARKER` does not list (all of them when it has none)."""
    listed: set[str] = set()
    marker = folder / MARKER
    if marker.is_file():
        try:
            listed = set(json.loads(marker.read_text()).get("files", []))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            listed = set()
    return [p for p in sorted(folder.rglob("*"))
            if not p.is_dir() and p != marker and p.relative_to(folder).as_posix() not in listed]


def write_marker(folder: Path, command: str) -> None:
    """List every file under ``folder`` in its :data:`MARKER` (call last, before the folder is committed)."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() and p.name != MARKER)
    (folder / MARKER).write_text(json.dumps({"written_by": command, "files": files}, indent=1) + "\n")


def holds_cwd(folder: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current directory was removed
        return False
    target = resolved(folder)
    return cwd == target or target in cwd.parents


def check_whole_folder(output: PathLike, inputs: Iterable[PathLike | None] = (), overwrite: bool = False,
                       foreign: Callable[[Path], list[Path]] = marked_foreign) -> Path:
    """A folder the command writes whole and moves into place: refused when it is a file, the
    current directory, not empty (unless ``overwrite`` and ``foreign`` finds no file sonoedge did not
    write), or when it is, lies inside or holds an input. Returns the path as given."""
    path = Path(output)
    check_not_input(path, inputs, may_hold_inputs=False)
    if path.exists() and not path.is_dir():
        raise InputError(f"output folder {output} is a file; give a folder name")
    if path.exists() and holds_cwd(path):
        raise InputError(f"output folder {output} is (or holds) the current directory, which this command would "
                         "replace; give a new folder name such as ./enhanced")
    if _non_empty(path):
        if not overwrite:
            raise InputError(f"output folder {output} is not empty; pass {OVERWRITE} to replace an earlier output of "
                             "this command, or choose a new or empty folder")
        others = foreign(path)
        if others:
            raise InputError(f"output folder {output} holds files sonoedge did not write there (such as "
                             f"{others[0].relative_to(path)}), so {OVERWRITE} does not replace it; move them away "
                             "or choose a new folder")
    check_writable(path.parent, path)
    return path


__all__ = ["MARKER", "check_file", "check_fill_folder", "check_not_input", "check_whole_folder", "check_writable",
           "holds_cwd", "marked_foreign", "resolved", "write_marker"]
