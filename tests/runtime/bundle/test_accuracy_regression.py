"""Accuracy regression on the device path: the runtime's output for a bundle's reference
frames matches the PyTorch reference stored in the bundle within the precision's gate
(``sonoedge.runtime.bundle.gates``, written down once). Runs for the tiny test bundle and for the embedded
default bundle, every precision the bundle keeps, through the same Enhancer the daemon uses."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.runtime.bundle.gates import check_gate, compare_outputs
from sonoedge.runtime.bundle.manifest import load_manifest
from sonoedge.runtime.bundle.model import check_reference, load_model
from sonoedge.runtime.bundle.verify import load_references
from sonoedge.runtime.frames import Frame, crop, denormalise
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig


def _default_bundle():
    from sonoedge.runtime.bundle import default_bundle_path
    from sonoedge.runtime.errors import BundleError

    try:
        return default_bundle_path()
    except BundleError as exc:
        pytest.skip(str(exc))


def _cases(request, which):
    return request.getfixturevalue("tiny_bundle") if which == "tiny" else _default_bundle()


@pytest.fixture(params=["tiny", "default"])
def bundle(request):
    return _cases(request, request.param)


def test_every_precision_reproduces_the_pytorch_reference(bundle):
    _, manifest = load_manifest(bundle)
    kept = manifest.kept_precisions()
    assert kept, "the bundle keeps no precision"
    pairs = load_references(bundle, manifest)
    for precision in kept:
        model = load_model(EnhancerConfig(bundle=str(bundle), precision=precision, verify_reference=False))
        try:
            enhancer = Enhancer(model, EnhancerConfig(region="full"))
            outputs, frames = [], []
            for i, (image, _) in enumerate(pairs):
                job = enhancer.infer(enhancer.prepare(Frame(image, i)))  # the stream's own steps
                assert job.output is not None, job.passthrough_reason
                outputs.append(np.ascontiguousarray(crop(job.output, job.size, model.scale)))
                frames.append(enhancer.finish(job))
            result = check_gate(precision, compare_outputs(outputs, [ref for _, ref in pairs]))
            if manifest.precisions[precision].degraded:
                continue  # kept on purpose below its gate at export: reported, not asserted
            assert result.passed, result.failures
            for out, frame in zip(outputs, frames):  # post-processing is exactly denormalise(crop(output))
                assert np.array_equal(frame.image, denormalise(out)) and frame.enhanced
            assert check_reference(model)["frames"] == len(pairs)
        finally:
            model.close()


def test_reference_outputs_are_the_torch_shapes(bundle):
    _, manifest = load_manifest(bundle)
    scale = manifest.model.output_scale
    for image, ref in load_references(bundle, manifest):
        assert ref.shape[-2:] == (image.shape[0] * scale, image.shape[1] * scale)
        assert np.isfinite(ref).all() and np.abs(ref).max() <= 1.0 + 1e-6
