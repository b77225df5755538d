"""Tests of TWO, the temporally weighted output (paper Eq. 15-17, Algorithm 1, docs/design.md §2.4).

The wrapped model is mostly the identity, so the test writes the per-timestep logits
itself and knows which timesteps classify which samples correctly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsegrad import TemporalWeightedHead

T, B, K = 7, 5, 3


class Identity(nn.Module):
    def forward(self, x):
        return x


class PerStepLinear(nn.Module):
    """A trainable per-timestep classifier: [T, B, F] -> [T, B, K]."""

    def __init__(self, features=4):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(features, K)

    def forward(self, x):
        return self.fc(x)


def logits_for(correct: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Per-step logits [T, B, K] whose argmax at (t, b) is the label iff correct[t, b]."""
    t_len, batch = correct.shape
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(t_len, batch, K, generator=g, dtype=torch.float64)
    winner = torch.where(correct, labels, (labels + 1) % K)  # [T, B]
    out.scatter_(2, winner[..., None], 2.0)  # above every other logit (rand < 1)
    return out


def random_pattern(batch, seed, density=0.5):
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(T, batch, generator=g) < density
    labels = torch.randint(0, K, (batch,), generator=g)
    return correct, labels


def ema(factors, counts, beta):
    """Eq. 16-17 in float64, written independently."""
    counts = counts.to(torch.float64)
    if counts.sum() == 0:
        return factors
    return beta * factors + (1 - beta) * counts / counts.sum()


# ============================================================================ forward
def test_factors_start_uniform_and_sum_to_one():
    head = TemporalWeightedHead(Identity(), T=T)
    assert head.factors.shape == (T,)
    torch.testing.assert_close(head.factors, torch.full((T,), 1.0 / T))
    assert head.factors.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert not head.factors.requires_grad
    assert "factors" not in dict(head.named_parameters())


def test_uniform_forward_is_the_time_mean():
    out = torch.randn(T, B, K, dtype=torch.float64)
    head = TemporalWeightedHead(Identity(), T=T)
    y = head(out)
    assert y.shape == (B, K)
    torch.testing.assert_close(y, out.mean(0), rtol=1e-6, atol=1e-7)


def test_forward_is_factor_weighted_sum_over_time():
    out = torch.randn(T, B, K, dtype=torch.float64)
    head = TemporalWeightedHead(Identity(), T=T)
    f = torch.tensor([0.05, 0.3, 0.1, 0.2, 0.15, 0.12, 0.08])
    head.factors.copy_(f)
    y = head(out)
    want = sum(float(f[t]) * out[t] for t in range(T))
    torch.testing.assert_close(y, want, rtol=1e-7, atol=1e-7)
    assert torch.equal(head.last_step_logits, out)


def test_gradient_reaches_the_model_weighted_by_the_factors():
    x = torch.randn(T, B, 4)
    f = torch.softmax(torch.randn(T), 0)
    head = TemporalWeightedHead(PerStepLinear(), T=T)
    head.factors.copy_(f)
    target = torch.randint(0, K, (B,))
    F.cross_entropy(head(x), target).backward()
    ref = PerStepLinear()
    y = (f[:, None, None] * ref(x)).sum(0)
    F.cross_entropy(y, target).backward()
    torch.testing.assert_close(head.model.fc.weight.grad, ref.fc.weight.grad, rtol=1e-5, atol=1e-7)


# ============================================================================ epoch mode
def test_epoch_mode_update_by_hand_over_two_batches():
    beta = 0.7
    head = TemporalWeightedHead(Identity(), T=T, beta=beta)
    c1, l1 = random_pattern(B, seed=1)
    c2, l2 = random_pattern(4, seed=2)  # a different batch size
    head(logits_for(c1, l1), target=l1)
    head(logits_for(c2, l2), target=l2)
    counts = c1.sum(1) + c2.sum(1)
    assert torch.equal(head.correct, counts)
    assert int(head.seen) == B + 4
    torch.testing.assert_close(head.factors, torch.full((T,), 1.0 / T))  # not yet
    head.update_factors()
    want = ema(torch.full((T,), 1.0 / T, dtype=torch.float64), counts, beta)
    torch.testing.assert_close(head.factors.double(), want, rtol=1e-6, atol=1e-7)
    assert int(head.correct.sum()) == 0 and int(head.seen) == 0  # counts cleared
    # second epoch: only its own counts
    c3, l3 = random_pattern(B, seed=3)
    head(logits_for(c3, l3), target=l3)
    head.update_factors()
    torch.testing.assert_close(head.factors.double(), ema(want, c3.sum(1), beta), rtol=1e-6, atol=1e-7)


def test_hand_computed_small_case():
    # T = 3, beta = 0.5: counts (0, 1, 3) -> Delta = (0, 1/4, 3/4);
    # factors = 0.5 * 1/3 + 0.5 * Delta = (1/6, 1/6 + 1/8, 1/6 + 3/8).
    head = TemporalWeightedHead(Identity(), T=3, beta=0.5)
    labels = torch.tensor([0, 1, 2])
    correct = torch.tensor([[False, False, False], [True, False, False], [True, True, True]])
    head(logits_for(correct, labels), target=labels)
    head.update_factors()
    torch.testing.assert_close(head.factors, torch.tensor([1 / 6, 1 / 6 + 1 / 8, 1 / 6 + 3 / 8]))


def test_no_update_when_no_timestep_is_right():
    head = TemporalWeightedHead(Identity(), T=T)
    head.factors.copy_(torch.softmax(torch.randn(T), 0))
    before = head.factors.clone()
    labels = torch.randint(0, K, (B,))
    head(logits_for(torch.zeros(T, B, dtype=torch.bool), labels), target=labels)
    head.update_factors()
    assert torch.equal(head.factors, before)
    assert int(head.correct.sum()) == 0


def test_eval_does_not_count_or_update():
    for mode in ("epoch", "step"):
        head = TemporalWeightedHead(Identity(), T=T, update_every=mode).eval()
        c, labels = random_pattern(B, seed=4)
        y = head(logits_for(c, labels), target=labels)
        assert y.shape == (B, K)
        assert int(head.correct.sum()) == 0 and int(head.seen) == 0
        with pytest.warns(UserWarning, match="no training forward"):
            head.update_factors()
        torch.testing.assert_close(head.factors, torch.full((T,), 1.0 / T))


def test_no_target_no_counting():
    head = TemporalWeightedHead(Identity(), T=T)
    head(torch.randn(T, B, K))
    assert int(head.correct.sum()) == 0 and int(head.seen) == 0


def test_warmup_keeps_factors_uniform_and_discards_its_counts():
    beta = 0.7
    head = TemporalWeightedHead(Identity(), T=T, beta=beta, warmup_epochs=2)
    uniform = torch.full((T,), 1.0 / T)
    for epoch in range(2):
        c, labels = random_pattern(B, seed=10 + epoch, density=0.8)
        head(logits_for(c, labels), target=labels)
        head.update_factors()
        torch.testing.assert_close(head.factors, uniform)
    c, labels = random_pattern(B, seed=12)
    head(logits_for(c, labels), target=labels)
    head.update_factors()
    want = ema(uniform.double(), c.sum(1), beta)
    torch.testing.assert_close(head.factors.double(), want, rtol=1e-6, atol=1e-7)
    assert int(head.epochs) == 3


# ============================================================================ step mode
def test_step_mode_updates_in_forward_and_returns_output_with_old_factors():
    beta = 0.6
    head = TemporalWeightedHead(Identity(), T=T, beta=beta, update_every="step")
    uniform = torch.full((T,), 1.0 / T, dtype=torch.float64)
    c1, l1 = random_pattern(B, seed=5)
    out1 = logits_for(c1, l1)
    y1 = head(out1, target=l1)
    torch.testing.assert_close(y1, out1.mean(0), rtol=1e-6, atol=1e-7)  # old (uniform) factors
    f1 = ema(uniform, c1.sum(1), beta)
    torch.testing.assert_close(head.factors.double(), f1, rtol=1e-6, atol=1e-7)
    c2, l2 = random_pattern(B, seed=6)
    out2 = logits_for(c2, l2)
    y2 = head(out2, target=l2)
    want_y2 = (f1[:, None, None] * out2).sum(0)
    torch.testing.assert_close(y2, want_y2, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(head.factors.double(), ema(f1, c2.sum(1), beta), rtol=1e-6, atol=1e-7)
    head.update_factors()  # only counts the epoch in step mode
    torch.testing.assert_close(head.factors.double(), ema(f1, c2.sum(1), beta), rtol=1e-6, atol=1e-7)
    assert int(head.epochs) == 1


def test_step_mode_training_step_backpropagates_through_old_factors():
    # forward -> loss -> backward, the training loop of Algorithm 1 read per minibatch.
    x = torch.randn(T, B, 4)
    target = torch.randint(0, K, (B,))
    head = TemporalWeightedHead(PerStepLinear(), T=T, update_every="step")
    old = head.factors.clone()
    loss = F.cross_entropy(head(x, target=target), target)
    loss.backward()
    ref = PerStepLinear()
    F.cross_entropy((old[:, None, None] * ref(x)).sum(0), target).backward()
    torch.testing.assert_close(head.model.fc.weight.grad, ref.fc.weight.grad, rtol=1e-5, atol=1e-7)


# ============================================================================ layout, targets
def test_time_dim_one_for_batch_first_models():
    c, labels = random_pattern(B, seed=7)
    out = logits_for(c, labels)  # [T, B, K]

    class BatchFirst(nn.Module):
        def forward(self, x):
            return x.transpose(0, 1)  # [B, T, K]

    head0 = TemporalWeightedHead(Identity(), T=T)
    head1 = TemporalWeightedHead(BatchFirst(), T=T, time_dim=1)
    torch.testing.assert_close(head1(out, target=labels), head0(out, target=labels))
    assert head1.last_step_logits.shape == (T, B, K)
    assert torch.equal(head1.correct, c.sum(1))
    head1.update_factors()
    head0.update_factors()
    assert torch.equal(head1.factors, head0.factors)


def test_soft_targets_use_argmax():
    c, labels = random_pattern(B, seed=8)
    soft = F.one_hot(labels, K).double() * 0.9 + 0.1 / K  # label smoothing
    hard_head = TemporalWeightedHead(Identity(), T=T)
    soft_head = TemporalWeightedHead(Identity(), T=T)
    hard_head(logits_for(c, labels), target=labels)
    soft_head(logits_for(c, labels), target=soft)
    assert torch.equal(soft_head.correct, c.sum(1))
    assert torch.equal(soft_head.correct, hard_head.correct)


@pytest.mark.parametrize("target_shape", [(B + 1,), (B, K, 2), (B - 1, K)])
def test_target_of_wrong_shape_raises(target_shape):
    head = TemporalWeightedHead(Identity(), T=T)
    with pytest.raises(ValueError, match=f"B={B}"):
        head(torch.randn(T, B, K), target=torch.zeros(target_shape, dtype=torch.long))


def test_wrong_number_of_timesteps_raises_naming_t_and_shape():
    head = TemporalWeightedHead(Identity(), T=T)
    with pytest.raises(ValueError, match=rf"T={T}") as info:
        head(torch.randn(T - 1, B, K))
    assert str([T - 1, B, K]) in str(info.value)
    head1 = TemporalWeightedHead(Identity(), T=T, time_dim=1)
    with pytest.raises(ValueError, match=rf"T={T}"):
        head1(torch.randn(T, B, K))  # B = 5 along dim 1, not T


@pytest.mark.parametrize(
    "output", [(torch.zeros(T, B, K),), {"logits": torch.zeros(T, B, K)}, torch.zeros(T), None],
    ids=["tuple", "dict", "1d", "none"],
)
def test_non_tensor_or_flat_output_raises(output):
    class Returns(nn.Module):
        def forward(self, x):
            return output

    with pytest.raises(ValueError, match="per-timestep"):
        TemporalWeightedHead(Returns(), T=T)(torch.zeros(1))


# ============================================================================ state, arguments
def test_state_dict_holds_factors_and_round_trips():
    head = TemporalWeightedHead(Identity(), T=T)
    c, labels = random_pattern(B, seed=9)
    head(logits_for(c, labels), target=labels)
    head.update_factors()
    state = head.state_dict()
    assert set(state) == {"factors", "epochs", "correct", "seen"}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert torch.equal(state["factors"], head.factors)
    other = TemporalWeightedHead(Identity(), T=T)
    other.load_state_dict(state)
    assert torch.equal(other.factors, head.factors)
    assert int(other.epochs) == 1
    out = torch.randn(T, B, K)
    assert torch.equal(other(out), head(out))


def test_counts_gathered_mid_epoch_survive_a_state_dict_round_trip():
    head = TemporalWeightedHead(Identity(), T=T)
    c, labels = random_pattern(B, seed=3)
    head(logits_for(c, labels), target=labels)
    other = TemporalWeightedHead(Identity(), T=T)
    other.load_state_dict(head.state_dict())
    assert torch.equal(other.correct, c.sum(1)) and int(other.seen) == B
    head.update_factors()
    other.update_factors()
    assert torch.equal(other.factors, head.factors)


def _trained_head(seed: int) -> TemporalWeightedHead:
    """A head whose factors moved (one update) and which holds counts of a second batch."""
    head = TemporalWeightedHead(Identity(), T=T)
    for step in range(2):
        c, labels = random_pattern(B, seed=seed + step)
        head(logits_for(c, labels), target=labels)
        if step == 0:
            head.update_factors()
    return head


def test_safetensors_saves_and_restores_factors_and_counts(tmp_path):
    """Issue 17 item 6: safetensors refused the old dict-valued ``_extra_state``."""
    from safetensors.torch import load_file, save_file

    head = _trained_head(seed=21)
    save_file(head.state_dict(), str(tmp_path / "head.safetensors"))
    other = TemporalWeightedHead(Identity(), T=T)
    assert not other.load_state_dict(load_file(str(tmp_path / "head.safetensors"))).missing_keys
    assert not torch.equal(head.factors, torch.full((T,), 1 / T))
    for name in ("factors", "epochs", "correct", "seen"):
        assert torch.equal(getattr(other, name), getattr(head, name)), name


def test_accelerate_save_state_and_load_state_restore_the_head(tmp_path):
    """Issue 17 item 6: ``accelerator.save_state()`` failed on the dict extra state."""
    from accelerate import Accelerator

    head = _trained_head(seed=31)
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(head)
    accelerator.save_state(str(tmp_path / "state"))
    fresh = TemporalWeightedHead(Identity(), T=T)
    restorer = Accelerator(cpu=True)
    restorer.prepare(fresh)
    restorer.load_state(str(tmp_path / "state"))
    for name in ("factors", "epochs", "correct", "seen"):
        assert torch.equal(getattr(fresh, name), getattr(head, name)), name
    fresh.update_factors()
    head.update_factors()
    assert torch.equal(fresh.factors, head.factors)


def test_a_state_dict_of_the_old_extra_state_format_still_loads():
    old = {"factors": torch.tensor([0.1] * 4 + [0.2] * 3, dtype=torch.float32), "epochs": torch.tensor(3),
           "_extra_state": {"correct": torch.arange(T), "seen": torch.tensor(9)}}
    head = TemporalWeightedHead(Identity(), T=T)
    assert not head.load_state_dict(old).missing_keys
    assert torch.equal(head.correct, torch.arange(T)) and int(head.seen) == 9 and int(head.epochs) == 3


def test_a_state_dict_of_another_t_is_refused_naming_the_counts():
    with pytest.raises(RuntimeError, match=r"size mismatch for correct: copying \[7\].*\[4\] \(T=4\)"):
        TemporalWeightedHead(Identity(), T=4).load_state_dict(_trained_head(seed=1).state_dict())


@pytest.mark.parametrize("mode", ["epoch", "step"])
def test_update_factors_without_any_target_warns(mode):
    """Issue 18: forgetting ``target=`` left the factors uniform without a word."""
    head = TemporalWeightedHead(Identity(), T=T, update_every=mode)
    c, labels = random_pattern(B, seed=5)
    head(logits_for(c, labels))  # no target
    with pytest.warns(UserWarning, match=r"no training forward .* passed target="):
        head.update_factors()
    assert torch.equal(head.factors, torch.full((T,), 1 / T))
    head(logits_for(c, labels), target=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head.update_factors()  # counted: no warning
    assert not torch.equal(head.factors, torch.full((T,), 1 / T))
    with pytest.warns(UserWarning, match="no training forward"):
        head.update_factors()  # the next epoch saw no target again


def test_counts_are_not_buffers_so_ddp_cannot_overwrite_them():
    names = {name for name, _ in TemporalWeightedHead(Identity(), T=T).named_buffers()}
    assert names == {"factors", "epochs"}


@pytest.mark.parametrize(
    "T_bad", [0, -1, 2.5, True, "7", None, np.True_, torch.tensor(True), np.float64(7.0), torch.tensor(7.0)]
)
def test_bad_t_raises_naming_the_value(T_bad):
    with pytest.raises(ValueError, match=r"T must be an integer >= 1 \(timesteps\), got ") as info:
        TemporalWeightedHead(Identity(), T=T_bad)
    assert str(info.value).endswith(repr(T_bad))


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, float("nan"), True, "0.7", np.True_, torch.tensor(False)])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0, 1\) \(EMA momentum\), got "):
        TemporalWeightedHead(Identity(), T=T, beta=beta)


@pytest.mark.parametrize("wrap", [int, np.int64, np.int32, torch.tensor], ids=["int", "int64", "int32", "tensor"])
def test_numpy_and_torch_integers_are_accepted(wrap):
    """Issue 9 item 7: numpy and torch scalars (e.g. from a config or a tensor) are numbers."""
    head = TemporalWeightedHead(Identity(), T=wrap(4), time_dim=wrap(0), warmup_epochs=wrap(1))
    assert (head.T, head.time_dim, head.warmup_epochs) == (4, 0, 1)
    assert all(type(v) is int for v in (head.T, head.time_dim, head.warmup_epochs))
    assert head.factors.shape == (4,)


@pytest.mark.parametrize("beta", [np.float32(0.5), np.float64(0.5), torch.tensor(0.5), 0.5])
def test_numpy_and_torch_reals_are_accepted_as_beta(beta):
    head = TemporalWeightedHead(Identity(), T=T, beta=beta)
    assert head.beta == 0.5 and type(head.beta) is float


@pytest.mark.parametrize("update_every", ["batch", "Epoch", None, 1])
def test_bad_update_every_raises(update_every):
    with pytest.raises(ValueError, match="update_every"):
        TemporalWeightedHead(Identity(), T=T, update_every=update_every)


@pytest.mark.parametrize("warmup", [-1, 1.5, True, "1"])
def test_bad_warmup_raises(warmup):
    with pytest.raises(ValueError, match="warmup"):
        TemporalWeightedHead(Identity(), T=T, warmup_epochs=warmup)


def test_beta_zero_jumps_to_the_normalised_counts():
    head = TemporalWeightedHead(Identity(), T=T, beta=0.0)
    c, labels = random_pattern(B, seed=13, density=0.6)
    head(logits_for(c, labels), target=labels)
    head.update_factors()
    counts = c.sum(1).double()
    torch.testing.assert_close(head.factors.double(), counts / counts.sum(), rtol=1e-6, atol=1e-7)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    beta=st.floats(0.0, 0.99),
    batches=st.lists(
        st.tuples(st.integers(1, 9), st.integers(0, 2**16), st.floats(0.0, 1.0)), min_size=1, max_size=6
    ),
    mode=st.sampled_from(["epoch", "step"]),
)
def test_factors_stay_a_distribution_and_follow_eq17(beta, batches, mode):
    head = TemporalWeightedHead(Identity(), T=T, beta=beta, update_every=mode)
    want = torch.full((T,), 1.0 / T, dtype=torch.float64)
    for batch, seed, density in batches:
        c, labels = random_pattern(batch, seed=seed, density=density)
        head(logits_for(c, labels, seed=seed), target=labels)
        if mode == "epoch":
            head.update_factors()
        want = ema(want, c.sum(1), beta)
        assert head.factors.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert (head.factors >= 0).all()
        torch.testing.assert_close(head.factors.double(), want, rtol=1e-5, atol=1e-6)


# ============================================================================ non-finite logits
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_timesteps_count_as_wrong(bad):
    """Issue 9 item 8: argmax of a NaN row is 0, which must not score a hit for class 0."""
    labels = torch.zeros(B, dtype=torch.long)  # class 0: what a NaN row's argmax gives
    correct = torch.ones(T, B, dtype=torch.bool)
    out = logits_for(correct, labels)
    out[1] = bad  # the whole timestep is non-finite
    out[2, :2, 1] = bad  # one non-finite logit (not the label's) in two samples
    out[3, 0, 0] = bad  # in the label's own column
    head = TemporalWeightedHead(Identity(), T=T, beta=0.0)
    head(out, target=labels)
    expected = [B, 0, B - 2, B - 1, B, B, B]
    assert head.correct.tolist() == expected
    head.update_factors()
    torch.testing.assert_close(head.factors.double(), torch.tensor(expected).double() / sum(expected))


# ============================================================================ bad targets
@pytest.mark.parametrize(
    ("target", "match"),
    [
        (torch.zeros(B, 1, dtype=torch.long), r"\[B=5\]"),  # argmax over a size-1 dim
        (torch.full((B,), K, dtype=torch.long), "class index 3"),
        (torch.full((B,), -100, dtype=torch.long), "class index -100"),
        (torch.full((B,), 0.5), "float32"),
        (torch.ones(B, dtype=torch.bool), "torch.bool"),
        (torch.zeros(B, K + 1), r"\[5, 4\]"),
        ([0] * B, "list"),
    ],
    ids=["B-by-1", "too-large", "ignore-index", "fractional", "bool", "wrong-K", "list"],
)
def test_bad_targets_raise_naming_the_value(target, match):
    head = TemporalWeightedHead(Identity(), T=T)
    with pytest.raises(ValueError, match=match):
        head(torch.randn(T, B, K), target=target)
    assert int(head.seen) == 0


@pytest.mark.parametrize("shape", [(T, B), (T, B, K, 2)])
def test_outputs_that_are_not_t_b_k_raise(shape):
    with pytest.raises(ValueError, match=r"\[T=7, B, K\]"):
        TemporalWeightedHead(Identity(), T=T)(torch.randn(shape))


@pytest.mark.parametrize("time_dim", [5, 1.0])
def test_bad_time_dim_raises(time_dim):
    with pytest.raises(ValueError, match="time_dim"):
        TemporalWeightedHead(Identity(), T=T, time_dim=time_dim)(torch.randn(T, B, K))
