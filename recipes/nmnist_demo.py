"""N-MNIST demo: a small spiking CNN trained with plain surrogate gradients, TWO, MSG and both.

The README's main command. It trains on the 1,000 embedded N-MNIST training recordings and
tests on the 100 embedded test recordings (``data/nmnist_small``), four variants in turn:

- ``SG``: plain surrogate-gradient training, output ``mean_t I_L[t]``;
- ``+TWO``: temporally weighted output (Eq. 15-17), factors updated at each epoch's end;
- ``+MSG``: masked surrogate gradient, ``MaskedGradient(p).attach(net)`` (Eq. 10-14);
- ``+MSG&TWO``: both, the paper's method.

Every variant starts from the same weights and sees the same batches (per seed). It prints a
table (test accuracy, accuracy of each timestep on its own, final TWO factors, time) and writes
``config.json``, ``results.json``, ``results.csv`` and ``metrics.csv`` (one row per epoch)
into ``<out-dir>/nmnist_demo-<timestamp>/``.

Run::

    python recipes/nmnist_demo.py                          # about 10 minutes on 2 idle CPU cores
    accelerate launch recipes/nmnist_demo.py --seeds 0 1 2  # one process per GPU, or CPU
    python recipes/nmnist_demo.py --variants SG '+MSG&TWO' --epochs 4 --channels 16 32
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 recipes/nmnist_demo.py   # 2 CPU processes

With several processes the batch size is per process and the default learning rate follows
the global batch.

Deviations from the paper's recipe (DESIGN §5), for a run of minutes on a CPU: 8 epochs instead
of 300 and a two-conv network instead of a VGG. The rest is the paper's: AdamW at the linear
scaling rule ``lr = 0.05 * global batch / 1024`` (1.56e-3 at batch 32), cosine decay per epoch,
weight decay 0.01, label smoothing 0.1, ``p = 0.5``, ``beta = 0.7``, ``T = 10``.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import accelerate
import torch
import tyro
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

import sparsegrad
from sparsegrad import LIF, MaskedGradient, TemporalWeightedHead
from sparsegrad.data import NMNIST, default_root
from sparsegrad.layers import SeqToANN
from sparsegrad.train import create_run_dir, evaluate, train_one_epoch, write_csv, write_json

Variant = Literal["SG", "+TWO", "+MSG", "+MSG&TWO"]
VARIANTS: tuple[Variant, ...] = ("SG", "+TWO", "+MSG", "+MSG&TWO")


@dataclass
class Config:
    """Train a spiking CNN on the embedded N-MNIST subset with and without MSG and TWO."""

    epochs: int = 8
    """Training epochs per variant."""
    seeds: tuple[int, ...] = (0,)
    """One run per seed and variant; several seeds give mean ± sd in the table."""
    batch_size: int = 32
    """Batch size per process."""
    lr: float | None = None
    """AdamW learning rate at the first epoch, decayed to 0 by a cosine over the epochs.
    Default: the paper's rule, 0.05 * global batch / 1024 (1.56e-3 at batch 32, one process)."""
    weight_decay: float = 0.01
    """AdamW weight decay (paper)."""
    label_smoothing: float = 0.1
    """Label smoothing of the cross-entropy loss (paper)."""
    p: float = 0.5
    """MSG drop probability (paper)."""
    beta: float = 0.7
    """TWO momentum (paper)."""
    T: int = 10
    """Timesteps: equal-time event frames per recording (paper: 10 for neuromorphic data)."""
    channels: tuple[int, int] = (32, 64)
    """Output channels of the two convolutions. (16, 32) runs 2.5 times faster, 2-4 points lower."""
    data_root: Path | None = None
    """Folder of the N-MNIST subset (default: the embedded data/nmnist_small)."""
    out_dir: Path = Path("runs")
    """Parent folder of the run folder."""
    variants: tuple[Variant, ...] = VARIANTS
    """Variants to train, in order (quote '+MSG&TWO' in a shell)."""
    limit: int | None = None
    """Use only the first N training and the first N test recordings (quick checks)."""
    num_workers: int = 0
    """DataLoader workers (frames are cached in memory after the first read)."""


class SpikingCNN(nn.Module):
    """conv-BN-LIF-pool, conv-BN-LIF-pool, then a linear readout at every timestep.

    Conv, BN, pooling and the readout run on the merged ``[T*B, ...]`` tensor
    (:class:`~sparsegrad.layers.SeqToANN`); the LIF neurons run over the sequence. The
    readout is a plain linear layer whose output ``I_L[t]`` is neither leaked nor spiked
    (DESIGN §2.1); the raw event frames go straight into the first convolution.

    Args:
        T: timesteps of the input.
        channels: output channels of the two convolutions.
        in_channels: input channels (2 polarities).
        size: input height and width (34 for N-MNIST).
        num_classes: classes.

    Shape:
        - Input: event frames ``[B, T, C, H, W]``, batch first as loaders give them.
        - Output: per-timestep logits ``[T, B, num_classes]``.

    Raises:
        ValueError: an input that is not ``[B, T, in_channels, size, size]``.

    Reference: DESIGN §2.1 (readout), §3 (layout); average pooling as in the paper §5.
    """

    def __init__(self, T: int = 10, channels: tuple[int, int] = (32, 64), in_channels: int = 2,
                 size: int = 34, num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.T, self.in_shape = T, (in_channels, size, size)
        self.features = nn.Sequential(
            SeqToANN(nn.Conv2d(in_channels, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)),
            LIF(),
            SeqToANN(nn.AvgPool2d(2), nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)),
            LIF(),
        )
        side = size // 2 // 2
        self.classifier = SeqToANN(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(c2 * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.T or tuple(x.shape[2:]) != self.in_shape:
            raise ValueError(
                f"SpikingCNN expects event frames [B, T={self.T}, {', '.join(map(str, self.in_shape))}] "
                f"(batch first), got {list(x.shape)}"
            )
        return self.classifier(self.features(x.transpose(0, 1)))


def load_data(cfg: Config) -> tuple[Dataset, Dataset]:
    """The training and test sets (first ``cfg.limit`` recordings of each, if set)."""
    root = cfg.data_root if cfg.data_root is not None else default_root()
    train, test = NMNIST(root, train=True, T=cfg.T), NMNIST(root, train=False, T=cfg.T)
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {cfg.limit}")
        train = Subset(train, range(min(cfg.limit, len(train))))
        test = Subset(test, range(min(cfg.limit, len(test))))
    return train, test


def learning_rate(cfg: Config, accelerator: Accelerator) -> float:
    """``cfg.lr``, or the paper's rule ``0.05 * batch_size * processes / 1024``."""
    if cfg.lr is not None:
        return cfg.lr
    return 0.05 * cfg.batch_size * accelerator.num_processes / 1024


def run_variant(accelerator: Accelerator, cfg: Config, variant: Variant, seed: int,
                train_set: Dataset, test_set: Dataset) -> dict:
    """Trains and evaluates one variant from seed ``seed``; returns its record."""
    use_msg, use_two = "MSG" in variant, "TWO" in variant
    set_seed(seed)  # every variant of a seed starts from the same weights and batch order
    net = SpikingCNN(cfg.T, cfg.channels)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate(cfg, accelerator),
                                  weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    shuffle = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, cfg.batch_size, shuffle=True, generator=shuffle,
                              num_workers=cfg.num_workers)
    test_loader = DataLoader(test_set, cfg.batch_size, num_workers=cfg.num_workers)
    net, optimizer, scheduler, train_loader, test_loader = accelerator.prepare(
        net, optimizer, scheduler, train_loader, test_loader)
    # The head holds no parameters: it wraps the prepared (possibly DDP) network.
    model = TemporalWeightedHead(net, cfg.T, beta=cfg.beta).to(accelerator.device)
    msg = MaskedGradient(p=cfg.p).attach(net) if use_msg else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    history = []
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        tag = f"{variant} seed {seed} epoch {epoch}/{cfg.epochs}"
        train = train_one_epoch(accelerator, model, optimizer, train_loader, loss_fn,
                                scheduler=scheduler, msg=msg, two=use_two, desc=tag)
        test = evaluate(accelerator, model, test_loader, desc=f"{tag} test")
        factors = model.factors.tolist()
        history.append({"variant": variant, "seed": seed, "epoch": epoch, "lr": train["lr"],
                        "train_loss": train["loss"], "train_acc": train["acc"],
                        "test_loss": test["loss"], "test_acc": test["acc"],
                        "epoch_time_s": train["time_s"] + test["time_s"],
                        **{f"factor_t{t + 1}": f for t, f in enumerate(factors)}})
        accelerator.print(f"  {tag}: train loss {train['loss']:.3f} acc {train['acc']:.3f} | "
                          f"test acc {test['acc']:.3f} | {train['time_s'] + test['time_s']:.0f}s")
    elapsed = time.perf_counter() - start
    if msg is not None:
        msg.remove()
    accelerator.free_memory()
    return {"variant": variant, "seed": seed, "test_acc": test["acc"],
            "acc_per_step": test["acc_per_step"], "factors": factors, "time_s": elapsed,
            "msg_stats": msg.stats if msg is not None else None, "history": history}


def summarise(runs: list[dict], variants: tuple[str, ...]) -> list[dict]:
    """Mean (and sd over seeds) of each variant's results."""
    def mean_sd(values):
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    rows = []
    for variant in variants:
        group = [r for r in runs if r["variant"] == variant]
        acc, acc_sd = mean_sd([r["test_acc"] for r in group])
        rows.append({
            "variant": variant, "seeds": len(group), "test_acc": acc, "test_acc_sd": acc_sd,
            "acc_per_step": [statistics.fmean(a) for a in zip(*(r["acc_per_step"] for r in group))],
            "factors": [statistics.fmean(f) for f in zip(*(r["factors"] for r in group))],
            "time_s": statistics.fmean(r["time_s"] for r in group),
        })
    return rows


def format_table(summary: list[dict], T: int) -> str:
    """The results table: variant | test acc | per-timestep acc | final TWO factors | time."""
    acc_head = " ".join(f"{t:>3}" for t in range(1, T + 1))
    fac_head = " ".join(f"{t:>4}" for t in range(1, T + 1))
    rows = [("variant", "test acc %", "acc % of timestep t = 1..T alone".ljust(len(acc_head)),
             "final TWO factors, t = 1..T".ljust(len(fac_head)), "time"),
            ("", "", acc_head, fac_head, "")]
    for row in summary:
        acc = f"{100 * row['test_acc']:.1f}"
        if row["seeds"] > 1:
            acc += f" ± {100 * row['test_acc_sd']:.1f}"
        minutes, seconds = divmod(round(row["time_s"]), 60)
        rows.append((row["variant"], acc,
                     " ".join(f"{100 * a:>3.0f}" for a in row["acc_per_step"]),
                     " ".join(f"{f:.3f}".lstrip("0") for f in row["factors"]),
                     f"{minutes}m{seconds:02d}s"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(2, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(cfg: Config) -> Path:
    """Runs the demo; returns the run folder."""
    if cfg.epochs < 1 or not cfg.seeds or not cfg.variants:
        raise ValueError("need --epochs >= 1, at least one seed and at least one variant")
    accelerator = Accelerator(step_scheduler_with_optimizer=False)  # cosine decay per epoch
    train_set, test_set = load_data(cfg)
    run_dir = create_run_dir(accelerator, cfg.out_dir, "nmnist_demo")
    if accelerator.is_main_process:
        write_json(run_dir / "config.json", {
            **dataclasses.asdict(cfg), "lr_used": learning_rate(cfg, accelerator),
            "environment": {"sparsegrad": sparsegrad.__version__, "torch": torch.__version__,
                            "accelerate": accelerate.__version__, "python": platform.python_version(),
                            "device": str(accelerator.device), "processes": accelerator.num_processes,
                            "torch_threads": torch.get_num_threads(), "argv": sys.argv},
        })
    accelerator.print(f"N-MNIST: {len(train_set)} train / {len(test_set)} test recordings, T={cfg.T}; "
                      f"{accelerator.num_processes} process(es) on {accelerator.device}; run folder {run_dir}")
    start = time.perf_counter()
    for dataset in (train_set, test_set):  # read and frame every recording once (cached)
        for i in tqdm(range(len(dataset)), desc="reading recordings", leave=False,
                      disable=not accelerator.is_main_process):
            dataset[i]
    accelerator.print(f"read {len(train_set) + len(test_set)} recordings in {time.perf_counter() - start:.1f}s")

    runs = []
    for seed in cfg.seeds:
        for variant in cfg.variants:
            accelerator.print(f"{variant} (seed {seed})")
            runs.append(run_variant(accelerator, cfg, variant, seed, train_set, test_set))
    total = time.perf_counter() - start
    summary = summarise(runs, cfg.variants)
    table = format_table(summary, cfg.T)
    accelerator.print(f"\n{table}\n\ntotal {total / 60:.1f} min; results in {run_dir}")
    if accelerator.is_main_process:
        write_json(run_dir / "results.json", {"summary": summary, "runs": runs, "total_time_s": total,
                                              "table": table})
        write_csv(run_dir / "results.csv", [
            {"variant": r["variant"], "seed": r["seed"], "test_acc": r["test_acc"],
             **{f"acc_t{t + 1}": a for t, a in enumerate(r["acc_per_step"])},
             **{f"factor_t{t + 1}": f for t, f in enumerate(r["factors"])},
             "time_s": r["time_s"]}
            for r in runs])
        write_csv(run_dir / "metrics.csv", [h for r in runs for h in r["history"]])
    accelerator.wait_for_everyone()
    return run_dir


if __name__ == "__main__":
    main(tyro.cli(Config))
