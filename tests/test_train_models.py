"""The engine trains any spiking network: a timm model the user registers, a built module with
spikingjelly neurons (``neuron_layer=``), and it refuses, before writing anything, what cannot
train (issue 16)."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import partial
from pathlib import Path

import pytest
import timm
import torch
from spikingjelly.activation_based import neuron as sj_neuron
from timm.models import register_model
from torch import nn

from sparsegrad.neuron import LIF
from sparsegrad.train import RecipeConfig, RunFolder, load_checkpoint, run
from sparsegrad.train.neurons import spiking_neurons
from sparsegrad.train.probes import firing_rates

PLOTS = {"curves.png", "acc_per_timestep.png", "two_factors.png", "firing_rate.png", "epoch_time.png"}


class TinySNN(nn.Module):
    """Event frames ``[B, T, C, H, W]`` -> pooled features -> linear -> neuron -> linear ``[T, B, K]``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 2, neuron: nn.Module | None = None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc1 = nn.Linear(in_chans * 16, 32)
        self.spike = neuron if neuron is not None else LIF(v_threshold=0.05)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = x.transpose(0, 1)  # [T, B, C, H, W]
        T, B = x.shape[:2]
        h = self.fc1(self.pool(x.flatten(0, 1)).flatten(1)).view(T, B, -1)
        return self.fc2(self.spike(h))


@register_model
def user_tiny_snn(pretrained: bool = False, num_classes: int = 10, in_chans: int = 2, **kwargs) -> TinySNN:
    """A user's own model, registered the timm way; it takes no ``T`` (the data sets it)."""
    return TinySNN(num_classes=num_classes, in_chans=in_chans)


class NotTimeFirst(nn.Module):
    """Logits ``[B, K]``, no time axis."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 34 * 34, 10)
        self.spike = LIF()

    def forward(self, x):
        return self.fc(x.flatten(2)).mean(1)


def _cfg(out: Path, **changes) -> RecipeConfig:
    fields = dict(name="m", dataset="nmnist", model="user_tiny_snn", T=2, epochs=1, seeds=(0,), batch_size=8,
                  train_limit=16, eval_limit=8, num_workers=0, frame_cache=False, tensorboard=False, out_dir=out)
    return RecipeConfig(**{**fields, **changes})


def _trains_resumes_plots(cfg: RecipeConfig, **given) -> dict:
    """One epoch, then the run extended to two by --resume; the checks every network must pass."""
    run_dir = run(cfg, **given)
    run(dataclasses.replace(cfg, epochs=2, resume=run_dir), **given)
    seed = RunFolder(run_dir).seed(0)
    history = seed.read_history()
    assert [h.epoch for h in history] == [1, 2]
    lr = history[0].lr
    assert [h.lr for h in history] == pytest.approx([lr, lr * (1 + math.cos(math.pi / 2)) / 2])
    assert all(h.msg_seen > 0 and 0 < h.msg_drop_frac < 1 for h in history)  # MSG found the neurons
    result = seed.finished(2)
    assert result is not None and len(result["acc_per_step"]) == 2
    assert {p.name for p in seed.plots.iterdir()} == PLOTS
    _, state = load_checkpoint(seed.checkpoints)
    assert state["epoch"] == 2 and state["ranks"][0]["msg"]["stats"]["dropped"] > 0
    return seed.read_firing_rate()


def test_a_user_registered_timm_model_trains_resumes_and_plots(tmp_path):
    rates = _trains_resumes_plots(_cfg(tmp_path))
    assert list(rates) == ["spike"] and 0 < rates["spike"] < 1


def test_a_built_model_with_spikingjelly_neurons_trains_resumes_and_plots(tmp_path):
    """``spiking_convnet_s`` built with ``neuron_layer=`` spikingjelly's multi-step LIF, given
    as ``run(cfg, model=...)``; its neurons are reset before every batch, probed and masked."""
    sj_lif = partial(sj_neuron.LIFNode, step_mode="m", v_threshold=0.5)
    model = timm.create_model("spiking_convnet_s", neuron_layer=sj_lif, T=2, num_classes=10, in_chans=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rates = _trains_resumes_plots(_cfg(tmp_path, model="ignored"), model=model)
    neurons = spiking_neurons(model)
    assert list(rates) == list(neurons) and len(rates) >= 2
    assert all(isinstance(m, sj_neuron.LIFNode) for m in neurons.values())
    assert all(0 <= r <= 1 for r in rates.values()) and any(r > 0 for r in rates.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's copy is untouched
    config = json.loads((next(tmp_path.glob("m-*")) / "config.json").read_text())
    assert config["effective"]["model"] == "SpikingConvNet"


def _leaky_over_time(leaky: nn.Module, currents: torch.Tensor) -> torch.Tensor:
    """An snntorch single-step neuron run over ``currents [T, B, F]``: spikes ``[T, B, F]``."""
    mem = leaky.init_leaky()
    spikes = []
    for current in currents:
        spk, mem = leaky(current, mem)
        spikes.append(spk)
    return torch.stack(spikes)


class SnnTorchSteps(nn.Module):
    """TinySNN's layers around one snntorch ``Leaky``, called once per timestep."""

    def __init__(self, num_classes: int = 10, in_chans: int = 2):
        super().__init__()
        import snntorch

        self.body = TinySNN(num_classes, in_chans, neuron=nn.Identity())
        self.leaky = snntorch.Leaky(beta=0.5, threshold=0.05)

    def forward(self, x):
        x = x.transpose(0, 1)
        T, B = x.shape[:2]
        h = self.body.fc1(self.body.pool(x.flatten(0, 1)).flatten(1)).view(T, B, -1)
        return self.body.fc2(_leaky_over_time(self.leaky, h))


def test_a_model_with_snntorch_neurons_trains_with_msg_on_their_input(tmp_path):
    pytest.importorskip("snntorch")
    rates = _trains_resumes_plots(_cfg(tmp_path), model=SnnTorchSteps())
    assert list(rates) == ["leaky"] and 0 < rates["leaky"] < 1


def test_firing_rates_of_snntorch_neurons_average_their_calls():
    """snntorch neurons are single-step and return (spikes, membrane): the rate is the mean
    spike of every call."""
    snntorch = pytest.importorskip("snntorch")

    class Steps(nn.Module):
        def __init__(self):
            super().__init__()
            self.leaky = snntorch.Leaky(beta=0.5, threshold=1.0)

        def forward(self, x):  # x [T, B, F]
            return _leaky_over_time(self.leaky, x)

    x = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]], [[2.0, 2.0]]])  # [T=3, B=1, F=2]
    rates = firing_rates(Steps(), x)
    # t=1: mem (2, 0) -> spikes (1, 0); t=2: 0.5 * 2 - 1 (the subtracting reset) = 0 -> none;
    # t=3: (2, 2) -> (1, 1). Mean of the per-call means: (1/2 + 0 + 1) / 3.
    assert rates == {"leaky": pytest.approx(0.5)}


def test_an_output_that_is_not_time_first_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"--model NotTimeFirst on 2 samples of shape \(2, 2, 34, 34\) returned "
                                         r"\(2, 10\); the engine trains per-timestep logits \[T, B, K\] = \[2, 2, 10\]"):
        run(_cfg(tmp_path / "runs"), model=NotTimeFirst())
    assert not (tmp_path / "runs").exists()


def test_msg_needs_a_spiking_neuron_and_no_msg_does_not(tmp_path):
    class NoNeuron(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2 * 34 * 34, 10)

        def forward(self, x):
            return self.fc(x.transpose(0, 1).flatten(2))

    with pytest.raises(ValueError, match=r"--msg: --model NoNeuron has no spiking neuron MSG can attach to"):
        run(_cfg(tmp_path / "runs"), model=NoNeuron())
    assert not (tmp_path / "runs").exists()
    run_dir = run(_cfg(tmp_path / "runs", msg=False, plots=False), model=NoNeuron())
    assert RunFolder(run_dir).finished(1)
