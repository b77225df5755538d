"""Tests of sparsegrad.layers: the time x batch merge, time-first batch norm, gradient
checkpointing, the neuron settings and the shared spiking blocks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sparsegrad.layers import (
    Classifier,
    ConvBNNeuron,
    SeqToANN,
    SpikingConfig,
    SpikingEncoder,
    TimeAvgPool2d,
    TimeBatchNorm2d,
    apply_merged,
    checkpoint_seq,
    is_recomputing,
)
from sparsegrad.neuron import LIF

T, B = 3, 2  # distinct, so a swapped time and batch shows


# ------------------------------------------------------------------------------ the merge
def test_seq_to_ann_matches_per_timestep():
    torch.manual_seed(0)
    block = SeqToANN(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                     nn.Flatten(), nn.Linear(4 * 3 * 3, 7)).eval()  # eval: BN uses running stats
    x = torch.randn(T, B, 2, 6, 6)
    per_frame = nn.Sequential(*block)
    expected = torch.stack([per_frame(x[t]) for t in range(T)])
    out = block(x)
    assert out.shape == (T, B, 7)
    torch.testing.assert_close(out, expected)


def test_seq_to_ann_batchnorm_statistics_over_time_and_batch():
    torch.manual_seed(0)
    block = SeqToANN(nn.BatchNorm2d(4))
    x = torch.randn(T, B, 4, 2, 2) * 3 + 1
    out = block(x).reshape(T * B, 4, 2, 2)
    torch.testing.assert_close(out.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(block[0].running_mean, 0.1 * x.mean((0, 1, 3, 4)))


def test_time_avg_pool_is_the_per_frame_pool():
    x = torch.rand(T, B, 3, 8, 6)
    expected = torch.stack([nn.functional.avg_pool2d(x[t], 2) for t in range(T)])
    assert torch.equal(TimeAvgPool2d(2)(x), expected)


@pytest.mark.parametrize("bad", [torch.randn(B, 4), torch.randn(7), "frames"])
def test_merge_rejects_non_sequences(bad):
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        SeqToANN(nn.Linear(4, 2))(bad)


def test_merge_rejects_functions_that_change_the_batch():
    with pytest.raises(ValueError, match=r"T\*B = 3\*2 = 6"):
        apply_merged(lambda z: z.sum(0), torch.randn(T, B, 4))


# ------------------------------------------------------------------------------ batch norm
def test_per_step_batch_norm_normalises_each_timestep():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 5, 5) + torch.arange(4.0).view(4, 1, 1, 1, 1)  # shifted means per step
    per_step = TimeBatchNorm2d(3, "per_step")
    merged = TimeBatchNorm2d(3, "merged")
    torch.testing.assert_close(per_step(x).mean(dim=(1, 3, 4)), torch.zeros(4, 3), atol=1e-5, rtol=0)
    assert int(per_step.num_batches_tracked) == 4  # one update per timestep
    y = merged(x)
    assert y.mean(dim=(1, 3, 4))[0].mean() < -0.5  # merged statistics leave the shift in
    torch.testing.assert_close(y.mean(dim=(0, 1, 3, 4)), torch.zeros(3), atol=1e-5, rtol=0)
    assert int(merged.num_batches_tracked) == 1


@pytest.mark.parametrize("mode", ["merged", "per_step"])
def test_checkpointing_updates_batch_norm_once(mode):
    """Issue 9 item 4: the recomputed forward must not move the running statistics again."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Sequential(TimeBatchNorm2d(3, mode), LIF()), nn.Sequential(TimeBatchNorm2d(3, mode)))
    x = torch.randn(T, B, 3, 4, 4) * 2 + 1

    def step(checkpointed):
        net = copy.deepcopy(block)
        xi = x.clone().requires_grad_()
        y = checkpoint_seq(net, xi) if checkpointed else net(xi)
        y.square().mean().backward()
        return net.state_dict(), xi.grad

    plain_state, plain_grad = step(False)
    ckpt_state, ckpt_grad = step(True)
    for key, value in plain_state.items():
        assert torch.equal(ckpt_state[key], value), key
    torch.testing.assert_close(ckpt_grad, plain_grad)


def test_is_recomputing_only_inside_the_recomputation():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(is_recomputing())
            return x * x  # saves x: backward needs the recomputation

    x = torch.randn(T, B, 4, requires_grad=True)
    checkpoint_seq(nn.Sequential(Probe()), x).sum().backward()
    assert seen == [False, True]
    assert not is_recomputing()


# ------------------------------------------------------------------------------ SpikingConfig
class Recorder(nn.Module):
    """A neuron that records its constructor arguments and spikes at a fixed threshold."""

    def __init__(self, v_threshold=1.0, v_reset=None):
        super().__init__()
        self.v_threshold, self.v_reset = v_threshold, v_reset

    def forward(self, x):
        return (x >= self.v_threshold).to(x.dtype)


def test_only_the_constants_set_reach_the_neuron():
    neuron = SpikingConfig(neuron_layer=Recorder, v_threshold=0.25, v_reset=-0.5).neuron()
    assert isinstance(neuron, Recorder)
    assert (neuron.v_threshold, neuron.v_reset) == (0.25, -0.5)
    lif = SpikingConfig(v_reset=-0.5, tau=3.0).neuron()
    assert (lif.tau, lif.v_threshold, lif.v_reset) == (3.0, 0.5, -0.5)  # the rest: LIF's defaults


@pytest.mark.parametrize("T_ok", [np.int64(4), torch.tensor(4), 4])
def test_integer_scalars_are_timesteps(T_ok):
    cfg = SpikingConfig(T=T_ok)
    assert cfg.T == 4 and type(cfg.T) is int


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"T": True}, "T must be an integer >= 1 \\(timesteps\\).*True"),
        ({"T": "4"}, "T must be an integer >= 1 \\(timesteps\\).*'4'"),
        ({"T": 2.0}, "T must be an integer >= 1 \\(timesteps\\).*2.0"),
        ({"T": 0}, "T must be an integer >= 1 \\(timesteps\\).*0"),
        ({"bn_mode": "tdbn"}, "bn_mode.*'tdbn'"),
        ({"neuron_layer": "lif"}, "neuron_layer must be a class or a partial, got 'lif'"),
        ({"neuron_layer": Recorder, "tau": 2.0}, r"cannot be built with \{'tau': 2.0\}"),
        ({"neuron_layer": lambda: 3}, "must build an nn.Module, got 3"),
        ({"tau": 0.5}, "tau"),  # LIF's own check, at construction
    ],
)
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpikingConfig(**kwargs)


# ------------------------------------------------------------------------------ blocks
def test_encoder_reads_both_layouts_and_names_bad_shapes():
    torch.manual_seed(0)
    enc = SpikingEncoder(2, 4, 3, 1, SpikingConfig(T=T)).eval()
    image = torch.rand(B, 2, 5, 7)
    frames = image.unsqueeze(1).expand(B, T, 2, 5, 7)
    assert enc(image).shape == (T, B, 4, 5, 7)
    assert torch.equal(enc(image), enc(frames))
    with pytest.raises(ValueError, match=r"in_chans=2, T=3"):
        enc(torch.rand(B, T + 1, 2, 5, 7))
    with pytest.raises(ValueError, match=r"torch.int64 \[2, 2, 5, 7\]"):
        enc(torch.ones(B, 2, 5, 7, dtype=torch.long))


def test_conv_bn_neuron_spikes_with_the_configured_neuron():
    block = ConvBNNeuron(2, 4, 3, 2, SpikingConfig(neuron_layer=Recorder, v_threshold=0.0))
    out = block(torch.randn(T, B, 2, 6, 6))
    assert out.shape == (T, B, 4, 3, 3)
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_classifier_pre_logits_then_linear():
    torch.manual_seed(0)
    head = Classifier(4 * 2 * 2, 5, global_pool="").eval()
    x = torch.randn(T, B, 4, 2, 2)
    pre = head(x, pre_logits=True)
    torch.testing.assert_close(pre, x.flatten(2))
    torch.testing.assert_close(head(x), head.fc(pre))
    pooled = Classifier(4, 0, global_pool="avg")(x)
    torch.testing.assert_close(pooled, x.mean((3, 4)))
    with pytest.raises(ValueError, match="'max'"):
        Classifier(4, 5, global_pool="max")
