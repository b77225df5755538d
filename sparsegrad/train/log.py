"""Per-epoch records of one seed: ``metrics.csv``, TensorBoard scalars and a progress line."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from sparsegrad.train.run_dir import write_csv

__all__ = ["EpochLog"]


def _tensorboard(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class EpochLog:
    """Writes each epoch's row on the main process (a no-op on the others).

    Args:
        seed_dir: the seed's folder (``metrics.csv``, ``tensorboard/``).
        epochs: total epochs (progress bar).
        start: epochs already done (a resumed run).
        tag: label of the progress bar and lines.
        enabled: whether this process writes (the main process).
        tensorboard: also write TensorBoard scalars (if installed).
    """

    def __init__(self, seed_dir: Path, epochs: int, start: int, tag: str, *, enabled: bool, tensorboard: bool):
        self.seed_dir, self.epochs, self.tag, self.enabled = seed_dir, epochs, tag, enabled
        self.writer = None
        if enabled and tensorboard:
            self.writer = _tensorboard(seed_dir / "tensorboard", purge_step=start + 1 if start else None)
        self.bar = tqdm(total=epochs, initial=start, desc=tag, dynamic_ncols=True, disable=not enabled)

    def write(self, history: list[dict]) -> None:
        """Rewrites ``metrics.csv`` with ``history``; logs and prints its last row."""
        if not self.enabled:
            return
        row = history[-1]
        write_csv(self.seed_dir / "metrics.csv", history)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()
        self.bar.update(1)
        self.bar.write(f"{self.tag} epoch {row['epoch']}/{self.epochs}: train loss {row['train_loss']:.3f} acc "
                       f"{100 * row['train_acc']:.2f} | test acc {100 * row['test_acc']:.2f} (best "
                       f"{100 * row['best_test_acc']:.2f}) | lr {row['lr']:.3g} | {row['epoch_time_s']:.1f}s")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
