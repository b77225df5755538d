#!/usr/bin/env bash
# The GPU check, in one go (< 5 minutes on one GPU): the LIF kernel contract tests run for
# real on CUDA (no interpreter), then bench/lif.py --device cuda (ending with MSG's cost on our
# Triton kernel at T = 8 and 32), then a few VGGSNN training steps with the torch and triton
# backends, with and without MSG, then the demo network as sparsegrad (triton) and as
# spikingjelly layers (its Triton kernels, detach_reset=True), with and without MSG. Prints one
# table at the end.
#
#   bash bench/gpu.sh            # PYTHON=/path/to/python to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=$(mktemp -d)

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench/gpu.sh: no CUDA device')" || exit 1

echo "[1/4] kernel tests on CUDA (the first builds the C++ kernel)" >&2
timeout 170 "$PY" -m pytest -q -p no:cacheprovider tests/test_backends.py -k "not interpreter" \
  > "$OUT/tests.txt" 2>&1
echo "tests exit status $?" >> "$OUT/tests.txt"

echo "[2/4] LIF bench on CUDA" >&2
timeout 100 "$PY" bench/lif.py --device cuda --T 8 32 --reps 21 > "$OUT/bench.txt" 2>&1

echo "[3/4] VGGSNN training steps" >&2
timeout 40 "$PY" - > "$OUT/train.txt" 2>&1 <<'PYEOF'
import statistics, time
import timm, torch
import sparsegrad  # noqa: F401  (registers the models)
from sparsegrad import LIF, MaskedGradient

def vggsnn():
    channels, height, width = timm.models.get_pretrained_cfg("vggsnn").input_size
    try:  # models that size their classifier from the input take img_size=
        return timm.create_model("vggsnn", T=10, img_size=(height, width)), (channels, height, width)
    except TypeError:
        return timm.create_model("vggsnn", T=10), (channels, height, width)


torch.manual_seed(0)
x = torch.rand(16, 10, *vggsnn()[1], device="cuda").round()
y = torch.randint(0, 10, (16,), device="cuda")
for backend in ("torch", "triton"):
    for p in (0.0, 0.5):
        model = vggsnn()[0].cuda()
        for m in model.modules():
            if isinstance(m, LIF):
                m.backend = backend
        if p:
            MaskedGradient(p, seed=0).attach(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for i in range(8):
            torch.cuda.synchronize()
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x).mean(0), y)
            loss.backward()
            opt.step()
            torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - start)
        print(f"vggsnn B=16 T=10 {backend}{' + MSG' if p else ''}: {statistics.median(times) * 1e3:.1f} ms/step, loss {loss.item():.3f}")
PYEOF
echo "train exit status $?" >> "$OUT/train.txt"

echo "[4/4] demo network training steps, sparsegrad and spikingjelly, with and without MSG" >&2
SJ_LIF_CUDA_IMPLEMENTATION=triton timeout 60 "$PY" - > "$OUT/demo.txt" 2>&1 <<'PYEOF'
import statistics, sys, time
import timm, torch
sys.path.insert(0, "bench")
from train_step import spikingjelly_demo_net, with_msg  # noqa: E402

torch.manual_seed(0)
x = torch.rand(32, 10, 2, 34, 34, device="cuda").round()
y = torch.randint(0, 10, (32,), device="cuda")
nets = {
    "sparsegrad (triton)": with_msg(lambda: timm.create_model("spiking_convnet_s", T=10, in_chans=2, img_size=34)),
    "spikingjelly (triton)": with_msg(spikingjelly_demo_net),
}
for name, pair in nets.items():
    models = [m.cuda() for m in pair]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]
    times = [[], []]
    for i in range(12):  # interleaved: plain, MSG, plain, MSG...
        for k, (model, opt) in enumerate(zip(models, opts)):
            torch.cuda.synchronize()
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x).mean(0), y).backward()
            opt.step()
            torch.cuda.synchronize()
            if i >= 2:
                times[k].append(time.perf_counter() - start)
    plain, masked = (statistics.median(t) * 1e3 for t in times)
    print(f"demo B=32 T=10 {name}: {plain:.2f} ms, + MSG {masked:.2f} ms ({masked / plain - 1:+.1%})")
PYEOF
echo "demo exit status $?" >> "$OUT/demo.txt"

"$PY" - "$OUT" <<'PYEOF'
import sys
from pathlib import Path
out = Path(sys.argv[1])
tests = (out / "tests.txt").read_text().strip().splitlines()
bench = (out / "bench.txt").read_text().strip().splitlines()
train = (out / "train.txt").read_text().strip().splitlines()
demo = (out / "demo.txt").read_text().strip().splitlines()
rows = [("tests", line) for line in tests[-2:]]
rows += [("lif bench", line) for line in bench if line.strip()]
rows += [("vggsnn", line) for line in train]
rows += [("demo", line) for line in demo]
width = max(len(line) for _, line in rows)
print(f"{'stage':<10} | result")
print("-" * (13 + width))
for stage, line in rows:
    print(f"{stage:<10} | {line}")
PYEOF
