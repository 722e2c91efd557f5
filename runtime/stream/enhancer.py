"""Frame enhancement as the contract says (DESIGN.md, Frames in the runtime), with a fail-safe.

    model = load_model(EnhancerConfig(bundle="bundle/"))     # bundle.model: hashes checked, reference re-run
    enhancer = Enhancer(model, EnhancerConfig())
    out = enhancer(frame)                                     # Frame -> Frame, same geometry (x scale)

Three steps, so the pipeline can run them in separate threads:

- :meth:`Enhancer.prepare`: validate the frame (uint8, (H, W) or (H, W, 3|4), size in the model's
  range; else :class:`MalformedFrame`), grey conversion, the imaging region (found by
  ``sonoedge.runtime.region.RegionTracker``, cached per stream and re-detected when the geometry
  changes), crop to its bounding box, reflect-pad to the model stride, normalise to [-1, 1].
  Colour frames become grey by ``grey`` (``fast``: OpenCV's cvtColor; ``exact``: the float32
  reference bit for bit; ``frames.GREY_METHODS``).
- :meth:`Enhancer.infer`: run the backend under the fail-safe: an exception, a NaN/Inf output or
  ``fail_after`` latency-budget misses in a row switch to passthrough (frames go out unenhanced
  with ``passthrough`` set, an alarm is logged) and inference is retried with exponential backoff
  until it works again. Then crop the padding, de-normalise and run the structure guard (below),
  so that with frame-parallel inference the workers share that work.
- :meth:`Enhancer.finish`: paste the enhanced pixels back inside the region mask only: every pixel
  outside the mask is the input's pixel, unchanged. SR bundles (task "sr", scale s) give an s-times
  frame: the frame is upscaled plainly (pixel replication, so overlays stay exact) and the region is
  replaced by the super-resolved pixels. The structure guard (:mod:`.guard`, ``cfg.guard``, run in
  infer) compares input and output echogenicity at low resolution; a frame whose output erased or invented structure goes out as the input, unenhanced,
  flagged like a fail-safe passthrough (``passthrough``, ``meta["passthrough_reason"]``, the marker)
  with ``meta["guard"]`` naming the reason; the guard counts it per reason and logs it throttled.
  Unlike a model failure this is decided per frame: the next frame is checked afresh.

The output frame keeps the input's id, timestamp and source.

No per-frame allocation on the hot path while the frame geometry holds: the model input tensors
and the de-normalised output crops live in small pools (a tensor goes back when inference is done
with it, a crop once it is pasted), the numpy fallback's scratch in per-thread buffers, so what a
frame allocates is its output image (a frame owns its pixels: sinks and callers may keep it) and
what the backend returns. Normalise + pad and de-normalise run as one native pass each
(``sonoedge.runtime._kernels``) when the package was built with a C++ compiler, else as numpy/OpenCV
passes; both are bit-identical to runtime/frames.py. A new
geometry (a new region size) replaces the buffers once.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any

import cv2
import numpy as np

from sonoedge.runtime.bundle.manifest import Manifest
from sonoedge.runtime.bundle.model import LoadedModel, ModelConfig
from sonoedge.runtime.errors import BundleError, InputError, SonoedgeError
from sonoedge.runtime.frames import GREY_METHODS, MAX_FRAME_SIDE, Frame, crop, pad_to_stride, to_grey
from sonoedge.runtime.region import REGION_CHOICES, REGION_MODES
from sonoedge.runtime.stream.guard import GuardConfig, StructureGuard
from sonoedge.runtime.stream.steady import Steadier

log = logging.getLogger("sonoedge.runtime.stream.enhancer")


def _native_kernels() -> Any:
    """``sonoedge.runtime._kernels`` (cpp_bridge/python/kernels_py.cpp: normalise + pad and
    denormalise in one pass each, bit-identical to runtime/frames.py, the GIL released), or None
    when the package was installed without a C++ compiler: then the numpy/OpenCV passes below
    (:func:`to_model`, :func:`from_model`) do the same work, bit for bit, a little slower
    (docs/benchmarks/runtime.md). ``SONOEDGE_KERNELS=numpy`` forces those (for A/B runs)."""
    import os

    if os.environ.get("SONOEDGE_KERNELS", "native") == "numpy":
        return None
    try:
        from sonoedge.runtime import _kernels as native
    except ImportError:
        return None
    return native


_kernels = _native_kernels()


def kernels_in_use() -> str:
    """``native`` or ``numpy``: which pre/post-processing the enhancer runs (printed by ``sonoedge bench``)."""
    return "native" if _kernels is not None else "numpy"


class MalformedFrame(InputError):
    """A frame that cannot be enhanced (wrong dtype, shape or size, truncated): counted and skipped."""


@dataclasses.dataclass
class EnhancerConfig(ModelConfig):
    """The model to run (:class:`ModelConfig`), the imaging region and the fail-safe."""

    region: str = "bundle"  # bundle (the manifest's preprocess.region) | auto | full
    region_every: int = 0  # auto: also re-detect every N frames (a depth change at the same frame size); 0 = only on geometry change
    latency_budget_ms: float = 0.0  # per-frame inference budget; 0 = none
    fail_after: int = 3  # consecutive budget misses that switch to passthrough
    retry_backoff_s: float = 0.5  # first retry after a failure; doubles up to the max
    retry_backoff_max_s: float = 10.0
    marker: bool = False  # draw a visible "UNENHANCED" marker on passthrough frames
    grey: str = "fast"  # colour -> grey: fast (OpenCV cvtColor) | exact (float32 BT.601 reference, bit for bit)
    steady: float = 0.0  # motion-gated blending with the previous output, strength in [0, 1); 0 = off (stream/steady.py)
    opencv_threads: int = 1  # OpenCV's worker threads for the per-frame image work, process-wide (see set_opencv_threads)
    guard: GuardConfig = dataclasses.field(default_factory=GuardConfig)  # the structure guard ([enhancer.guard])


@dataclasses.dataclass
class Job:
    """A frame in flight between the three steps."""

    frame: Frame
    model: LoadedModel | None = None
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)  # (x0, y0, x1, y1), end exclusive: the region in the frame
    mask: np.ndarray | None = None  # uint8 0/1 (y1-y0, x1-x0) region mask inside the bbox; None = all
    grey: np.ndarray | None = None  # uint8 (y1-y0, x1-x0)
    tensor: np.ndarray | None = None  # float32 (1, 1, Hp, Wp) in [-1, 1]
    size: tuple[int, int] = (0, 0)  # crop size before padding
    output: np.ndarray | None = None  # float32 (1, 1, s*Hp, s*Wp)
    passthrough_reason: str = ""
    infer_s: float = 0.0
    guard_cells: np.ndarray | None = None  # float32: the structure guard's map of ``grey``, made in prepare
    enhanced: np.ndarray | None = None  # uint8 (s*h, s*w): the de-normalised output crop, made in infer
    verdict: Any = None  # the structure guard's Verdict of ``enhanced`` (None: not judged), made in infer


class _Region:
    """Per-stream imaging region: :class:`.region.RegionTracker` (cached, re-detected when the
    geometry changes) for ``auto``; the whole frame for ``full``.

    A folder of stills is not one stream: each file is its own scan (another patient, depth or
    probe at the same frame size), so the region is detected afresh whenever the file changes
    (``still``: the frame's ``meta["name"]``, set by the file source for every file of a folder).
    Frames of one clip carry no name and keep the tracked region."""

    def __init__(self, mode: str, every: int = 0):
        self.mode, self.every = mode, every
        self.tracker = None
        self.still: str | None = None  # the file whose region the tracker holds (folder of stills)
        self._cached: tuple[Any, tuple[tuple[int, int, int, int], np.ndarray | None]] | None = None
        if mode == "auto":
            from sonoedge.runtime.region import RegionTracker

            self.tracker = RegionTracker(every=every)

    def find(self, image: np.ndarray, still: str | None = None) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
        """((x0, y0, x1, y1), mask inside the box or None for all) of uint8 (H, W) or (H, W, 3|4);
        ``still`` names the file a frame of a folder came from (None: a frame of a clip or stream)."""
        h, w = image.shape[:2]
        if self.tracker is None:
            return (0, 0, w, h), None
        if still != self.still:  # another file of a folder: its own scan, its own region
            self.tracker.invalidate()
            self.still = still
        region = self.tracker.region_for(image[:, :, :3] if image.ndim == 3 else image)
        if self._cached is not None and self._cached[0] is region:  # the tracker's cached region: reuse the crop
            return self._cached[1]
        if region.kind == "full":
            found: tuple[tuple[int, int, int, int], np.ndarray | None] = ((0, 0, w, h), None)
        else:
            mask = np.asarray(region.mask, dtype=bool)
            x0, y0, x1, y1 = _bbox_of(region, mask)
            found = ((x0, y0, x1, y1), mask[y0:y1, x0:x1].astype(np.uint8))  # uint8: what cv2.copyTo takes
        self._cached = (region, found)
        return found


def region_mode(model: LoadedModel, cfg: EnhancerConfig) -> str:
    """The region mode to run: the config's, or the bundle's ``preprocess.region`` for ``bundle``."""
    mode = cfg.region if cfg.region != "bundle" else model.manifest.preprocess.region
    if mode not in REGION_MODES:
        raise InputError(f"enhancer.region '{mode}' is not one of {', '.join(REGION_CHOICES)}")
    return mode


def check_servable(manifest: Manifest, root: Any) -> None:
    """BundleError unless the enhancer can feed this bundle's model: it makes grey (1, 1, H, W) tensors."""
    channels = manifest.model.channels
    if channels != 1:
        raise BundleError(f"bundle {root}: manifest model.channels is {channels}; the stream enhancer "
                          "feeds grey B-mode frames (1 channel)")


def _bbox_of(region: Any, mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the region's mask, end exclusive (the whole frame for an empty mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class _Scratch:
    """Arrays reused from frame to frame, one set per thread (prepare and finish run in different
    pipeline threads; a direct call uses the caller's), replaced when the shape changes."""

    def __init__(self) -> None:
        self.local = threading.local()

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        store = self.local.__dict__
        buf = store.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = store[name] = np.empty(shape, dtype)
        return buf


class _TensorPool:
    """Arrays handed from one step to the next and back (model input tensors from prepare to infer;
    de-normalised outputs from infer to finish): at most ``keep`` kept, all of one shape (a new shape
    empties the pool). An array never returned (a frame dropped in between) is simply collected."""

    def __init__(self, keep: int = 8, dtype: type = np.float32):
        self.keep, self.dtype = keep, dtype
        self.free: collections.deque[np.ndarray] = collections.deque()
        self.lock = threading.Lock()

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        with self.lock:
            while self.free:
                tensor = self.free.pop()
                if tensor.shape == shape:
                    return tensor
        return np.empty(shape, self.dtype)

    def give(self, tensor: np.ndarray) -> None:
        with self.lock:
            if self.free and self.free[0].shape != tensor.shape:
                self.free.clear()
            if len(self.free) < self.keep:
                self.free.append(tensor)


class Enhancer:
    """Enhances the frames of one stream with a swappable model (SIGHUP reload) and a fail-safe."""

    def __init__(self, model: LoadedModel, cfg: EnhancerConfig | None = None):
        self.cfg = cfg or EnhancerConfig()
        check_servable(model.manifest, model.root)
        self._model = model
        self._lock = threading.Lock()
        self._state = threading.Lock()  # the fail-safe's state below, updated by each inference
        self._retired: list[LoadedModel] = []
        self.region = _Region(region_mode(model, self.cfg), self.cfg.region_every)
        if self.cfg.grey not in GREY_METHODS:
            raise InputError(f"enhancer.grey '{self.cfg.grey}' is not one of {', '.join(GREY_METHODS)}")
        set_opencv_threads(self.cfg.opencv_threads)
        self.scratch = _Scratch()
        self.tensors = _TensorPool()
        self.outputs = _TensorPool(dtype=np.uint8)
        self.steady = Steadier(self.cfg.steady) if self.cfg.steady > 0 else None
        self.guard = StructureGuard(self.cfg.guard)
        # fail-safe state
        self.failed = False
        self.failure_reason = ""
        self.misses = 0
        self.backoff = self.cfg.retry_backoff_s
        self.next_retry = 0.0
        self.failures = 0  # transitions to passthrough
        self.recoveries = 0

    # -- model swap (SIGHUP) -------------------------------------------------------------------
    @property
    def model(self) -> LoadedModel:
        return self._model

    def swap(self, model: LoadedModel, cfg: EnhancerConfig | None = None) -> LoadedModel:
        """Atomically serve ``model`` (with ``cfg``, when given: region, fail-safe, marker) from the
        next frame on; the old model is closed at the next swap. A model this enhancer cannot serve
        raises BundleError and nothing changes."""
        cfg = cfg or self.cfg
        check_servable(model.manifest, model.root)
        mode = region_mode(model, cfg)
        self.guard.configure(cfg.guard)  # InputError on a bad value, before anything changes
        check_opencv_threads(cfg.opencv_threads)
        with self._lock:
            if (mode, cfg.region_every) != (self.region.mode, self.region.every):
                self.region = _Region(mode, cfg.region_every)  # the new bundle's (or config's) region
            self.cfg = cfg
            set_opencv_threads(cfg.opencv_threads)
            self.steady = Steadier(cfg.steady) if cfg.steady > 0 else None  # a new model starts a new filter
            old, self._model = self._model, model
            for retired in self._retired:
                retired.close()
            self._retired = [old]
            self.failed, self.misses, self.backoff = False, 0, self.cfg.retry_backoff_s
        return old

    def close(self) -> None:
        with self._lock:
            for m in [self._model, *self._retired]:
                m.close()
            self._retired = []

    # -- the three steps -----------------------------------------------------------------------
    def prepare(self, frame: Frame) -> Job:
        model = self._model
        lo, hi = model.size_range()
        image = validate(frame, lo)
        grey = to_grey(image, self.cfg.grey)
        (x0, y0, x1, y1), mask = self.region.find(image if image.ndim == 2 or image.shape[2] >= 3 else grey,
                                                  frame.meta.get("name"))
        sub = grey[y0:y1, x0:x1]
        if sub.shape[0] < lo[0] or sub.shape[1] < lo[1]:  # region too small for the model: whole frame
            (x0, y0, x1, y1), mask, sub = (0, 0, grey.shape[1], grey.shape[0]), None, grey
        if sub.shape[0] > hi[0] or sub.shape[1] > hi[1]:  # not malformed: the frame passes through
            raise SonoedgeError(f"frame {frame.frame_id}: imaging region {sub.shape[0]}x{sub.shape[1]} is larger than "
                                f"the model's maximum {hi[0]}x{hi[1]} (manifest size_range)")
        stride, (h, w) = model.stride, sub.shape
        hp, wp = h + (-h) % stride, w + (-w) % stride
        tensor = self.tensors.take((1, 1, hp, wp))
        if _kernels is not None:  # one pass, GIL released: crop -> padded, normalised tensor
            _kernels.normalise_pad(sub, tensor.reshape(hp, wp))
        else:
            # reflect-pad the uint8 crop (4x less memory than float), then normalise: identical to
            # pad(normalise(x)), reflection commutes with a pointwise map
            to_model(pad_uint8(sub, stride, out=self.scratch.get("padded", (hp, wp), np.uint8))[0], out=tensor)
        cells = self.guard.input_cells(sub) if self.guard.enabled else None  # while the crop is in the cache
        return Job(frame, model, (x0, y0, x1, y1), mask, sub, tensor, (h, w), guard_cells=cells)

    def infer(self, job: Job) -> Job:
        """Run the model unless the fail-safe says pass through; never raises for a model failure."""
        now = time.monotonic()
        if self.failed and now < self.next_retry:
            job.passthrough_reason = self.failure_reason
            self._release(job)
            return job
        model = job.model if job.model is not None else self._model
        t0 = time.perf_counter()
        try:
            out = model.backend.infer(job.tensor)
            if not _finite(out):
                raise FloatingPointError("model output contains NaN or Inf")
        except Exception as exc:  # any backend failure: fail safe, keep serving frames
            job.infer_s = time.perf_counter() - t0
            with self._state:
                self._fail(f"inference failed: {type(exc).__name__}: {exc}", job)
            return job
        finally:
            self._release(job)
        job.infer_s = time.perf_counter() - t0
        job.output = out
        self._judge(job, model.scale)
        budget = self.cfg.latency_budget_ms / 1000.0
        with self._state:  # frame-parallel inference (pipeline.infer_workers) runs this in several threads
            if budget > 0 and job.infer_s > budget:
                self.misses += 1
                if self.misses >= self.cfg.fail_after or self.failed:
                    self._fail(f"latency {job.infer_s * 1000:.1f} ms over the budget of {self.cfg.latency_budget_ms:g} ms "
                               f"for {self.misses} frame(s) in a row", job, keep_output=True)
                    return job
            else:
                self.misses = 0
            if self.failed:
                self._recover(job)
        return job

    def _judge(self, job: Job, s: int, quiet: bool = True) -> None:
        """De-normalise the output crop and run the structure guard on it, in the infer step right
        after the model: with frame-parallel inference (pipeline.infer_workers) this work is spread
        over the workers instead of queueing in the one finish thread, which is left the paste.
        It costs the same CPU here as there: right after a model call these passes take up to 4x
        their hot cost in whichever thread runs them (tools/post_costs.py; the call has pushed their
        code and data out of the caches). ``quiet``: a failure leaves ``job.enhanced`` unset and
        :meth:`finish` redoes it with ``quiet`` False, so an error surfaces there, per frame, as it
        always has."""
        try:
            cropped = crop(job.output, job.size, s)
            shape = cropped.shape[-2:]
            enhanced = self.denormalise_into(cropped, self.outputs.take(shape))  # finite: checked by the caller
            if self.guard.enabled and job.grey is not None:
                job.verdict = self.guard.check(job.grey, enhanced, job.mask, s, job.guard_cells)
            job.enhanced = enhanced
        except Exception:
            job.enhanced = job.verdict = None
            if not quiet:
                raise

    def denormalise_into(self, cropped: np.ndarray, out: np.ndarray) -> np.ndarray:
        """A FINITE float32 output crop (..., h, w) -> ``out`` (uint8 (h, w)), returned: the native
        one-pass kernel (GIL released), else :func:`from_model` with this thread's scratch."""
        if _kernels is not None:
            _kernels.denormalise(cropped.reshape(out.shape), out)
            return out
        return from_model(cropped, self.scratch.get("out_f", out.shape, np.float32), out)

    def finish(self, job: Job, in_place: bool = False) -> Frame:
        """The output frame of ``job``. ``in_place``: the input frame's pixels are the caller's to give
        away (nothing else holds them: the pipeline says so for sources with ``owns_frames``), so the
        enhanced region is pasted into them instead of into a copy of the whole frame; pixels outside
        the region stay the input's either way."""
        frame = job.frame
        if job.output is None:
            return self.passthrough(frame, job.passthrough_reason or "not enhanced")
        s = job.model.scale if job.model is not None else self._model.scale
        if job.enhanced is None:  # not made in infer (a failure there, or a job made by hand): here, errors raised
            self._judge(job, s, quiet=False)
        enhanced, verdict = job.enhanced, job.verdict
        if verdict is not None and verdict.tripped:  # erased or invented structure: the clinician sees the input
            self.guard.record(verdict, frame.frame_id)
            self._give_back(job)
            out = self.passthrough(frame, verdict.describe())
            out.meta["guard"] = verdict.reason
            return out
        if self.steady is not None:
            enhanced = self.steady(job.grey, enhanced)
        image = frame.image
        if s > 1:
            image = np.repeat(np.repeat(image, s, axis=0), s, axis=1)  # plain upscale: every pixel replicated
        elif not (in_place and image.flags.writeable):
            image = image.copy()  # a frame owns its pixels: the caller's input stays as it was
        x0, y0, x1, y1 = (v * s for v in job.bbox)
        target = image[y0:y1, x0:x1]
        mask = job.mask
        if mask is not None and s > 1:
            mask = np.repeat(np.repeat(mask, s, axis=0), s, axis=1)
        if target.ndim == 3:
            enhanced = np.repeat(enhanced[:, :, None], target.shape[2], axis=2)
            if target.shape[2] == 4:
                enhanced[:, :, 3] = target[:, :, 3]  # keep alpha
        if mask is None:
            target[...] = enhanced
        else:
            cv2.copyTo(enhanced, mask, target)  # only where mask != 0; SIMD, 5x faster than np.copyto(where=)
        self._give_back(job)  # pasted: the de-normalised crop is free for another frame
        out = dataclasses.replace(frame, image=image, enhanced=True, passthrough=False, meta=dict(frame.meta))
        if job.passthrough_reason:  # latency miss that tipped the fail-safe: this frame is still enhanced
            out.meta["alarm"] = job.passthrough_reason
        return out

    def passthrough(self, frame: Frame, reason: str) -> Frame:
        """The input frame, unenhanced, flagged; upscaled plainly for SR so the geometry holds."""
        s = self._model.scale
        image = frame.image if s == 1 else np.repeat(np.repeat(frame.image, s, axis=0), s, axis=1)
        if self.cfg.marker:
            image = draw_marker(image)
        meta = dict(frame.meta, passthrough_reason=reason)
        return dataclasses.replace(frame, image=image, enhanced=False, passthrough=True, meta=meta)

    def __call__(self, frame: Frame) -> Frame:
        """All three steps on one frame (a malformed frame raises MalformedFrame; a frame the model
        cannot take, e.g. a region over its size range, passes through)."""
        try:
            job = self.prepare(frame)
        except MalformedFrame:
            raise
        except SonoedgeError as exc:
            return self.passthrough(frame, str(exc))
        return self.finish(self.infer(job))

    def _give_back(self, job: Job) -> None:
        if job.enhanced is not None:
            self.outputs.give(job.enhanced)
            job.enhanced = None

    def _release(self, job: Job) -> None:
        """Inference is done with the job's input tensor: back to the pool."""
        if job.tensor is not None:
            self.tensors.give(job.tensor)
            job.tensor = None

    # -- fail-safe state ------------------------------------------------------------------------
    def _fail(self, reason: str, job: Job, keep_output: bool = False) -> None:
        now = time.monotonic()
        if not self.failed:
            self.failures += 1
            log.error("enhancement failed; passing frames through unenhanced",
                      extra={"event": "alarm", "alarm": "enhancement_failed", "reason": reason,
                             "frame_id": job.frame.frame_id, "retry_in_s": self.backoff})
        else:
            self.backoff = min(self.backoff * 2, self.cfg.retry_backoff_max_s)
        self.failed = True
        self.failure_reason = reason
        self.next_retry = now + self.backoff
        job.passthrough_reason = reason
        if not keep_output:
            job.output = None

    def _recover(self, job: Job) -> None:
        self.failed = False
        self.misses = 0
        self.recoveries += 1
        self.backoff = self.cfg.retry_backoff_s
        log.warning("enhancement recovered", extra={"event": "recovered", "frame_id": job.frame.frame_id,
                                                     "after": self.failure_reason})
        self.failure_reason = ""


def check_opencv_threads(value: Any) -> None:
    """InputError naming ``enhancer.opencv_threads`` unless it is a whole number from 0 to 256."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 256:
        raise InputError(f"enhancer.opencv_threads = {value!r} must be a whole number from 0 (OpenCV's default: "
                         "one per core) to 256")


def set_opencv_threads(value: int) -> None:
    """OpenCV's worker threads, process-wide (``cv2.setNumThreads``); 0 leaves OpenCV's setting as it is
    (its own default: one per core).

    Why 1 by default: the per-frame operations (cvtColor, threshold, convertScaleAbs, the guard's
    INTER_AREA resizes) are a few hundred microseconds each, and OpenCV splits them over its own
    pool, one thread per core, on the same cores ONNX Runtime's intra-op threads already fill; the
    pool's wake-ups then cost more than the split saves. Measured on the BK clip, 2 cores, 2
    intra-op threads, one interleaved run (docs/benchmarks/runtime.md): pipeline CPU over
    decode + model +11.4 % with OpenCV's default pool, +7.6 % with 1; the careful hand loop
    +4.7 % -> +2.5 %. Decoding threads (FFmpeg's) are not OpenCV's pool and are left alone."""
    check_opencv_threads(value)
    if value > 0 and cv2.getNumThreads() != value:
        cv2.setNumThreads(value)


def pad_uint8(image: np.ndarray, stride: int, out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`.frames.pad_to_stride` for a uint8 (H, W) image with OpenCV's BORDER_REFLECT_101, which
    is numpy's ``reflect`` (bit-identical, tested for pads larger than the image too), 4x faster.
    ``out`` (uint8, the padded shape) receives the result instead of a new array."""
    h, w = image.shape
    if h < 2 or w < 2:
        padded = pad_to_stride(image, stride)[0]
        if out is not None:
            out[...] = padded
            padded = out
        return padded, (h, w)
    padded = cv2.copyMakeBorder(image, 0, (-h) % stride, 0, (-w) % stride, cv2.BORDER_REFLECT_101, dst=out)
    return padded, (h, w)


def to_model(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`.frames.normalise` without temporaries (bit-identical: the same float32 operations in
    the same order): uint8 (H, W) -> float32 (1, 1, H, W) in [-1, 1], into ``out`` when given."""
    x = np.empty((1, 1, *image.shape), np.float32) if out is None else out
    plane = x.reshape(image.shape)
    np.divide(image, np.float32(127.5), out=plane, dtype=np.float32)
    plane -= np.float32(1.0)
    return x


def from_model(tensor: np.ndarray, scratch: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`.frames.denormalise` without temporaries, bit-identical, for outputs already known to
    be finite: float32 (..., H, W) in [-1, 1] -> uint8 (H, W). ``scratch`` (float32) and ``out``
    (uint8), of the (H, W) shape, are used instead of new arrays; ``tensor`` is left as it is.

    Three passes instead of five: ``y = x + 1`` (float32, as the contract), negatives to 0
    (``THRESH_TOZERO``), then ``convertScaleAbs(y, alpha=127.5)``: OpenCV multiplies in float32
    (the same rounded product as ``y * 127.5``), rounds half to even (``np.rint``) and saturates to
    0..255 (the clip and cast); the absolute value it also takes is a no-op on y >= 0. Checked
    equal to :func:`.frames.denormalise` on every float32 in 40 dense runs over [-1.01, 1.0] and on
    every rounding tie (tests/runtime/stream/test_enhancer.py)."""
    plane = np.asarray(tensor, dtype=np.float32).reshape(tensor.shape[-2:])
    y = np.add(plane, np.float32(1.0), out=scratch)
    cv2.threshold(y, 0, 0, cv2.THRESH_TOZERO, dst=y)
    return cv2.convertScaleAbs(y, dst=out, alpha=127.5)


def _finite(array: np.ndarray) -> bool:
    """No NaN or Inf in ``array``, without a boolean array per frame in the usual case: a NaN or Inf
    makes the sum NaN or Inf; a finite sum proves every value finite. A float32 output is summed by
    OpenCV (``cv2.sumElems``: double accumulators, so a sum of finite float32 values cannot
    overflow; 2x faster than numpy's float32 sum, 34 against 77 us on a 704 x 640 output), anything
    else by numpy. Only a sum that is not finite (a real NaN/Inf, or a float32 numpy sum that
    overflowed) takes the exact, allocating check."""
    if array.dtype == np.float32 and array.ndim >= 2 and array.size:
        total = cv2.sumElems(array.reshape(-1, array.shape[-1]))[0]
    else:
        total = np.sum(array)
    return bool(np.isfinite(total)) or bool(np.isfinite(array).all())


def validate(frame: Frame, size_min: tuple[int, int] = (1, 1), size_max: tuple[int, int] = (MAX_FRAME_SIDE, MAX_FRAME_SIDE)) -> np.ndarray:
    """The frame's image if it can be enhanced, else MalformedFrame naming what is wrong."""
    if frame.meta.get("malformed"):
        raise MalformedFrame(f"frame {frame.frame_id} from {frame.source}: {frame.meta['malformed']}")
    image = frame.image
    if not isinstance(image, np.ndarray):
        raise MalformedFrame(f"frame {frame.frame_id}: image is {type(image).__name__}, not a numpy array")
    if image.dtype != np.uint8:
        raise MalformedFrame(f"frame {frame.frame_id}: dtype {image.dtype}, expected uint8")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise MalformedFrame(f"frame {frame.frame_id}: shape {image.shape}, expected (H, W) or (H, W, 3)")
    h, w = image.shape[:2]
    if h < size_min[0] or w < size_min[1] or h > size_max[0] or w > size_max[1]:
        raise MalformedFrame(f"frame {frame.frame_id}: size {h}x{w} outside the accepted range "
                             f"{size_min[0]}x{size_min[1]}..{size_max[0]}x{size_max[1]}")
    return image


def draw_marker(image: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with a visible "UNENHANCED" label in the top-left corner."""
    out = image.copy()
    h = out.shape[0]
    scale = max(0.4, h / 900)
    (tw, th), base = cv2.getTextSize("UNENHANCED", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    colour = (255,) * (out.shape[2] if out.ndim == 3 else 1)
    cv2.rectangle(out, (0, 0), (tw + 6, th + base + 6), (0,) * len(colour), -1)
    cv2.putText(out, "UNENHANCED", (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return out


__all__ = ["EnhancerConfig", "Enhancer", "Job", "MalformedFrame", "check_servable", "region_mode", "validate"]
