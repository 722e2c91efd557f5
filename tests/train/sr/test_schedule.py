"""The ZSSR learning-rate policy: 1e-3, divided by 10 when the error flattens, stop below 1e-6."""
from sonoedge.train.sr.schedule import ZSSRPolicy, ZSSRPolicyConfig


def _run(errors, cfg):
    policy, lrs = ZSSRPolicy(cfg), []
    for it, err in enumerate(errors):
        lrs.append(policy.update(it))
        policy.record(it, err)
        if policy.done:
            break
    return policy, lrs


def test_steady_decrease_keeps_the_rate():
    cfg = ZSSRPolicyConfig(check_every=10, window=50, min_iters=50)
    policy, lrs = _run([1.0 - 0.001 * i for i in range(400)], cfg)
    assert set(lrs) == {1e-3} and not policy.done


def test_plateau_divides_by_ten_down_to_the_stop():
    cfg = ZSSRPolicyConfig(check_every=10, window=50, min_iters=50)
    errors = [0.5 + 0.01 * ((i * 7919) % 13) / 13 for i in range(2000)]  # flat noise
    policy, lrs = _run(errors, cfg)
    assert policy.done
    assert [round(lr, 12) for _, lr in policy.changes] == [1e-4, 1e-5, 1e-6]
    first_change = policy.changes[0][0]
    assert first_change >= cfg.min_iters and first_change % cfg.check_every == 0
    assert all(b - a >= cfg.min_iters for (a, _), (b, _) in zip(policy.changes, policy.changes[1:]))


def test_paper_defaults():
    cfg = ZSSRPolicyConfig()
    assert (cfg.lr, cfg.lr_min, cfg.factor) == (1e-3, 1e-6, 0.1)
