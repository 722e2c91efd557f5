"""Table I's stride-1 transposed convolutions are plain convolutions: same function, old weights load."""
import copy

import torch
from torch import nn

from sonoedge.train.sr.networks import LiuSRGenerator


def _old_layout(G):
    """G with each stride-1 decoder conv replaced by the ConvTranspose2d of the earlier layout, holding
    the equivalent weights (in/out swapped, kernel flipped)."""
    old = copy.deepcopy(G)
    for branch in old.branches:
        for i in branch._plain_decoder:
            conv = branch.body[i]
            t = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, 3, 1, 1)
            t.weight.data = conv.weight.data.transpose(0, 1).flip(-2, -1).clone()
            t.bias.data = conv.bias.data.clone()
            branch.body[i] = t
    return old


def test_plain_conv_equals_the_transposed_one_and_old_checkpoints_load():
    torch.manual_seed(0)
    G = LiuSRGenerator(width=0.5)
    for p in G.parameters():
        nn.init.normal_(p, std=0.05)
    old = _old_layout(G)
    x = torch.rand(1, 1, 20, 28) * 2 - 1
    with torch.no_grad():
        assert float((old(x) - G(x)).abs().max()) < 1e-5
        # as saved before the change: transposed weights, no layout marker, no torch metadata
        state = {k: v for k, v in old.state_dict().items() if not k.endswith(".layout")}
        loaded = LiuSRGenerator(width=0.5)
        loaded.load_state_dict(state)
        assert float((loaded(x) - old(x)).abs().max()) < 1e-5
        fresh = LiuSRGenerator(width=0.5)
        fresh.load_state_dict(dict(G.state_dict()))  # the current layout loads unchanged (no metadata)
        assert torch.equal(fresh(x), G(x))
    assert not any(isinstance(m, nn.ConvTranspose2d) and m.stride == (1, 1) for m in G.modules())
