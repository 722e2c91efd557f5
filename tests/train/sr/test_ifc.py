"""Information fidelity criterion (Sheikh et al. 2005): ordering properties on real and synthetic images."""
import numpy as np
import pytest

from sonoedge.train.sr.ifc import ifc, steerable_bands


def _texture(seed=0, size=(64, 96)):
    rng = np.random.default_rng(seed)
    from scipy.ndimage import gaussian_filter

    return np.clip(128 + 60 * gaussian_filter(rng.normal(size=size), 1.5) / 0.2, 0, 255)


def test_bands_count_and_sizes():
    bands = steerable_bands(np.zeros((64, 96)))
    assert len(bands) == 24
    assert bands[0].shape == (64, 96) and bands[-1].shape == (8, 12)


def test_more_noise_less_information():
    ref = _texture()
    rng = np.random.default_rng(1)
    values = [ifc(ref, ref + rng.normal(0, s, ref.shape)) for s in (1, 5, 20)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert ifc(ref, ref) > values[0] > 0


def test_more_blur_less_information():
    from scipy.ndimage import gaussian_filter

    ref = _texture(2)
    assert ifc(ref, gaussian_filter(ref, 0.7)) > ifc(ref, gaussian_filter(ref, 2.0)) > 0


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError):
        ifc(np.zeros((64, 64)), np.zeros((64, 60)))
    with pytest.raises(ValueError):
        ifc(np.zeros((16, 16)), np.zeros((16, 16)))


@pytest.mark.realus
def test_bicubic_sr_of_a_real_frame_scores_between_noise_and_identity(realus):
    from sonoedge.runtime.readers import read_image
    from sonoedge.train.sr.resize import resize_image

    hr = read_image(realus / "hc18" / "000_HC.png")[200:328, 300:428]
    bicubic = resize_image(resize_image(hr, 0.25), 4)
    assert 0 < ifc(hr, bicubic) < ifc(hr, hr)
