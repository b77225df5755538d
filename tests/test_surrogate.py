"""Tests of sparsegrad.surrogate: Heaviside forward, closed-form backward (paper Eq. 6-8),
integrals, agreement with spikingjelly / snntorch, the name registry and the hooks."""

from __future__ import annotations

import math

import pytest
import snntorch.surrogate as snn_surrogate
import torch
from spikingjelly.activation_based import surrogate as sj_surrogate

from sparsegrad import surrogate as sg

# Build names of the six surrogates (docs/design.md §9) and the class each must give.
CLASSES = {
    "atan": sg.Atan,
    "pl": sg.PiecewiseLinear,
    "sigmoid": sg.Sigmoid,
    "rect": sg.Rectangular,
    "pexp": sg.PiecewiseExp,
    "fast_sigmoid": sg.FastSigmoid,
}
NAMES = list(CLASSES)
# Two sharpness values each (exactly representable, so the rect boundaries are exact).
ALPHAS = {
    "atan": (2.0, 0.5),
    "pl": (2.0, 4.0),
    "sigmoid": (4.0, 1.5),
    "rect": (1.0, 4.0),
    "pexp": (1.0, 3.0),
    "fast_sigmoid": (25.0, 2.0),
}
# Documented integrals over the real line (docstrings, docs/design.md §2.2).
INTEGRALS = {
    "atan": lambda a: 2.0,
    "pl": lambda a: 1.0,
    "sigmoid": lambda a: 1.0,
    "rect": lambda a: 1.0,
    "pexp": lambda a: 1.0,
    "fast_sigmoid": lambda a: 2.0 / a,
}


def closed_form(name: str, x: torch.Tensor, a: float) -> torch.Tensor:
    """SG'(x) from the docstrings, evaluated independently (call with float64)."""
    if name == "atan":
        return a / (1 + (math.pi / 2 * a * x) ** 2)
    if name == "pl":
        return torch.clamp(a * (1 - a * x.abs()), min=0)
    if name == "sigmoid":
        s = 1 / (1 + torch.exp(-a * x))
        return a * s * (1 - s)
    if name == "rect":
        return torch.where(x.abs() < 1 / (2 * a), a, 0.0).to(x.dtype)
    if name == "pexp":
        return a / 2 * torch.exp(-a * x.abs())
    if name == "fast_sigmoid":
        return 1 / (1 + a * x.abs()) ** 2
    raise AssertionError(name)


def surrogate_grad(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(sum of outputs)/dx through the module's backward."""
    x = x.detach().clone().requires_grad_(True)
    module(x).sum().backward()
    return x.grad


def grid(dtype=torch.float64) -> torch.Tensor:
    # Fine grid over [-3, 3] plus exact points at the rect/pl corners and zero.
    base = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    extra = torch.tensor([0.0, -0.0, 0.5, -0.5, 0.25, -0.25, 0.125, -0.125, 1 / 3, 1e-30, -1e-30],
                         dtype=torch.float64)
    return torch.cat([base, extra]).to(dtype)


# ---------------------------------------------------------------------------- forward
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_is_heaviside_firing_at_zero(name, dtype):
    x = torch.tensor([-2.0, -1e-3, -0.0, 0.0, 1e-3, 2.0, -1e-30, 1e-30], dtype=torch.float64).to(dtype)
    out = sg.build(name)(x)
    assert out.dtype == dtype
    assert out.shape == x.shape
    # The values as rounded to dtype (+-1e-30 underflows to +-0 in float16: both fire).
    expected = torch.tensor([1.0 if v >= 0 else 0.0 for v in x.tolist()], dtype=dtype)
    assert torch.equal(out, expected)
    assert out[2].item() == 1.0 and out[3].item() == 1.0  # x = -0. and 0. fire
    assert out[0].item() == 0.0 and out[1].item() == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_forward_on_random_tensor_is_exactly_zero_or_one(name):
    torch.manual_seed(0)
    x = torch.randn(7, 5, 3, 4)
    out = sg.build(name)(x)
    assert out.shape == (7, 5, 3, 4)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out, (x >= 0).float())


# ---------------------------------------------------------------------------- backward
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", [0, 1])
def test_backward_equals_closed_form_float64(name, which):
    a = ALPHAS[name][which]
    x = grid(torch.float64)
    got = surrogate_grad(sg.build(name, a), x)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, closed_form(name, x, a), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_backward_equals_closed_form_float32(name):
    a = ALPHAS[name][1]
    x = grid(torch.float32)
    got = surrogate_grad(sg.build(name, a), x)
    assert got.dtype == torch.float32
    want = closed_form(name, x.double(), a)
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_backward_multiplies_upstream_gradient(name):
    torch.manual_seed(1)
    x = torch.randn(7, 5, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(7, 5, 3, dtype=torch.float64)
    sg.build(name)(x).backward(upstream)
    want = upstream * closed_form(name, x.detach(), sg.build(name).alpha)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_backward_keeps_bfloat16(name):
    x = torch.linspace(-1, 1, 41, dtype=torch.bfloat16)
    got = surrogate_grad(sg.build(name), x)
    assert got.dtype == torch.bfloat16
    want = closed_form(name, x.double(), sg.build(name).alpha)
    torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    ("name", "expected_default"),
    [("atan", 2.0), ("pl", 2.0), ("sigmoid", 4.0), ("rect", 1.0), ("pexp", 1.0), ("fast_sigmoid", 25.0)],
)
def test_default_alpha_and_peak(name, expected_default):
    s = sg.build(name)
    assert s.alpha == expected_default
    peak = surrogate_grad(s, torch.zeros(1, dtype=torch.float64)).item()
    documented_peak = {"atan": s.alpha, "pl": s.alpha, "sigmoid": s.alpha / 4, "rect": s.alpha,
                       "pexp": s.alpha / 2, "fast_sigmoid": 1.0}[name]
    assert peak == pytest.approx(documented_peak, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", [0, 1])
def test_integral_matches_documentation(name, which):
    a = ALPHAS[name][which]
    # sinh-spaced grid: dense near 0 (kinks, discontinuities), reaching +-1e6 (atan's tail
    # beyond that is 8 / (pi^2 alpha 1e6) < 2e-6).
    u = torch.linspace(-math.asinh(1e6), math.asinh(1e6), 1_000_001, dtype=torch.float64)
    x = torch.sinh(u)
    y = surrogate_grad(sg.build(name, a), x)
    integral = torch.trapezoid(y, x).item()
    assert integral == pytest.approx(INTEGRALS[name](a), rel=3e-4)


# ---------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
def test_atan_is_twice_spikingjelly_atan(alpha):
    x = grid(torch.float64)
    ours = surrogate_grad(sg.Atan(alpha), x)
    theirs = surrogate_grad(sj_surrogate.ATan(alpha=alpha), x)
    torch.testing.assert_close(ours, 2 * theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
def test_atan_is_twice_snntorch_atan(alpha):
    x = grid(torch.float64)
    ours = surrogate_grad(sg.Atan(alpha), x)
    theirs = surrogate_grad(snn_surrogate.atan(alpha=alpha), x)
    torch.testing.assert_close(ours, 2 * theirs, rtol=1e-12, atol=1e-14)


def test_spikingjelly_has_no_piecewise_linear_so_pl_checked_by_closed_form():
    # spikingjelly 2.x ships no triangle surrogate; if it gains one, compare to it here.
    assert not hasattr(sj_surrogate, "PiecewiseLinear")
    x = grid(torch.float64)
    got = surrogate_grad(sg.PiecewiseLinear(2.0), x)
    # Eq. 8 at alpha = 2: triangle of height 2 on |x| < 1/2.
    want = torch.where(x.abs() < 0.5, 2 - 4 * x.abs(), torch.zeros_like(x))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "oracle"),
    [
        ("sigmoid", lambda a: sj_surrogate.Sigmoid(alpha=a)),
        ("pexp", lambda a: sj_surrogate.PiecewiseExp(alpha=a)),
        ("rect", lambda a: sj_surrogate.Rect(alpha=a)),
        ("fast_sigmoid", lambda a: snn_surrogate.fast_sigmoid(slope=a)),
    ],
)
@pytest.mark.parametrize("which", [0, 1])
def test_equals_spikingjelly_or_snntorch_same_alpha(name, oracle, which):
    a = ALPHAS[name][which]
    x = grid(torch.float64)
    torch.testing.assert_close(
        surrogate_grad(sg.build(name, a), x), surrogate_grad(oracle(a), x), rtol=1e-12, atol=1e-14
    )


# ---------------------------------------------------------------------------- build
@pytest.mark.parametrize("name", NAMES)
def test_build_gives_the_right_class_and_alpha(name):
    s = sg.build(name, 3.0)
    assert type(s) is CLASSES[name]
    assert s.alpha == 3.0
    assert isinstance(s, torch.nn.Module)


def test_build_aliases():
    assert type(sg.build("piecewise_linear")) is sg.PiecewiseLinear
    assert type(sg.build("rectangular")) is sg.Rectangular
    assert type(sg.build("piecewise_exp")) is sg.PiecewiseExp


def test_build_returns_an_instance_as_is_and_refuses_alpha_with_it():
    s = sg.Atan(3.0)
    assert sg.build(s) is s
    with pytest.raises(ValueError, match="alpha"):
        sg.build(s, 2.0)


@pytest.mark.parametrize("bad", ["tanh", "ATAN", "", None, 3, ["atan"]])
def test_build_unknown_name_lists_accepted_names(bad):
    with pytest.raises(ValueError) as info:
        sg.build(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in NAMES:
        assert name in message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("alpha", [0, -1, float("nan"), float("inf"), -float("inf")])
def test_bad_alpha_raises(name, alpha):
    with pytest.raises(ValueError, match="alpha"):
        sg.build(name, alpha)
    with pytest.raises(ValueError, match=CLASSES[name].__name__):
        CLASSES[name](alpha)


# ---------------------------------------------------------------------------- hooks
@pytest.mark.parametrize("name", NAMES)
def test_hook_receives_sg_prime_with_the_input_shape(name):
    s = sg.build(name)
    received = []
    s.register_surrogate_hook(lambda g, t0: received.append((g.clone(), t0)))
    x = torch.randn(7, 5, 3, dtype=torch.float64, requires_grad=True)
    s(x).backward(torch.randn(7, 5, 3, dtype=torch.float64))
    assert len(received) == 1
    g, t0 = received[0]
    assert t0 == 0  # a surrogate called on its own passes the whole SG'(x) at once
    assert g.shape == (7, 5, 3)
    torch.testing.assert_close(g, closed_form(name, x.detach(), s.alpha), rtol=1e-12, atol=1e-14)


def test_hook_return_value_replaces_sg_and_hooks_run_in_order():
    s = sg.Atan()
    s.register_surrogate_hook(lambda g, t0: g * 3)
    s.register_surrogate_hook(lambda g, t0: None)  # None: keeps the value
    s.register_surrogate_hook(lambda g, t0: g + 1)
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(7, 5, dtype=torch.float64)
    s(x).backward(upstream)
    want = upstream * (3 * closed_form("atan", x.detach(), 2.0) + 1)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-14)


def test_hook_handle_remove_stops_it():
    s = sg.PiecewiseLinear()
    calls = []
    handle = s.register_surrogate_hook(lambda g, t0: (calls.append(1), torch.zeros_like(g))[1])
    x = torch.linspace(-0.4, 0.4, 35, dtype=torch.float64)
    assert torch.count_nonzero(surrogate_grad(s, x)) == 0
    assert len(calls) == 1
    handle.remove()
    torch.testing.assert_close(surrogate_grad(s, x), closed_form("pl", x, 2.0))
    assert len(calls) == 1


def test_hooks_do_not_run_for_forwards_made_in_eval():
    s = sg.Sigmoid()
    calls = []
    s.register_surrogate_hook(lambda g, t0: (calls.append(1), torch.zeros_like(g))[1])
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    s.eval()
    out = s(x)
    s.train()  # the hooks in force are those captured at forward time
    out.sum().backward()
    assert calls == []
    torch.testing.assert_close(x.grad, closed_form("sigmoid", x.detach(), 4.0))
    # and a forward made in training does run them
    x.grad = None
    s(x).sum().backward()
    assert calls == [1]
    assert torch.count_nonzero(x.grad) == 0
