"""The gradient probe (sparsegrad.study.probe) against closed forms: p = 0 and p = 1, the readout
that no mask reaches, and a one-layer net whose masked gradient is linear in the masks."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import sparsegrad.models  # noqa: F401  (registers the models)
from sparsegrad.neuron import LIF
from sparsegrad.study.probe import depth_groups, gradient_probe


class OneLayer(nn.Module):
    """Linear -> LIF (detached reset: each path crosses one surrogate once) -> Linear, on [T, B, F]."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif, self.fc2 = nn.Linear(4, 16), LIF(detach_reset=True, v_threshold=0.2), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.lif(self.fc1(x)))


def _one_layer_batch():
    torch.manual_seed(0)
    return OneLayer(), torch.randn(3, 8, 4), torch.randint(0, 3, (8,))


def _mean_t_loss(logits, y):
    return nn.functional.cross_entropy(logits.mean(0), y)


@pytest.fixture(scope="module")
def plain2():
    torch.manual_seed(0)
    net = timm.create_model("spiking_plain2", in_chans=3, img_size=8, num_classes=4, T=2)
    return net, torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])


def test_groups_follow_the_lif_layers(plain2):
    net, x, _ = plain2
    groups = depth_groups(net, x)
    assert len(groups) == 3
    assert all(n.startswith("stem.") for n in groups[0])
    assert all(n.startswith("stages.1.0.") for n in groups[1]) and groups[1]  # stages.0 is the first pool
    assert groups[2] == ["head.fc.weight", "head.fc.bias"]


def test_p_zero_is_the_unmasked_gradient(plain2):
    net, x, y = plain2
    res = gradient_probe(net, x, y, 0.0, masks=2)
    assert [r["masks_crossed"] for r in res["layers"]] == [2, 1, 0]
    for r in res["layers"]:
        assert r["cosine"] == pytest.approx(1, abs=1e-9)
        assert r["norm_ratio"] == pytest.approx(1, abs=1e-9)
        assert r["gain"] == pytest.approx(1, abs=1e-9)
        assert r["paths_kept"] == 1


def test_the_readout_is_never_masked_and_the_prediction_is_paths_kept(plain2):
    net, x, y = plain2
    res = gradient_probe(net, x, y, 0.5, masks=3)
    readout = res["layers"][-1]
    assert (readout["cosine"], readout["norm_ratio"], readout["gain"]) == pytest.approx((1, 1, 1), abs=1e-9)
    assert [r["paths_kept"] for r in res["layers"]] == [0.25, 0.5, 1.0]


def test_p_one_drops_every_gradient_below_the_readout():
    net, x, y = _one_layer_batch()
    first = gradient_probe(net, x, y, 1.0, masks=2, loss_fn=_mean_t_loss)["layers"][0]
    assert (first["cosine"], first["norm_ratio"], first["gain"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("p, rescale, expected", [(0.5, False, 0.5), (0.25, False, 0.75), (0.5, True, 1.0)])
def test_one_layer_gain_is_one_minus_p_in_expectation(p, rescale, expected):
    # g_mask = sum_j m_j c_j over the 16 x 8 x 3 surrogate entries, so E<g_mask, g>/|g|^2 = 1 - p
    # (times 1/(1-p) with rescale). The mean over 200 masks has an sd below 0.01 here.
    net, x, y = _one_layer_batch()
    first = gradient_probe(net, x, y, p, masks=200, rescale=rescale, loss_fn=_mean_t_loss, seed=3)["layers"][0]
    assert first["masks_crossed"] == 1
    assert first["gain"] == pytest.approx(expected, abs=0.05)
    assert 0 < first["cosine"] < 1


def test_the_probe_restores_the_network_state(plain2):
    net, x, y = plain2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    gradient_probe(net, x, y, 0.5, masks=1)
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_arguments_are_refused(plain2):
    net, x, y = plain2
    with pytest.raises(ValueError, match="masks must be an int >= 1"):
        gradient_probe(net, x, y, 0.5, masks=0)
    with pytest.raises(ValueError, match="p"):
        gradient_probe(net, x, y, 1.5)
    with pytest.raises(ValueError, match="no"):
        depth_groups(nn.Linear(2, 2), torch.rand(1, 2))
