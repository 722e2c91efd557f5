"""Fixtures for cpp_bridge: a sanitizer build of the CMake project (once per session), channel names."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANITIZE = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
# halt_on_error: a UBSan report fails the test instead of scrolling by; leaks are errors too.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def _tools_missing() -> str | None:
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        return "no C++ compiler (c++, g++ or clang++) on PATH"
    return None


@pytest.fixture(scope="session")
def native_build(tmp_path_factory) -> Path:
    """cpp_bridge configured and built with AddressSanitizer + UBSan; returns the build folder."""
    missing = _tools_missing()
    if missing:
        pytest.skip(f"cannot build cpp_bridge: {missing}")
    build = tmp_path_factory.mktemp("cpp_bridge_build")
    configure = ["cmake", "-S", str(REPO / "cpp_bridge"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Debug",
                 f"-DCMAKE_C_FLAGS={SANITIZE}", f"-DCMAKE_CXX_FLAGS={SANITIZE}",
                 "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined",
                 "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined"]
    for step, log in ((configure, "configure.log"), (["cmake", "--build", str(build), "-j", "2"], "build.log")):
        run = subprocess.run(step, capture_output=True, text=True)
        (build / log).write_text(run.stdout + run.stderr)
        assert run.returncode == 0, f"{' '.join(step[:3])} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return build


@pytest.fixture
def sanitizer_env() -> dict[str, str]:
    return {**os.environ, **SANITIZER_ENV}


@pytest.fixture
def channel_name() -> str:
    """A fresh channel name; its shared object is removed after the test whatever happened."""
    name = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    shm = Path("/dev/shm") / f"sonoedge-{name}"
    if shm.exists():
        shm.unlink()
