"""The native ctest suite (ring wrap-around, newest-frame reads under a fast producer, header
validation, killed and frozen peers re-attached, the in-process enhancer's manifest reading and
pre/post-processing, the C example against the C echo peer, a malicious peer forging headers and
counters), built and run
under AddressSanitizer + UndefinedBehaviorSanitizer, so CI (which runs pytest only) runs it."""
import subprocess

import pytest

pytestmark = pytest.mark.slow  # a CMake build: ~10-30 s on two shared cores


def test_ctest_is_clean_under_asan_and_ubsan(native_build, sanitizer_env):
    run = subprocess.run(["ctest", "--output-on-failure", "--timeout", "60"], cwd=native_build, env=sanitizer_env,
                         capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "100% tests passed" in out
    for name in ("test_ring", "test_validation", "test_peer", "test_enhancer_parts", "example_play_echo", "test_faults"):
        assert name in out, f"ctest did not run {name}"
    for report in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert report not in out, out[-6000:]


def test_build_is_warning_free_and_says_whether_it_builds_the_tensorrt_enhancer(native_build):
    configure = (native_build / "configure.log").read_text()
    assert "sonoedge bridge: TensorRT" in configure  # found (building) or not found (skipping), never silent
    build = (native_build / "build.log").read_text()
    assert "warning:" not in build, build[-4000:]


def test_fault_suite_has_no_crash_and_no_hang_under_asan_and_ubsan(native_build, sanitizer_env):
    run = subprocess.run([str(native_build / "test_faults")], env=sanitizer_env, capture_output=True, text=True,
                         timeout=300)
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert " 0 failed, 0 crashes, 0 hangs" in summary, summary
