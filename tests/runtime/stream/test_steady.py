"""Motion-gated steadying (runtime/stream/steady.py) and its enhancer hook."""
from __future__ import annotations

import numpy as np
import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import InputError
from sonoedge.runtime.frames import Frame
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig
from sonoedge.runtime.stream.steady import Steadier, running_average, steady_clip


def test_still_scene_flicker_is_reduced():
    rng = np.random.default_rng(0)
    scene = np.full((40, 50), 100, np.uint8)
    inputs = np.stack([scene] * 12)
    outputs = np.clip(100 + rng.normal(0, 6, inputs.shape), 0, 255).astype(np.uint8)  # a flickering enhancer
    steadied = steady_clip(inputs, outputs, strength=0.7)
    assert steadied[4:].std(axis=0).mean() < 0.6 * outputs[4:].std(axis=0).mean()


def test_where_the_input_moves_the_output_is_not_blended():
    inputs = np.zeros((2, 30, 30), np.uint8)
    inputs[1, :, 15:] = 200  # an edge appears: the input changed a lot on the right half
    outputs = inputs.copy()
    steadied = steady_clip(inputs, outputs, strength=0.9)
    assert np.array_equal(steadied[1][:, 22:], outputs[1][:, 22:])  # right of the blur width: the new frame
    assert np.array_equal(steadied[1][:, :8], outputs[1][:, :8])  # still part, same value anyway
    smeared = running_average(outputs, 0.9)
    assert smeared[1][:, 22:].max() < 50  # the motion-blind baseline drags the old frame along


def test_a_new_frame_size_restarts_the_filter():
    s = Steadier(0.7)
    a = np.full((10, 10), 50, np.uint8)
    s(a, a)
    b = np.full((12, 10), 200, np.uint8)
    assert np.array_equal(s(b, b), b)


@pytest.mark.parametrize("kwargs", [{"strength": 1.0}, {"strength": -0.1}, {"tau": 0}, {"sigma": -1}])
def test_bad_settings_are_one_sentence(kwargs):
    with pytest.raises(InputError, match="steady needs"):
        Steadier(**kwargs)


def test_enhancer_steady_option_blends_consecutive_frames(tiny_bundle):
    model = load_model(EnhancerConfig(bundle=str(tiny_bundle)))
    try:
        rng = np.random.default_rng(2)
        scene = rng.integers(60, 200, (48, 64), dtype=np.uint8)
        frames = [Frame(scene, i, timestamp=float(i), source="test://steady") for i in range(3)]
        plain = [Enhancer(model, EnhancerConfig(region="full"))(f).image for f in frames]
        steady_enh = Enhancer(model, EnhancerConfig(region="full", steady=0.7))
        steadied = [steady_enh(f).image for f in frames]
        assert np.array_equal(steadied[0], plain[0])  # nothing to blend with yet
        assert np.abs(steadied[2].astype(int) - plain[2]).max() <= 1  # still input: blends equal frames
        with pytest.raises(InputError, match="steady needs"):
            Enhancer(model, EnhancerConfig(region="full", steady=1.5))
    finally:
        model.close()


def test_the_default_setting_is_the_tested_one():
    """0.7 / tau 20: the setting docs/results/edge.md found to meet all three temporal conditions with edge-nano."""
    s = Steadier()
    assert (s.strength, s.tau, s.sigma) == (0.7, 20.0, 1.5)
