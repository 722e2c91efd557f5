"""Read one frame of every file in ../shared/data/realus through sonoedge.runtime.readers.

For a base (runtime-only) install, which has no pytest: ``python tests/runtime/realus_smoke.py [FOLDER]``.
Prints one line per file and exits 1 when any file fails (the pytest twin is
tests/runtime/test_readers.py::test_every_realus_file_probes_and_reads)."""
from __future__ import annotations

import sys
from pathlib import Path

from sonoedge.runtime import readers


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "realus"
    failed = 0
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SOURCES.md")
    for path in files:
        try:
            info = readers.probe(path)
            frame = readers.read_image(path)
            print(f"ok   {path.relative_to(root)}: {info.kind} {frame.shape} {frame.dtype}")
        except Exception as exc:  # report every file, then fail
            failed += 1
            print(f"FAIL {path.relative_to(root)}: {type(exc).__name__}: {exc}")
    print(f"{len(files) - failed} of {len(files)} files read")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
