"""Full training steps: sparsegrad vs the same network in spikingjelly, and MSG's overhead.

Two tables, each from interleaved repetitions (median wall time of forward + backward +
AdamW step; memory autograd keeps for backward, i.e. the activation memory):

1. VGGSNN (TET) on event frames ``[B=4, T=10, 2, 48, 48]``: sparsegrad's ``vggsnn`` with and
   without ``MaskedGradient(p=0.5)``, and the same network built from spikingjelly 2.x
   layers (``SeqToANNContainer`` conv-BN, multi-step ``LIFNode`` with the same triangle
   surrogate, average pools).
2. The N-MNIST demo network (``spiking_convnet_s``, as ``recipes/nmnist_demo.py`` trains it) on
   ``[32, 10, 2, 34, 34]``, with and without MSG: the overhead MSG adds to a real training step.

    python bench/train_step.py [--reps 9] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from torch import nn

import sparsegrad  # noqa: F401  (registers the models)
from sparsegrad import MaskedGradient

VGG_LAYOUT = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")


def spikingjelly_vggsnn(num_classes: int = 10) -> nn.Module:
    """VGGSNN from spikingjelly 2.x layers, matching sparsegrad's ``vggsnn`` layer for layer."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():
        return neuron.LIFNode(
            tau=2.0, decay_input=True, v_threshold=0.5, v_reset=0.0, step_mode="m",
            surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.0),
        )

    layers, width = [], 2
    for item in VGG_LAYOUT:
        if item == "A":
            layers.append(layer.SeqToANNContainer(nn.AvgPool2d(2)))
        else:
            conv = nn.Conv2d(width, item, 3, padding=1, bias=False)
            layers += [layer.SeqToANNContainer(conv, nn.BatchNorm2d(item)), lif()]
            width = item
    layers.append(layer.SeqToANNContainer(nn.Flatten(), nn.Linear(512 * 3 * 3, num_classes)))
    body = nn.Sequential(*layers)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):  # [B, T, C, H, W] -> [T, B, K]
            for m in self.body.modules():
                if hasattr(m, "reset") and isinstance(m, neuron.BaseNode):
                    m.reset()
            return self.body(x.transpose(0, 1).contiguous())

    return Net()


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x).mean(0), y).backward()
        optimizer.step()

    def saved_mib():
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages.pop(x.untyped_storage().data_ptr(), None)
        return sum(n for ptr, n in storages.items() if ptr not in params) / 2**20

    return step, saved_mib


def table(title: str, cases: dict, reps: int) -> None:
    steps = {name: make_step(*case) for name, case in cases.items()}
    times = {name: [] for name in steps}
    for step, _ in steps.values():
        step()
    for _ in range(reps):
        for name, (step, _) in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times[next(iter(times))])
    print(f"\n{title}")
    header = f"{'implementation':<34} {'median ms':>10} {'saved MiB':>10} {'time / first':>13}"
    print(header)
    print("-" * len(header))
    for name, (_, saved) in steps.items():
        ms = statistics.median(times[name])
        print(f"{name:<34} {ms * 1e3:>10.1f} {saved():>10.1f} {ms / base:>12.3f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32")

    torch.manual_seed(0)
    x, y = torch.rand(4, 10, 2, 48, 48).round(), torch.randint(0, 10, (4,))
    plain = timm.create_model("vggsnn", T=10)
    masked = timm.create_model("vggsnn", T=10)
    masked.load_state_dict(plain.state_dict())
    MaskedGradient(p=0.5, seed=0).attach(masked)
    table(
        "VGGSNN training step, [B=4, T=10, 2, 48, 48], AdamW",
        {
            "sparsegrad vggsnn": (plain, x, y),
            "sparsegrad vggsnn + MSG(p=0.5)": (masked, x, y),
            "spikingjelly 2.x VGGSNN": (spikingjelly_vggsnn(), x, y),
        },
        args.reps,
    )

    x, y = torch.rand(32, 10, 2, 34, 34).round(), torch.randint(0, 10, (32,))
    plain = timm.create_model("spiking_convnet_s", T=10, in_chans=2, img_size=34, num_classes=10)
    masked = timm.create_model("spiking_convnet_s", T=10, in_chans=2, img_size=34, num_classes=10)
    masked.load_state_dict(plain.state_dict())
    MaskedGradient(p=0.5, seed=0).attach(masked)
    table(
        "N-MNIST demo network training step, [B=32, T=10, 2, 34, 34], AdamW",
        {"demo net": (plain, x, y), "demo net + MSG(p=0.5)": (masked, x, y)},
        args.reps,
    )


if __name__ == "__main__":
    main()
