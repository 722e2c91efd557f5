"""SIGHUP with every kind of bad bundle against ONE running ``sonoedge serve``.

Each bad bundle passes its hashes (manifest.json rewritten, then bundle.sha256 rewritten with the
manifest module's own helpers: the ``rehash`` fixture), so what refuses it is the load itself. After each: the daemon is
alive, one ``reload_failed`` JSON line names the bundle and the reason, and /metrics shows frames
still flowing with the old model; a good bundle then still reloads, and SIGTERM stops the daemon
within the stop timeout with exit status 0.
"""
from __future__ import annotations

import io
import shutil
import signal
import tarfile
from pathlib import Path

import cv2
import numpy as np


def _copy(good: Path, root: Path, rehash, edit=None) -> Path:
    shutil.copytree(good, root)
    return rehash(root, edit)


def _set(path: str, value):
    """An edit that sets the manifest field at dotted ``path`` to ``value``."""
    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    return edit


def _two_channel_onnx(path: Path) -> None:
    """A model whose output has 2 channels for a 1-channel input (Concat of the input with itself)."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2, "height", "width"])
    graph = helper.make_graph([helper.make_node("Concat", ["input", "input"], ["output"], axis=1)], "two", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def bad_bundles(tmp: Path, good: Path, bundle_factory, rehash) -> list[tuple[str, Path, str, str]]:
    """(case, bundle path, extra [enhancer] lines, a piece of the expected reason)."""
    cases: list[tuple[str, Path, str, str]] = []

    def add(name: str, edit=None, reason: str = "", enhancer: str = "", path: Path | None = None) -> None:
        cases.append((name, path if path is not None else _copy(good, tmp / name, rehash, edit), enhancer, reason))

    add("channels", _set("model.channels", 3), "channels")
    add("stride-0", _set("model.stride", 0), "model.stride")
    add("stride-1", _set("model.stride", 1), "stride")
    add("stride-as-string", _set("model.stride", "4"), "model.stride")
    add("size-range-as-strings", _set("model.size_range.min", ["a", 16]), "size_range")
    add("region-as-number", _set("preprocess.region", 5), "preprocess.region")
    add("model-as-list", _set("model", []), "model")
    add("passed-as-string", _set("precisions.fp32.passed", "yes"), "passed")
    add("size-range-zero", _set("model.size_range", {"min": [0, 0], "opt": [16, 16], "max": [32, 32]}), "size_range")
    add("huge-opt", _set("model.size_range", {"min": [16, 16], "opt": [100000, 100000], "max": [100000, 100000]}),
        "warm-up limit")
    add("absurd-size-range", _set("model.size_range", {"min": [9000, 9000], "opt": [9000, 9000],
                                                       "max": [10**9, 10**9]}), "size_range")
    add("huge-warmup-config", reason="warmup_size", enhancer="warmup_size = [100000, 100000]", path=good)
    add("warmup-outside-range", reason="outside the bundle's size range", enhancer="warmup_size = [3000, 3000]", path=good)
    add("three-value-warmup", reason="expected 2 values", enhancer="warmup_size = [16, 16, 16]", path=good)

    root = tmp / "not-onnx"
    shutil.copytree(good, root)
    (root / "model.onnx").write_bytes(b"this is not an ONNX model\n" * 40)
    add("not-onnx", reason="ONNX Runtime cannot load", path=rehash(root))

    root = tmp / "output-shape"
    shutil.copytree(good, root)
    _two_channel_onnx(root / "model.onnx")
    add("output-shape", reason="not (1, 1,", path=rehash(root))

    add("nan-model", reason="NaN", path=bundle_factory(tmp / "nan-model", variant="nan"))

    dotdot = tmp / "dotdot.tar"
    with tarfile.open(dotdot, "w") as tar:
        tar.add(good, arcname="tiny")
        tar.addfile(tarfile.TarInfo("../evil.txt"), io.BytesIO(b""))
    add("tar-dotdot", reason="tar member", path=dotdot)

    whole = tmp / "whole.tar"
    with tarfile.open(whole, "w") as tar:
        tar.add(good, arcname="tiny")
    truncated = tmp / "truncated.tar"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    add("tar-truncated", reason="cannot be unpacked", path=truncated)

    root = tmp / "symlinked"
    shutil.copytree(good, root)
    outside = tmp / "outside.onnx"
    shutil.copy(root / "model.onnx", outside)
    (root / "model.onnx").unlink()
    (root / "model.onnx").symlink_to(outside)
    add("symlinked-model", reason="not a plain file", path=root)

    (tmp / "empty").mkdir()
    add("empty-folder", reason="has no bundle.sha256", path=tmp / "empty")
    add("missing-folder", reason="does not exist", path=tmp / "missing")
    return cases


def _frames(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 200, (64, 96), dtype=np.uint8))
    return folder


def test_every_bad_reload_is_refused_and_the_old_model_keeps_serving(tmp_path, tiny_bundle, bundle_factory, rehash,
                                                                     served, daemon_config):
    good = tmp_path / "good"
    shutil.copytree(tiny_bundle, good)
    (tmp_path / "bad").mkdir()
    cases = bad_bundles(tmp_path / "bad", good, bundle_factory, rehash)
    source = f"replay://{_frames(tmp_path / 'frames')}?fps=40&loop=1"
    scratch = tmp_path / "tmpdir"  # the daemon's temporary folder: .tar bundles are unpacked there
    scratch.mkdir()
    d = served(daemon_config(tmp_path, source, good), env={"TMPDIR": str(scratch)})
    first = d.wait_health(lambda code, h: code == 200 and h["frames_out"] > 3)
    served_sha = first["sha256"]

    for n, (case, bundle, enhancer, reason) in enumerate(cases, 1):
        daemon_config(tmp_path, source, bundle, enhancer=enhancer)
        before = d.metric("frames_out_total")
        d.proc.send_signal(signal.SIGHUP)
        failed = d.wait_count("reload_failed", n)
        assert d.proc.poll() is None, f"{case}: the daemon died"
        assert failed["bundle"] == str(bundle), case
        assert reason in failed["error"], f"{case}: {failed['error']}"
        assert d.count("reload_failed") == n and d.count("reloaded") == 0, f"{case}: one line per failure"
        h = d.wait_health(lambda code, h: code == 200 and h["frames_out"] > before + 3)
        assert h["sha256"] == served_sha and h["state"] == "serving", case

    # a good bundle still reloads after all of that, and the config's [enhancer] goes with it
    daemon_config(tmp_path, source, bundle_factory(tmp_path / "good-2", seed=9))
    d.proc.send_signal(signal.SIGHUP)
    reloaded = d.wait_for("reloaded")
    assert reloaded["previous_sha256"] == served_sha and reloaded["sha256"] != served_sha
    assert d.health()[1]["reloads"] == {"ok": 1, "failed": len(cases)}

    assert d.stop() == 0
    assert d.stop_s < 1.5  # stop_timeout_s = 1 s, plus the interpreter's exit
    not_json = [line for line in d.raw if not line.startswith("{")]
    assert not not_json, "".join(not_json)  # no traceback, no stray output: JSON lines only
    assert not list(scratch.glob("sonoedge-*")), "every unpacked .tar was removed"
