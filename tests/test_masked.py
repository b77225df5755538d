"""Tests of MSG, the masked surrogate gradient (paper Eq. 10-14, docs/design.md §2.3).

Observation device: surrogate hooks run in registration order, so a hook registered
before ``attach`` sees the unmasked ``SG'(x)`` and one registered after sees the masked
one. With the atan surrogate ``SG' > 0`` everywhere, so a zero after masking is a drop."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import snntorch as snn
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn

from sparsegrad import LIF, MaskedGradient
from sparsegrad import surrogate as sg

T, B, C, N = 7, 5, 3, 300
PROPERTY = settings(max_examples=15, deadline=None, derandomize=True)


def binomial_bound(n: int, p: float, sigmas: float = 5.0) -> float:
    """Half-width of a ``sigmas``-sigma interval for a Bernoulli(p) sample fraction."""
    return sigmas * math.sqrt(p * (1 - p) / n) + 1e-12


def inputs(shape, seed=0, scale=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def atan_sg(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Paper Eq. 7, evaluated here independently."""
    return alpha / (1 + (math.pi / 2 * alpha * x) ** 2)


class Capture:
    """A surrogate hook recording (a copy of) SG' of each backward pass.

    Inside the LIF kernel hooks are called per block of timesteps, last block first, and
    the call with ``t0 == 0`` ends the pass: the blocks are put back in time order."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []
        self._blocks: list[tuple[int, torch.Tensor]] = []

    def __call__(self, g, t0):
        self._blocks.append((t0, g.detach().clone()))
        if t0 == 0:
            self.seen.append(torch.cat([b for _, b in sorted(self._blocks, key=lambda tb: tb[0])]))
            self._blocks = []

    @property
    def last(self) -> torch.Tensor:
        return self.seen[-1]


def observed_lif(msg: MaskedGradient | None, **lif_kw):
    """A LIF(atan) with hooks seeing SG' before and after MSG's mask."""
    lif = LIF(surrogate="atan", **lif_kw)
    before, after = Capture(), Capture()
    lif.surrogate.register_surrogate_hook(before)
    if msg is not None:
        msg.attach(lif)
    lif.surrogate.register_surrogate_hook(after)
    return lif, before, after


def run_backward(module, x, upstream=None, seed=1):
    x = x.clone().requires_grad_(True)
    out = module(x)
    if upstream is None:
        upstream = inputs(out.shape, seed=seed, dtype=out.dtype)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(C, 16), LIF(surrogate="atan"), nn.Linear(16, 12), LIF(surrogate="pl"), nn.Linear(12, 4)
    )


def grads_of(model, x, target_seed=3):
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * inputs(out.shape, seed=target_seed)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


# ============================================================================ arguments
@pytest.mark.parametrize("p", [-0.1, 1.1, float("nan"), "0.5", True, None, float("inf")])
def test_bad_p_raises_with_the_value(p):
    with pytest.raises(ValueError) as info:
        MaskedGradient(p)
    assert repr(p) in str(info.value)


def test_p_one_with_rescale_raises_but_alone_is_fine():
    with pytest.raises(ValueError, match="rescale"):
        MaskedGradient(1.0, rescale=True)
    assert MaskedGradient(1.0).p == 1.0
    assert MaskedGradient(0).p == 0.0


def test_bad_granularity_raises():
    with pytest.raises(ValueError, match="'foo'"):
        MaskedGradient(0.5, granularity="foo")


def test_seed_and_generator_together_raise():
    with pytest.raises(ValueError, match="seed"):
        MaskedGradient(0.5, seed=1, generator=torch.Generator())


def test_schedule_must_be_callable_and_return_a_valid_p():
    with pytest.raises(ValueError, match="schedule"):
        MaskedGradient(0.5, schedule=0.3)
    with pytest.raises(ValueError, match=r"schedule\(0\).*2.0"):
        MaskedGradient(0.5, schedule=lambda step: 2.0)
    with pytest.raises(ValueError, match="rescale"):
        MaskedGradient(0.5, rescale=True, schedule=lambda step: 1.0)
    later = MaskedGradient(0.5, schedule=lambda step: 0.5 if step < 2 else -1.0)
    later.step()
    with pytest.raises(ValueError, match=r"schedule\(2\).*-1.0"):
        later.step()


def test_schedule_drives_p_and_step_counter():
    msg = MaskedGradient(0.9, schedule=lambda step: 0.1 * step)
    assert msg.p == 0.0
    msg.step()
    msg.step()
    assert msg.step_count == 2
    assert msg.p == pytest.approx(0.2)


def test_schedule_is_read_once_per_step_not_per_backward():
    calls = []

    def schedule(step):
        calls.append(step)
        return 0.5

    msg = MaskedGradient(0.1, schedule=schedule, seed=0)
    net = small_net()
    msg.attach(net)
    for _ in range(3):
        grads_of(net, inputs((T, B, C)))
    msg.step()
    grads_of(net, inputs((T, B, C)))
    assert calls == [0, 1]
    assert msg.p == 0.5


@pytest.mark.parametrize("rescale", ["False", "0", 0, 1, None])
def test_rescale_must_be_a_bool_not_a_string(rescale):
    with pytest.raises(ValueError, match=f"rescale must be True or False, got {rescale!r}"):
        MaskedGradient(0.5, rescale=rescale)


@pytest.mark.parametrize("p", [np.float32(0.5), np.float64(0.25), torch.tensor(0.5), np.int64(0)])
def test_numpy_and_torch_scalars_are_accepted_as_p(p):
    msg = MaskedGradient(p, rescale=np.bool_(True), seed=np.int64(3))
    assert msg.p == float(p) and isinstance(msg.p, float)
    assert msg.rescale is True and msg.seed == 3


# ============================================================================ p = 0
def test_p_zero_is_bitwise_plain_training_and_draws_no_random_numbers():
    x = inputs((T, B, C), seed=2, scale=2.0)
    plain = small_net()
    masked = copy.deepcopy(plain)
    msg = MaskedGradient(0.0).attach(masked)
    want_out, want = grads_of(plain, x)
    rng = torch.get_rng_state()
    got_out, got = grads_of(masked, x)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(got_out, want_out)
    for g_got, g_want in zip(got, want, strict=True):
        assert torch.equal(g_got, g_want)
    assert msg.stats == {"seen": T * B * (16 + 12), "dropped": 0}


# ============================================================================ Eq. 10-11
@PROPERTY
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**31))
def test_eq11_kept_entries_unscaled_dropped_zero_fraction_one_minus_p(p, seed):
    msg = MaskedGradient(p, seed=seed)
    lif, before, after = observed_lif(msg)
    run_backward(lif, inputs((T, B, N), seed=seed % 1000))
    sg_plain, sg_masked = before.last, after.last
    assert sg_masked.shape == (T, B, N)
    assert (sg_plain > 0).all()
    kept = sg_masked != 0
    assert torch.equal(sg_masked[kept], sg_plain[kept])  # unscaled
    n = kept.numel()
    assert abs(kept.float().mean().item() - (1 - p)) <= binomial_bound(n, p)
    assert msg.stats == {"seen": n, "dropped": int((~kept).sum())}


def test_masked_lif_gradient_is_bptt_with_masked_surrogate():
    # dL/dx = dL/dS * SG'(x) * M, where dL/dS sums the next layer and the reset (docs/design.md §2.3):
    # rebuild the whole BPTT by hand with the mask MSG drew and compare.
    tau, v_th = 2.0, 0.5
    msg = MaskedGradient(0.5, seed=11)
    lif, before, after = observed_lif(msg, tau=tau, v_threshold=v_th)
    x = inputs((T, B, 20), seed=12, dtype=torch.float64)
    upstream = inputs((T, B, 20), seed=13, dtype=torch.float64)
    _, grad = run_backward(lif, x, upstream)
    mask = (after.last != 0).to(torch.float64)

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, m):
            ctx.save_for_backward(u, m)
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, g):
            u, m = ctx.saved_tensors
            return g * atan_sg(u) * m, None

    xr = x.clone().requires_grad_(True)
    v = torch.zeros_like(x[0])
    spikes = []
    for t in range(T):
        h = v + (xr[t] - v) / tau
        s = Spike.apply(h - v_th, mask[t])
        v = h * (1 - s)
        spikes.append(s)
    (torch.stack(spikes) * upstream).sum().backward()
    torch.testing.assert_close(grad, xr.grad, rtol=1e-12, atol=1e-13)
    assert not torch.allclose(grad, run_backward(LIF(tau, v_th, surrogate="atan"), x, upstream)[1])


def test_p_one_drops_every_surrogate_gradient():
    net = small_net()
    MaskedGradient(1.0).attach(net)
    _, grads = grads_of(net, inputs((T, B, C), seed=4, scale=2.0))
    # every path from the loss to the first two layers crosses a spike function
    for g in grads[:4]:
        assert torch.count_nonzero(g) == 0
    assert torch.count_nonzero(grads[5]) > 0  # the last bias is not behind a spike


# ============================================================================ Eq. 13-14
def masked_samples(p, mu, sigma, rescale, seed, shape=(4, 5, 10_000)):
    """G = g * SG' * M (/(1-p)) through a surrogate's hook path, with SG'(0) = 1 exactly
    (rectangular surrogate, alpha = 1) and g ~ N(mu, sigma^2) the incoming gradient."""
    s = sg.Rectangular(1.0)
    MaskedGradient(p, rescale=rescale, seed=seed).attach(s)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(seed + 1)
    g = mu + sigma * torch.randn(shape, generator=gen, dtype=torch.float64)
    s(x).backward(g)
    return x.grad.flatten()


def assert_mean_and_variance(sample, mean, var, sigmas=6.0):
    n = sample.numel()
    m = sample.mean()
    centred = sample - m
    s2 = centred.square().mean()
    m4 = centred.pow(4).mean()
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt(max(m4.item() - s2.item() ** 2, 0.0) / n)
    assert abs(m.item() - mean) <= sigmas * se_mean + 1e-9, (m.item(), mean, se_mean)
    assert abs(s2.item() - var) <= sigmas * se_var + 1e-9, (s2.item(), var, se_var)


@PROPERTY
@given(p=st.floats(0.05, 0.9), mu=st.floats(-2, 2), sigma=st.floats(0.1, 2), seed=st.integers(0, 2**30))
def test_eq13_14_rescaled_mean_and_variance(p, mu, sigma, seed):
    sample = masked_samples(p, mu, sigma, rescale=True, seed=seed)
    assert_mean_and_variance(sample, mu, sigma**2 + p / (1 - p) * (mu**2 + sigma**2))
    kept = sample[sample != 0]
    # kept entries are g / (1 - p): rebuild g and check it is the N(mu, sigma) draw
    assert abs((kept * (1 - p)).mean().item() - mu) <= 6 * sigma / math.sqrt(kept.numel())


@PROPERTY
@given(p=st.floats(0.05, 0.95), mu=st.floats(-2, 2), sigma=st.floats(0.1, 2), seed=st.integers(0, 2**30))
def test_eq11_unscaled_mean_is_one_minus_p_times_mu(p, mu, sigma, seed):
    sample = masked_samples(p, mu, sigma, rescale=False, seed=seed)
    second = mu**2 + sigma**2
    assert_mean_and_variance(sample, (1 - p) * mu, (1 - p) * second - (1 - p) ** 2 * mu**2)


def test_rescale_multiplies_kept_entries_by_one_over_one_minus_p():
    p = 0.25
    msg = MaskedGradient(p, rescale=True, seed=5)
    lif, before, after = observed_lif(msg)
    run_backward(lif, inputs((T, B, 40), seed=6))
    kept = after.last != 0
    torch.testing.assert_close(after.last[kept], before.last[kept] / (1 - p), rtol=1e-6, atol=0)


# ============================================================================ seeds
def masks_for(msg_kwargs, n_backward=1, x_seed=7):
    msg = MaskedGradient(**msg_kwargs)
    lif, _, after = observed_lif(msg)
    x = inputs((T, B, 64), seed=x_seed)
    for _ in range(n_backward):
        run_backward(lif, x)
    return [(a != 0) for a in after.seen]


def test_same_seed_same_masks_different_seed_different():
    a = masks_for(dict(p=0.5, seed=123), n_backward=2)
    b = masks_for(dict(p=0.5, seed=123), n_backward=2)
    c = masks_for(dict(p=0.5, seed=124), n_backward=2)
    assert all(torch.equal(m1, m2) for m1, m2 in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_successive_backward_calls_draw_fresh_masks():
    first, second, third = masks_for(dict(p=0.5, seed=9), n_backward=3)
    assert not torch.equal(first, second)
    assert not torch.equal(second, third)
    # independent draws agree on about half the entries when p = 1/2
    agree = (first == second).float().mean().item()
    assert abs(agree - 0.5) <= binomial_bound(first.numel(), 0.5)


def test_generator_gives_the_same_masks_as_the_same_seed():
    a = masks_for(dict(p=0.3, seed=77), n_backward=2)
    b = masks_for(dict(p=0.3, generator=torch.Generator().manual_seed(77)), n_backward=2)
    assert all(torch.equal(m1, m2) for m1, m2 in zip(a, b, strict=True))


def test_global_rng_drives_masks_without_seed():
    torch.manual_seed(31)
    a = masks_for(dict(p=0.5))
    torch.manual_seed(31)
    b = masks_for(dict(p=0.5))
    torch.manual_seed(32)
    c = masks_for(dict(p=0.5))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


# ============================================================================ granularity
def test_neuron_granularity_shares_the_mask_over_time_and_batch():
    p, n = 0.4, 2000
    msg = MaskedGradient(p, granularity="neuron", seed=3)
    lif, before, after = observed_lif(msg)
    run_backward(lif, inputs((T, B, n), seed=8))
    kept = after.last != 0  # [T, B, n]
    assert kept.shape == (T, B, n)
    assert torch.equal(kept, kept[:1, :1].expand(T, B, n))
    frac = kept[0, 0].float().mean().item()
    assert abs(frac - (1 - p)) <= binomial_bound(n, p)
    torch.testing.assert_close(after.last[kept], before.last[kept], rtol=0, atol=0)
    # a new minibatch gets a new neuron mask
    run_backward(lif, inputs((T, B, n), seed=9))
    assert not torch.equal(after.last[0, 0] != 0, kept[0, 0])


def test_neuron_granularity_mask_spans_all_blocks_of_timesteps():
    # Over a million elements per timestep: the kernel may hand SG' to the hooks in
    # several blocks of timesteps; one neuron mask must still cover the whole sequence.
    p, shape = 0.5, (3, 5, 209_716)
    msg = MaskedGradient(p, granularity="neuron", seed=5)
    lif, before, after = observed_lif(msg)
    run_backward(lif, inputs(shape, seed=11))
    kept = after.last != 0
    assert kept.shape == shape
    assert torch.equal(kept, kept[:1, :1].expand(shape))
    assert abs(kept[0, 0].float().mean().item() - (1 - p)) <= binomial_bound(shape[2], p)
    assert msg.stats == {"seen": math.prod(shape), "dropped": int((~kept).sum())}
    run_backward(lif, inputs(shape, seed=12))  # next pass: a fresh neuron mask
    assert not torch.equal(after.last[0, 0] != 0, kept[0, 0])


def test_neuron_granularity_on_conv_shape_shares_over_t_and_b_only():
    msg = MaskedGradient(0.5, granularity="neuron", seed=4)
    lif, _, after = observed_lif(msg)
    run_backward(lif, inputs((T, B, C, 6, 8), seed=10))
    kept = after.last != 0
    assert torch.equal(kept, kept[:1, :1].expand_as(kept))
    # channels and positions are masked independently
    assert 0 < kept[0, 0].float().mean().item() < 1


# ============================================================================ spikingjelly
def sj_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(C, 64),
        sj_neuron.LIFNode(step_mode="m", v_threshold=0.5, surrogate_function=sj_surrogate.ATan()),
        nn.Linear(64, 4),
    )


def sj_conv_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        sj_layer.SeqToANNContainer(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6)),
        sj_neuron.LIFNode(step_mode="m", v_threshold=0.5, surrogate_function=sj_surrogate.ATan()),
        sj_layer.SeqToANNContainer(nn.Conv2d(6, 4, 3, padding=1)),
        sj_neuron.LIFNode(step_mode="m", v_threshold=0.5, surrogate_function=sj_surrogate.Sigmoid()),
        nn.Flatten(2),
    )


def sj_grads(model, x, seed=3):
    sj_functional.reset_net(model)
    return grads_of(model, x, target_seed=seed)


@pytest.mark.parametrize(
    ("factory", "shape", "surrogate_numel"),
    [(sj_net, (T, B, C), T * B * 64), (sj_conv_net, (T, B, 2, 6, 8), T * B * (6 + 4) * 6 * 8)],
    ids=["linear", "conv"],
)
def test_spikingjelly_network(factory, shape, surrogate_numel):
    p = 0.5
    x = inputs(shape, seed=14, scale=2.0)
    model = factory()
    neurons = [m for m in model if isinstance(m, sj_neuron.BaseNode)]
    originals = [m.surrogate_function for m in neurons]
    plain_out, plain = sj_grads(model, x)

    msg = MaskedGradient(p, seed=15).attach(model)
    out, masked = sj_grads(model, x)
    assert all(m.surrogate_function is o for m, o in zip(neurons, originals))  # swapped for the forward only
    assert torch.equal(out, plain_out)  # same spikes
    assert any(not torch.equal(a, b) for a, b in zip(masked, plain))
    stats = msg.stats
    assert stats["seen"] == surrogate_numel
    assert abs(stats["dropped"] / stats["seen"] - p) <= binomial_bound(stats["seen"], p)

    msg.remove()
    assert all(m.surrogate_function is o for m, o in zip(neurons, originals))
    out_after, after = sj_grads(model, x)
    assert torch.equal(out_after, plain_out)
    for a, b in zip(after, plain, strict=True):
        assert torch.equal(a, b)


def test_spikingjelly_neuron_stats_count_every_surrogate_element():
    model = sj_net()
    msg = MaskedGradient(0.5, seed=1).attach(model)
    sj_grads(model, inputs((T, B, C), seed=2))
    assert msg.stats["seen"] == T * B * 64


def test_spikingjelly_p_one_zeroes_everything_behind_the_neuron():
    model = sj_net()
    MaskedGradient(1.0).attach(model)
    _, grads = sj_grads(model, inputs((T, B, C), seed=16, scale=2.0))
    assert torch.count_nonzero(grads[0]) == 0 and torch.count_nonzero(grads[1]) == 0
    assert torch.count_nonzero(grads[2]) > 0


def test_spikingjelly_surrogate_module_alone_uses_the_pre_hook_path():
    # A spikingjelly surrogate module not inside a neuron: the gradient leaving it is masked.
    p = 0.5
    act = sj_surrogate.ATan(alpha=2.0)
    msg = MaskedGradient(p, seed=17).attach(nn.Sequential(act))
    x = inputs((T, B, N), seed=18, dtype=torch.float64).requires_grad_(True)
    out = act(x)
    assert torch.equal(out, (x >= 0).to(out.dtype))
    out.sum().backward()
    plain = 0.5 * atan_sg(x.detach())  # spikingjelly's ATan is half the paper's
    kept = x.grad != 0
    torch.testing.assert_close(x.grad[kept], plain[kept], rtol=1e-12, atol=0)
    assert abs(kept.float().mean().item() - (1 - p)) <= binomial_bound(kept.numel(), p)
    assert msg.stats["seen"] == T * B * N
    msg.remove()
    x.grad = None
    act(x).sum().backward()
    torch.testing.assert_close(x.grad, plain, rtol=1e-12, atol=0)


def test_spikingjelly_attached_in_eval_mode_does_not_mask_in_eval():
    # attach() on a model that is already in eval(): eval forwards must not be masked.
    x = inputs((T, B, C), seed=19, scale=2.0)
    model = sj_net().eval()
    _, plain = sj_grads(model, x)
    msg = MaskedGradient(0.5, seed=20).attach(model)
    _, got = sj_grads(model, x)
    assert msg.stats["seen"] == 0
    for a, b in zip(got, plain, strict=True):
        assert torch.equal(a, b)


def test_spikingjelly_eval_after_attach_does_not_mask():
    x = inputs((T, B, C), seed=21, scale=2.0)
    model = sj_net()
    msg = MaskedGradient(0.5, seed=22).attach(model)
    model.eval()
    _, plain = sj_grads(copy.deepcopy(sj_net()).eval(), x)
    _, got = sj_grads(model, x)
    assert msg.stats["seen"] == 0
    for a, b in zip(got, plain, strict=True):
        assert torch.equal(a, b)


# ============================================================================ snntorch
class SnnNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(C, 32)
        self.lif = snn.Leaky(beta=0.8, threshold=0.5)
        self.currents = None

    def forward(self, x):
        cur = self.fc(x)  # [T, B, 32]
        cur.retain_grad()
        self.currents = cur
        mem = self.lif.init_leaky()
        spikes = []
        for t in range(x.shape[0]):
            spk, mem = self.lif(cur[t], mem)
            spikes.append(spk)
        return torch.stack(spikes)


def snn_run(model, x):
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * inputs(out.shape, seed=23)).sum().backward()
    return out.detach(), model.currents.grad.clone(), model.fc.weight.grad.clone()


def test_snntorch_leaky_masks_the_spike_output_gradient():
    # reset_delay=True (the default): dL/dS is masked at the spike output, exactly Eq. 11
    # (read back element by element in tests/test_masked_readback.py).
    p = 0.5
    x = inputs((T, B, C), seed=24, scale=2.0)
    plain_out, plain_cur, plain_w = snn_run(SnnNet(), x)
    model = SnnNet()
    msg = MaskedGradient(p, seed=25).attach(model, targets=(snn.Leaky,))
    out, cur, w = snn_run(model, x)
    assert torch.equal(out, plain_out)
    assert not torch.equal(w, plain_w) and not torch.equal(cur, plain_cur)
    stats = msg.stats
    assert stats["seen"] == T * B * 32
    assert abs(stats["dropped"] / stats["seen"] - p) <= binomial_bound(stats["seen"], p)


def test_snntorch_p_zero_keeps_gradients():
    x = inputs((T, B, C), seed=26, scale=2.0)
    _, plain_cur, plain_w = snn_run(SnnNet(), x)
    model = SnnNet()
    MaskedGradient(0.0).attach(model, targets=(snn.Leaky,))
    _, cur, w = snn_run(model, x)
    assert torch.equal(cur, plain_cur) and torch.equal(w, plain_w)


def test_snntorch_predicate_target():
    model = SnnNet()
    MaskedGradient(1.0).attach(model, targets=lambda m: isinstance(m, snn.Leaky))
    _, cur, w = snn_run(model, inputs((T, B, C), seed=27, scale=2.0))
    assert torch.count_nonzero(cur) == 0 and torch.count_nonzero(w) == 0


@pytest.mark.parametrize("targets", [None, (nn.Conv2d,), lambda m: False])
def test_attach_without_spiking_modules_raises(targets):
    model = nn.Sequential(nn.Linear(C, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="Sequential"):
        MaskedGradient(0.5).attach(model, targets=targets)


@pytest.mark.parametrize("targets", [(), ("LIF",), 3])
def test_attach_bad_targets_raise(targets):
    with pytest.raises(ValueError, match="targets"):
        MaskedGradient(0.5).attach(small_net(), targets=targets)


# ============================================================================ finding
def test_attach_finds_every_lif_and_standalone_surrogate_once():
    act = sg.Atan()
    model = nn.Sequential(
        nn.Linear(C, 10), LIF(surrogate="atan"), nn.Linear(10, 10), act, nn.Linear(10, 10),
        LIF(surrogate="sigmoid"),
    )  # surrogates with no exact zeros: the LIF kernels skip groups whose SG' is all zero
    msg = MaskedGradient(0.5, seed=1).attach(model)
    x = inputs((T, B, C), seed=28, scale=3.0).requires_grad_(True)
    model(x).sum().backward()
    assert msg.stats["seen"] == 3 * T * B * 10


def test_shared_surrogate_instance_is_masked_once():
    # Two LIFs built with one surrogate instance: each SG' must be masked once, with
    # probability p, not twice.
    p = 0.5
    shared = sg.Atan()
    model = nn.Sequential(LIF(surrogate=shared), nn.Linear(N, N), LIF(surrogate=shared))
    before, after = Capture(), Capture()
    shared.register_surrogate_hook(before)
    msg = MaskedGradient(p, seed=29).attach(model)
    shared.register_surrogate_hook(after)
    x = inputs((T, B, N), seed=30, scale=2.0).requires_grad_(True)
    model(x).sum().backward()
    kept = torch.cat([(a != 0).flatten() for a in after.seen])
    assert abs(kept.float().mean().item() - (1 - p)) <= binomial_bound(kept.numel(), p)
    assert msg.stats["seen"] == 2 * T * B * N


# ============================================================================ precision, layout
def test_bfloat16_autocast_backward_is_finite_and_masked():
    model = small_net()
    msg = MaskedGradient(0.5, seed=31).attach(model)
    x = inputs((T, B, C), seed=32, scale=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
    out.float().square().mean().backward()
    for param in model.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    stats = msg.stats
    assert stats["seen"] == T * B * (16 + 12)
    assert abs(stats["dropped"] / stats["seen"] - 0.5) <= binomial_bound(stats["seen"], 0.5)


class SpikeAct(nn.Module):
    """A user-defined spiking activation (straight-through estimator)."""

    def forward(self, x):
        return x + ((x >= 0).to(x.dtype) - x).detach()


class Residual(nn.Module):
    def __init__(self, act):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(C, C)
        self.act = act

    def forward(self, x):
        identity = x
        out = self.act(self.fc(x))
        out += identity  # in place on the activation's output (SEW-style)
        return out


def residual_grads(act, msg_p=None, targets=None):
    model = Residual(act)
    msg = None if msg_p is None else MaskedGradient(msg_p, seed=33).attach(model, targets=targets)
    x = inputs((T, B, C), seed=34, scale=2.0).requires_grad_(True)
    out = model(x)
    (out * inputs(out.shape, seed=35)).sum().backward()
    return out.detach(), x.grad, model.fc.weight.grad, msg


@pytest.mark.parametrize(
    ("act_factory", "targets"),
    [
        (lambda: LIF(surrogate="atan"), None),
        (
            lambda: sj_neuron.LIFNode(step_mode="m", v_threshold=0.5, surrogate_function=sj_surrogate.ATan()),
            None,
        ),
        (lambda: sj_neuron.LIFNode(step_mode="m", v_threshold=0.5, detach_reset=True), None),
        (SpikeAct, (SpikeAct,)),
    ],
    ids=["sparsegrad", "spikingjelly-swap", "spikingjelly-output", "user-target"],
)
def test_in_place_residual_downstream_works(act_factory, targets):
    plain_out, plain_x, plain_w = residual_grads(act_factory())[:3]
    zero_out, zero_x, zero_w, _ = residual_grads(act_factory(), 0.0, targets)
    assert torch.equal(zero_out, plain_out) and torch.equal(zero_x, plain_x) and torch.equal(zero_w, plain_w)
    out, gx, gw, msg = residual_grads(act_factory(), 0.5, targets)
    assert torch.equal(out, plain_out)
    assert torch.isfinite(gx).all() and torch.isfinite(gw).all()
    assert not torch.equal(gw, plain_w)
    assert msg.stats["seen"] == T * B * C


def test_user_target_modifying_its_input_in_place_works():
    class InPlaceAct(nn.Module):
        def forward(self, x):
            return x.relu_()

    model = nn.Sequential(nn.Linear(C, 8), InPlaceAct())
    msg = MaskedGradient(0.5, seed=36).attach(model, targets=(InPlaceAct,))
    x = inputs((T, B, C), seed=37)
    model(x).sum().backward()
    assert msg.stats["seen"] == T * B * 8


def test_user_target_with_dict_input_raises_type_error_naming_it():
    class DictAct(nn.Module):
        def forward(self, batch):
            return (batch["x"] >= 0).float()

    model = nn.Sequential(DictAct())
    MaskedGradient(0.5).attach(model, targets=(DictAct,))
    with pytest.raises(TypeError, match="DictAct"):
        model({"x": torch.zeros(T, B, requires_grad=True)})


def test_user_target_masks_the_gradient_leaving_it():
    p = 0.5
    act = SpikeAct()
    msg = MaskedGradient(p, seed=38).attach(nn.Sequential(act), targets=(SpikeAct,))
    x = inputs((T, B, N), seed=39).requires_grad_(True)
    upstream = inputs((T, B, N), seed=40)
    (act(x) * upstream).sum().backward()
    kept = x.grad != 0
    assert torch.equal(x.grad[kept], upstream[kept])  # straight-through: upstream itself
    assert abs(kept.float().mean().item() - (1 - p)) <= binomial_bound(kept.numel(), p)
    assert msg.stats["seen"] == T * B * N


# ============================================================================ eval, no_grad, lifecycle
def test_eval_mode_does_not_mask_even_with_gradients():
    x = inputs((T, B, C), seed=41, scale=2.0)
    plain = small_net().eval()
    _, want = grads_of(plain, x)
    model = small_net()
    msg = MaskedGradient(0.5, seed=42).attach(model)
    model.eval()
    _, got = grads_of(model, x)
    assert msg.stats["seen"] == 0
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    # attached while already in eval
    model2 = small_net().eval()
    msg2 = MaskedGradient(0.5, seed=42).attach(model2)
    _, got2 = grads_of(model2, x)
    assert msg2.stats["seen"] == 0
    assert all(torch.equal(a, b) for a, b in zip(got2, want, strict=True))


def test_user_target_in_eval_is_not_masked():
    act = SpikeAct().eval()
    msg = MaskedGradient(1.0).attach(nn.Sequential(act), targets=(SpikeAct,))
    x = inputs((T, B, C), seed=43).requires_grad_(True)
    act(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert msg.stats["seen"] == 0


@pytest.mark.parametrize("factory", [small_net, sj_net], ids=["sparsegrad", "spikingjelly"])
def test_no_grad_forward_is_fine(factory):
    x = inputs((T, B, C), seed=44, scale=2.0)
    plain = factory()
    with torch.no_grad():
        sj_functional.reset_net(plain)
        want = plain(x)
    model = factory()
    msg = MaskedGradient(0.5, seed=45).attach(model)
    with torch.no_grad():
        sj_functional.reset_net(model)
        got = model(x)
    assert torch.equal(got, want)
    assert msg.stats["seen"] == 0


def test_context_manager_removes_hooks_on_exit():
    x = inputs((T, B, C), seed=46, scale=2.0)
    _, want = grads_of(small_net(), x)
    model = small_net()
    with MaskedGradient(0.5, seed=47).attach(model) as msg:
        _, inside = grads_of(model, x)
        assert msg.stats["seen"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(inside, want))
    assert all(len(m.surrogate._surrogate_hooks) == 0 for m in model if isinstance(m, LIF))
    seen = msg.stats["seen"]
    _, after = grads_of(model, x)
    assert msg.stats["seen"] == seen
    assert all(torch.equal(a, b) for a, b in zip(after, want, strict=True))


def test_spikingjelly_surrogate_is_restored_when_a_masked_forward_raises():
    class Boom(sj_surrogate.ATan):
        def forward(self, x):
            raise RuntimeError("boom")

    node = sj_neuron.LIFNode(step_mode="m", surrogate_function=Boom())  # detach_reset=False: swapped
    original = node.surrogate_function
    with MaskedGradient(0.5).attach(node):
        with pytest.raises(RuntimeError, match="boom"):
            node(torch.ones(T, B, C, requires_grad=True))
        assert node.surrogate_function is original
    assert node.surrogate_function is original


def test_remove_is_idempotent_and_masking_can_be_reattached():
    model = small_net()
    msg = MaskedGradient(1.0).attach(model)
    msg.remove()
    msg.remove()
    _, grads = grads_of(model, inputs((T, B, C), seed=48, scale=2.0))
    assert torch.count_nonzero(grads[0]) > 0
    msg.attach(model)
    _, grads = grads_of(model, inputs((T, B, C), seed=48, scale=2.0))
    assert torch.count_nonzero(grads[0]) == 0


# ============================================================================ optimizer mode
def linear_problem(seed=0, out_features=30, in_features=40):
    torch.manual_seed(seed)
    model = nn.Linear(in_features, out_features)
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(B, in_features, generator=g)
    y = torch.randn(B, out_features, generator=g)
    return model, x, y


def sgd_step(model, opt, x, y, msg=None):
    """One SGD step; ``msg.step()`` after it, as a training loop does (it drives schedules)."""
    opt.zero_grad()
    ((model(x) - y) ** 2).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    if msg is not None:
        msg.step()
    return before, grads, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_optimizer_mode_changes_a_fraction_one_minus_p_of_weights(p):
    model, x, y = linear_problem(out_features=60, in_features=80)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    msg = MaskedGradient(p, seed=50).wrap(opt)
    before, grads, after = sgd_step(model, opt, x, y, msg)
    total = kept_total = 0
    for w0, g, w1 in zip(before, grads, after, strict=True):
        assert (g != 0).all()
        changed = w1 != w0
        # kept entries take the plain SGD step exactly; the others do not move
        assert torch.equal(w1[changed], w0[changed] - g[changed])
        total += changed.numel()
        kept_total += int(changed.sum())
    assert abs(kept_total / total - (1 - p)) <= binomial_bound(total, p)
    assert msg.step_count == 1
    assert msg.stats["seen"] == total
    assert msg.stats["dropped"] == total - kept_total


def test_optimizer_mode_rescale():
    p = 0.5
    model, x, y = linear_problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    MaskedGradient(p, rescale=True, seed=51).wrap(opt)
    before, grads, after = sgd_step(model, opt, x, y)
    w0, g, w1 = before[0], grads[0], after[0]
    changed = w1 != w0
    torch.testing.assert_close(w1[changed], w0[changed] - g[changed] / (1 - p), rtol=1e-6, atol=1e-7)


def test_optimizer_mode_same_seed_keeps_replicas_identical():
    # Two data-parallel ranks: same model, same gradients, same seed -> same masks.
    m1, x, y = linear_problem()
    m2 = copy.deepcopy(m1)
    m3 = copy.deepcopy(m1)
    o1, o2, o3 = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (m1, m2, m3))
    MaskedGradient(0.5, seed=52).wrap(o1)
    MaskedGradient(0.5, seed=52).wrap(o2)
    MaskedGradient(0.5, seed=53).wrap(o3)
    for _ in range(3):
        sgd_step(m1, o1, x, y)
        sgd_step(m2, o2, x, y)
        sgd_step(m3, o3, x, y)
    assert torch.equal(m1.weight, m2.weight) and torch.equal(m1.bias, m2.bias)
    assert not torch.equal(m1.weight, m3.weight)


def test_optimizer_mode_step_count_and_schedule():
    model, x, y = linear_problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    msg = MaskedGradient(0.5, seed=54, schedule=lambda s: 0.0 if s == 0 else 1.0).wrap(opt)
    before, grads, after = sgd_step(model, opt, x, y, msg)
    assert msg.step_count == 1
    for w0, g, w1 in zip(before, grads, after, strict=True):
        assert torch.equal(w1, w0 - g)  # p = 0: the full plain step
    before, grads, after = sgd_step(model, opt, x, y, msg)
    assert msg.step_count == 2
    for w0, g, w1 in zip(before, grads, after, strict=True):
        assert torch.count_nonzero(g) > 0
        assert torch.equal(w1, w0)  # p = 1: every gradient dropped


def test_optimizer_mode_neuron_granularity_masks_whole_rows():
    p = 0.5
    model, x, y = linear_problem(out_features=200, in_features=12)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    MaskedGradient(p, granularity="neuron", seed=55).wrap(opt)
    before, grads, after = sgd_step(model, opt, x, y)
    changed = after[0] != before[0]
    rows_kept = changed.all(1)
    assert torch.equal(rows_kept | (~changed).all(1), torch.ones(200, dtype=torch.bool))
    assert abs(rows_kept.float().mean().item() - (1 - p)) <= binomial_bound(200, p)


def test_optimizer_mode_remove_restores_plain_steps():
    model, x, y = linear_problem()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    msg = MaskedGradient(1.0).wrap(opt)
    before, _, after = sgd_step(model, opt, x, y, msg)
    assert torch.equal(before[0], after[0])
    msg.remove()
    before, grads, after = sgd_step(model, opt, x, y)
    assert torch.equal(after[0], before[0] - grads[0])
    assert msg.step_count == 1


# ============================================================================ state
def test_state_dict_round_trip_optimizer_mode():
    m1, x, y = linear_problem()
    o1 = torch.optim.SGD(m1.parameters(), lr=0.1)
    a = MaskedGradient(0.5, seed=56).wrap(o1)
    sgd_step(m1, o1, x, y, a)
    sgd_step(m1, o1, x, y, a)
    state = copy.deepcopy(a.state_dict())
    m2 = copy.deepcopy(m1)
    o2 = torch.optim.SGD(m2.parameters(), lr=0.1)
    b = MaskedGradient(0.5)
    b.load_state_dict(state)
    b.wrap(o2)
    assert b.step_count == 2 and b.stats == a.stats
    for _ in range(2):
        sgd_step(m1, o1, x, y)
        sgd_step(m2, o2, x, y)
    assert torch.equal(m1.weight, m2.weight) and torch.equal(m1.bias, m2.bias)
    # and a fresh object without the state draws other masks
    m3 = copy.deepcopy(m2)
    o3 = torch.optim.SGD(m3.parameters(), lr=0.1)
    MaskedGradient(0.5, seed=57).wrap(o3)
    sgd_step(m2, o2, x, y)
    sgd_step(m3, o3, x, y)
    assert not torch.equal(m2.weight, m3.weight)


def test_state_dict_round_trip_activation_mode():
    x = inputs((T, B, 64), seed=58)
    msg_a = MaskedGradient(0.5, seed=59)
    lif_a, _, after_a = observed_lif(msg_a)
    run_backward(lif_a, x)
    run_backward(lif_a, x)
    state = copy.deepcopy(msg_a.state_dict())
    msg_b = MaskedGradient(0.5)
    msg_b.load_state_dict(state)
    lif_b, _, after_b = observed_lif(msg_b)
    assert msg_b.stats == msg_a.stats
    run_backward(lif_a, x)
    run_backward(lif_b, x)
    assert torch.equal(after_a.last != 0, after_b.last != 0)
    assert not torch.equal(after_a.seen[-1] != 0, after_a.seen[-2] != 0)


# ============================================================================ misuse is safe
def kept_fraction_through(model, x):
    """Backward through ``model``; the fraction of input-gradient entries left non-zero."""
    x = x.clone().requires_grad_()
    model(x).sum().backward()
    return (x.grad != 0).float().mean().item()


def test_neuron_granularity_needs_a_time_and_batch_dimension():
    s = sg.Atan()
    MaskedGradient(0.5, granularity="neuron", seed=1).attach(s)
    x = torch.zeros(8, 16, requires_grad=True)  # [B, N]: no dims left to share over
    with pytest.raises(ValueError, match=r"granularity='neuron'.*\[8, 16\]"):
        s(x).sum().backward()


def test_spikingjelly_surrogate_held_by_model_and_neuron_is_masked_once():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.sg = sj_surrogate.ATan()
            self.node = sj_neuron.LIFNode(step_mode="m", surrogate_function=self.sg)

        def forward(self, x):
            return self.node(x)

    net = Net()
    msg = MaskedGradient(0.5, seed=0).attach(net)
    x = torch.full((T, B, N), 0.9)
    kept_fraction_through(net, x)
    assert msg.stats["seen"] == T * B * N  # one mask per surrogate call, not two
    assert abs(msg.stats["dropped"] / msg.stats["seen"] - 0.5) < 0.02


def test_removing_spikingjelly_attachments_in_any_order_restores_the_neuron():
    node = sj_neuron.LIFNode(step_mode="m")
    original = node.surrogate_function
    a = MaskedGradient(0.5, seed=1).attach(node)
    b = MaskedGradient(0.5, seed=2).attach(node, stack=True)
    a.remove()
    node.reset()
    kept_fraction_through(node, torch.full((T, B, N), 0.9))
    assert a.stats["seen"] == 0 and b.stats["seen"] == T * B * N  # b still masks, once
    b.remove()
    assert node.surrogate_function is original


def test_attaching_twice_masks_once_and_wrapping_twice_raises():
    lif = LIF(surrogate="atan")
    msg = MaskedGradient(0.5, seed=3).attach(lif)
    msg.attach(lif)
    assert len(lif.surrogate._surrogate_hooks) == 1
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1.0)
    msg.wrap(opt)
    with pytest.raises(ValueError, match="wrapped"):
        msg.wrap(opt)
    msg.remove()
    assert len(lif.surrogate._surrogate_hooks) == 0
    msg.attach(lif)  # after remove() it attaches afresh
    assert len(lif.surrogate._surrogate_hooks) == 1


def test_optimizer_step_with_closure_raises():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    MaskedGradient(0.5, seed=0).wrap(opt)

    def closure():
        opt.zero_grad()
        loss = model(torch.ones(1, 4)).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="closure"):
        opt.step(closure)


def test_wrap_unwraps_accelerate_optimizer():
    from accelerate import Accelerator

    model = nn.Linear(40, 30)
    opt = Accelerator(cpu=True).prepare_optimizer(torch.optim.SGD(model.parameters(), lr=1.0))
    MaskedGradient(0.5, seed=0).wrap(opt)
    model(torch.ones(2, 40)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    changed = (model.weight != before).float().mean().item()
    assert abs(changed - 0.5) < 0.1


def test_own_neuron_built_on_lif_multistep_is_masked():
    from sparsegrad.functional import lif_multistep

    class MyLIF(nn.Module):
        def __init__(self):
            super().__init__()
            self.surrogate = sg.Atan()

        def forward(self, x):
            return lif_multistep(x, surrogate=self.surrogate)

    net = MyLIF()
    msg = MaskedGradient(0.5, seed=4).attach(net)
    kept_fraction_through(net, torch.full((T, B, N), 0.9))
    assert msg.stats["seen"] == T * B * N
    assert abs(msg.stats["dropped"] / msg.stats["seen"] - 0.5) < 0.02


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stats_are_exact_integer_counts_for_half_precision_gradients(dtype):
    s = sg.Atan()
    msg = MaskedGradient(0.5, seed=5).attach(s)
    x = torch.zeros(200_000, dtype=dtype, requires_grad=True)
    s(x).sum().backward()
    dropped = int((x.grad == 0).sum())
    assert msg.stats == {"seen": 200_000, "dropped": dropped}
    assert isinstance(msg.state_dict()["stats"]["dropped"], int)


@pytest.mark.parametrize("bad", ["abc", 1.5, -1, 2**70, True])
def test_bad_seed_raises_at_construction(bad):
    with pytest.raises(ValueError, match="seed"):
        MaskedGradient(0.5, seed=bad)


def test_module_instance_as_targets_is_a_clear_error():
    with pytest.raises(ValueError, match=r"targets=\(LIF,\)"):
        MaskedGradient(0.5).attach(nn.Sequential(LIF()), targets=LIF())
