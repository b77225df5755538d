"""MSG on foreign neurons, read back from the gradient (docs/design.md §2.3.1).

One layer, a loss linear in the spikes, ``L = sum_t c_t * S_t``. BPTT through a neuron
whose spike function is masked gives, with ``g_t = dL/dH_t``:

    g_t = m_t * SG'_t * dL/dS_t + k_t * g_{t+1}

where ``k_t = dH_{t+1}/dH_t`` along the membrane alone (``(1 - S_t)(1 - 1/tau)`` for a LIF
with hard reset, ``beta`` for snntorch's subtracting ``Leaky``) and ``dL/dS_t = c_t`` when the
reset is detached. So the residual ``r_t = g_t - k_t g_{t+1}`` is ``m_t`` times the unmasked
run's residual, element by element: ``m_t = r_t / r0_t``. Exact MSG reads back values in
{0, 1}, with mean ``1 - p``; an approximation reads back anything else. Where the reset
carries gradient, ``dL/dS_t = c_t + u_t * dV_t/dS_t`` and the denominator is rebuilt from
the peer's own surrogate in float64.
"""

from __future__ import annotations

import math
import subprocess
import sys
from functools import partial

import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn

from sparsegrad import LIF, MaskedGradient

T, B, N = 8, 6, 250
TAU, V_TH = 2.0, 0.5


def binomial_bound(n: int, p: float, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(p * (1 - p) / n) + 1e-12


def draw(shape, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


def residual(grad_x: torch.Tensor, k: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``r_t = g_t - k_t g_{t+1}`` with ``g = scale * dL/dX``, in float64."""
    g = grad_x.double() * scale
    r = g.clone()
    r[:-1] -= k[:-1].double() * g[1:]
    return r


def read_mask(r: torch.Tensor, r0: torch.Tensor, rel: float = 1e-3):
    """``m = r / r0`` where ``r0`` is not tiny; (m, where it is defined)."""
    defined = r0.abs() > rel * r0.abs().max()
    m = torch.where(defined, r / torch.where(defined, r0, torch.ones_like(r0)), torch.zeros_like(r0))
    return m, defined


def assert_binary(m, defined, p: float, atol: float = 2e-3, draws: int | None = None) -> torch.Tensor:
    """Every read-back value is 0 or 1 and the kept fraction is ``1 - p`` (``draws``
    independent draws, default one per value); returns the mask (nan where undefined)."""
    values = m[defined]
    assert values.numel() > 1000, values.numel()
    keep = values.round()
    assert torch.all((keep == 0) | (keep == 1)), values[(keep != 0) & (keep != 1)][:5]
    assert (values - keep).abs().max().item() < atol, (values - keep).abs().max()
    kept = keep.mean().item()
    assert abs(kept - (1 - p)) <= binomial_bound(draws or values.numel(), p), (kept, 1 - p)
    return torch.where(defined, m.round(), torch.full_like(m, float("nan")))


def lif_k(spikes: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    return (1 - spikes) * (1 - 1 / tau)


# ============================================================================ running one layer
def run_multi(neuron, x, c):
    """Multi-step: spikes and dL/dX for the loss sum(c * S)."""
    sj_functional.reset_net(neuron)
    x = x.clone().requires_grad_(True)
    spikes = neuron(x)
    (spikes * c).sum().backward()
    return spikes.detach(), x.grad


def run_single(neuron, x, c):
    """The same through a single-step neuron called once per timestep."""
    sj_functional.reset_net(neuron)
    x = x.clone().requires_grad_(True)
    spikes = torch.stack([neuron(x[t]) for t in range(x.shape[0])])
    (spikes * c).sum().backward()
    return spikes.detach(), x.grad


SJ_KINDS = {
    "LIFNode": (lambda **kw: sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, **kw), TAU, lambda s: lif_k(s)),
    "IFNode": (lambda **kw: sj_neuron.IFNode(v_threshold=V_TH, **kw), 1.0, lambda s: 1 - s),
    "ParametricLIFNode": (
        lambda **kw: sj_neuron.ParametricLIFNode(init_tau=TAU, v_threshold=V_TH, **kw),
        TAU,
        lambda s: lif_k(s),
    ),
}


def calls_of(module: nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("kind", list(SJ_KINDS))
@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_spikingjelly_detached_reset_reads_back_exact_masks_on_the_fused_path(kind, step_mode):
    p = 0.3
    build, scale, k_of = SJ_KINDS[kind]
    x, c = draw((T, B, N), 1, scale=0.6, shift=0.5), draw((T, B, N), 2)
    run = run_multi if step_mode == "m" else run_single
    plain = build(detach_reset=True, step_mode=step_mode, surrogate_function=sj_surrogate.ATan())
    spikes0, gx0 = run(plain, x, c)
    neuron = build(detach_reset=True, step_mode=step_mode, surrogate_function=sj_surrogate.ATan())
    original = neuron.surrogate_function
    calls = calls_of(original)
    msg = MaskedGradient(p, seed=3).attach(neuron)
    spikes, gx = run(neuron, x, c)
    assert neuron.surrogate_function is original and calls == []  # untouched: spikingjelly's fused path
    assert torch.equal(spikes, spikes0)
    k = k_of(spikes)
    m, defined = read_mask(residual(gx, k, scale), residual(gx0, k, scale))
    keep = assert_binary(m, defined, p)
    assert msg.stats["seen"] == T * B * N
    assert msg.stats["dropped"] >= int((keep == 0).sum())


def general_lif_denominator(x, spikes, c, gx, surrogate, tau=TAU):
    """``SG'_t (c_t - H_t u_t)``, ``u_t = (1 - 1/tau) g_{t+1}``: the reset ``V = H (1 - S)``
    carries gradient, so ``dL/dS_t = c_t - H_t u_t``. ``H`` by the recursion, ``SG'`` by the
    peer's surrogate, both in float64."""
    v = torch.zeros_like(x[0], dtype=torch.float64)
    h_seq = []
    for t in range(x.shape[0]):
        h = v + (x[t].double() - v) / tau
        h_seq.append(h)
        v = h * (1 - spikes[t].double())
    h = torch.stack(h_seq)
    u = (h - V_TH).requires_grad_(True)
    surrogate(u).sum().backward()
    g = gx.double() * tau
    after = torch.zeros_like(g)
    after[:-1] = (1 - 1 / tau) * g[1:]
    return u.grad * (c.double() - h * after)


def test_spikingjelly_reset_with_gradient_reads_back_exact_masks_on_the_swap_path():
    p = 0.5
    x, c = draw((T, B, N), 4, scale=0.6, shift=0.5), draw((T, B, N), 5)
    neuron = sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=False, step_mode="m",
                               surrogate_function=sj_surrogate.ATan())
    original = neuron.surrogate_function
    calls = calls_of(original)
    msg = MaskedGradient(p, seed=6).attach(neuron)
    spikes, gx = run_multi(neuron, x, c)
    assert len(calls) == T  # the reference path calls the surrogate once per step
    assert neuron.surrogate_function is original  # swapped for the forward only
    r = residual(gx, lif_k(spikes), TAU)
    m, defined = read_mask(r, general_lif_denominator(x, spikes, c, gx, sj_surrogate.ATan()))
    assert_binary(m, defined, p)
    assert msg.stats["seen"] == T * B * N


def test_readback_exposes_an_approximation():
    # Masking the input current of the same neuron (the user-target path) is not Eq. 11:
    # the readback then gives values outside {0, 1}.
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.node = sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=True, step_mode="m")

        def forward(self, x):
            return self.node(x)

    x, c = draw((T, B, N), 7, scale=0.6, shift=0.5), draw((T, B, N), 8)
    _, gx0 = run_multi(Wrapped(), x, c)
    approx = Wrapped()
    MaskedGradient(0.5, seed=9).attach(approx, targets=(Wrapped,))
    spikes, gx = run_multi(approx, x, c)
    k = lif_k(spikes)
    m, defined = read_mask(residual(gx, k, TAU), residual(gx0, k, TAU))
    values = m[defined]
    off = (values - values.round()).abs() > 1e-2
    assert off.float().mean().item() > 0.05  # many values far from 0 and 1


@pytest.mark.parametrize("step_mode", ["m", "s"])
def test_spikingjelly_neuron_granularity_shares_one_mask_over_time_and_batch(step_mode):
    p = 0.4
    x, c = draw((T, B, N), 10, scale=0.6, shift=0.5), draw((T, B, N), 11)
    run = run_multi if step_mode == "m" else run_single
    plain = sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=True, step_mode=step_mode)
    _, gx0 = run(plain, x, c)
    neuron = sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=True, step_mode=step_mode)
    MaskedGradient(p, granularity="neuron", seed=12).attach(neuron)
    spikes, gx = run(neuron, x, c)
    k = lif_k(spikes)
    m, defined = read_mask(residual(gx, k, TAU), residual(gx0, k, TAU))
    keep = assert_binary(m, defined, p, draws=N)
    per_neuron = torch.nanmean(keep.flatten(0, 1), 0)  # [N]
    seen = defined.flatten(0, 1).any(0)
    assert torch.all((per_neuron[seen] == 0) | (per_neuron[seen] == 1))  # one value per neuron
    assert abs(per_neuron[seen].mean().item() - (1 - p)) <= binomial_bound(int(seen.sum()), p)
    _, gx_next = run(neuron, x, c)  # the next sequence draws a new neuron mask
    m2, _ = read_mask(residual(gx_next, k, TAU), residual(gx0, k, TAU))
    assert not torch.equal(m2.round()[defined], m.round()[defined])


# ============================================================================ p = 0, seeds
def sj_conv(detach_reset: bool):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(0, 1),
        nn.Conv2d(2, 8, 3, padding=1),
        nn.Unflatten(0, (4, 3)),
        sj_neuron.LIFNode(v_threshold=0.5, detach_reset=detach_reset, step_mode="m",
                          surrogate_function=sj_surrogate.Sigmoid()),
        nn.Flatten(2),
        nn.Linear(8 * 6 * 6, 5),
    )


def sj_param_grads(net, x, c):
    sj_functional.reset_net(net)
    net.zero_grad(set_to_none=True)
    (net(x) * c).sum().backward()
    return [q.grad.clone() for q in net.parameters()]


@pytest.mark.parametrize("detach_reset", [True, False])
def test_spikingjelly_p_zero_is_bit_identical_to_no_msg(detach_reset):
    x, c = draw((4, 3, 2, 6, 6), 13, scale=2.0), draw((4, 3, 5), 14)
    want = sj_param_grads(sj_conv(detach_reset), x, c)
    net = sj_conv(detach_reset)
    msg = MaskedGradient(0.0).attach(net)
    got = sj_param_grads(net, x, c)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert msg.stats == {"seen": 4 * 3 * 8 * 6 * 6, "dropped": 0}


def sj_masks(seed, passes=2, step_mode="m"):
    """The masks a fresh MaskedGradient(seed) gives one fresh neuron, read back per pass."""
    x, c = draw((T, B, N), 15, scale=0.6, shift=0.5), draw((T, B, N), 16)
    run = run_multi if step_mode == "m" else run_single
    spikes0, gx0 = run(sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=True, step_mode=step_mode), x, c)
    neuron = sj_neuron.LIFNode(tau=TAU, v_threshold=V_TH, detach_reset=True, step_mode=step_mode)
    MaskedGradient(0.5, seed=seed).attach(neuron)
    k = lif_k(spikes0)
    r0 = residual(gx0, k, TAU)
    out = []
    for _ in range(passes):
        _, gx = run(neuron, x, c)
        m, defined = read_mask(residual(gx, k, TAU), r0)
        out.append(torch.where(defined, m.round(), torch.full_like(m, -1.0)))
    return out


def test_spikingjelly_masks_differ_across_passes_and_repeat_for_a_seed():
    first, second = sj_masks(21)
    again = sj_masks(21)
    other = sj_masks(22)
    assert not torch.equal(first, second)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert not torch.equal(first, other[0])


def test_spikingjelly_masks_agree_across_processes():
    code = (
        "import sys; sys.path.insert(0, 'tests'); import torch, test_masked_readback as t; "
        "print(int(sum(m.sum().item() * (i + 1) for i, m in enumerate(t.sj_masks(23)))))"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in range(2)]
    here = int(sum(m.sum().item() * (i + 1) for i, m in enumerate(sj_masks(23))))
    assert runs[0].stdout.strip() == runs[1].stdout.strip() == str(here)


# ============================================================================ snntorch
def snn_run(neuron, x, c, readout_mem=False):
    """Loop a snntorch neuron over time; loss sum(c * S) (or sum(c * mem))."""
    x = x.clone().requires_grad_(True)
    state = [torch.zeros_like(x[0])] * (2 if isinstance(neuron, snn.Synaptic) else 1)
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spk, *state = neuron(x[t], *state)
        spikes.append(spk)
        mems.append(state[-1])
    out = torch.stack(mems if readout_mem else spikes)
    (out * c).sum().backward()
    return torch.stack(spikes).detach(), torch.stack(mems).detach(), x.grad


BETA, ALPHA = 0.8, 0.6


@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
def test_snntorch_default_reset_reads_back_exact_masks_at_the_spike_output(kind):
    p = 0.5
    build = {"Leaky": lambda: snn.Leaky(beta=BETA, threshold=V_TH),
             "Synaptic": lambda: snn.Synaptic(alpha=ALPHA, beta=BETA, threshold=V_TH)}[kind]
    x, c = draw((T, B, N), 30, scale=0.4, shift=0.15), draw((T, B, N), 31)
    spikes0, _, gx0 = snn_run(build(), x, c)
    neuron = build()
    spike_grad = neuron.spike_grad
    msg = MaskedGradient(p, seed=32).attach(nn.Sequential(neuron), targets=(type(neuron),))
    spikes, _, gx = snn_run(neuron, x, c)
    assert torch.equal(spikes, spikes0) and neuron.spike_grad is spike_grad
    ones = torch.full_like(spikes, BETA)
    if kind == "Synaptic":  # dL/dsyn_t = g_t + alpha dL/dsyn_{t+1}: peel the synapse off first
        gx, gx0 = (residual(g, torch.full_like(spikes, ALPHA)) for g in (gx, gx0))
    m, defined = read_mask(residual(gx, ones), residual(gx0, ones))
    assert_binary(m, defined, p)
    assert msg.stats["seen"] == T * B * N


def test_snntorch_immediate_reset_reads_back_exact_masks_on_the_swap_path():
    # reset_delay=False: mem' = mem - (S - R) * threshold uses S with its gradient, so
    # dL/dS_t = c_t - threshold * beta * g_{t+1}; the spike function itself is masked.
    p = 0.5
    x, c = draw((T, B, N), 33, scale=0.4, shift=0.15), draw((T, B, N), 34)
    neuron = snn.Leaky(beta=BETA, threshold=V_TH, reset_delay=False)
    spike_grad = neuron.spike_grad
    MaskedGradient(p, seed=35).attach(neuron, targets=(snn.Leaky,))
    spikes, mems, gx = snn_run(neuron, x, c)
    assert neuron.spike_grad is spike_grad  # swapped for the forward only
    before = torch.zeros_like(mems)
    before[1:] = mems[:-1]
    reset = (before - V_TH > 0).double()  # snntorch's detached R_t
    u = (mems.double() + (spikes.double() - reset) * V_TH - V_TH).requires_grad_(True)
    spike_grad(u).sum().backward()  # SG' of snntorch's own atan, float64
    g = gx.double()
    after = torch.zeros_like(g)
    after[:-1] = BETA * g[1:]
    m, defined = read_mask(residual(gx, torch.full_like(spikes, BETA)), u.grad * (c.double() - V_TH * after))
    assert_binary(m, defined, p)


def test_snntorch_membrane_readout_keeps_its_gradient_at_p_one():
    x, c = draw((T, B, N), 36, scale=0.4, shift=0.15), draw((T, B, N), 37)
    _, _, plain = snn_run(snn.Leaky(beta=BETA, threshold=V_TH), x, c, readout_mem=True)
    neuron = snn.Leaky(beta=BETA, threshold=V_TH)
    MaskedGradient(1.0).attach(neuron, targets=(snn.Leaky,))
    _, _, gx = snn_run(neuron, x, c, readout_mem=True)
    assert torch.equal(gx, plain)  # the membrane is not behind the spike function
    _, _, spikes_only = snn_run(neuron, x, c)
    assert torch.count_nonzero(spikes_only) == 0  # while the spike path is fully masked


# ============================================================================ sparsegrad's LIF
@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_sparsegrad_lif_reads_back_exact_masks(backend):
    p = 0.3
    x, c = draw((T, B, N), 40, scale=0.6, shift=0.5), draw((T, B, N), 41)

    def run(lif):
        xr = x.clone().requires_grad_(True)
        spikes = lif(xr)
        (spikes * c).sum().backward()
        return spikes.detach(), xr.grad

    spikes0, gx0 = run(LIF(TAU, V_TH, surrogate="atan", detach_reset=True, backend=backend))
    lif = LIF(TAU, V_TH, surrogate="atan", detach_reset=True, backend=backend)
    MaskedGradient(p, seed=42).attach(lif)
    spikes, gx = run(lif)
    assert torch.equal(spikes, spikes0)
    k = lif_k(spikes)
    m, defined = read_mask(residual(gx, k, TAU), residual(gx0, k, TAU))
    assert_binary(m, defined, p)


# ============================================================================ shared surrogates
@pytest.mark.parametrize(
    "make",
    [partial(sj_neuron.LIFNode, step_mode="m"), partial(sj_neuron.LIFNode, step_mode="m", surrogate_function=sj_surrogate.ATan())],
    ids=["default-Sigmoid", "partial-ATan"],
)
def test_neurons_sharing_one_surrogate_are_each_masked(make):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), make(), nn.Linear(16, 16), make(), nn.Linear(16, 4))
    assert net[1].surrogate_function is net[3].surrogate_function
    msg = MaskedGradient(p=1.0).attach(net)
    x = draw((4, 3, 8), 50, scale=2.0)
    net(x).sum().backward()
    assert net[2].weight.grad.abs().sum().item() == 0 and net[0].weight.grad.abs().sum().item() == 0
    assert net[4].bias.grad.abs().sum().item() > 0  # not behind a spike function
    assert msg.stats == {"seen": 2 * 4 * 3 * 16, "dropped": 2 * 4 * 3 * 16}


def test_timm_spiking_resnet18_with_spikingjelly_neurons_masks_all_17():
    import timm

    import sparsegrad.models  # noqa: F401  (registers the models)

    model = timm.create_model("spiking_resnet18", num_classes=4, T=2, neuron_layer=partial(sj_neuron.LIFNode, step_mode="m"))
    neurons = [m for m in model.modules() if isinstance(m, sj_neuron.BaseNode)]
    assert len(neurons) == 17
    sizes = []
    for n in neurons:
        n.register_forward_hook(lambda mod, args, out: sizes.append(out.numel()))
    msg = MaskedGradient(p=0.5, seed=51).attach(model)
    sj_functional.reset_net(model)
    model(draw((2, 3, 16, 16), 52)).sum().backward()
    assert len(sizes) == 17
    assert msg.stats["seen"] == sum(sizes)
    assert abs(msg.stats["dropped"] / sum(sizes) - 0.5) <= binomial_bound(sum(sizes), 0.5)
