"""MSG on the last k spiking layers only: ``MaskedGradient.attach(model, last=k, example=x)``.

Observation device (as in test_masked.py): surrogate hooks run in registration order, so a hook
registered before ``attach`` sees the unmasked ``SG'(x)`` and one registered after sees what MSG
left of it. With the atan surrogate ``SG' > 0`` everywhere, so a zero after masking is a drop."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from torch import nn

import sparsegrad.models  # noqa: F401  (registers the models)
from sparsegrad import LIF, MaskedGradient
from sparsegrad import surrogate as sg
from sparsegrad.study.probe import gradient_probe

MASKS = 64
GAIN_TOL = 0.03  # the mean gain over 64 masks lands within 0.01 of its expectation here (seeds 1, 2)


class Reversed(nn.Module):
    """fc1 -> lif1 -> fc2 -> lif2 -> fc3 -> lif3 -> out on ``[T, B, 4]``; the LIF layers are
    registered last-first, so registration order is the reverse of execution order."""

    def __init__(self, surrogate=None):
        super().__init__()
        self.lif3, self.lif2, self.lif1 = (LIF(surrogate=surrogate or "atan", v_threshold=0.05) for _ in range(3))
        self.fc1, self.fc2, self.fc3, self.out = nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.lif3(self.fc3(self.lif2(self.fc2(self.lif1(self.fc1(x)))))))


class Record:
    """A surrogate hook keeping a copy of each ``SG'`` block it is shown."""

    def __init__(self):
        self.blocks: list[torch.Tensor] = []

    def __call__(self, g, t0):
        self.blocks.append(g.detach().clone())


def _observed(last: int, p: float = 1.0):
    torch.manual_seed(0)
    net = Reversed()
    x = torch.randn(3, 5, 4)
    lifs = [net.lif1, net.lif2, net.lif3]
    before = [Record() for _ in lifs]
    for lif, rec in zip(lifs, before):
        lif.surrogate.register_surrogate_hook(rec)
    msg = MaskedGradient(p, seed=0).attach(net, last=last, example=x)
    after = [Record() for _ in lifs]
    for lif, rec in zip(lifs, after):
        lif.surrogate.register_surrogate_hook(rec)
    net(x).sum().backward()
    return net, msg, before, after


@pytest.mark.parametrize("last", [1, 2])
def test_last_k_masks_the_layers_that_run_last(last):
    net, msg, before, after = _observed(last)
    for i, (b, a) in enumerate(zip(before, after)):
        assert b.blocks and len(a.blocks) == len(b.blocks)
        assert all(torch.all(blk > 0) for blk in b.blocks)  # atan: SG' > 0, so a zero is a drop
        if i < 3 - last:  # runs before the last `last` layers: untouched, bit for bit
            assert all(torch.equal(x, y) for x, y in zip(a.blocks, b.blocks)), f"lif{i + 1}"
        else:  # p = 1: every entry dropped
            assert all(torch.count_nonzero(blk) == 0 for blk in a.blocks), f"lif{i + 1}"
    # Every path to fc1..fc3 crosses lif3's surrogate, which p = 1 zeroes; the readout is reached.
    assert all(torch.count_nonzero(fc.weight.grad) == 0 for fc in (net.fc1, net.fc2, net.fc3))
    assert torch.count_nonzero(net.out.weight.grad) > 0
    shape_numel = sum(blk.numel() for rec in after[3 - last:] for blk in rec.blocks)
    assert msg.stats == {"seen": shape_numel, "dropped": shape_numel}


def test_last_k_at_half_drops_half_of_the_last_layer_only():
    _, msg, before, after = _observed(1, p=0.5)
    assert torch.equal(torch.cat(after[1].blocks), torch.cat(before[1].blocks))
    kept = torch.cat(after[2].blocks) != 0
    assert 0.4 < kept.double().mean() < 0.6  # 5 sigma of 240 Bernoulli(0.5) entries is 0.16
    assert msg.stats["dropped"] == int((~kept).sum())


def test_attach_leaves_the_model_state_as_it_was():
    torch.manual_seed(0)
    net = timm.create_model("spiking_plain2", in_chans=3, img_size=8, num_classes=4, T=2)
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    MaskedGradient(0.5).attach(net, last=1, example=torch.rand(4, 3, 8, 8))
    assert net.training and all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_activations_the_forward_does_not_call_do_not_count():
    net, x = Reversed(), torch.randn(2, 3, 4)
    net.spare = LIF()
    msg = MaskedGradient(1.0).attach(net, last=3, example=x)
    assert not net.spare.surrogate.active_hooks()
    assert all(lif.surrogate.active_hooks() for lif in (net.lif1, net.lif2, net.lif3))
    msg.remove()
    with pytest.raises(ValueError, match=r"last=4, but the forward of example calls 3 spiking activation\(s\) of the 4"):
        MaskedGradient(1.0).attach(net, last=4, example=x)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_last_is_refused_naming_it_and_nothing_is_attached(bad):
    net = Reversed()
    with pytest.raises(ValueError, match=rf"last must be an integer >= 1, got {bad!r}"):
        MaskedGradient(0.5).attach(net, last=bad, example=torch.randn(2, 3, 4))
    assert not any(lif.surrogate.active_hooks() for lif in (net.lif1, net.lif2, net.lif3))


def test_last_and_example_go_together():
    net = Reversed()
    with pytest.raises(ValueError, match=r"last= and example= go together .* got last=2 and example=None"):
        MaskedGradient(0.5).attach(net, last=2)
    with pytest.raises(ValueError, match=r"got last=None and example=Tensor"):
        MaskedGradient(0.5).attach(net, example=torch.randn(2, 3, 4))


def test_a_surrogate_shared_with_an_earlier_neuron_is_refused():
    net = Reversed(surrogate=sg.build("atan"))  # one Surrogate instance for all three LIF layers
    with pytest.raises(ValueError, match=r"last=1 would also mask \['lif2', 'lif1'\]"):
        MaskedGradient(0.5).attach(net, last=1, example=torch.randn(2, 3, 4))


@pytest.fixture(scope="module")
def plain6():
    # detach_reset: each path crosses one surrogate entry per masked layer, so the expected gain
    # of group l is exactly (1 - p)^min(k, L - l).
    torch.manual_seed(0)
    net = timm.create_model("spiking_plain6", in_chans=3, img_size=8, num_classes=4, T=2, detach_reset=True)
    return net, torch.rand(8, 3, 8, 8), torch.arange(8) % 4


@pytest.mark.parametrize("last", [1, 2])
def test_probe_gain_follows_paths_kept_of_the_last_k_layers(plain6, last):
    net, x, y = plain6
    res = gradient_probe(net, x, y, 0.5, masks=MASKS, last=last, seed=1)
    depth = res["depth"]
    assert depth == 6 and res["last"] == last
    for r in res["layers"]:
        crossed = min(last, depth - r["layer"])
        assert r["masks_crossed"] == crossed and r["paths_kept"] == 0.5**crossed
        assert r["gain"] == pytest.approx(0.5**crossed, abs=GAIN_TOL), r["layer"]
    assert res["layers"][0]["cosine"] > 0.4  # every layer masked: 0.15 (below)


def test_probe_without_last_crosses_every_layer(plain6):
    net, x, y = plain6
    first = gradient_probe(net, x, y, 0.5, masks=MASKS, seed=1)["layers"][0]
    assert first["masks_crossed"] == 6
    assert first["gain"] == pytest.approx(0.5**6, rel=0.25)
    assert first["cosine"] < 0.3



def _chain(n_lif: int) -> nn.Sequential:
    layers = [nn.Linear(4, 4)]
    for _ in range(n_lif):
        layers += [LIF(), nn.Linear(4, 4)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("n_lif, warns", [(5, False), (6, True), (17, True)])
def test_attach_warns_once_on_a_deep_network(n_lif, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MaskedGradient(0.5).attach(_chain(n_lif))
    deep = [w for w in caught if "gradient path to the first" in str(w.message)]
    assert len(deep) == (1 if warns else 0)
    if warns:
        assert f"masks {n_lif} spiking activations" in str(deep[0].message)
        assert f"{0.5 ** n_lif:.2g}" in str(deep[0].message)


def test_no_deep_warning_with_last_or_p_zero():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MaskedGradient(0.5).attach(_chain(8), last=2, example=torch.zeros(2, 3, 4))
        MaskedGradient(0.0).attach(_chain(8))
    assert not [w for w in caught if "gradient path to the first" in str(w.message)]
