"""A swapped-in model brings its own region setting (and the new [enhancer] config); a model the
enhancer cannot feed is refused before anything changes."""
from __future__ import annotations

import dataclasses
import shutil

import pytest

from sonoedge.runtime.bundle.model import load_model
from sonoedge.runtime.errors import BundleError
from sonoedge.runtime.stream.enhancer import Enhancer, EnhancerConfig


def _with_region(tmp_path, tiny_bundle, rehash, region):
    root = tmp_path / f"region_{region}"
    shutil.copytree(tiny_bundle, root)
    return rehash(root, lambda data: data["preprocess"].update(region=region))


def test_swap_applies_the_new_bundles_region(tmp_path, tiny_bundle, rehash):
    cfg = EnhancerConfig(bundle=str(_with_region(tmp_path, tiny_bundle, rehash, "full")))  # region = "bundle"
    enhancer = Enhancer(load_model(cfg), cfg)
    assert enhancer.region.mode == "full"
    new_cfg = dataclasses.replace(cfg, bundle=str(_with_region(tmp_path, tiny_bundle, rehash, "auto")))
    enhancer.swap(load_model(new_cfg), new_cfg)
    assert enhancer.region.mode == "auto" and enhancer.region.tracker is not None
    forced = dataclasses.replace(new_cfg, region="full", marker=True)
    enhancer.swap(load_model(forced), forced)  # the config's region wins over the bundle's
    assert enhancer.region.mode == "full" and enhancer.cfg.marker
    enhancer.close()


def test_swap_refuses_a_model_with_more_than_one_channel(tiny_bundle):
    cfg = EnhancerConfig(bundle=str(tiny_bundle))
    model = load_model(cfg)
    enhancer = Enhancer(model, cfg)
    other = load_model(cfg)
    info = dataclasses.replace(other.manifest.model, channels=3)
    three = dataclasses.replace(other, manifest=dataclasses.replace(other.manifest, model=info))
    with pytest.raises(BundleError, match="channels is 3"):
        enhancer.swap(three)
    assert enhancer.model is model
    other.close()
    enhancer.close()
