"""Multi-step LIF, forward + BPTT backward: sparsegrad's kernels vs their peers.

Prints one table per device: median wall time over interleaved repetitions, the memory
each implementation keeps for backward (bytes of the distinct tensors autograd saves, the
activation memory a network pays per LIF layer), and time relative to ours; then the
ratios the kernel targets are about (docs/bench.md).

    python bench/lif.py                       # CPU, [T, 32, 64, 16, 16], T = 4, 8, 16, 32
    python bench/lif.py --T 8 --reps 21 --shape 32 64 16 16
    python bench/lif.py --device cuda         # GPU: ours (triton) vs spikingjelly's Triton
    python bench/lif.py --msg-only --T 8 32 --reps 41   # only MSG's cost on our kernel

The last table is MSG's cost (issue target: within 5 % of no MSG): our kernel with and
without ``MaskedGradient(0.5)``, interleaved (the order alternates each repetition), as
median wall time with its interquartile range and median process CPU time (all threads),
which a loaded machine disturbs less than wall time.

Every implementation gets the same input current and computes the same LIF (tau=2,
v_threshold=0.5, hard reset to 0, triangle surrogate with alpha=2), except snntorch's
``Leaky``, which has no input decay (``V = beta V + X``) and is timed as the closest peer.
"plain loop + torch.compile" is the ten-line loop compiled by inductor (fullgraph,
forward and backward); its compile time is reported separately and excluded from the time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from sparsegrad import MaskedGradient, surrogate
from sparsegrad.neuron import LIF

TAU, V_TH = 2.0, 0.5


def sparsegrad_lif(backend):
    return LIF(tau=TAU, v_threshold=V_TH, surrogate="pl", alpha=2.0, backend=backend)


def sparsegrad_msg(backend):
    lif = sparsegrad_lif(backend)
    MaskedGradient(0.5, seed=0).attach(lif)
    return lif


def spikingjelly_lif():
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based import surrogate as sj_surrogate

    # PiecewiseQuadratic is spikingjelly's name for the triangle pseudo-derivative
    # max(0, alpha - alpha^2 |x|), i.e. our "pl". On CUDA its Triton kernels run.
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


def compiled_loop():
    class Triangle(torch.autograd.Function):  # a traceable spike function for inductor
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * torch.clamp(2.0 - 4.0 * x.abs(), min=0)

    def run(x):
        v = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            h = v + (x_t - v) / TAU
            s = Triangle.apply(h - V_TH)
            v = h * (1 - s)
            spikes.append(s)
        return torch.stack(spikes)

    return torch.compile(run, fullgraph=True, dynamic=False)


def implementations(device):
    ours = "triton" if device == "cuda" else "cpp"
    impls = {
        f"sparsegrad ({ours})": lambda: sparsegrad_lif(ours),
        f"sparsegrad ({ours}) + MSG": lambda: sparsegrad_msg(ours),
        "sparsegrad (torch)": lambda: sparsegrad_lif("torch"),
        "spikingjelly": spikingjelly_lif,
        "plain loop": plain_loop,
        "plain loop + torch.compile": compiled_loop,
    }
    if device == "cpu":
        impls["snntorch"] = snntorch_leaky
    return impls


def step(fn, x, grad):
    x = x.detach().requires_grad_()
    fn(x).backward(grad)
    return x.grad


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


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


def bench(shape, reps, device):
    x = (torch.randn(shape) * 0.8 + 0.3).to(device)
    grad = torch.randn(shape).to(device)
    fns = {name: make() for name, make in implementations(device).items()}
    compile_s = {}
    for name, fn in fns.items():  # first call: builds, compiles; then one warm-up
        start = time.perf_counter()
        step(fn, x, grad)
        sync(device)
        compile_s[name] = time.perf_counter() - start
        step(fn, x, grad)
    times = {name: [] for name in fns}
    for _ in range(reps):  # interleaved, so drift in machine load hits all alike
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            step(fn, x, grad)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {
        name: (statistics.median(times[name]) * 1e3, saved_bytes(fn, x) / 2**20, compile_s[name])
        for name, fn in fns.items()
    }


def report(device, shapes_T, batch_shape, reps):
    ours = "sparsegrad (triton)" if device == "cuda" else "sparsegrad (cpp)"
    header = f"{'T':>3} {'implementation':<30} {'median ms':>10} {'saved MiB':>10} {'time / ours':>12}"
    print(header)
    print("-" * len(header))
    summary = {}
    for T in shapes_T:
        results = bench((T, *batch_shape), reps, device)
        ours_ms = results[ours][0]
        for name, (ms, mib, first_s) in results.items():
            note = f"   (compile {first_s:.1f} s)" if "compile" in name else ""
            # inductor's compiled graph keeps its saved tensors out of reach of the hooks
            saved = "n/a" if "compile" in name else f"{mib:.1f}"
            print(f"{T:>3} {name:<30} {ms:>10.2f} {saved:>10} {ms / ours_ms:>11.2f}x{note}")
        summary[T] = results
    print()
    eager = [n for n in summary[shapes_T[0]] if not n.startswith("sparsegrad") and "compile" not in n]
    for T, results in summary.items():
        ours_ms = results[ours][0]
        fastest_eager = min(eager, key=lambda n: results[n][0])
        compiled = results["plain loop + torch.compile"][0]
        msg = results[ours + " + MSG"][0] / ours_ms - 1
        print(
            f"T={T:>2}: {results[fastest_eager][0] / ours_ms:.2f}x faster than the fastest eager peer "
            f"({fastest_eager}), {compiled / ours_ms:.2f}x vs torch.compile, MSG p=0.5 adds {msg:+.1%}"
        )
    if 8 in summary and 32 in summary:
        print(f"time(T=32) / time(T=8) = {summary[32][ours][0] / summary[8][ours][0]:.2f}")


def quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4)
    return median, q1, q3


def msg_cost(shapes_T, batch_shape, reps, device):
    """Our kernel with and without MSG p = 0.5, side by side, interleaved."""
    ours = "triton" if device == "cuda" else "cpp"
    header = f"{'T':>3} {'sparsegrad (' + ours + ')':<22} {'wall ms':>8} {'IQR':>15} {'CPU ms':>8}"
    print(f"\nMSG's cost on one LIF layer [T, {', '.join(map(str, batch_shape))}], {reps} interleaved repetitions")
    print(header)
    print("-" * len(header))
    for T in shapes_T:
        x = (torch.randn((T, *batch_shape)) * 0.8 + 0.3).to(device)
        grad = torch.randn((T, *batch_shape)).to(device)
        fns = {"no MSG": sparsegrad_lif(ours), "MSG p=0.5": sparsegrad_msg(ours)}
        for fn in fns.values():
            step(fn, x, grad)
            step(fn, x, grad)
        wall = {name: [] for name in fns}
        cpu = {name: [] for name in fns}
        for rep in range(reps):
            for name in list(fns)[:: 1 if rep % 2 == 0 else -1]:
                sync(device)
                start, start_cpu = time.perf_counter(), time.process_time()
                step(fns[name], x, grad)
                sync(device)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        for name in fns:
            median, q1, q3 = quartiles(wall[name])
            print(f"{T:>3} {name:<22} {median * 1e3:>8.2f} {f'{q1 * 1e3:.2f}-{q3 * 1e3:.2f}':>15} "
                  f"{statistics.median(cpu[name]) * 1e3:>8.2f}")
        cost = {k: statistics.median(v["MSG p=0.5"]) / statistics.median(v["no MSG"]) - 1
                for k, v in (("wall", wall), ("CPU", cpu))}
        print(f"{'':>3} MSG p=0.5 adds {cost['wall']:+.1%} wall time, {cost['CPU']:+.1%} CPU time")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32], help="timesteps")
    parser.add_argument("--shape", type=int, nargs="+", default=[32, 64, 16, 16], help="[B, ...] after T")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per implementation")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--msg-only", action="store_true", help="only the table of MSG's cost")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        os.environ.setdefault("SJ_LIF_CUDA_IMPLEMENTATION", "triton")  # spikingjelly's Triton kernels
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, float32, forward+backward")
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32, forward+backward")
    torch.manual_seed(0)
    if not args.msg_only:
        report(args.device, args.T, args.shape, args.reps)
    msg_cost(args.T, args.shape, args.reps, args.device)


if __name__ == "__main__":
    main()
