"""Export a trained run folder: ``python -m sparsegrad.nir RUN_FOLDER [--seed S] [--out model.nir]``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from timm.models import get_pretrained_cfg_value
from torch import nn

from ..data import DATASETS
from ..temporal import TemporalWeightedHead

__all__ = ["load_run", "main"]

CHOICES = ("final", "best")


def _seed_dir(run_dir: Path, seed: int | None) -> Path:
    seeds = sorted(p for p in run_dir.glob("seed-*") if p.is_dir())
    if seed is None:
        if not seeds:
            raise FileNotFoundError(f"{run_dir} holds no seed-<s> folder; is it a run folder "
                                    "(python -m sparsegrad.train writes one)?")
        return seeds[0]
    found = run_dir / f"seed-{seed}"
    if not found.is_dir():
        raise FileNotFoundError(f"{run_dir} has no seed {seed}; it holds {[p.name for p in seeds]}")
    return found


def _checkpoint(seed_dir: Path, which: str) -> Path:
    from ..train.checkpoint import latest_checkpoint, list_checkpoints

    folder = seed_dir / "checkpoints"
    if which == "final":
        found = latest_checkpoint(folder)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {folder}")
        return found
    best = json.loads((seed_dir / "result.json").read_text())["best_epoch"]
    for path in list_checkpoints(folder):
        if path.name == f"state-e{int(best):04d}.pt":
            return path
    raise FileNotFoundError(f"the best epoch ({best}) of {seed_dir} has no checkpoint left in {folder} "
                            "(train with --keep-checkpoints N to keep it)")


def load_run(run_dir: str | os.PathLike, seed: int | None = None, which: str = "final",
             img_size: int | None = None) -> tuple[nn.Module, torch.Tensor]:
    """The trained network of a run folder and an input of the shape it takes.

    The one place that reads sparsegrad.train's checkpoints: the network is rebuilt as the
    run built it (``build_model`` on the checkpoint's configuration), its weights loaded, and,
    if the run trained with TWO, wrapped in a
    [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] holding the run's factors.

    Args:
        run_dir: a folder written by [run][sparsegrad.train.runner.run].
        seed: which ``seed-<s>``; default the first.
        which: ``"final"`` (the newest checkpoint, default) or ``"best"`` (the epoch of the
            best test accuracy, if its checkpoint was kept).
        img_size: the input side the graph is made for. Default: the run's ``img_size``,
            else its dataset's default side, else the model's ``pretrained_cfg`` input size.

    Returns:
        ``(model, sample)``: the network in eval mode and a zero input ``[1, C, H, W]`` or
        ``[1, T, C, H, W]`` for [to_nir][sparsegrad.nir.to_nir].

    Raises:
        FileNotFoundError: no such seed or checkpoint.
        ValueError: an unknown ``which``.
    """
    from ..train import RecipeConfig, load_checkpoint
    from ..train.build import InputSpec, build_model

    if which not in CHOICES:
        raise ValueError(f"which must be one of {CHOICES}, got {which!r}")
    weights, state = load_checkpoint(_checkpoint(_seed_dir(Path(run_dir), seed), which))
    saved = state["config"]
    cfg = RecipeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    in_chans = int(weights["stem.conv_bn.conv.weight"].shape[1])
    num_classes = int(weights["head.fc.weight"].shape[0])
    size = img_size or cfg.img_size or DATASETS[cfg.dataset].size
    size = size or get_pretrained_cfg_value(cfg.model, "input_size")[-1]
    hw = (size, size) if isinstance(size, int) else tuple(size)
    net = build_model(cfg, InputSpec(in_chans, hw, num_classes))
    net.load_state_dict(weights)
    net.eval()
    frames = DATASETS[cfg.dataset].kind == "event"
    sample = torch.zeros(1, *((cfg.T,) if frames else ()), in_chans, *hw)
    if not cfg.two:
        return net, sample
    head = TemporalWeightedHead(net, cfg.T).eval()
    head.factors.copy_(torch.as_tensor(state["ranks"][0]["factors"], dtype=head.factors.dtype))
    return head, sample


def main(argv: list[str] | None = None) -> Path:
    """The command line: writes the NIR file and prints its path; returns it."""
    from . import write

    parser = argparse.ArgumentParser(prog="python -m sparsegrad.nir", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder (python -m sparsegrad.train, a recipe)")
    parser.add_argument("--seed", type=int, default=None, help="the seed-<s> folder (default: the first)")
    parser.add_argument("--checkpoint", choices=CHOICES, default="final", help="final (default) or best epoch")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: RUN_FOLDER/model.nir)")
    parser.add_argument("--img-size", type=int, default=None, help="input side (default: the run's)")
    parser.add_argument("--dt", type=float, default=1e-4, help="Euler step in seconds (default 1e-4)")
    parser.add_argument("--pooling", choices=("avg", "sum"), default="avg", help="AvgPool2d or SumPool2d nodes")
    args = parser.parse_args(argv)
    model, sample = load_run(args.run_dir, args.seed, args.checkpoint, args.img_size)
    out = args.out or args.run_dir / "model.nir"
    write(out, model, sample, dt=args.dt, pooling=args.pooling)
    print(f"NIR graph written to {out}")
    return out
