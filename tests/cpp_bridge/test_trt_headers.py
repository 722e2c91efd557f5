"""cpp_bridge's TensorRT enhancer against the public headers of every TensorRT generation a device
profile names (8.6 for JetPack 5's 8.5, 10.3 for JetPack 6, 11.1), without a GPU.

For each generation: trt_enhancer.cpp (and the plain C++ it uses) is compiled with
``-Wall -Wextra -Wpedantic -Werror`` (TensorRT and CUDA headers as system headers, as CMake
includes them), linked with a small test main against a stub library that exports the C symbols
the objects import (``nm -u``: createInferRuntime_INTERNAL and the CUDA runtime calls), and run:
argument checks, the bundle check, and the engine-load failure path. CUDA headers: the real ones
when found, else the compile-time stand-in in tests/cpp_bridge/trt_stub/ (marked as such).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "cpp_bridge"
HERE = Path(__file__).resolve().parent / "trt_stub"
HEADERS = REPO.parent / "shared" / "third_party" / "tensorrt"
GENERATIONS = ("v8.6.1", "v10.3.0", "v11.1")
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]


def _cuda_include() -> Path:
    candidates = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", *sorted(map(str, Path("/usr/local").glob("cuda-*")))]
    for root in candidates:
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    return HERE  # the compile-time stand-in


def unresolved(symbols) -> list[str]:
    """The symbols a fresh process (libc, libstdc++ via python) does not provide: what the stub must export."""
    code = "import ctypes, sys; h = ctypes.CDLL(None); print(' '.join(s for s in sys.argv[1:] if not hasattr(h, s)))"
    return sorted(_run([sys.executable, "-c", code, *sorted(set(symbols))]).stdout.split())


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"
    return done


@pytest.mark.parametrize("generation", GENERATIONS)
def test_trt_enhancer_compiles_links_and_runs_against_each_generation(generation, tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or shutil.which("gcc") is None or shutil.which("nm") is None:
        pytest.skip("needs g++, gcc and nm (binutils) to compile the TensorRT enhancer")
    include = HEADERS / generation / "include"
    if not (include / "NvInfer.h").is_file():
        pytest.skip(f"TensorRT {generation} headers are not at {include} (../shared/third_party/tensorrt)")
    flags = ["-std=c++17", "-fPIC", *WARNINGS, f"-I{BRIDGE / 'include'}", f"-I{BRIDGE / 'src'}",
             "-isystem", str(include), "-isystem", str(_cuda_include())]
    objects = []
    for source in ("trt_enhancer.cpp", "manifest.cpp", "sha256.cpp", "frame_math.cpp"):
        obj = tmp_path / (source + ".o")
        _run([cxx, *flags, "-c", str(BRIDGE / "src" / source), "-o", str(obj)])
        objects.append(obj)
    undefined = [line.split()[-1] for line in _run(["nm", "-u", str(objects[0])]).stdout.splitlines() if line.strip()]
    symbols = unresolved(s for s in undefined if not s.startswith("_") and "@" not in s)
    assert "createInferRuntime_INTERNAL" in symbols and "cudaStreamCreate" in symbols, symbols
    stub = tmp_path / "stub.c"
    stub.write_text("".join(f"int {name}(void) {{ return 0; }}\n" for name in symbols))  # NULL runtime, cudaSuccess
    _run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libtrtstub.so"), str(stub)])
    exe = tmp_path / "trt_enhancer_check"
    _run([cxx, *flags, str(HERE / "main.cpp"), *map(str, objects), f"-L{tmp_path}", "-ltrtstub",
          f"-Wl,-rpath,{tmp_path}", "-o", str(exe)])
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    from sonoedge.runtime.bundle import default_bundle_path

    out = _run([str(exe), str(default_bundle_path()), str(plan)]).stdout
    assert "trt_enhancer ok" in out
