"""Tests of the multi-step LIF neuron (paper Eq. 1-5, docs/design.md §2.1): spikingjelly as an
oracle for spikes and membrane, a per-timestep autograd loop as an oracle for BPTT, a
hand-computed case, statelessness and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate

from sparsegrad import LIF
from sparsegrad import surrogate as sg
from sparsegrad.functional import lif_multistep

T, B, C, H, W = 7, 5, 3, 4, 6
SHAPES = [(T, B), (T, B, C), (T, B, C, H, W)]
NAMES = ["atan", "pl", "sigmoid", "rect", "pexp", "fast_sigmoid"]


def sj_lif(tau, v_threshold, v_reset, surrogate_function=None, detach_reset=False):
    return sj_neuron.LIFNode(
        tau=float(tau),
        decay_input=True,
        v_threshold=v_threshold,
        v_reset=v_reset,
        surrogate_function=surrogate_function or sj_surrogate.Sigmoid(),
        detach_reset=detach_reset,
        step_mode="m",
        store_v_seq=True,
    )


def current(shape, seed=0, dtype=torch.float32, scale=1.0):
    """Input currents around the threshold so that neurons both fire and stay silent."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2.0 * scale - 0.3 * scale).to(dtype)


# ---------------------------------------------------------------- test's own reference
def closed_form(name: str, x: torch.Tensor, a: float) -> torch.Tensor:
    """SG'(x) of each surrogate, from its docstring."""
    if name == "atan":
        return a / (1 + (math.pi / 2 * a * x) ** 2)
    if name == "pl":
        return torch.clamp(a * (1 - a * x.abs()), min=0)
    if name == "sigmoid":
        s = 1 / (1 + torch.exp(-a * x))
        return a * s * (1 - s)
    if name == "rect":
        return (x.abs() < 1 / (2 * a)).to(x.dtype) * a
    if name == "pexp":
        return a / 2 * torch.exp(-a * x.abs())
    if name == "fast_sigmoid":
        return 1 / (1 + a * x.abs()) ** 2
    raise AssertionError(name)


class _RefSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, name, alpha, scale):
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha, ctx.scale = name, alpha, scale
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (ctx.scale * closed_form(ctx.name, x, ctx.alpha)), None, None, None


def reference_lif(x, tau, v_threshold, v_reset, name, alpha, detach_reset, sg_scale=1.0):
    """Plain per-timestep LIF (docs/design.md §2.1) with SG' scaled by ``sg_scale``; autograd does
    the BPTT."""
    v = torch.full_like(x[0], v_reset)
    spikes = []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - v_reset)) / tau
        s = _RefSpike.apply(h - v_threshold, name, alpha, sg_scale)
        s_reset = s.detach() if detach_reset else s
        v = h * (1 - s_reset) + v_reset * s_reset
        spikes.append(s)
    return torch.stack(spikes)


class Probe(sg.Surrogate):
    """A test surrogate whose "derivative" is its argument, so a surrogate hook sees
    ``x = H - v_threshold`` itself: the charged membrane, through the public API."""

    def derivative(self, x):
        return x.clone()


class Capture:
    """A surrogate hook recording SG' of each backward pass, reassembled over time.

    Inside the LIF kernel hooks are called per block of timesteps ``[Tb, B, ...]``, last
    block first; the call with ``t0 == 0`` ends the pass."""

    def __init__(self):
        self.passes: list[torch.Tensor] = []
        self.calls: list[tuple[int, torch.Size]] = []
        self._blocks: list[tuple[int, torch.Tensor]] = []

    def __call__(self, g, t0):
        self.calls.append((t0, g.shape))
        self._blocks.append((t0, g.detach().clone()))
        if t0 == 0:
            self.passes.append(torch.cat([b for _, b in sorted(self._blocks, key=lambda tb: tb[0])]))
            self._blocks = []


def charged_minus_threshold(x, tau, v_threshold, v_reset):
    """``H - v_threshold`` of every step, as seen by a surrogate hook of our LIF."""
    capture = Capture()
    probe = Probe()
    probe.register_surrogate_hook(capture)
    x = x.clone().requires_grad_(True)
    LIF(tau, v_threshold, v_reset, surrogate=probe)(x).sum().backward()
    assert len(capture.passes) == 1
    return capture.passes[0]


def charge_from_membrane(x, v_seq, tau, v_threshold, v_reset):
    """``H - v_threshold`` rebuilt from a membrane trace V[t] (after reset), Eq. 3."""
    v_prev = torch.cat([torch.full_like(v_seq[:1], v_reset), v_seq[:-1]])
    return v_prev + (x - (v_prev - v_reset)) / tau - v_threshold


# ---------------------------------------------------------------- spikingjelly oracle
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(
    ("tau", "v_threshold", "v_reset"),
    [(2.0, 0.5, 0.0), (1.5, 1.0, 0.0), (4.0, 0.5, -0.2), (3.3, 0.7, 0.1)],
)
def test_spikes_and_membrane_equal_spikingjelly(shape, tau, v_threshold, v_reset):
    x = current(shape, seed=len(shape))
    ref = sj_lif(tau, v_threshold, v_reset)
    want_spikes = ref(x)
    want_v = ref.v_seq
    spikes = LIF(tau=tau, v_threshold=v_threshold, v_reset=v_reset)(x)
    assert spikes.shape == shape
    assert 0.02 < want_spikes.mean().item() < 0.9  # both behaviours exercised
    assert torch.equal(spikes, want_spikes)
    assert torch.equal(lif_multistep(x, tau, v_threshold, v_reset), want_spikes)
    # the charged membrane H, rebuilt from spikingjelly's trace after reset
    assert torch.equal(
        charged_minus_threshold(x, tau, v_threshold, v_reset),
        charge_from_membrane(x, want_v, tau, v_threshold, v_reset),
    )


@pytest.mark.parametrize(
    ("name", "sj_factory"),
    [
        ("sigmoid", lambda a: sj_surrogate.Sigmoid(alpha=a)),
        ("pexp", lambda a: sj_surrogate.PiecewiseExp(alpha=a)),
        ("rect", lambda a: sj_surrogate.Rect(alpha=a)),
    ],
)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, -0.2])
def test_gradient_equals_spikingjelly(name, sj_factory, detach_reset, v_reset):
    alpha = 2.0
    x = current((T, B, C, H), seed=3)
    upstream = torch.randn(T, B, C, H, generator=torch.Generator().manual_seed(4))
    x_ours = x.clone().requires_grad_(True)
    x_sj = x.clone().requires_grad_(True)
    ours = LIF(tau=2.5, v_reset=v_reset, surrogate=name, alpha=alpha, detach_reset=detach_reset)
    ref = sj_lif(2.5, 0.5, v_reset, sj_factory(alpha), detach_reset)
    (ours(x_ours) * upstream).sum().backward()
    (ref(x_sj) * upstream).sum().backward()
    assert x_sj.grad.abs().max() > 0
    torch.testing.assert_close(x_ours.grad, x_sj.grad, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    tau=st.floats(1.0, 8.0, exclude_min=True),
    v_threshold=st.floats(0.1, 2.0),
    reset_gap=st.floats(0.05, 1.5),
    dims=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    t_len=st.integers(1, 9),
    batch=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_spikes_equal_spikingjelly_property(tau, v_threshold, reset_gap, dims, t_len, batch, seed):
    v_reset = v_threshold - reset_gap
    shape = (t_len, batch, *dims)
    x = current(shape, seed=seed, scale=2 * v_threshold)
    ref = sj_lif(tau, v_threshold, v_reset)
    want = ref(x)
    got = LIF(tau=tau, v_threshold=v_threshold, v_reset=v_reset)(x)
    assert torch.equal(got, want)
    assert torch.equal(
        charged_minus_threshold(x, tau, v_threshold, v_reset),
        charge_from_membrane(x, ref.v_seq, tau, v_threshold, v_reset),
    )


# ---------------------------------------------------------------- BPTT vs autograd loop
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_equals_per_timestep_autograd_loop(name, detach_reset, dtype):
    tau, v_threshold, v_reset = 2.0, 0.5, 0.0
    alpha = sg.build(name).alpha
    x = current((T, B, C), seed=5, dtype=dtype)
    upstream = torch.randn(T, B, C, generator=torch.Generator().manual_seed(6), dtype=dtype)
    x_ours = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    spikes = LIF(tau, v_threshold, v_reset, surrogate=name, detach_reset=detach_reset)(x_ours)
    ref_spikes = reference_lif(x_ref, tau, v_threshold, v_reset, name, alpha, detach_reset)
    assert torch.equal(spikes, ref_spikes)
    (spikes * upstream).sum().backward()
    (ref_spikes * upstream).sum().backward()
    assert x_ref.grad.abs().max() > 0
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **tol)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_gradient_equals_loop_nonzero_reset_float64(name, detach_reset):
    tau, v_threshold, v_reset, alpha = 3.0, 0.4, -0.3, 1.5
    x = current((T, B, C, H), seed=7, dtype=torch.float64)
    upstream = torch.randn(T, B, C, H, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x_ours = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    lif = LIF(tau, v_threshold, v_reset, surrogate=name, alpha=alpha, detach_reset=detach_reset)
    (lif(x_ours) * upstream).sum().backward()
    (reference_lif(x_ref, tau, v_threshold, v_reset, name, alpha, detach_reset) * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-12, atol=1e-13)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    tau=st.floats(1.0, 8.0),
    v_threshold=st.floats(0.1, 1.5),
    v_reset=st.floats(-1.0, 0.0),
    name=st.sampled_from(NAMES),
    detach_reset=st.booleans(),
    t_len=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_gradient_equals_loop_property(tau, v_threshold, v_reset, name, detach_reset, t_len, seed):
    x = current((t_len, 3, 4), seed=seed, dtype=torch.float64, scale=v_threshold - v_reset)
    g = torch.Generator().manual_seed(seed + 1)
    upstream = torch.randn(t_len, 3, 4, generator=g, dtype=torch.float64)
    alpha = sg.build(name).alpha
    x_ours = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    out = lif_multistep(x_ours, tau, v_threshold, v_reset, sg.build(name), detach_reset)
    ref = reference_lif(x_ref, tau, v_threshold, v_reset, name, alpha, detach_reset)
    assert torch.equal(out, ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- closed-form cases
def test_constant_current_spike_train_by_hand():
    # X = 0.6, tau = 2, v_th = 0.5: H0 = 0.3, H1 = 0.45, H2 = 0.525 -> spike, reset to 0,
    # and the cycle repeats with period 3.
    x = torch.full((T, B), 0.6, dtype=torch.float64)
    spikes = LIF(tau=2.0, v_threshold=0.5)(x)
    want = torch.tensor([0, 0, 1, 0, 0, 1, 0], dtype=torch.float64)[:, None].expand(T, B)
    assert torch.equal(spikes, want)
    # H itself, by hand
    h = charged_minus_threshold(x, 2.0, 0.5, 0.0)[:, 0] + 0.5
    want_h = torch.tensor([0.3, 0.45, 0.525, 0.3, 0.45, 0.525, 0.3], dtype=torch.float64)
    torch.testing.assert_close(h, want_h)


def test_constant_current_with_nonzero_reset_by_hand():
    # v_reset = -0.2, tau = 2, v_th = 0.5, X = 1.0:
    # H0 = -0.2 + (1.0 + 0)/2 = 0.3; H1 = 0.3 + (1.0 - 0.5)/2 = 0.55 -> spike, V = -0.2; repeat.
    x = torch.full((6, 2), 1.0, dtype=torch.float64)
    spikes = LIF(tau=2.0, v_threshold=0.5, v_reset=-0.2)(x)
    assert torch.equal(spikes[:, 0], torch.tensor([0.0, 1, 0, 1, 0, 1], dtype=torch.float64))


@pytest.mark.parametrize(("detach_reset", "want"), [(False, [0.888, 0.9]), (True, [1.05, 0.9])])
def test_two_step_gradient_by_hand(detach_reset, want):
    # X = [0.6, 0.6], tau = 2, v_th = 0.5, PL with alpha = 2, L = S0 + S1:
    # H0 = 0.3, SG0 = 2 (1 - 2 * 0.2) = 1.2; H1 = 0.45, SG1 = 2 (1 - 2 * 0.05) = 1.8.
    # dL/dH1 = 1.8; dV0/dH0 = 1 - H0 SG0 = 0.64 (1 if detached); dH1/dV0 = 1 - 1/tau = 0.5.
    # dL/dH0 = 1.2 + 1.8 * 0.5 * 0.64 = 1.776 (2.1); dL/dX = dL/dH / tau.
    x = torch.full((2, 1), 0.6, dtype=torch.float64, requires_grad=True)
    LIF(tau=2.0, v_threshold=0.5, surrogate="pl", alpha=2.0, detach_reset=detach_reset)(x).sum().backward()
    torch.testing.assert_close(x.grad[:, 0], torch.tensor(want, dtype=torch.float64))


def test_tau_one_has_no_memory():
    # tau = 1: H[t] = X[t] + v_reset (1 - 1) ... = X[t]; spikes are X >= v_th per step.
    x = current((T, B, C), seed=9)
    assert torch.equal(LIF(tau=1.0, v_threshold=0.5)(x), (x >= 0.5).float())


# ---------------------------------------------------------------- statelessness, layout
def test_no_state_between_calls():
    lif = LIF()
    x = current((T, B, C), seed=10)
    first = lif(x)
    other = lif(current((T, B, C), seed=11) * 3)
    again = lif(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert list(lif.buffers()) == [] and list(lif.parameters()) == []


def test_time_is_dim_zero_not_batch():
    # Swapping T and B must change the result (the recurrence runs over dim 0 only).
    x = current((T, B, C), seed=12)
    lif = LIF()
    assert not torch.equal(lif(x.transpose(0, 1)).transpose(0, 1), lif(x))
    # each batch element evolves independently: running it alone gives the same spikes
    for b in range(B):
        assert torch.equal(lif(x[:, b : b + 1]), lif(x)[:, b : b + 1])


def test_non_contiguous_input_equals_contiguous():
    base = current((B, T, C), seed=13)  # batch-first; its transpose is a strided view
    x = base.transpose(0, 1)
    assert not x.is_contiguous()
    x1 = x.clone().requires_grad_(True)
    x2 = x.contiguous().requires_grad_(True)
    out1, out2 = LIF()(x1), LIF()(x2)
    assert torch.equal(out1, out2)
    out1.sum().backward()
    out2.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=0)


def test_module_equals_functional_with_surrogate_instance():
    x = current((T, B, C), seed=14, dtype=torch.float64)
    s = sg.Atan(1.5)
    lif = LIF(tau=3.0, v_threshold=0.6, v_reset=0.1, surrogate=s, detach_reset=True)
    assert lif.surrogate is s
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    out_a = lif(a)
    out_b = lif_multistep(b, 3.0, 0.6, 0.1, s, True)
    assert torch.equal(out_a, out_b)
    out_a.sum().backward()
    out_b.sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_defaults_are_the_papers():
    lif = LIF()
    assert (lif.tau, lif.v_threshold, lif.v_reset, lif.detach_reset) == (2.0, 0.5, 0.0, False)
    assert type(lif.surrogate) is sg.PiecewiseLinear and lif.surrogate.alpha == 2.0


def test_bfloat16_input_gives_bfloat16_output_and_grad():
    x32 = current((T, B, C), seed=15)
    x = x32.to(torch.bfloat16).requires_grad_(True)
    out = LIF()(x)
    assert out.dtype == torch.bfloat16
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    # equals spikingjelly's rule evaluated on the same bf16 values in bf16 arithmetic
    ref = reference_lif(x.detach(), 2.0, 0.5, 0.0, "pl", 2.0, False)
    assert torch.equal(out, ref)
    out.sum().backward()
    assert x.grad.dtype == torch.bfloat16
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("shape", [(T,), ()])
def test_input_without_batch_dim_raises_naming_the_shape(shape):
    x = torch.zeros(shape)
    with pytest.raises(ValueError, match=r"\[T, B") as info:
        LIF()(x)
    assert str(list(shape)) in str(info.value)
    with pytest.raises(ValueError):
        lif_multistep(x)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_integer_input_raises(dtype):
    x = torch.ones(T, B, dtype=dtype)
    with pytest.raises(ValueError, match=str(dtype)):
        LIF()(x)


@pytest.mark.parametrize("tau", [0.5, 0.0, -2.0, float("nan"), float("inf")])
def test_bad_tau_raises(tau):
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=tau)


@pytest.mark.parametrize(
    ("v_threshold", "v_reset", "match"),
    [(0.5, 0.5, "v_threshold > v_reset"), (0.0, 0.1, "v_threshold > v_reset"),
     (float("nan"), 0.0, "v_threshold must be a finite number"), (1.0, float("-inf"), "v_reset must be a finite")],
)
def test_threshold_not_above_reset_raises(v_threshold, v_reset, match):
    with pytest.raises(ValueError, match=match):
        LIF(v_threshold=v_threshold, v_reset=v_reset)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tau": True}, "tau .*got True"), ({"tau": "3"}, "tau .*got '3'"),
     ({"v_threshold": "0.5"}, "v_threshold .*got '0.5'"), ({"v_reset": False}, "v_reset .*got False"),
     ({"detach_reset": "0"}, "detach_reset must be True or False, got '0'"),
     ({"detach_reset": "False"}, "detach_reset must be True or False, got 'False'"),
     ({"backend": "cuda"}, "unknown backend 'cuda'")],
)
def test_lif_rejects_bools_and_strings_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**kwargs)


def test_lif_accepts_numpy_and_torch_scalars():
    lif = LIF(tau=np.int64(2), v_threshold=np.float32(0.5), v_reset=torch.tensor(0.0),
              detach_reset=np.bool_(True))
    assert (lif.tau, lif.v_threshold, lif.v_reset, lif.detach_reset) == (2.0, 0.5, 0.0, True)
    assert all(type(v) in (float, bool) for v in (lif.tau, lif.v_threshold, lif.v_reset, lif.detach_reset))
    x = torch.randn(T, B, 5)
    assert torch.equal(lif(x), LIF(detach_reset=True)(x))


def test_unknown_surrogate_raises():
    with pytest.raises(ValueError, match="unknown surrogate"):
        LIF(surrogate="relu")


def test_bad_alpha_raises():
    with pytest.raises(ValueError, match="alpha"):
        LIF(surrogate="atan", alpha=0.0)



def atan_f32(x):
    return (2.0 / (1 + (math.pi / 2 * 2.0 * x.double()) ** 2)).float()


@pytest.mark.parametrize("with_hook", [False, True])
def test_gradient_equals_loop_on_large_timesteps(with_hook):
    # Over a million elements per timestep (the kernel may process time in blocks).
    shape = (3, 5, 209_716)
    x = current(shape, seed=16)
    upstream = torch.randn(shape, generator=torch.Generator().manual_seed(17))
    x_ours = x.clone().requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    lif = LIF(tau=2.0, v_threshold=0.5, v_reset=-0.1, surrogate="atan")
    capture = Capture()
    if with_hook:  # a hook that halves SG' everywhere, and one that records what it sees
        lif.surrogate.register_surrogate_hook(lambda g, t0: g * 0.5)
        lif.surrogate.register_surrogate_hook(capture)
    out = lif(x_ours)
    ref = reference_lif(x_ref, 2.0, 0.5, -0.1, "atan", 2.0, False, sg_scale=0.5 if with_hook else 1.0)
    assert torch.equal(out, ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    if with_hook:
        # blocks of timesteps, last first, covering 0 .. T-1 once; the whole SG' seen
        starts = [t0 for t0, _ in capture.calls]
        assert starts == sorted(starts, reverse=True) and starts[-1] == 0
        assert all(size[1:] == shape[1:] for _, size in capture.calls)
        assert sum(size[0] for _, size in capture.calls) == shape[0]
        assert len(capture.passes) == 1 and capture.passes[0].shape == shape
        h_minus_th = charged_minus_threshold(x, 2.0, 0.5, -0.1)
        torch.testing.assert_close(capture.passes[0], 0.5 * atan_f32(h_minus_th), rtol=1e-6, atol=0)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


# ============================================================================ misuse
def test_zero_timesteps_is_a_clear_error():
    with pytest.raises(ValueError, match=r"T >= 1.*\[0, 2, 3\]"):
        LIF()(torch.zeros(0, 2, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tau": 0.0}, "tau"), ({"tau": float("nan")}, "tau"), ({"v_threshold": -1.0}, "v_threshold"),
     ({"tau": None}, "tau"), ({"surrogate": "nope"}, "unknown surrogate")],
)
def test_lif_multistep_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lif_multistep(torch.zeros(3, 2, 4), **kwargs)


def test_lif_multistep_accepts_a_surrogate_name():
    x = torch.randn(4, 3, 5, requires_grad=True)
    lif_multistep(x, surrogate="atan").sum().backward()
    y = x.detach().clone().requires_grad_()
    LIF(surrogate="atan")(y).sum().backward()
    assert torch.equal(x.grad, y.grad)


def test_double_backward_through_the_kernel_raises_instead_of_a_silent_zero():
    x = torch.randn(4, 3, 5, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        torch.autograd.grad(LIF()(x).sum(), x, create_graph=True)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_torch_func_transforms_raise_the_documented_error(backend):
    # The LIF docstring says: torch.func is not supported, use torch.autograd.grad.
    lif = LIF(backend=backend)
    x = torch.rand(3, 2, 5)
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda inp: lif(inp).sum())(x)
    (grad,) = torch.autograd.grad(lif(x.requires_grad_()).sum(), x)
    assert grad.shape == x.shape
