"""FID and KID (train/fid.py) against independent computations, and the Inception trunk rules."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from sonoedge.runtime.errors import InputError
from sonoedge.train import fid


def test_frechet_distance_closed_form_gaussians():
    # diagonal (commuting) covariances: d^2 = |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=6), rng.normal(size=6)
    s_a, s_b = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(s_a) - np.sqrt(s_b)) ** 2)
    assert fid.frechet_distance(mu_a, np.diag(s_a), mu_b, np.diag(s_b)) == pytest.approx(expected, rel=1e-9)
    # full covariances: Tr sqrt(S_a S_b) = Tr sqrt(S_a^1/2 S_b S_a^1/2), computed by eigendecomposition
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    w, v = np.linalg.eigh(cov_a)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sum(np.sqrt(inner))
    assert fid.frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-8)
    assert fid.frechet_distance(mu_a, cov_a, mu_a, cov_a) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 3))
    b = rng.normal(1.0, 2.0, size=(20000, 3))
    # population: 3 * 1^2 + 3 * (1 - 2)^2 = 6
    assert fid.frechet_distance(*fid.gaussian_stats(a), *fid.gaussian_stats(b)) == pytest.approx(6.0, rel=0.03)


def _mmd2_direct(x, y):
    """The unbiased MMD^2 by explicit double sums over distinct pairs (O(n^2) loops)."""
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1.0) ** 3  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_computation_and_its_jackknife():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(9, 5)), rng.normal(0.4, 1.2, size=(7, 5))
    value, se = fid.kid_jackknife(x, y)
    assert value == pytest.approx(_mmd2_direct(x, y), rel=1e-10)
    # the jackknife by recomputing the estimate with each sample left out
    loo_x = [_mmd2_direct(np.delete(x, i, 0), y) for i in range(len(x))]
    loo_y = [_mmd2_direct(x, np.delete(y, j, 0)) for j in range(len(y))]
    var = (len(x) - 1) / len(x) * np.sum((np.array(loo_x) - np.mean(loo_x)) ** 2)
    var += (len(y) - 1) / len(y) * np.sum((np.array(loo_y) - np.mean(loo_y)) ** 2)
    assert se == pytest.approx(np.sqrt(var), rel=1e-9)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(3)
    runs = [fid.kid_jackknife(rng.normal(size=(20, 4)), rng.normal(size=(20, 4))) for _ in range(200)]
    values, errors = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
    assert abs(values.mean()) < 3 * values.std() / np.sqrt(len(values))
    # the jackknife standard error is calibrated: close to the spread of the estimate over repeats
    assert 0.6 < np.median(errors) / values.std() < 1.6
    shifted = fid.kid_jackknife(rng.normal(size=(20, 4)), rng.normal(2.0, 1.0, size=(20, 4)))
    assert shifted[0] > 2 * shifted[1] > 0


def test_kid_subsets_reduce_to_the_full_estimate_when_a_subset_is_the_set():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    mean, sd = fid.kid_subsets(x, y, subsets=5, subset_size=8)
    assert mean == pytest.approx(fid.kid_jackknife(x, y)[0]) and sd == pytest.approx(0.0, abs=1e-12)


def test_inception_trunk_missing_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SONOEDGE_INCEPTION_TRUNK", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(InputError, match="inception_v3_google-0cc3c7bd.pth") as info:
        fid.build_inception()
    assert "\n" not in str(info.value) and "random" in str(info.value)
    with pytest.raises(InputError, match="does not exist"):
        fid.build_inception(str(tmp_path / "nope.pth"))


def test_random_inception_features_are_labelled_and_separate_sets():
    net = fid.build_inception("random")
    assert "random" in net.trunk_description
    rng = np.random.default_rng(5)
    flat = [np.full((40, 48), v, np.uint8) for v in (60, 70, 80, 90)]
    noisy = [rng.integers(0, 256, (40, 48), dtype=np.uint8) for _ in range(4)]
    fa, fb = fid.image_features(net, flat), fid.image_features(net, noisy)
    assert fa.shape == (4, 2048) and np.isfinite(fa).all()
    same = fid.compare_features(fa, fa[::-1].copy())
    apart = fid.compare_features(fa, fb)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and apart["fid"] > 0 and apart["kid"] > same["kid"]
