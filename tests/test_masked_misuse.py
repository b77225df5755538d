"""MSG misused: copies of masked models, two MaskedGradients on one neuron, foreign neurons
the default targets do not find, unknown neuron kinds, a forgotten ``reset_net``, and the
one configuration no path masks exactly (norse). docs/interop.md, docs/design.md §2.3.1."""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import norse.torch as norse
import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn

from sparsegrad import LIF, MaskedGradient

T, B, C = 5, 4, 6


def draw(shape, seed, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


class SnnNet(nn.Module):
    """snntorch network; ``readout="mem"`` reads the last Leaky's membrane."""

    def __init__(self, readout="spk", reset_delay=True):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(C, 16)
        self.lif = snn.Leaky(beta=0.8, threshold=0.5, reset_delay=reset_delay)
        self.readout = readout

    def forward(self, x):
        mem = self.lif.init_leaky()
        out = []
        for x_t in x:
            spk, mem = self.lif(self.fc(x_t), mem)
            out.append(spk if self.readout == "spk" else mem)
        return torch.stack(out)


def sparsegrad_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(C, 16), LIF(surrogate="atan"), nn.Linear(16, 3))


def sj_net(detach_reset=True):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(C, 16), sj_neuron.LIFNode(v_threshold=0.5, detach_reset=detach_reset, step_mode="m"),
                         nn.Linear(16, 3))


NETS = {
    "sparsegrad": (sparsegrad_net, None),
    "spikingjelly-output": (sj_net, None),
    "spikingjelly-swap": (lambda: sj_net(detach_reset=False), None),
    "snntorch": (SnnNet, (snn.Leaky,)),
}


def grads(net, x):
    sj_functional.reset_net(net)
    net.zero_grad(set_to_none=True)
    (net(x) * draw((T, B, 16 if isinstance(net, SnnNet) else 3), 1)).sum().backward()
    return [q.grad.clone() for q in net.parameters()]


def same(a, b):
    return all(torch.equal(g, h) for g, h in zip(a, b, strict=True))


# ============================================================================ copies
@pytest.mark.parametrize("name", list(NETS))
def test_a_copy_of_a_masked_model_is_not_masked(name):
    build, targets = NETS[name]
    x = draw((T, B, C), 2, scale=2.0)
    plain = grads(build(), x)
    net = build()
    msg = MaskedGradient(1.0).attach(net, targets=targets)
    twin = copy.deepcopy(net)
    copies = [twin]
    if name != "snntorch":  # snntorch's own spike_grad (a closure) cannot be pickled, masked or not
        buffer = io.BytesIO()
        torch.save(net, buffer)
        copies += [torch.load(io.BytesIO(buffer.getvalue()), weights_only=False), pickle.loads(pickle.dumps(net))]
    for other in copies:
        assert same(grads(other, x), plain)  # not masked, not frozen at p = 1
    assert not same(grads(net, x), plain)  # the original still is
    seen = msg.stats["seen"]
    grads(twin, x)
    assert msg.stats["seen"] == seen  # a copy never reaches the original's sampler
    again = MaskedGradient(1.0).attach(twin, targets=targets)  # no "masked already" error
    assert same(grads(twin, x), grads(net, x))
    again.remove()
    msg.remove()
    assert same(grads(net, x), plain) and same(grads(twin, x), plain)


def test_a_copied_lif_keeps_the_native_kernel_with_one_hook_after_reattaching():
    lif = LIF(surrogate="atan")
    MaskedGradient(0.5).attach(lif)
    twin = copy.deepcopy(lif)
    assert len(twin.surrogate._surrogate_hooks) == 1  # an inert stand-in
    MaskedGradient(0.5).attach(twin)
    assert len(twin.surrogate._surrogate_hooks) == 1  # replaced, not stacked


# ============================================================================ two MaskedGradients
@pytest.mark.parametrize("name", list(NETS))
def test_a_second_maskedgradient_on_a_masked_neuron_needs_stack(name):
    build, targets = NETS[name]
    net = build()
    first = MaskedGradient(0.5, seed=3).attach(net, targets=targets)
    with pytest.raises(ValueError, match=r"masked by another MaskedGradient.*stack=True"):
        MaskedGradient(0.5, seed=4).attach(net, targets=targets)
    first.attach(net, targets=targets)  # the same object again: masked once, no error
    second = MaskedGradient(0.5, seed=4).attach(net, targets=targets, stack=True)
    x = draw((T, B, C), 5, scale=3.0)
    grads(net, x)
    assert first.stats["seen"] == second.stats["seen"] > 0
    first.remove()
    second.remove()
    MaskedGradient(0.5).attach(net, targets=targets)  # free again


def test_stacked_masks_multiply():
    p1, p2 = 0.5, 0.5
    act = LIF(surrogate="atan")
    MaskedGradient(p1, seed=6).attach(act)
    MaskedGradient(p2, seed=7).attach(act, stack=True)
    x = torch.full((T, 64, 200), 0.6, requires_grad=True)
    act(x).sum().backward()
    # the last step's input gradient is SG' * m1 * m2 alone: kept with probability 1/4
    kept = (x.grad[-1] != 0).float().mean().item()
    assert abs(kept - (1 - p1) * (1 - p2)) < 0.02


def test_stack_must_be_a_bool():
    with pytest.raises(ValueError, match="stack must be True or False"):
        MaskedGradient(0.5).attach(sparsegrad_net(), stack="yes")


# ============================================================================ finding neurons
def test_no_targets_error_names_the_snntorch_neuron_found():
    with pytest.raises(ValueError, match=r"found snntorch\.Leaky \(lif\); pass targets=\(snntorch\.Leaky,\)"):
        MaskedGradient(0.5).attach(SnnNet())
    net = SnnNet()
    MaskedGradient(0.5).attach(net, targets=(snn.Leaky,))  # the suggestion works


def test_default_targets_warn_about_foreign_neurons_they_leave_unmasked():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = LIF()
            self.leaky = snn.Leaky(beta=0.5)

    with pytest.warns(UserWarning, match=r"snntorch\.Leaky \(leaky\) not masked"):
        MaskedGradient(0.5).attach(Mixed())


@pytest.mark.parametrize(
    ("neuron", "label"),
    [(lambda: snn.Alpha(alpha=0.6, beta=0.5), "snntorch.Alpha"), (lambda: norse.LIFRecurrentCell(4, 4), "norse.torch.LIFRecurrentCell")],
)
def test_an_unknown_neuron_kind_is_named_with_what_targets_accepts(neuron, label):
    net = nn.Sequential(nn.Linear(4, 4), neuron())
    with pytest.raises(ValueError, match=rf"no masking path for {label} \(at '1'\); targets= accepts .*snntorch Leaky"):
        MaskedGradient(0.5).attach(net, targets=(type(net[1]),))
    assert not net[1]._forward_hooks and not net[1]._forward_pre_hooks  # nothing attached


# ============================================================================ spikingjelly state
@pytest.mark.parametrize("detach_reset", [True, False])
def test_forgetting_reset_net_is_named_at_the_next_forward(detach_reset):
    net = sj_net(detach_reset)
    MaskedGradient(0.5, seed=8).attach(net)
    x = draw((T, B, C), 9, scale=2.0)
    net(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"LIFNode at '1'.*reset_net\(net\) after each step"):
        net(x)
    sj_functional.reset_net(net)
    net(x).sum().backward()  # reset: fine
    sj_functional.detach_net(net)
    net(x).sum().backward()  # state carried over on purpose: fine


def test_single_step_sequences_and_eval_are_not_stale():
    node = sj_neuron.LIFNode(v_threshold=0.5, detach_reset=True)
    MaskedGradient(0.5, seed=10).attach(node)
    x = draw((T, B, C), 11, scale=2.0).requires_grad_(True)
    torch.stack([node(x_t) for x_t in x]).sum().backward()  # state flows within one graph
    node.eval()
    with torch.no_grad():
        node(x[0])  # evaluation after training, without reset: not the training mistake


# ============================================================================ norse
def test_norse_lif_cell_is_masked_approximately_with_one_warning():
    class NorseNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(C, 16)
            self.cell1 = norse.LIFCell()
            self.cell2 = norse.LIFCell()

        def forward(self, x):
            s1 = s2 = None
            out = []
            for x_t in x:
                z, s1 = self.cell1(self.fc(x_t) * 20, s1)
                z, s2 = self.cell2(z * 20, s2)
                out.append(z)
            return torch.stack(out)

    net = NorseNet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        msg = MaskedGradient(0.5, seed=12).attach(net, targets=(norse.LIFCell,))
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1, texts
    assert "norse.torch.LIFCell (cell1, cell2)" in texts[0] and "reset" in texts[0]
    assert "docs/interop.md" in texts[0] and "Which path each neuron gets" in texts[0]
    net(draw((T, B, C), 13)).sum().backward()
    assert msg.stats["seen"] == 2 * T * B * 16  # each cell's spikes, every step
