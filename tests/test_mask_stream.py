"""The mask stream itself (docs/design.md §8): Philox4x32-10, its lanes, the counter layout and
the quantisation of ``p``, in the torch reference and the C++ kernel's two paths, checked
against the layout's definition written out element by element. That every LIF backend
draws exactly these masks (read back from its gradients) is in test_backends.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsegrad._masks.sampler import MaskSampler
from sparsegrad.kernels import cpp
from sparsegrad.kernels import mask_stream as ms

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True)


def philox_scalar(key: int, counter: int) -> list[int]:
    """Philox4x32-10 in plain Python integers (Salmon et al., SC'11), counter (lo, hi, 0, 0)."""
    m = 0xFFFFFFFF
    c = [counter & m, counter >> 32, 0, 0]
    k = [key & m, key >> 32]
    for _ in range(10):
        pb, pa = 0xCD9E8D57 * c[2], 0xD2511F53 * c[0]
        c = [(pb >> 32) ^ c[1] ^ k[0], pb & m, (pa >> 32) ^ c[3] ^ k[1], pa & m]
        k = [(k[0] + 0x9E3779B9) & m, (k[1] + 0xBB67AE85) & m]
    return c


def keep_by_definition(key, shape, p):
    """The element mask from the layout's definition, one element at a time."""
    steps, n = shape[0], math.prod(shape[1:])
    groups, cut = -(-n // 8), round(p * 65536)
    keep = torch.zeros(steps, n, dtype=torch.bool)
    for t in range(steps):
        for g in range(groups):
            words = philox_scalar(key, t * groups + g)
            lanes = [half for w in words for half in (w & 0xFFFF, w >> 16)]
            for lane in range(min(8, n - 8 * g)):
                keep[t, 8 * g + lane] = lanes[lane] >= cut
    return keep.view(shape)


# ============================================================================ the generator
def test_philox_known_answer_and_the_torch_reference():
    # Random123's known-answer vector for counter 0, key 0
    assert philox_scalar(0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    for key, counter in [(0, 0), (2**63 - 1, 2**32 - 1), (12345, 2**40 + 17)]:
        words = ms.philox4x32(key, torch.tensor([counter]))
        assert [int(w) for w in words] == philox_scalar(key, counter)


@pytest.mark.parametrize(("key", "first", "groups"), [(0, 0, 40), (7, 2**32 - 9, 33), (2**63 - 1, 5, 64), (99, 3, 5)])
def test_cpp_lanes_vector_and_scalar_paths_equal_the_reference(key, first, groups):
    module = cpp.load()
    want = ms.lanes(key, first + torch.arange(groups)).flatten()
    assert torch.equal(module.mask_lanes(key, first, groups, False), want)
    assert torch.equal(module.mask_lanes(key, first, groups, True), want)
    w = philox_scalar(key, first)
    assert want[:8].tolist() == [w[0] & 0xFFFF, w[0] >> 16, w[1] & 0xFFFF, w[1] >> 16,
                                 w[2] & 0xFFFF, w[2] >> 16, w[3] & 0xFFFF, w[3] >> 16]


@PROPERTY
@given(p=st.floats(0.0, 1.0))
def test_p_is_quantised_to_within_2_pow_minus_17(p):
    cut = ms.cut_of(p)
    assert 0 <= cut <= 65536
    assert abs(cut / 65536 - p) <= 2**-17
    assert ms.cut_of(1.0) == 65536 and ms.cut_of(0.0) == 0


@pytest.mark.parametrize("shape", [(3, 2, 9), (2, 3, 100), (2, 1, 8)], ids=["tails", "vector-tiles", "one-group"])
def test_reference_element_mask_is_the_layout(shape):
    p, key = 0.37, 2**61 + 9
    keep, seen, dropped = ms.element_keep(key, 0, ms.cut_of(p), 0, torch.ones(shape))
    assert torch.equal(keep, keep_by_definition(key, shape, p))
    assert int(seen) == keep.numel() and int(dropped) == int((~keep).sum())
    # a later block of timesteps continues the counters where the first stops
    tail, _, _ = ms.element_keep(key, 0, ms.cut_of(p), 1, torch.ones(shape)[1:])
    assert torch.equal(tail, keep[1:])


def test_reference_skips_zero_groups_and_counts_only_the_others():
    sg = torch.zeros(2, 20)
    sg[0, 3], sg[1, 17] = 1.0, 2.0  # live: group 0 of t = 0, group 2 (4 lanes) of t = 1
    keep, seen, dropped = ms.element_keep(3, 0, ms.cut_of(0.5), 0, sg)
    full = keep_by_definition(3, (2, 20), 0.5)
    live = torch.zeros(2, 20, dtype=torch.bool)
    live[0, :8], live[1, 16:] = True, True
    assert torch.equal(keep, full & live)
    assert int(seen) == 12 and int(dropped) == int((live & ~full).sum())


@PROPERTY
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**62))
def test_keep_fraction_is_one_minus_p(p, seed):
    key, shape = seed, (4, 16, 100)
    keep, seen, dropped = ms.element_keep(key, 0, ms.cut_of(p), 0, torch.ones(shape))
    n = keep.numel()
    p_eff = ms.cut_of(p) / 65536
    assert int(seen) == n and int(dropped) == int((~keep).sum())
    assert abs(int(dropped) / n - p_eff) <= 5 * math.sqrt(p_eff * (1 - p_eff) / n)


def test_p_one_keeps_nothing_and_draws_nothing(monkeypatch):
    monkeypatch.setattr(ms, "lanes", lambda *a: pytest.fail("p = 1 drew lanes"))
    keep, seen, dropped = ms.element_keep(5, 0, ms.cut_of(1.0), 0, torch.ones(3, 2, 10))
    assert not keep.any() and int(seen) == int(dropped) == 60


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_materialised_mask_is_the_stream_over_the_flattened_gradient(dtype):
    """MaskSampler.mask of a contiguous CPU gradient (foreign neurons' spike outputs, module
    inputs, optimizer mode): the C++ mask_, element i on lane i % 8 of counter i // 8 under a
    key drawn as for a LIF backward; kept entries rescaled, every element counted."""
    assert cpp.load() is not None
    sampler = MaskSampler(0.3, True, "element", 7, None, None)
    grad = torch.randn(2, 35003, dtype=dtype, generator=torch.Generator().manual_seed(1))
    key = int(torch.randint(0, 2**63 - 1, (), generator=torch.Generator().manual_seed(7)))
    out = sampler.mask(grad, grad.shape, inplace=False)
    keep = keep_by_definition(key, (1, grad.numel()), 0.3).view(grad.shape)
    expected = torch.where(keep, grad * torch.tensor(1 / 0.7, dtype=dtype), torch.zeros((), dtype=dtype))
    assert torch.equal(out, expected)
    assert sampler.stats() == {"seen": grad.numel(), "dropped": int((~keep).sum())}
