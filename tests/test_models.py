"""The timm-registered model zoo, tested over the registry: shapes, timm's model contract,
parameter counts, injectable neurons, MSG/TWO on every model."""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron as sj_neuron
from torch import nn

import sparsegrad  # noqa: F401  (registers the models)
from sparsegrad import LIF, MaskedGradient, TemporalWeightedHead
from sparsegrad.layers import SeqToANN
from sparsegrad.models import MODEL_NAMES

B, T, K = 3, 2, 5  # distinct batch, timesteps and classes
IMG = 16  # survives every network's downsampling (fixed-size models get img_size=16)


# Narrower widths of the same architectures, for the tests that run every model forward and
# backward several times (the registered widths are checked by the parameter-count tests).
NARROW = {
    **dict.fromkeys(["spiking_resnet18", "sew_resnet18", "sew_resnet34", "sew_resnet50"], {"widths": (8, 8, 16, 16)}),
    "spiking_resnet19": {"widths": (8, 16, 16)},
    "vggsnn": {"layout": (8, 16, "A", 16, 16, "A", 16, 16, "A", 16, 16, "A")},
    "spiking_cifarnet": {"layout": (16, 16, "A", 16, 16, "A", 16, 16, 16, "A", 32, 32, "A")},
}


def cfg_of(name):
    return timm.models.get_pretrained_cfg(name).to_dict()


def build(name, narrow=True, **kwargs):
    kwargs = {"num_classes": K, "T": T, **(NARROW.get(name, {}) if narrow else {}), **kwargs}
    if cfg_of(name).get("fixed_input_size"):
        kwargs.setdefault("img_size", IMG)
    return timm.create_model(name, **kwargs)


def static_input(name, batch=B, size=IMG):
    return torch.rand(batch, cfg_of(name)["input_size"][0], size, size)


def frames_input(name, batch=B):
    return torch.rand(batch, T, cfg_of(name)["input_size"][0], IMG, IMG)


def test_model_names_are_what_sparsegrad_adds_to_timm():
    probe = (
        "import sys, timm; before = set(timm.list_models()); import sparsegrad; "
        "print(*sorted(set(timm.list_models()) - before)); print(*[timm.is_model(n) for n in sys.argv[1:]])"
    )
    added, _ = subprocess.run(
        [sys.executable, "-c", probe, *MODEL_NAMES], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert added.split() == sorted(MODEL_NAMES)
    assert {"spiking_convnet_s", "spiking_convnet_m", "vggsnn", "sew_resnet34"} <= set(MODEL_NAMES)


# ============================================================================ shapes and encoding
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_both_layouts_give_per_step_logits(name):
    model = build(name)
    assert model(static_input(name)).shape == (T, B, K)
    out = model(frames_input(name))
    assert out.shape == (T, B, K)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.get_classifier().weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_direct_encoding_equals_repeated_frames(name):
    model = build(name).eval()
    image = static_input(name)
    repeated = image.unsqueeze(1).expand(B, T, *image.shape[1:])
    torch.testing.assert_close(model(image), model(repeated), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_is_a_pure_function_of_the_input(name):
    model = build(name).eval()
    x = static_input(name)
    with torch.no_grad():
        first = model(x)
        model(static_input(name, batch=1))  # other batch sizes in between
        model(static_input(name, batch=4))
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
        torch.testing.assert_close(model(x[:2]), first[:, :2], rtol=1e-5, atol=1e-6)


# ============================================================================ timm's contract
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_features_only_gives_time_first_maps_per_stage(name):
    features = build(name, features_only=True).eval()
    x = static_input(name)
    with torch.no_grad():
        maps = features(x)
        last = features.model.forward_features(x)
    info = features.feature_info
    assert len(maps) == len(info.out_indices) >= 2
    for fmap, chans, reduction in zip(maps, info.channels(), info.reduction()):
        side = -(-IMG // reduction)  # strided convs round up
        assert fmap.shape == (T, B, chans, side, side)
    torch.testing.assert_close(maps[-1], last, rtol=0, atol=0)  # the last map is what the head reads
    picked = build(name, features_only=True, out_indices=(-2,)).eval()
    picked.load_state_dict(features.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(picked(x)[0], maps[-2], rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, reference", [("spiking_resnet18", "resnet18"), ("sew_resnet34", "resnet34"), ("sew_resnet50", "resnet50")]
)
def test_resnet_feature_maps_match_timms_resnets(name, reference):
    ours = timm.create_model(name, features_only=True).feature_info
    theirs = timm.create_model(reference, features_only=True).feature_info
    assert (ours.channels(), ours.reduction()) == (theirs.channels(), theirs.reduction())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_head_pre_logits_and_reset_classifier(name):
    model = build(name).eval()
    x = static_input(name)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pre.shape == (T, B, model.num_features)
        torch.testing.assert_close(model.get_classifier()(pre), model(x))
        model.reset_classifier(7)
        assert model(x).shape == (T, B, 7) and model.num_classes == 7
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre)
    with pytest.raises(ValueError, match="global_pool='max'"):
        model.reset_classifier(3, global_pool="max")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_cfg_names_real_modules(name):
    cfg = cfg_of(name)
    model = timm.create_model(name)  # the registered defaults
    first_conv = model.get_submodule(cfg["first_conv"])
    assert isinstance(first_conv, nn.Conv2d) and first_conv.in_channels == cfg["input_size"][0]
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert model.get_classifier().out_features == cfg["num_classes"]
    if cfg.get("fixed_input_size"):
        assert model.img_size == cfg["input_size"][1:]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fixed_input_size_iff_the_classifier_depends_on_it(name):
    if cfg_of(name).get("fixed_input_size"):
        small, large = build(name, img_size=IMG), build(name, img_size=2 * IMG)
        assert large.num_features == 4 * small.num_features
        with pytest.raises(ValueError, match=r"img_size=\(16, 16\)"):
            small(static_input(name, size=2 * IMG))
    else:
        model = build(name)
        assert model(static_input(name, size=2 * IMG)).shape == model(static_input(name)).shape


# ============================================================================ parameter counts
# torchvision's ResNets have the same convolutions, BNs and classifier: an independent count.
@pytest.mark.parametrize(
    "name, reference",
    [
        ("spiking_resnet18", torchvision.models.resnet18),
        ("sew_resnet18", torchvision.models.resnet18),
        ("sew_resnet34", torchvision.models.resnet34),
        ("sew_resnet50", torchvision.models.resnet50),
    ],
)
def test_resnet_parameter_counts_match_torchvision(name, reference):
    ours = sum(p.numel() for p in timm.create_model(name).parameters())
    assert ours == sum(p.numel() for p in reference().parameters())
    if name == "sew_resnet34":
        assert round(ours / 1e6, 1) == 21.8  # docs/design.md §4


def conv_bn(c_in, c_out, k=3):
    return k * k * c_in * c_out + 2 * c_out


def test_vgg_parameter_counts_closed_form():
    widths = [64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(conv_bn(a, b) for a, b in zip([2] + widths[:-1], widths))
    assert sum(p.numel() for p in timm.create_model("vggsnn").parameters()) == convs + 512 * 3 * 3 * 10 + 10
    widths = [256, 256, 256, 256, 512, 512, 512, 1024, 1024]
    convs = sum(conv_bn(a, b) for a, b in zip([3] + widths[:-1], widths))
    cifarnet = timm.create_model("spiking_cifarnet")
    assert sum(p.numel() for p in cifarnet.parameters()) == convs + 1024 * 2 * 2 * 10 + 10


def test_resnet19_parameter_count_closed_form():
    def basic(c_in, c_out, stride):
        down = conv_bn(c_in, c_out, 1) if stride != 1 or c_in != c_out else 0
        return conv_bn(c_in, c_out) + conv_bn(c_out, c_out) + down

    n = conv_bn(3, 128)
    n += sum(basic(128, 128, 1) for _ in range(3))
    n += basic(128, 256, 2) + 2 * basic(256, 256, 1)
    n += basic(256, 512, 2) + basic(512, 512, 1)
    n += 512 * 10 + 10
    assert sum(p.numel() for p in timm.create_model("spiking_resnet19").parameters()) == n


def demo_cnn(channels=(32, 64), size=34, classes=10):
    """The N-MNIST demo's former SpikingCNN, written out with SeqToANN and LIF."""
    c1, c2 = channels
    side = size // 4
    return nn.Sequential(
        SeqToANN(nn.Conv2d(2, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)),
        LIF(),
        SeqToANN(nn.AvgPool2d(2), nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)),
        LIF(),
        SeqToANN(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(c2 * side * side, classes)),
    )


def test_spiking_convnet_s_is_the_demo_network():
    torch.manual_seed(0)
    ours = timm.create_model("spiking_convnet_s")
    torch.manual_seed(0)
    demo = demo_cnn()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in demo.parameters()) == 60170
    # The same tensors, drawn in the same order: one seed gives the demo the same weights.
    for a, b in zip(ours.state_dict().values(), demo.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    frames = (torch.rand(4, 10, 2, 34, 34) < 0.3).float()  # [B, T=10, 2, 34, 34] event frames
    torch.testing.assert_close(ours(frames), demo(frames.transpose(0, 1)))  # train mode: batch stats
    ours.eval(), demo.eval()
    torch.testing.assert_close(ours(frames), demo(frames.transpose(0, 1)))
    wider = timm.create_model("spiking_convnet_m", channels=(8, 16, 24, 32), img_size=32)
    assert wider.num_features == 32 * 2 * 2 and len(wider.feature_info) == 4


# ============================================================================ neurons
def test_spikingjelly_multistep_neuron_gives_the_same_network():
    """spikingjelly's LIFNode (step_mode="m") through neuron_layer= equals sparsegrad's LIF."""
    torch.manual_seed(0)
    ours = build("sew_resnet18", stem="cifar").eval()
    sj_lif = partial(sj_neuron.LIFNode, step_mode="m", v_threshold=0.5, v_reset=0.0)
    theirs = build("sew_resnet18", stem="cifar", neuron_layer=sj_lif, tau=2.0).eval()
    theirs.load_state_dict(ours.state_dict())
    assert sum(isinstance(m, sj_neuron.LIFNode) for m in theirs.modules()) == sum(
        isinstance(m, LIF) for m in ours.modules()
    )
    x = frames_input("sew_resnet18")
    with torch.no_grad():
        expected = ours(x)
        for _ in range(2):  # stateful neurons: reset between batches
            torch.testing.assert_close(theirs(x), expected, rtol=1e-5, atol=1e-5)
            sj_functional.reset_net(theirs)
    theirs.train()
    theirs(x).sum().backward()
    assert theirs.stem.conv_bn.conv.weight.grad.abs().sum() > 0


class HardThreshold(nn.Module):
    """A user-defined stateless neuron: spike where the current reaches v_threshold,
    straight-through gradient."""

    def __init__(self, v_threshold: float = 1.0):
        super().__init__()
        self.v_threshold = v_threshold

    def forward(self, x):
        spikes = (x >= self.v_threshold).to(x.dtype)
        return x + (spikes - x).detach()


@pytest.mark.parametrize("name", ["spiking_convnet_m", "spiking_resnet19"])
def test_user_defined_neuron_class(name):
    model = build(name, neuron_layer=HardThreshold, v_threshold=0.25)
    neurons = [m for m in model.modules() if isinstance(m, HardThreshold)]
    assert len(neurons) == sum(isinstance(m, LIF) for m in build(name).modules())
    assert {n.v_threshold for n in neurons} == {0.25}
    assert model(static_input(name)).shape == (T, B, K)
    with pytest.raises(ValueError, match=r"HardThreshold.*cannot be built with \{'v_threshold': 0.25, 'v_reset': -1.0\}"):
        build(name, neuron_layer=HardThreshold, v_threshold=0.25, v_reset=-1.0)


def test_lif_constants_reach_every_neuron():
    model = build("spiking_resnet19", tau=3.0, v_threshold=0.75, v_reset=-0.25, surrogate="atan", alpha=3.0,
                  detach_reset=True)
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(lifs) == 1 + 2 * 8  # the stem and two per basic block
    assert {(m.tau, m.v_threshold, m.v_reset, m.detach_reset, type(m.surrogate).__name__, m.surrogate.alpha)
            for m in lifs} == {(3.0, 0.75, -0.25, True, "Atan", 3.0)}


# ============================================================================ MSG, TWO, checkpointing
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_msg_attaches_and_changes_gradients(name):
    torch.manual_seed(0)
    model = build(name)
    x = static_input(name)

    def first_conv_grad():
        model.zero_grad()
        model(x).square().mean().backward()
        return model.stem.conv_bn.conv.weight.grad.clone()

    torch.manual_seed(1)
    plain = first_conv_grad()
    msg = MaskedGradient(p=0.5, seed=0).attach(model)
    torch.manual_seed(1)
    masked = first_conv_grad()
    assert not torch.equal(plain, masked)
    assert 0.4 < msg.stats["dropped"] / msg.stats["seen"] < 0.6
    msg.remove()
    torch.manual_seed(1)
    assert torch.equal(first_conv_grad(), plain)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_temporal_head_wraps_every_model(name):
    head = TemporalWeightedHead(build(name), T)
    y = head(static_input(name), target=torch.tensor([0, 1, 2]))
    assert y.shape == (B, K)
    assert head.last_step_logits.shape == (T, B, K)
    torch.testing.assert_close(y, head.last_step_logits.mean(0))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_grad_checkpointing_gives_the_same_gradients_and_batch_norm_state(name):
    """Issue 9 item 4: recomputed conv-BN must not update the running statistics again."""
    torch.manual_seed(0)
    plain, ckpt = build(name), build(name)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing()
    x = static_input(name)
    for model in (plain, ckpt):
        model(x).square().mean().backward()
    for (key, a), b in zip(plain.state_dict().items(), ckpt.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=key)
    for (key, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=key)


def test_grad_checkpointing_under_msg_draws_the_same_masks():
    torch.manual_seed(0)
    plain, ckpt = build("spiking_convnet_m"), build("spiking_convnet_m")
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing()
    x = static_input("spiking_convnet_m")
    stats = []
    for model in (plain, ckpt):
        msg = MaskedGradient(p=0.5, seed=0).attach(model)
        model(x).square().mean().backward()
        stats.append(msg.stats)
    assert stats[0] == stats[1] and stats[0]["dropped"] > 0  # one mask per neuron and step
    for a, b in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
def test_sew_connect_functions(cnf):
    from sparsegrad.models.sew_resnet import connect

    a = torch.tensor([0.0, 1.0, 0.0, 1.0])
    s = torch.tensor([0.0, 0.0, 1.0, 1.0])
    expected = {"ADD": [0, 1, 1, 2], "AND": [0, 0, 0, 1], "IAND": [0, 0, 1, 0]}[cnf]
    assert connect(a.clone(), s, cnf).tolist() == expected
    model = build("sew_resnet18", cnf=cnf)
    assert model(static_input("sew_resnet18")).shape == (T, B, K)


# ============================================================================ bad input
def test_bad_input_is_a_clear_error():
    model = build("spiking_resnet18")
    with pytest.raises(ValueError, match=r"\[3, 32\]"):
        model(torch.rand(3, 32))
    with pytest.raises(ValueError, match=r"in_chans=3"):
        model(torch.rand(B, 2, IMG, IMG))
    with pytest.raises(ValueError, match=r"T=2"):
        model(torch.rand(B, 5, 3, IMG, IMG))
    with pytest.raises(ValueError, match="does not survive"):
        build("vggsnn", img_size=8)
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("sew_resnet34", pretrained=True)
    with pytest.raises(ValueError, match="cnf"):
        build("sew_resnet18", cnf="OR")
    with pytest.raises(ValueError, match="bn_mode"):
        build("vggsnn", bn_mode="tdbn")
    with pytest.raises(ValueError, match="stem"):
        build("spiking_resnet18", stem="tiny")
    with pytest.raises(ValueError, match="T must be"):
        build("vggsnn", T=0)
    with pytest.raises(ValueError, match=r"channels must be .* got \(32, 0\)"):
        build("spiking_convnet_s", channels=(32, 0))
    with pytest.raises(ValueError, match="output_fmt"):
        build("spiking_convnet_s").forward_intermediates(static_input("spiking_convnet_s"), output_fmt="NHWC")



def test_intermediate_indices_follow_timms_rule():
    """Our feature_take_indices (timm keeps its own private): all, the last n, or given ones."""
    from sparsegrad.models._base import feature_take_indices

    assert feature_take_indices(4, None) == ([0, 1, 2, 3], 3)
    assert feature_take_indices(4, 2) == ([2, 3], 3)
    assert feature_take_indices(4, [0, -1]) == ([0, 3], 3)
    for bad in (0, 5, [4], [-5], []):
        with pytest.raises(ValueError, match="indices="):
            feature_take_indices(4, bad)
    model = build("spiking_convnet_m").eval()
    x = static_input("spiking_convnet_m")
    with torch.no_grad():
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        every = model.forward_intermediates(x, intermediates_only=True)
    assert len(every) == 3 and all(torch.equal(a, b) for a, b in zip(last_two, every[1:], strict=True))


# ============================================================================ real data
def cifar10_images(root: Path, per_class: int = 2):
    classes = sorted(p.name for p in root.iterdir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).glob("*.jpg"))[:per_class]:
            images.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
            labels.append(label)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), torch.tensor(labels)


def test_real_cifar10_images_through_cifarnet(sample_data):
    images, labels = cifar10_images(sample_data / "cifar10_small" / "test")
    assert images.shape == (20, 3, 32, 32) and labels.bincount().tolist() == [2] * 10
    model = timm.create_model("spiking_cifarnet", T=T).eval()
    cfg = model.pretrained_cfg
    mean, std = torch.tensor(cfg["mean"]).view(3, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1)
    with torch.no_grad():
        logits = model((images - mean) / std)
    assert logits.shape == (T, 20, 10)
    assert torch.isfinite(logits).all()
    assert logits.std() > 0  # the images reach the classifier
