"""Full training steps: sparsegrad vs the same network in spikingjelly, and MSG's overhead.

Four tables, each from interleaved repetitions (median wall time of forward + backward +
AdamW step with its interquartile range, median process CPU time; memory autograd keeps for
backward, i.e. the activation memory):

1. VGGSNN (TET) on event frames ``[B=4, T=10, 2, 48, 48]``: sparsegrad's ``vggsnn`` with and
   without ``MaskedGradient(p=0.5)``, and the same network built from spikingjelly 2.x
   layers (``SeqToANNContainer`` conv-BN, multi-step ``LIFNode`` with the same triangle
   surrogate, average pools).
2. The N-MNIST demo network (``spiking_convnet_s``, as ``recipes/nmnist_demo.py`` trains it) on
   ``[32, 10, 2, 34, 34]``, with and without MSG: the overhead MSG adds to a real training step.
3. The same demo network built from spikingjelly layers (``LIFNode(detach_reset=True)``), with
   and without ``MaskedGradient(0.5).attach(net)``.
4. The same demo network built around snntorch's ``Leaky`` (``V = beta V + X``, beta = 0.5,
   zero reset, triangle surrogate), with and without
   ``MaskedGradient(0.5).attach(net, targets=(snntorch.Leaky,))``.

    python bench/train_step.py [--reps 9] [--threads N] [--tables vgg demo spikingjelly snntorch]
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
TABLES = ["vgg", "demo", "spikingjelly", "snntorch"]


class SpikingjellyNet(nn.Module):
    """spikingjelly multi-step layers as one network: ``[B, T, C, H, W] -> [T, B, K]``, its
    neurons reset before every forward (they keep state between calls)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        from spikingjelly.activation_based import neuron

        self.body = body
        self._neurons = [m for m in body.modules() if isinstance(m, neuron.BaseNode)]

    def forward(self, x):
        for m in self._neurons:
            m.reset()
        return self.body(x.transpose(0, 1).contiguous())


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

    return SpikingjellyNet(body)


def spikingjelly_demo_net(num_classes: int = 10) -> nn.Module:
    """The demo network (``spiking_convnet_s``) from spikingjelly layers, ``detach_reset=True``."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():
        return neuron.LIFNode(
            tau=2.0, decay_input=True, v_threshold=0.5, v_reset=0.0, detach_reset=True,
            step_mode="m", surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.0),
        )

    body = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(2, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)), lif(),
        layer.SeqToANNContainer(nn.AvgPool2d(2)),
        layer.SeqToANNContainer(nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)), lif(),
        layer.SeqToANNContainer(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64 * 8 * 8, num_classes)),
    )

    return SpikingjellyNet(body)


def snntorch_demo_net(num_classes: int = 10) -> nn.Module:
    """The demo network's layers around snntorch ``Leaky`` neurons, looped over time."""
    import snntorch
    from snntorch import surrogate

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv2d(2, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))
            self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))
            self.fc = nn.Linear(64 * 8 * 8, num_classes)
            self.lif1, self.lif2 = (
                snntorch.Leaky(beta=0.5, threshold=0.5, reset_mechanism="zero", spike_grad=surrogate.triangular())
                for _ in range(2)
            )

        def forward(self, x):  # [B, T, C, H, W] -> [T, B, K]
            x = x.transpose(0, 1)
            T, B = x.shape[:2]
            current = self.conv1(x.flatten(0, 1)).unflatten(0, (T, B))
            mem, spikes = torch.zeros_like(current[0]), []
            for t in range(T):
                spike, mem = self.lif1(current[t], mem)
                spikes.append(spike)
            current = self.conv2(nn.functional.avg_pool2d(torch.stack(spikes).flatten(0, 1), 2)).unflatten(0, (T, B))
            mem, spikes = torch.zeros_like(current[0]), []
            for t in range(T):
                spike, mem = self.lif2(current[t], mem)
                spikes.append(spike)
            pooled = nn.functional.avg_pool2d(torch.stack(spikes).flatten(0, 1), 2)
            return self.fc(pooled.flatten(1)).unflatten(0, (T, B))

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
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for step, _ in steps.values():
        step()
    for rep in range(reps):  # interleaved, the order reversed every other repetition
        for name in list(steps)[:: 1 if rep % 2 == 0 else -1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name][0]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    base = statistics.median(wall[next(iter(wall))])
    print(f"\n{title}")
    header = (f"{'implementation':<34} {'median ms':>10} {'IQR ms':>15} {'CPU ms':>9} "
              f"{'saved MiB':>10} {'time / first':>13}")
    print(header)
    print("-" * len(header))
    for name, (_, saved) in steps.items():
        q1, ms, q3 = statistics.quantiles(wall[name], n=4)
        iqr = f"{q1 * 1e3:.0f}-{q3 * 1e3:.0f}"
        print(f"{name:<34} {ms * 1e3:>10.1f} {iqr:>15} {statistics.median(cpu[name]) * 1e3:>9.1f} "
              f"{saved():>10.1f} {ms / base:>12.3f}x")


def with_msg(make, **attach):
    """Two copies of one network, the second with MSG p = 0.5 attached."""
    plain, masked = make(), make()
    masked.load_state_dict(plain.state_dict())
    MaskedGradient(p=0.5, seed=0).attach(masked, **attach)
    return plain, masked


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=TABLES)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32")
    torch.manual_seed(0)

    if "vgg" in args.tables:
        x, y = torch.rand(4, 10, 2, 48, 48).round(), torch.randint(0, 10, (4,))
        plain, masked = with_msg(lambda: timm.create_model("vggsnn", T=10))
        cases = {
            "sparsegrad vggsnn": (plain, x, y),
            "sparsegrad vggsnn + MSG(p=0.5)": (masked, x, y),
            "spikingjelly 2.x VGGSNN": (spikingjelly_vggsnn(), x, y),
        }
        table("VGGSNN training step, [B=4, T=10, 2, 48, 48], AdamW", cases, args.reps)

    x, y = torch.rand(32, 10, 2, 34, 34).round(), torch.randint(0, 10, (32,))
    demo = "N-MNIST demo network training step, [B=32, T=10, 2, 34, 34], AdamW"
    if "demo" in args.tables:
        plain, masked = with_msg(
            lambda: timm.create_model("spiking_convnet_s", T=10, in_chans=2, img_size=34, num_classes=10)
        )
        table(demo, {"demo net": (plain, x, y), "demo net + MSG(p=0.5)": (masked, x, y)}, args.reps)
    if "spikingjelly" in args.tables:
        plain, masked = with_msg(spikingjelly_demo_net)
        cases = {"spikingjelly demo net": (plain, x, y), "spikingjelly demo net + MSG(p=0.5)": (masked, x, y)}
        table(demo.replace("demo network", "demo network from spikingjelly (detach_reset=True)"), cases, args.reps)
    if "snntorch" in args.tables:
        import snntorch

        plain, masked = with_msg(snntorch_demo_net, targets=(snntorch.Leaky,))
        cases = {"snntorch demo net": (plain, x, y), "snntorch demo net + MSG(p=0.5)": (masked, x, y)}
        table(demo.replace("demo network", "demo network around snntorch Leaky"), cases, args.reps)


if __name__ == "__main__":
    main()
