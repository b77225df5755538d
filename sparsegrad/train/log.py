"""Per-epoch records of one seed: ``metrics.csv``, TensorBoard scalars and a progress line.

Progress bars ([progress][sparsegrad.train.log.progress]) are drawn only on a terminal: written to
a file or a pipe, tqdm's redraws (``\\r`` and the cursor-up ``ESC[A`` of nested bars) would fill
the log, so there the bars are off and each epoch is one plain line.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence

from tqdm.auto import tqdm

from sparsegrad.train.record import EpochRecord
from sparsegrad.train.store import SeedFolder

__all__ = ["EpochLog", "progress"]


def progress(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar over ``iterable``, drawn only when ``enabled`` and stderr is a terminal.

    Args:
        iterable: what the bar iterates over (``None``: a manual bar, ``update()``).
        enabled: whether this process shows bars at all (the main process).
        **kwargs: tqdm's (``desc``, ``total``, ``leave``).
    """
    # tqdm.auto's bar is a notebook widget in Jupyter, where stderr is no terminal either.
    drawn = sys.stderr.isatty() or any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
    return tqdm(iterable, dynamic_ncols=True, disable=not (enabled and drawn), **kwargs)


def _tensorboard(folder, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        # warnings shows this once per process (the default filter), not once per seed.
        warnings.warn("tensorboard is not installed: no TensorBoard logs are written (pip install tensorboard, "
                      "or --no-tensorboard to silence this); metrics.csv holds the same numbers", stacklevel=3)
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class EpochLog:
    """Writes each epoch's record on the main process (a no-op on the others).

    Args:
        folder: the seed's folder (``metrics.csv``, ``tensorboard/``).
        epochs: total epochs (progress bar).
        start: epochs already done (a resumed run).
        tag: label of the progress bar and lines.
        enabled: whether this process writes (the main process).
        tensorboard: also write TensorBoard scalars (a warning if tensorboard is not installed).
    """

    def __init__(self, folder: SeedFolder, epochs: int, start: int, tag: str, *, enabled: bool, tensorboard: bool):
        self.folder, self.epochs, self.tag, self.enabled = folder, epochs, tag, enabled
        self.writer = None
        if enabled and tensorboard:
            self.writer = _tensorboard(folder.tensorboard, purge_step=start + 1 if start else None)
        self.bar = progress(total=epochs, initial=start, desc=tag, enabled=enabled)

    def write(self, history: Sequence[EpochRecord]) -> None:
        """Rewrites ``metrics.csv`` with ``history``; logs and prints its last record."""
        if not self.enabled:
            return
        last = history[-1]
        self.folder.write_history(history)
        if self.writer is not None:
            for key, value in last.scalars().items():
                self.writer.add_scalar(key, value, last.epoch)
            self.writer.flush()
        self.bar.update(1)
        self.bar.write(f"{self.tag} epoch {last.epoch}/{self.epochs}: train loss {last.train_loss:.3f} acc "
                       f"{100 * last.train_acc:.2f} | test acc {100 * last.test_acc:.2f} (best "
                       f"{100 * last.best_test_acc:.2f}) | lr {last.lr:.3g} | {last.epoch_time_s:.1f}s")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
