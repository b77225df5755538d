"""The command line of the engine and of every recipe: every config field is a ``--flag``.

``python -m sparsegrad.train --dataset imagefolder --data-root DIR --model spiking_resnet18``
runs any combination; ``recipes/<row>.py`` is the same command with the row's defaults.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import tyro
from accelerate import PartialState

from sparsegrad.train.config import RecipeConfig
from sparsegrad.train.resume import command_name, recorded_config
from sparsegrad.train.runner import Stopped, run

__all__ = ["VARIANTS_CLI", "RecipeChoice", "main"]


def _resumed_default(args: Sequence[str] | None, default: RecipeConfig | None) -> RecipeConfig | None:
    """With ``--resume RUN``, the configuration ``RUN`` was started with (flags override it)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--resume")
    resume = parser.parse_known_args(sys.argv[1:] if args is None else list(args))[0].resume
    recorded = recorded_config(resume) if resume not in (None, "None") else None
    return recorded if recorded is not None else default


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Inside, ``SIGTERM`` stops the run as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped("terminated", signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(default: RecipeConfig | None = None, description: str | None = None,
         args: Sequence[str] | None = None, prog: str | None = None) -> Path:
    """Parses ``args`` (default: ``sys.argv``) into a [RecipeConfig][sparsegrad.train.config.RecipeConfig]
    starting from ``default``, runs it, and returns the run folder.

    With ``--resume RUN`` the starting point is the configuration ``RUN`` records (its
    ``config.json``), so ``--resume RUN`` alone continues the run; flags given override it,
    and [check_config][sparsegrad.train.resume.check_config] refuses those a resume may not change.
    Ctrl-C or ``SIGTERM`` print where the run stopped and how to resume it, and exit with
    ``128 + signal`` (130, 143), without a traceback.

    Args:
        default: the recipe's defaults (default: RecipeConfig's).
        description: the ``--help`` text.
        args: the arguments (default: ``sys.argv[1:]``).
        prog: the program name ``--help`` shows (default: ``python -m sparsegrad.train`` or
            ``python <script>``).

    Example:
        ```python
        main(args=["--dataset", "nmnist", "--model", "vggsnn", "--T", "2", "--smoke"])
        ```
    """
    cfg = tyro.cli(RecipeConfig, default=_resumed_default(args, default), description=description, args=args,
                   prog=prog or command_name())
    with _sigterm_stops():
        try:
            return run(cfg)
        except KeyboardInterrupt as err:
            message = str(err) if isinstance(err, Stopped) and str(err) != "terminated" else (
                "stopped before training began; nothing to resume")
            if PartialState().is_main_process:
                print(f"\n{message}", file=sys.stderr, flush=True)
            raise SystemExit(128 + getattr(err, "signum", signal.SIGINT)) from None


def _choices():
    from sparsegrad.train.paper import RECIPES, paper_accuracy

    return tyro.extras.subcommand_type_from_defaults(
        RECIPES, {name: f"{name} (paper: {paper_accuracy(name)} %)" for name in RECIPES}, prefix_names=False)


if TYPE_CHECKING:
    RecipeChoice = RecipeConfig
else:
    RecipeChoice = _choices()
"""A recipe of [RECIPES][sparsegrad.train.paper.RECIPES] by name, then its flags (``ablation.py
dvs_cifar10_vggsnn --data-root ...``)."""

VARIANTS_CLI = (tyro.conf.OmitSubcommandPrefixes, tyro.conf.CascadeSubcommandArgs)
"""tyro markers for runners of variants: ``<script> <recipe> --flags`` with the runner's own flags anywhere."""
