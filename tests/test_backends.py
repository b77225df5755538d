"""Contract tests every LIF backend passes: spikes, gradients and MSG (docs/design.md §2.1-2.3).

Each available backend is checked against spikingjelly (spikes, bit for bit), the BPTT
oracle (a plain autograd loop, and the torch backend), and MSG's promises with its masks
rebuilt independently from Philox. The ``"triton"`` cases run for real on a CUDA device,
and on CPU tensors under Triton's interpreter in a subprocess
(``test_triton_passes_the_contract_under_the_interpreter``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from spikingjelly.activation_based import neuron as sj_neuron

from sparsegrad import LIF, MaskedGradient
from sparsegrad import surrogate as sg
from sparsegrad.functional import available_backends, lif_multistep
from sparsegrad.kernels import cpp
from sparsegrad.kernels import mask_stream as ms

BACKENDS = available_backends()
NATIVE = [b for b in BACKENDS if b != "torch"]
SURROGATES = ["atan", "pl", "sigmoid", "rect", "pexp", "fast_sigmoid"]
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def device_of(backend: str) -> str:
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def dtypes_of(backend: str) -> list[torch.dtype]:
    if backend != "triton":
        return [torch.float32, torch.float64]
    # Triton 3.8's interpreter cannot store bfloat16 (numpy has no such type): GPU only.
    return [torch.float32, torch.float16] + ([torch.bfloat16] if torch.cuda.is_available() else [])


def current(shape, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 0.8 + 0.3).to(dtype).to(device)


def forward_backward(x, upstream_seed=1, **kw):
    x = x.detach().clone().requires_grad_()
    spikes = lif_multistep(x, **kw)
    upstream = current(spikes.shape, seed=upstream_seed, dtype=spikes.dtype, device=spikes.device)
    (spikes * upstream).sum().backward()
    return spikes.detach(), x.grad


# The pseudo-derivatives written out here from their papers (docs/design.md §2.2), not taken
# from sparsegrad.surrogate: the oracle of every backend, the torch one included.
FORMULAS = {
    "atan": lambda x, a: a / (1 + (math.pi / 2 * a * x) ** 2),
    "pl": lambda x, a: torch.clamp(a * (1 - a * x.abs()), min=0),
    "sigmoid": lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)),
    "rect": lambda x, a: a * (x.abs() < 1 / (2 * a)).to(x.dtype),
    "pexp": lambda x, a: a / 2 * torch.exp(-a * x.abs()),
    "fast_sigmoid": lambda x, a: 1 / (1 + a * x.abs()) ** 2,
}


def loop_oracle(x, tau, v_threshold, v_reset, name, alpha, detach_reset, keep=None):
    """BPTT by autograd through a per-timestep loop (float64), ``SG'`` (``FORMULAS[name]``)
    times ``keep``."""

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, above, factor):
            ctx.save_for_backward(above, factor)
            return (above >= 0).to(above.dtype)

        @staticmethod
        def backward(ctx, grad):
            above, factor = ctx.saved_tensors
            return grad * FORMULAS[name](above, alpha) * factor, None

    x = x.detach().double().clone().requires_grad_()
    keep = torch.ones_like(x) if keep is None else keep.double()
    v, spikes = torch.full_like(x[0], v_reset), []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - v_reset)) / tau
        s = Spike.apply(h - v_threshold, keep[t])
        r = s.detach() if detach_reset else s
        v = h * (1 - r) + v_reset * r
        spikes.append(s)
    spikes = torch.stack(spikes)
    upstream = current(spikes.shape, seed=1, dtype=torch.float64)
    (spikes * upstream).sum().backward()
    return spikes.detach(), x.grad


def stream_keep(key, shape, p, per_neuron=False):
    """MSG's keep mask rebuilt from the mask stream's torch reference (docs/design.md §8)."""
    cut = ms.cut_of(p)
    if per_neuron:
        keep = ms.neuron_keep(key, 0, cut, math.prod(shape[2:]), "cpu")
        return keep.view((1, 1) + tuple(shape[2:])).expand(shape)
    return ms.element_keep(key, 0, cut, 0, torch.ones(shape))[0]


# ====================================================================== availability
def test_auto_runs_cpp_for_cpu_tensors_and_torch_elsewhere(monkeypatch):
    assert BACKENDS[0] == "torch" and "cpp" in BACKENDS  # this machine has a compiler
    assert ("triton" in BACKENDS) == (torch.cuda.is_available() or INTERPRETED)
    calls = []
    native = cpp.CppKernels.backward
    monkeypatch.setattr(cpp.CppKernels, "backward", lambda self, *a: calls.append(1) or native(self, *a))
    forward_backward(current((3, 2, 4)), backend="auto")
    assert calls == [1]  # float32 on the CPU: the C++ kernel
    forward_backward(current((3, 2, 4), dtype=torch.bfloat16), backend="auto")
    assert calls == [1]  # bfloat16 on the CPU: torch
    meta = torch.zeros(3, 2, 4, device="meta", requires_grad=True)
    spikes = lif_multistep(meta, backend="auto")  # meta (as MPS, XPU): torch
    spikes.sum().backward()
    assert spikes.device.type == "meta" and meta.grad.shape == meta.shape and calls == [1]
    with pytest.raises(ValueError, match="'cpp' LIF backend runs CPU tensors; got a tensor on meta"):
        lif_multistep(meta, backend="cpp")


def test_no_compiler_falls_back_to_torch_with_one_warning(monkeypatch):
    monkeypatch.setattr(cpp, "_state", {})

    def no_compiler(rebuild=False):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(cpp, "build", no_compiler)
    x = current((4, 3, 5))
    with pytest.warns(RuntimeWarning, match=r"could not be built \(Error building.*'torch' backend"):
        spikes, grad = forward_backward(x, backend="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, grad_again = forward_backward(x, backend="cpp")
    want, want_grad = forward_backward(x, backend="torch")
    assert torch.equal(spikes, want) and torch.equal(grad, want_grad) and torch.equal(again, want)
    assert "cpp" not in available_backends()


@pytest.mark.parametrize(
    ("backend", "x", "match"),
    [("gpu", torch.zeros(2, 2), "unknown LIF backend 'gpu'"),
     ("cpp", torch.zeros(2, 2, dtype=torch.float16), "'cpp' LIF backend takes float32 or float64")],
)
def test_bad_backend_requests_are_clear_errors(backend, x, match):
    with pytest.raises(ValueError, match=match):
        lif_multistep(x, backend=backend)


def test_user_hooks_and_user_surrogates_run_on_the_torch_backend():
    class Doubled(sg.Atan):
        def derivative(self, x):
            return 2 * super().derivative(x)

    x = current((5, 3, 4))
    seen = []
    hooked = sg.Atan()
    hooked.register_surrogate_hook(lambda g, t0: seen.append(t0))
    for surrogate in (hooked, Doubled()):
        got = forward_backward(x, surrogate=surrogate, backend="cpp")
        want = forward_backward(x, surrogate=surrogate, backend="torch")
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert seen == [0, 0]  # the hook ran (torch backend), once per backward


# ====================================================================== the contract
SHAPES = [(1, 2, 3), (5, 3, 7, 2), (3, 2, 1030)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("v_reset", [0.0, -0.3])
def test_spikes_bit_identical_to_spikingjelly(backend, shape, v_reset):
    x = 2 * current(shape, seed=len(shape), device=device_of(backend))
    ref = sj_neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=0.5, v_reset=v_reset, step_mode="m")
    want = ref(x.cpu())
    got = lif_multistep(x, 2.0, 0.5, v_reset, backend=backend)
    assert 0.05 < want.mean().item() < 0.95
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("name", SURROGATES)
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, -0.3])
def test_gradients_equal_the_bptt_oracle(backend, name, detach_reset, v_reset):
    dtype = torch.float64 if backend == "cpp" else torch.float32
    x = current((6, 3, 5, 3), seed=2, dtype=dtype, device=device_of(backend))
    surrogate = sg.build(name, 1.7)
    spikes, grad = forward_backward(x, surrogate=surrogate, detach_reset=detach_reset, v_reset=v_reset, backend=backend)
    want_spikes, want_grad = loop_oracle(x.cpu(), 2.0, 0.5, v_reset, name, 1.7, detach_reset)
    assert torch.equal(spikes.cpu().double(), want_spikes)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu().double(), want_grad, **tol)
    torch_spikes, torch_grad = forward_backward(
        x, surrogate=surrogate, detach_reset=detach_reset, v_reset=v_reset, backend="torch"
    )
    assert torch.equal(spikes, torch_spikes)
    torch.testing.assert_close(grad, torch_grad, rtol=1e-5, atol=1e-7)


def test_the_kernels_surrogate_ids_are_the_table():
    table = {row.names[0]: row.kernel_id for row in sg.KERNEL_SURROGATES}
    assert sorted(table) == sorted(SURROGATES) == sorted(FORMULAS)
    assert sorted(table.values()) == list(range(len(table)))
    assert cpp.load().SURROGATE_IDS == table
    if "triton" in BACKENDS:
        from sparsegrad.kernels import lif_triton as tr

        constants = (tr.ATAN, tr.PIECEWISE_LINEAR, tr.SIGMOID, tr.RECTANGULAR, tr.PIECEWISE_EXP, tr.FAST_SIGMOID)
        assert [c.value for c in constants] == [table[n] for n in ("atan", "pl", "sigmoid", "rect", "pexp", "fast_sigmoid")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", sg.KERNEL_SURROGATES, ids=lambda row: row.names[0])
def test_every_surrogate_derivative_in_every_backend_is_its_formula(backend, row):
    # One timestep from rest: H = X / tau, and dL/dX = upstream * SG'(H - v_threshold) / tau.
    alpha, tau = 1.3, 2.0
    x = torch.linspace(-3.0, 4.0, 141, dtype=torch.float64).view(1, 1, 141)
    dtype = torch.float32 if backend == "triton" else torch.float64
    upstream = current(x.shape, seed=3, dtype=torch.float64)
    xx = x.to(device_of(backend), dtype).requires_grad_()
    spikes = lif_multistep(xx, tau, 0.5, surrogate=row.cls(alpha), backend=backend)
    (spikes * upstream.to(spikes)).sum().backward()
    got = xx.grad.cpu().double() * tau / upstream
    above = x / tau - 0.5
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, FORMULAS[row.names[0]](above, alpha), **tol)
    torch.testing.assert_close(got, row.cls(alpha).derivative(above), **tol)


@pytest.mark.parametrize("backend", NATIVE)
def test_every_dtype_and_non_contiguous_input(backend):
    for dtype in dtypes_of(backend):
        base = current((4, 5, 3, 6), seed=4, dtype=dtype, device=device_of(backend))
        x = base.transpose(1, 3)  # [T, 6, 3, 5], not contiguous
        assert not x.is_contiguous()
        spikes, grad = forward_backward(x, surrogate="atan", backend=backend)
        assert spikes.dtype == grad.dtype == dtype and grad.shape == x.shape
        # reference: float32 arithmetic on the same (rounded) input, contiguous
        want_spikes, want_grad = forward_backward(x.float().contiguous(), surrogate="atan", backend="torch")
        low = dtype in (torch.float16, torch.bfloat16)
        assert torch.equal(spikes.float(), want_spikes)
        tol = dict(rtol=2e-2, atol=2e-2) if low else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad.float(), want_grad, **tol)


# ====================================================================== MSG in the kernel
def masked_lif(backend, seed=7, **msg_kw):
    lif = LIF(surrogate="atan", backend=backend)
    return lif, MaskedGradient(seed=seed, **msg_kw).attach(lif)


def lif_grad(lif, x):
    x = x.detach().clone().requires_grad_()
    spikes = lif(x)
    (spikes * current(spikes.shape, seed=1, dtype=spikes.dtype, device=spikes.device)).sum().backward()
    return x.grad


@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("granularity", ["element", "neuron"])
@pytest.mark.parametrize("rescale", [False, True])
def test_msg_in_kernel_is_bptt_with_the_philox_mask(backend, granularity, rescale):
    p, shape = 0.4, (5, 3, 4, 5)
    x = current(shape, seed=5, dtype=torch.float64 if backend == "cpp" else torch.float32, device=device_of(backend))
    lif, msg = masked_lif(backend, seed=2**40 + 3, p=p, granularity=granularity, rescale=rescale)
    got = lif_grad(lif, x)
    # each call's Philox key: the next draw of the masks' CPU generator, seeded by `seed`
    keys = torch.Generator().manual_seed(2**40 + 3)
    key = int(torch.randint(0, 2**63 - 1, (), generator=keys))
    keep = stream_keep(key, shape, p, per_neuron=granularity == "neuron")
    factor = keep.double() / (1 - p) if rescale else keep.double()
    _, want = loop_oracle(x.cpu(), 2.0, 0.5, 0.0, "atan", 2.0, False, keep=factor)
    torch.testing.assert_close(got.cpu().double(), want, rtol=2e-5, atol=1e-6)
    assert msg.stats == {"seen": x.numel(), "dropped": int((~keep).sum())}
    # the next backward continues the stream: the generator's next key
    lif_grad(lif, x)
    key = int(torch.randint(0, 2**63 - 1, (), generator=keys))
    again = stream_keep(key, shape, p, per_neuron=granularity == "neuron")
    assert msg.stats["dropped"] == int((~keep).sum()) + int((~again).sum())


@pytest.mark.parametrize("backend", NATIVE)
def test_msg_statistics_drop_a_fraction_p(backend):
    p, shape = 0.3, (4, 4, 250) if INTERPRETED else (4, 8, 1000)  # the interpreter is slow
    lif, msg = masked_lif(backend, p=p)
    lif_grad(lif, current(shape, device=device_of(backend)))
    n = math.prod(shape)
    assert msg.stats["seen"] == n
    assert abs(msg.stats["dropped"] / n - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("backend", NATIVE)
def test_msg_p_zero_eval_and_no_grad_are_plain_bit_for_bit(backend):
    x = current((5, 3, 6), seed=9, device=device_of(backend))
    plain = lif_grad(LIF(surrogate="atan", backend=backend), x)
    lif, msg = masked_lif(backend, p=0.0)
    rng = torch.get_rng_state()
    assert torch.equal(lif_grad(lif, x), plain)
    assert torch.equal(torch.get_rng_state(), rng)
    assert msg.stats == {"seen": x.numel(), "dropped": 0}
    lif, msg = masked_lif(backend, p=0.9)
    lif.eval()
    assert torch.equal(lif_grad(lif, x), plain)
    with torch.no_grad():
        lif.train()(x)
    assert msg.stats == {"seen": 0, "dropped": 0}


@pytest.mark.parametrize("backend", NATIVE)
def test_msg_reproducible_resumable_and_scheduled(backend):
    x = current((4, 3, 20), seed=3, device=device_of(backend))
    a_lif, a = masked_lif(backend, seed=5, p=0.5)
    b_lif, b = masked_lif(backend, seed=5, p=0.5)
    first = lif_grad(a_lif, x)
    assert torch.equal(first, lif_grad(b_lif, x))  # same seed, same mask
    second = lif_grad(a_lif, x)
    assert not torch.equal(first != 0, second != 0)  # a fresh mask per backward
    c_lif, c = masked_lif(backend, seed=None, p=0.5)
    c.load_state_dict(a.state_dict())
    c_lif_other, _ = masked_lif(backend, seed=6, p=0.5)
    assert not torch.equal(lif_grad(c_lif_other, x), lif_grad(a_lif, x).clone())
    c_state = a.state_dict()
    c.load_state_dict(c_state)
    d_lif, d = masked_lif(backend, seed=5, p=0.5)
    d.load_state_dict(c_state)
    assert torch.equal(lif_grad(d_lif, x), lif_grad(a_lif, x))  # resumed exactly
    s_lif, s = masked_lif(backend, p=0.0, schedule=lambda step: 0.0 if step == 0 else 1.0)
    lif_grad(s_lif, x)
    s.step()
    assert torch.equal(lif_grad(s_lif, x), torch.zeros_like(x))  # p = 1 drops everything
    assert s.stats == {"seen": 2 * x.numel(), "dropped": x.numel()}


@pytest.mark.parametrize("backend", NATIVE)
def test_msg_generator_equals_seed_and_global_rng_drives_unseeded(backend):
    x = current((3, 4, 40), seed=1, device=device_of(backend))
    seeded = lif_grad(masked_lif(backend, seed=77, p=0.5)[0], x)
    gen = LIF(surrogate="atan", backend=backend)
    MaskedGradient(0.5, generator=torch.Generator().manual_seed(77)).attach(gen)
    assert torch.equal(lif_grad(gen, x), seeded)
    runs = []
    for global_seed in (31, 31, 32):
        torch.manual_seed(global_seed)
        runs.append(lif_grad(masked_lif(backend, seed=None, p=0.5)[0], x))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


# ====================================================================== one mask stream
def first_key(seed: int) -> int:
    """The Philox key of a seeded MaskedGradient's first LIF backward."""
    return int(torch.randint(0, 2**63 - 1, (), generator=torch.Generator().manual_seed(seed)))


def read_mask(backend, shape, p, seed, surrogate="atan", granularity="element", spread=0.8):
    """(mask, readable, stats): MSG's mask read back from one LIF layer's gradient.

    With ``detach_reset=True`` and a loss linear in the spikes, BPTT gives
    ``gH[t] = gS[t] SG'[t] m[t] + (1 - 1/tau) gH[t+1] (1 - S[t])``: the residual
    ``gH[t] - (1 - 1/tau) gH[t+1] (1 - S[t])`` over the unmasked one is ``m[t]``, wherever
    ``SG'[t] != 0`` (``readable``)."""
    dtype = torch.float64 if backend != "triton" else torch.float32
    x = (current(shape, seed=11, dtype=torch.float64) - 0.3) * spread / 0.8 + 0.3
    upstream = current(shape, seed=12, dtype=torch.float64)

    def residual(msg_p):  # surrogate: a name, or one instance shared by both runs
        lif = LIF(tau=2.0, surrogate=surrogate, detach_reset=True, backend=backend)
        msg = None if msg_p is None else MaskedGradient(msg_p, seed=seed, granularity=granularity).attach(lif)
        xx = x.to(device_of(backend), dtype, copy=True).requires_grad_()
        spikes = lif(xx)
        (spikes * upstream.to(spikes)).sum().backward()
        gh, s = xx.grad.cpu().double() * 2.0, spikes.detach().cpu().double()
        r = gh.clone()
        r[:-1] -= 0.5 * gh[1:] * (1 - s[:-1])
        return r, msg

    r0, _ = residual(None)
    r, msg = residual(p)
    m = torch.where(r0 != 0, r / r0, torch.zeros_like(r))
    assert torch.allclose(m, m.round(), atol=1e-9 if dtype == torch.float64 else 1e-3)  # 0 or 1
    return m.round().bool(), r0 != 0, msg.stats


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 2, 9), (2, 3, 100)], ids=["tails", "vector-tiles"])
def test_every_backend_draws_the_stream_element_mask(backend, shape):
    p, seed = 0.37, 21
    kept, readable, stats = read_mask(backend, shape, p, seed)
    want = stream_keep(first_key(seed), shape, p)
    assert readable.all()  # atan: SG' > 0 everywhere, so every entry is read back
    assert torch.equal(kept, want)
    assert stats == {"seen": kept.numel(), "dropped": int((~want).sum())}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_draws_the_stream_neuron_mask(backend):
    p, seed, shape = 0.5, 4, (3, 4, 2, 11)
    kept, _, stats = read_mask(backend, shape, p, seed, granularity="neuron")
    want = stream_keep(first_key(seed), shape, p, per_neuron=True)
    assert torch.equal(kept, want)
    assert stats == {"seen": kept.numel(), "dropped": int((~want).sum())}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", ["pl", "rect"])
def test_groups_with_zero_surrogate_are_skipped_and_not_counted(backend, surrogate):
    p, seed, shape = 0.5, 8, (4, 3, 150)
    kept, readable, stats = read_mask(backend, shape, p, seed, surrogate=surrogate, spread=8.0)
    want = stream_keep(first_key(seed), shape, p)
    assert torch.equal(kept[readable], want[readable])  # skipping changed no one's bits
    n = 450
    live = torch.nn.functional.pad(readable.reshape(4, n), (0, 6)).view(4, -1, 8).any(-1)
    live = live.repeat_interleave(8, dim=1)[:, :n].reshape(shape)
    assert 0 < int(live.sum()) < live.numel()  # some groups skipped, some not
    assert stats == {"seen": int(live.sum()), "dropped": int((live & ~want).sum())}


class SubclassedAtan(sg.Atan):
    """Same derivative, but a subclass: the native kernels do not run it."""


def with_extra_hook() -> sg.Surrogate:
    surrogate = sg.Atan()
    surrogate.register_surrogate_hook(lambda g, t0: None)
    return surrogate


@pytest.mark.parametrize("surrogate", [SubclassedAtan, with_extra_hook], ids=["subclass", "extra-hook"])
def test_auto_falls_back_to_torch_with_the_same_masks(monkeypatch, surrogate):
    monkeypatch.setattr(cpp.CppKernels, "backward", lambda *a: pytest.fail("ran the C++ kernel"))
    p, seed, shape = 0.37, 21, (2, 3, 100)
    kept, readable, stats = read_mask("auto", shape, p, seed, surrogate=surrogate())
    want = stream_keep(first_key(seed), shape, p)
    assert readable.all() and torch.equal(kept, want)
    assert stats == {"seen": kept.numel(), "dropped": int((~want).sum())}


def test_auto_falls_back_for_bfloat16_with_the_same_masks():
    p, seed, shape = 0.5, 3, (4, 3, 50)
    counts = []
    for dtype in (torch.float32, torch.bfloat16):  # cpp, then torch
        lif, msg = masked_lif("auto", seed=seed, p=p)
        lif_grad(lif, current(shape, dtype=dtype))
        counts.append(msg.stats)
    want = stream_keep(first_key(seed), shape, p)
    assert counts[0] == counts[1] == {"seen": want.numel(), "dropped": int((~want).sum())}


@pytest.mark.parametrize("backend", BACKENDS)
def test_msg_on_an_empty_batch(backend):
    for granularity in ("element", "neuron"):
        x = torch.zeros(4, 0, 3, device=device_of(backend), requires_grad=True)
        lif, msg = masked_lif(backend, p=0.5, granularity=granularity)
        lif(x).sum().backward()
        assert x.grad.shape == x.shape
        assert msg.stats == {"seen": 0, "dropped": 0}


# ====================================================================== cpp == triton
if "triton" in BACKENDS:  # here: on a GPU, or in the interpreter subprocess below

    def test_triton_randint4x_is_the_stream_and_masks_equal_cpp_and_torch():
        _triton_masks_equal_cpp_and_torch("triton")


def _triton_masks_equal_cpp_and_torch(backend):
    import triton
    import triton.language as tl

    @triton.jit
    def words(out, key, first, n, BLOCK: tl.constexpr):
        i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        w0, w1, w2, w3 = tl.randint4x(key, first + i)
        for k, w in enumerate((w0, w1, w2, w3)):
            tl.store(out + 4 * i + k, w.to(tl.int64), mask=i < n)

    for key, first in [(0, 0), (12345, 7), (2**40 + 5, 2**33 - 3)]:
        got = torch.empty(4 * 70, dtype=torch.int64, device=device_of(backend))
        words[(3,)](got, key, first, 70, BLOCK=32)
        want = torch.stack(ms.philox4x32(key, first + torch.arange(70)), dim=-1).flatten()
        assert torch.equal(got.cpu(), want)
    x = current((3, 4, 5, 6), seed=6)
    for granularity in ("element", "neuron"):
        for surrogate in ("atan", "pl"):  # pl: groups with SG' == 0 are skipped
            grads, stats = [], []
            for name in ("cpp", "torch", backend):
                lif = LIF(surrogate=surrogate, backend=name)
                msg = MaskedGradient(0.5, seed=2**50 + 1, granularity=granularity).attach(lif)
                on_device = x.to(device_of(name))
                grads.append((lif_grad(lif, on_device).cpu() != 0, lif_grad(lif, on_device).cpu() != 0))
                stats.append(msg.stats)
            for other, other_stats in zip(grads[1:], stats[1:]):
                assert torch.equal(grads[0][0], other[0]) and torch.equal(grads[0][1], other[1])
                assert stats[0] == other_stats


def test_triton_passes_the_contract_under_the_interpreter():
    """The triton cases of this file, on CPU tensors under TRITON_INTERPRET=1."""
    if INTERPRETED:
        pytest.fail("run this file without TRITON_INTERPRET; this test sets it in a subprocess")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)),
         "-k", "triton and not interpreter"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
