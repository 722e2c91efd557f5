"""The ZSSR learning-rate policy (Shocher et al. 2018, Sec. 4; adopted by Liu et al. Sec. IV-B).

"We start with a learning rate of 0.001. We periodically take a linear fit of the reconstruction
error and if the standard deviation is greater by a factor than the slope of the linear fit we
divide the learning rate by 10. We stop when we get to a learning rate of 10^-6." (ZSSR, Sec. 4;
Liu et al.: "starting with a learning rate of 0.001 ... stop training when the learning rate reaches
0.000001").

Usage: call ``record(iteration, error)`` whenever the reconstruction error is measured and
``update(iteration)`` every iteration; it returns the learning rate to use, and ``done`` becomes true
once the rate has reached ``lr_min``.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ZSSRPolicyConfig:
    lr: float = 1e-3         # Liu et al. Sec. IV-B: Adam "starting with a learning rate of 0.001"
    lr_min: float = 1e-6     # Liu et al. Sec. IV-B: stop "when the learning rate reaches 0.000001"
    factor: float = 0.1      # ZSSR Sec. 4: "divide the learning rate by 10"
    check_every: int = 60    # iterations between fits (our choice, ZSSR leaves it to its code)
    window: int = 256        # iterations of error history in each linear fit (our choice)
    ratio: float = 1.5       # "greater by a factor": reduce when ratio * |slope| < std (our choice)
    min_iters: int = 256     # iterations at one rate before the next fit may reduce it (our choice)


class ZSSRPolicy:
    def __init__(self, cfg: ZSSRPolicyConfig | None = None):
        self.cfg = cfg or ZSSRPolicyConfig()
        self.lr = self.cfg.lr
        self.last_change = 0
        self.history: list[tuple[int, float]] = []
        self.changes: list[tuple[int, float]] = []  # (iteration, new lr), for the log

    @property
    def done(self) -> bool:
        return self.lr <= self.cfg.lr_min * (1 + 1e-9)  # "stop when we get to a learning rate of 10^-6"

    def record(self, iteration: int, error: float) -> None:
        if not np.isfinite(error):
            raise FloatingPointError(f"reconstruction error at iteration {iteration} is {error}")
        self.history.append((iteration, float(error)))

    def update(self, iteration: int) -> float:
        """The learning rate for ``iteration``; divides it by 10 when the error has flattened."""
        c = self.cfg
        if iteration % c.check_every or iteration - self.last_change < c.min_iters:
            return self.lr
        recent = [(i, e) for i, e in self.history if i > iteration - c.window and i >= self.last_change]
        if len(recent) < 3:
            return self.lr
        its, errs = np.array(recent, dtype=np.float64).T
        slope, intercept = np.polyfit(its, errs, 1)
        residual_std = float(np.std(errs - (slope * its + intercept)))
        if -slope * c.ratio < residual_std:  # no longer clearly decreasing: noise beats the trend
            self.lr *= c.factor
            self.last_change = iteration
            self.changes.append((iteration, self.lr))
        return self.lr
