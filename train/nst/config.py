"""The NST optimisation's settings (Menini 2020), importable without torch so that building the
command line (``sonoedge style --help``, and every other command's) never needs the training extra."""
from __future__ import annotations

import dataclasses

from sonoedge.runtime.errors import InputError

STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")  # Sec. 4.2, 4.3
CONTENT_LAYERS = ("block5_conv2",)  # Sec. 4.2, 4.3
AVERAGES = ("none", "feature", "gram")
MIN_LABEL_FRACTION = 0.0025  # "a mask whose white area is greater than the 0.25% of the image", Sec. 3.2


@dataclasses.dataclass
class NSTConfig:
    """One NST optimisation; defaults are the thesis's LQ-to-HQ row of Table 4.1."""

    content_weight: float = 1e5  # Table 4.1, LQ to HQ (Seg to HQ 1e5, HQ to clinical 5e5)
    style_weight: float = 1e-2  # Table 4.1, LQ to HQ (Seg to HQ 1e-1, HQ to clinical 1e-2)
    lr: float = 5e-3  # Sec. 4.2 grid search, Fig. 4.1
    iterations: int = 3000  # "the loss keeps decreasing until 3000 iterations", Sec. 4.2
    style_layers: tuple[str, ...] = STYLE_LAYERS  # Sec. 4.2
    content_layers: tuple[str, ...] = CONTENT_LAYERS  # Sec. 4.2
    average: str = "feature"  # with several style images: "feature" or "gram" space (Sec. 3.2); "none" for one
    # the optimisation starts from the content image ("content") or from noise ("noise", Gatys et al. 2015);
    # the thesis does not say which; from the content, the content loss starts at 0 and only the style term can fall
    init: str = "content"
    local: bool = False  # local NST: mask the content in image space, optimise each region (Sec. 3.2)
    min_label_fraction: float = MIN_LABEL_FRACTION  # Sec. 3.2
    vgg_trunk: str = ""  # VGG19 weights file, "random" (labelled), or "" to search $SONOEDGE_VGG19_TRUNK and the cache
    seed: int = 0

    def check(self) -> None:
        if self.iterations < 1 or self.lr <= 0 or self.content_weight < 0 or self.style_weight < 0:
            raise InputError("NST needs iterations >= 1, lr > 0 and non-negative content and style weights")
        if self.init not in ("content", "noise"):
            raise InputError(f"init must be 'content' or 'noise', got '{self.init}'")
        if self.average not in AVERAGES:
            raise InputError(f"average must be one of {', '.join(AVERAGES)}, got '{self.average}'")
