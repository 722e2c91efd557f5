"""The structure guard: it trips on models that erase or invent structure, run through the real
pipeline on real frames (the output is the input, flagged), never on a faithful one, and it counts
and logs what it does."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import cv2
import numpy as np
import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.readers import iter_frames
from sonoedge.runtime.region import detect_region
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.guard import REASONS, GuardConfig, StructureGuard
from sonoedge.runtime.stream.pipeline import Pipeline, PipelineConfig
from sonoedge.runtime.stream.sinks import NullSink
from sonoedge.runtime.stream.sources import FileSource, FramesSource

# Real clips whose imaging region is mostly tissue at its centre (where the broken "disc" model
# paints its black disc): a handheld phantom loop and a console curvilinear phantom sequence.
TISSUE_CLIPS = ("clips/itkpocus/butterfly-ocular-phantom.mp4", "clips/plus_toolkit/UltrasonixCurvilinearScanConvertedData.igs.mha")


def _crop(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The imaging region's bounding box of a real frame and the region mask inside it."""
    region = detect_region(image)
    x0, y0, x1, y1 = region.bbox
    return image[y0:y1, x0:x1], region.mask[y0:y1, x0:x1].astype(np.uint8)


def _run(path, model, cfg: EnhancerConfig, every: int = 1, limit: int = 12) -> tuple[list[Frame], list[Frame], Enhancer]:
    """Frames of ``path`` (every ``every``-th, at most ``limit``) through the real pipeline; (inputs, outputs, enhancer)."""
    images = list(itertools.islice(iter_frames(path), 0, every * limit, every))
    enhancer = Enhancer(model, cfg)
    outs: list[Frame] = []
    Pipeline(lambda: FramesSource(images, name=str(path)), enhancer, NullSink(), PipelineConfig(mode="blocking"),
             on_frame=outs.append).run()
    return images, outs, enhancer


@pytest.fixture(scope="module")
def broken_model(broken_bundle):
    models = {}

    def get(kind: str):
        if kind not in models:
            models[kind] = load_model(EnhancerConfig(bundle=str(broken_bundle(kind))))
        return models[kind]

    yield get
    for m in models.values():
        m.close()


# -- the check itself, on real frames ------------------------------------------------------------
@pytest.mark.realus
def test_faithful_changes_pass_and_broken_ones_trip(realus):
    """On a real frame: identity and legitimate gain/contrast/speckle changes pass; an inversion, a
    black disc over tissue and a flat output trip, each with its reason."""
    grey, mask = _crop(next(iter_frames(realus / TISSUE_CLIPS[1])))
    guard = StructureGuard()
    for name, out in {"identity": grey, "median": cv2.medianBlur(grey, 5),
                      "gamma 1.6": (255 * (grey / 255.0) ** 1.6).astype(np.uint8),
                      "clahe": cv2.createCLAHE(2.0, (8, 8)).apply(grey)}.items():
        verdict = guard.check(grey, out, mask)
        assert not verdict.tripped, (name, verdict)
        assert verdict.cells > 1000 and verdict.correlation > 0.9, (name, verdict)
    disc = grey.copy()
    cv2.circle(disc, (grey.shape[1] // 2, grey.shape[0] // 2), min(grey.shape) // 6, 0, -1)
    verdict = guard.check(grey, disc, mask)
    assert verdict.reason == "dark_over_tissue" and verdict.dark_share > 0.02
    verdict = guard.check(grey, 255 - grey, mask)
    assert verdict.tripped and verdict.correlation < -0.9
    verdict = guard.check(grey, np.full_like(grey, 90), mask)
    assert verdict.tripped  # a flat output kept none of the input's map
    assert guard.check(grey, np.full_like(grey, int(grey.mean())), None).correlation == 0.0


def test_a_perfect_enhancer_never_trips_on_phantom_pairs():
    """The simulator's high-end frame as the output of its handheld frame: cysts that clutter and
    haze fill in the input turn black, side-lobe smear leaves anechoic bands. An enhancer that did
    exactly what it is trained for must never be stopped (fresh seeds, not those of the thresholds)."""
    from sonoedge.train.phantom import PhantomConfig, simulate_clip

    guard = StructureGuard()
    verdicts = []
    for seed in range(3000, 3012):
        low, high = simulate_clip(seed, PhantomConfig(size=(256, 256)), frames=2)
        for lo, hi in zip(low, high):
            grey, mask = _crop(lo)
            x0, y0, x1, y1 = detect_region(lo).bbox
            verdicts.append(guard.check(grey, np.ascontiguousarray(hi[y0:y1, x0:x1]), mask))
    assert len(verdicts) == 24 and not [v for v in verdicts if v.tripped]


def test_bright_over_dark_and_the_limits_of_judging():
    rng = np.random.default_rng(0)
    grey = np.zeros((256, 256), np.uint8)
    grey[:, :128] = rng.integers(60, 120, (256, 128), dtype=np.uint8)  # tissue left, anechoic right
    out = grey.copy()
    out[64:192, 160:224] = 150  # echoes invented in the anechoic half
    verdict = StructureGuard().check(grey, out)
    assert verdict.reason == "bright_over_dark" and verdict.bright_share > 0.05
    # a flat input (a blank frame) has no map to correlate: not judged by correlation
    flat = np.full((128, 128), 70, np.uint8)
    assert math.isnan(StructureGuard().check(flat, flat[::-1].copy()).correlation)
    # a region too small to judge passes without a verdict
    tiny = StructureGuard().check(grey[:20, :20], 255 - grey[:20, :20])
    assert not tiny.tripped and tiny.cells == 0


def _reference_shares(guard: StructureGuard, grey: np.ndarray, out: np.ndarray, mask) -> tuple[float, float]:
    """The dark and bright shares with both flag maps always built (the check before its early-out)."""
    from sonoedge.runtime.stream.guard import _cells

    cfg, cell = guard.cfg, guard.cfg.cell_px
    rows, cols = grey.shape[0] // cell, grey.shape[1] // cell
    judged, _, n = guard._judged_cells(mask, rows, cols, cell)
    a, b = _cells(grey, rows, cols, cell), _cells(out, rows, cols, cell)
    dark = (a >= cfg.tissue_level) & (b <= cfg.black_level) & judged
    side = int(cfg.context_cells)
    dark &= a >= cfg.tissue_contrast * cv2.blur(a, (side, side), borderType=cv2.BORDER_REFLECT)
    bright = (a <= cfg.black_level) & (b >= cfg.tissue_level) & judged
    return guard._blobs(dark) / n, guard._blobs(bright) / n


def test_the_early_out_on_the_outputs_extremes_gives_the_full_verdict():
    """check() skips the flag maps when the output's darkest judged cell is above black_level (no
    dark cell) or its brightest below tissue_level (no bright cell): the same shares as building
    them, also for thresholds that are not float32 values and outputs whose extremes sit on them."""
    rng = np.random.default_rng(11)
    mask = np.zeros((160, 200), np.uint8)
    cv2.ellipse(mask, (100, 0), (150, 150), 0, 30, 150, 1, -1)
    for trial in range(60):
        cfg = GuardConfig(black_level=[10.0, 10.3, 9.7][trial % 3], tissue_level=[40.0, 40.3, 39.9][trial % 3])
        grey = cv2.GaussianBlur(rng.integers(0, 255, (160, 200), dtype=np.uint8), (0, 0), 5)
        grey = cv2.normalize(grey, None, 0, int(rng.integers(30, 255)), cv2.NORM_MINMAX)
        shift = int(rng.integers(-60, 60)) if trial % 2 else 0
        out = np.clip(grey.astype(np.int16) + shift, 0, 255).astype(np.uint8)
        grey[100:150, 20:100] = int(rng.integers(0, 14))  # an anechoic area near black_level
        out[40:100, 60:140] = int(rng.integers(0, 60))  # a blob near the thresholds
        out[100:150, 20:100] = int(rng.integers(30, 50))  # echoes near tissue_level over it
        for m in (mask, None):
            guard = StructureGuard(cfg)
            verdict = guard.check(grey, out, m)
            if verdict.cells >= cfg.min_cells:
                assert (verdict.dark_share, verdict.bright_share) == _reference_shares(guard, grey, out, m)


def test_sr_output_is_compared_at_its_own_scale():
    rng = np.random.default_rng(1)
    grey = cv2.GaussianBlur(rng.integers(0, 200, (128, 160), dtype=np.uint8), (0, 0), 6)
    grey = cv2.normalize(grey, None, 0, 200, cv2.NORM_MINMAX)
    up = np.repeat(np.repeat(grey, 4, axis=0), 4, axis=1)
    guard = StructureGuard()
    assert not guard.check(grey, up, None, scale=4).tripped
    assert guard.check(grey, 255 - up, None, scale=4).tripped


def test_config_errors_name_the_key():
    with pytest.raises(InputError, match="enhancer.guard.black_level"):
        StructureGuard(GuardConfig(black_level=50.0, tissue_level=40.0))
    with pytest.raises(InputError, match="enhancer.guard.cell_px"):
        StructureGuard(GuardConfig(cell_px=0))
    with pytest.raises(InputError, match="enhancer.guard.max_dark_share"):
        StructureGuard(GuardConfig(max_dark_share=float("nan")))


def test_trips_are_counted_every_time_and_logged_throttled(caplog, monkeypatch):
    guard = StructureGuard(GuardConfig(log_every_s=10.0))
    verdict = dataclasses.replace(StructureGuard().check(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)),
                                  reason="dark_over_tissue", dark_share=0.3)
    clock = [1000.0]
    monkeypatch.setattr("sonoedge.runtime.stream.guard.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="sonoedge.runtime.stream.guard"):
        for _ in range(50):
            guard.record(verdict, 1)
            clock[0] += 0.1  # 10 trips a second for 5 s: one line
        clock[0] += 6.0
        guard.record(verdict, 2)  # 11 s after the first line: the second, with the trips in between
    lines = [r for r in caplog.records if getattr(r, "event", "") == "guard_tripped"]
    assert len(lines) == 2
    assert lines[0].tripped_since_last_line == 1 and lines[1].tripped_since_last_line == 50
    assert guard.counts()["tripped"] == {"dark_over_tissue": 51, "bright_over_dark": 0, "decorrelated": 0}


# -- broken models through the real pipeline ------------------------------------------------------
@pytest.mark.realus
@pytest.mark.parametrize("kind", ["invert", "disc"])
@pytest.mark.parametrize("clip", TISSUE_CLIPS)
def test_a_broken_model_trips_and_the_input_goes_out_flagged(realus, broken_model, kind, clip):
    images, outs, enhancer = _run(realus / clip, broken_model(kind), EnhancerConfig(region="auto", marker=False),
                                  every=30, limit=5)
    assert len(outs) == len(images) > 0
    for image, out in zip(images, outs):
        assert out.passthrough and not out.enhanced
        assert out.meta["guard"] in REASONS and out.meta["passthrough_reason"].startswith("structure guard")
        assert np.array_equal(out.image, image)  # the clinician sees the input, untouched
    counts = enhancer.guard.counts()
    assert sum(counts["tripped"].values()) == counts["checked"] == len(images)
    if kind == "disc":
        assert counts["tripped"]["dark_over_tissue"] == len(images)


@pytest.mark.realus
def test_the_guard_switched_off_lets_a_broken_model_through(realus, broken_model):
    cfg = EnhancerConfig(region="auto", guard=GuardConfig(enabled=False))
    images, outs, enhancer = _run(realus / TISSUE_CLIPS[1], broken_model("invert"), cfg, limit=2)
    assert all(o.enhanced and not o.passthrough for o in outs)
    assert enhancer.guard.counts()["checked"] == 0


@pytest.mark.realus
def test_identity_never_trips_on_any_realus_clip(realus, broken_model):
    """Every frame of every real clip: a model that changes nothing is never stopped."""
    clips = sorted(p for p in (realus / "clips").rglob("*") if p.is_file() and p.parent.name != "frames_png")
    assert len(clips) >= 5
    model = broken_model("identity")
    for clip in clips:
        enhancer = Enhancer(model, EnhancerConfig(region="auto"))
        outs: list[Frame] = []
        source = FileSource(str(clip))
        Pipeline(lambda: source, enhancer, NullSink(), PipelineConfig(mode="blocking"), on_frame=outs.append).run()
        assert outs and all(o.enhanced and not o.passthrough for o in outs), clip.name
        assert enhancer.guard.counts()["checked"] == len(outs), clip.name


@pytest.mark.realus
def test_a_swap_keeps_the_counts_and_takes_the_new_thresholds(realus, broken_model):
    image = next(iter_frames(realus / TISSUE_CLIPS[1]))
    enhancer = Enhancer(broken_model("invert"), EnhancerConfig(region="auto"))
    assert enhancer(Frame(image, 0)).passthrough
    lenient = GuardConfig(min_correlation=-1.0, max_dark_share=1.0, max_bright_share=1.0)
    enhancer.swap(broken_model("invert"), EnhancerConfig(region="auto", guard=lenient))
    assert enhancer(Frame(image, 1)).enhanced
    counts = enhancer.guard.counts()
    assert counts["checked"] == 2 and sum(counts["tripped"].values()) == 1
    with pytest.raises(InputError):
        enhancer.swap(broken_model("identity"), EnhancerConfig(guard=GuardConfig(cell_px=-3)))
    assert enhancer.model is broken_model("invert")  # a bad guard config changes nothing


# The embedded default of 2026-11 (fp32 model.onnx), trained on phantoms only: it erases bright
# reflectors into black holes on real frames (docs/results/runtime.md, "Structure guard"), so the
# guard rightly trips on it. A new default must pass the test below; this one is expected to fail it.
KNOWN_ERASING_DEFAULTS = {"42a589ca23ad1816c51d1436c66741ed7decf2d59860c032dc9ba6eee5b7e99e"}


@pytest.fixture(scope="module")
def default_model():
    model = load_model(EnhancerConfig())
    yield model
    model.close()


@pytest.mark.slow
@pytest.mark.realus
def test_the_shipped_default_never_trips_on_the_realus_clips(realus, default_model, request):
    """Whatever default ships: frames spread over every real clip, through the pipeline, never tripped."""
    if default_model.model_sha256 in KNOWN_ERASING_DEFAULTS:
        request.applymarker(pytest.mark.xfail(strict=True, reason="the 2026-11 default erases bright anatomy on real frames"))
    from sonoedge.runtime.readers import probe

    tripped = {}
    for clip in sorted(p for p in (realus / "clips").rglob("*") if p.is_file() and p.parent.name != "frames_png"):
        every = max(1, (probe(clip).frames or 1) // 12)
        _, outs, enhancer = _run(clip, default_model, EnhancerConfig(), every=every, limit=12)
        counts = enhancer.guard.counts()
        assert counts["checked"] == len(outs) > 0
        tripped[clip.name] = sum(counts["tripped"].values())
    assert not any(tripped.values()), f"frames tripped per clip: {tripped}"


def test_the_daemon_config_reads_and_checks_enhancer_guard(tmp_path):
    from sonoedge.runtime.service.daemon import read_config, validate_config

    path = tmp_path / "enhancer.toml"
    path.write_text('[source]\nuri = "x.mp4"\n[enhancer.guard]\nenabled = false\ntissue_level = 50\n')
    cfg = read_config(path)
    assert cfg.enhancer.guard == GuardConfig(enabled=False, tissue_level=50.0)
    cfg = read_config(path, ["enhancer.guard.black_level=60"])
    with pytest.raises(InputError, match=r"enhancer.guard.black_level \(60\) must be below enhancer.guard.tissue_level"):
        validate_config(cfg, check_bundle=False, check_port=False)
    path.write_text('[source]\nuri = "x.mp4"\n[enhancer.guard]\nthreshold = 1\n')
    with pytest.raises(InputError, match="unknown key.*threshold.*valid keys"):
        read_config(path)
