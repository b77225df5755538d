"""Multi-step LIF, forward + BPTT backward: sparsegrad vs spikingjelly, snntorch, a plain loop.

Prints one table per run: median wall time over interleaved repetitions, the memory
each implementation keeps for backward (bytes of the distinct tensors saved by autograd,
the activation memory a network pays per LIF layer), and ratios to sparsegrad.

    python bench/lif.py                       # [T, 32, 64, 16, 16] for T = 8, 16, 32
    python bench/lif.py --shape 32 64 16 16 --T 8 --reps 21

Every implementation gets the same input current; all but snntorch compute the same LIF
(tau=2, v_threshold=0.5, hard reset to 0, triangle surrogate with alpha=2). snntorch's
``Leaky`` has no input decay (``V = beta V + X``); it is timed as the closest peer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sparsegrad import surrogate
from sparsegrad.neuron import LIF

TAU, V_TH = 2.0, 0.5


def sparsegrad_lif():
    return LIF(tau=TAU, v_threshold=V_TH, surrogate="pl", alpha=2.0)


def spikingjelly_lif():
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based import surrogate as sj_surrogate

    # PiecewiseQuadratic is spikingjelly's name for the triangle pseudo-derivative
    # max(0, alpha - alpha^2 |x|), i.e. our "pl"; it runs spikingjelly's fused CPU path.
    node = neuron.LIFNode(
        tau=TAU,
        decay_input=True,
        v_threshold=V_TH,
        v_reset=0.0,
        surrogate_function=sj_surrogate.PiecewiseQuadratic(alpha=2.0),
        step_mode="m",
    )

    def run(x):
        node.reset()
        return node(x)

    return run


def snntorch_leaky():
    import snntorch

    node = snntorch.Leaky(beta=1 - 1 / TAU, threshold=V_TH, reset_mechanism="zero")

    def run(x):
        mem = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            spike, mem = node(x_t, mem)
            spikes.append(spike)
        return torch.stack(spikes)

    return run


def plain_loop():
    spike_fn = surrogate.PiecewiseLinear(2.0)

    def run(x):
        v = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            h = v + (x_t - v) / TAU
            s = spike_fn(h - V_TH)
            v = h * (1 - s)
            spikes.append(s)
        return torch.stack(spikes)

    return run


IMPLEMENTATIONS = {
    "sparsegrad": sparsegrad_lif,
    "spikingjelly": spikingjelly_lif,
    "snntorch": snntorch_leaky,
    "plain loop": plain_loop,
}


def step(fn, x, grad):
    x = x.detach().requires_grad_()
    fn(x).backward(grad)
    return x.grad


def saved_bytes(fn, x) -> int:
    """Bytes of the distinct storages autograd saves for backward, the input excluded."""
    storages = {}
    x = x.detach().requires_grad_()

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    storages.pop(x.untyped_storage().data_ptr(), None)
    return sum(storages.values())


def bench(shape, reps):
    x = torch.randn(shape) * 0.8 + 0.3
    grad = torch.randn(shape)
    fns = {name: make() for name, make in IMPLEMENTATIONS.items()}
    times = {name: [] for name in fns}
    for _ in range(2):  # warm-up
        for fn in fns.values():
            step(fn, x, grad)
    for _ in range(reps):  # interleaved, so drift in machine load hits all alike
        for name, fn in fns.items():
            start = time.perf_counter()
            step(fn, x, grad)
            times[name].append(time.perf_counter() - start)
    return {
        name: (statistics.median(times[name]) * 1e3, saved_bytes(fn, x) / 2**20)
        for name, fn in fns.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, nargs="+", default=[8, 16, 32], help="timesteps")
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 64, 16, 16], help="[B, ...] after T")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per implementation")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32, forward+backward")
    header = f"{'shape':<22} {'implementation':<14} {'median ms':>10} {'saved MiB':>10} {'time / ours':>12} {'mem / ours':>11}"
    print(header)
    print("-" * len(header))
    for T in args.T:
        shape = (T, *args.shape)
        results = bench(shape, args.reps)
        ours_ms, ours_mib = results["sparsegrad"]
        for name, (ms, mib) in results.items():
            print(
                f"{str(list(shape)):<22} {name:<14} {ms:>10.1f} {mib:>10.1f} "
                f"{ms / ours_ms:>11.2f}x {mib / ours_mib:>10.2f}x"
            )


if __name__ == "__main__":
    main()
