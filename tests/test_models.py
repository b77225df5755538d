"""The timm-registered model zoo: registry, shapes, parameter counts, MSG/TWO on every model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

import sparsegrad  # noqa: F401  (registers the models)
from sparsegrad import MaskedGradient, TemporalWeightedHead
from sparsegrad.models import MODEL_NAMES
from sparsegrad.models._blocks import TimeBatchNorm2d

B, T = 3, 2
# Small inputs that survive every network's downsampling (VGG-style nets get img_size=16).
IMG = 16
CHANS = {"vggsnn": 2}


def build(name, **kwargs):
    kwargs = {"num_classes": 5, "T": T, **kwargs}
    if name in ("vggsnn", "spiking_cifarnet"):
        kwargs.setdefault("img_size", IMG)
    return timm.create_model(name, **kwargs)


def static_input(name, batch=B):
    return torch.rand(batch, CHANS.get(name, 3), IMG, IMG)


def test_registered_without_shadowing_timm():
    probe = "import timm, sys; print(len(timm.list_models()), *[timm.is_model(n) for n in sys.argv[1:]])"
    before = subprocess.run(
        [sys.executable, "-c", probe, *MODEL_NAMES], capture_output=True, text=True, check=True
    ).stdout.split()
    assert before[1:] == ["False"] * len(MODEL_NAMES)  # no name of ours exists in timm
    assert len(timm.list_models()) == int(before[0]) + len(MODEL_NAMES)
    assert timm.list_models("*sew*") == ["sew_resnet18", "sew_resnet34", "sew_resnet50"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_both_layouts_give_per_step_logits(name):
    model = build(name)
    frames = torch.rand(B, T, CHANS.get(name, 3), IMG, IMG)
    assert model(static_input(name)).shape == (T, B, 5)
    out = model(frames)
    assert out.shape == (T, B, 5)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.get_classifier().weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_direct_encoding_equals_repeated_frames(name):
    model = build(name).eval()
    image = static_input(name)
    repeated = image.unsqueeze(1).expand(B, T, *image.shape[1:])
    torch.testing.assert_close(model(image), model(repeated), rtol=1e-5, atol=1e-5)


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
        assert round(ours / 1e6, 1) == 21.8  # DESIGN §4


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
    assert y.shape == (B, 5)
    assert head.last_step_logits.shape == (T, B, 5)
    torch.testing.assert_close(y, head.last_step_logits.mean(0))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_is_a_pure_function_of_the_input(name):
    model = build(name).eval()
    x = static_input(name)
    with torch.no_grad():
        first = model(x)
        model(static_input(name, batch=1))  # another batch size in between
        model(static_input(name, batch=4))
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
        torch.testing.assert_close(model(x[:2]), first[:, :2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["spiking_resnet18", "sew_resnet18", "spiking_resnet19"])
def test_grad_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    model = build(name)
    x = static_input(name)

    def grads():
        model.zero_grad()
        model(x).square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.set_grad_checkpointing()
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
def test_sew_connect_functions(cnf):
    from sparsegrad.models.sew_resnet import connect

    a = torch.tensor([0.0, 1.0, 0.0, 1.0])
    s = torch.tensor([0.0, 0.0, 1.0, 1.0])
    expected = {"ADD": [0, 1, 1, 2], "AND": [0, 0, 0, 1], "IAND": [0, 0, 1, 0]}[cnf]
    assert connect(a.clone(), s, cnf).tolist() == expected
    model = build("sew_resnet18", cnf=cnf)
    assert model(static_input("sew_resnet18")).shape == (T, B, 5)


def test_per_step_batch_norm_normalises_each_timestep():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 5, 5) + torch.arange(4.0).view(4, 1, 1, 1, 1)  # T=4 with shifted means
    per_step = TimeBatchNorm2d(3, "per_step")(x)
    merged = TimeBatchNorm2d(3, "merged")(x)
    step_means = per_step.mean(dim=(1, 3, 4))
    torch.testing.assert_close(step_means, torch.zeros(4, 3), atol=1e-5, rtol=0)
    assert merged.mean(dim=(1, 3, 4))[0].mean() < -0.5  # merged stats leave the shift in
    torch.testing.assert_close(merged.mean(dim=(0, 1, 3, 4)), torch.zeros(3), atol=1e-5, rtol=0)


def test_bad_input_is_a_clear_error():
    model = build("spiking_resnet18")
    with pytest.raises(ValueError, match=r"\[3, 32\]"):
        model(torch.rand(3, 32))
    with pytest.raises(ValueError, match=r"in_chans=3"):
        model(torch.rand(B, 2, IMG, IMG))
    with pytest.raises(ValueError, match=r"T=2"):
        model(torch.rand(B, 5, 3, IMG, IMG))
    vgg = build("vggsnn")
    with pytest.raises(ValueError, match=r"img_size=\(16, 16\)"):
        vgg(torch.rand(B, 2, 48, 48))
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
