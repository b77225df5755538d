"""The per-epoch record of one seed: one typed row that the engine writes and everything else reads.

[EpochRecord][sparsegrad.train.record.EpochRecord] is the only place that knows the columns of
``metrics.csv`` and of the history a checkpoint holds: ``fit`` builds one per epoch, ``plots``,
``report`` and [sparsegrad.study][sparsegrad.study] read its attributes. The per-timestep
columns are ``test_acc_t1 .. test_acc_tT`` and ``factor_t1 .. factor_tT``
([step_columns][sparsegrad.train.record.step_columns]); a row that lacks a column raises.

Reference: docs/design.md §6 (run folder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EpochRecord", "read_step_columns", "step_columns"]


def step_columns(prefix: str, values: Sequence[float]) -> dict[str, float]:
    """``{prefix1: v1, ..., prefixT: vT}``: one column per timestep, t = 1..T."""
    return {f"{prefix}{t + 1}": float(v) for t, v in enumerate(values)}


def read_step_columns(row: Mapping[str, Any], prefix: str) -> tuple[float, ...]:
    """The values [step_columns][sparsegrad.train.record.step_columns] wrote, t = 1..T.

    Raises:
        ValueError: no ``<prefix>1`` column, or the columns are not numbered 1..T.
    """
    numbers = sorted(int(k[len(prefix):]) for k in row if k.startswith(prefix) and k[len(prefix):].isdigit())
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"a per-epoch row needs the columns {prefix}1..{prefix}T, got {sorted(row)}")
    return tuple(float(row[f"{prefix}{t}"]) for t in numbers)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one seed: what ``metrics.csv`` holds per row (accuracies are fractions).

    Args:
        epoch: the epoch, from 1.
        lr: learning rate the epoch trained at.
        train_loss: mean (label-smoothed) training loss.
        train_acc: training accuracy.
        test_loss: mean test cross-entropy.
        test_acc: test accuracy of the weighted output.
        best_test_acc: best test accuracy up to this epoch.
        test_acc_per_step: test accuracy of each timestep's own output, t = 1..T.
        factors: TWO factors after the epoch, t = 1..T.
        train_time_s: wall time of the training pass (s).
        eval_time_s: wall time of the evaluation (s).
        epoch_time_s: wall time of the whole epoch (s).
        msg_p: MSG's drop probability (0 when MSG is off).
        msg_seen: surrogate-gradient entries MSG gave a keep decision this epoch (summed over
            processes).
        msg_dropped: those it dropped.
        msg_drop_frac: their ratio (0 when none were seen).
    """

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    best_test_acc: float
    test_acc_per_step: tuple[float, ...]
    factors: tuple[float, ...]
    train_time_s: float
    eval_time_s: float
    epoch_time_s: float
    msg_p: float
    msg_seen: int
    msg_dropped: int
    msg_drop_frac: float

    def row(self) -> dict[str, float | int]:
        """The flat row of ``metrics.csv`` (and of a checkpoint's history), per-timestep columns
        in place of the two tuples."""
        row: dict[str, float | int] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "test_acc_per_step":
                row.update(step_columns("test_acc_t", value))
            elif field.name == "factors":
                row.update(step_columns("factor_t", value))
            else:
                row[field.name] = value
        return row

    def scalars(self) -> dict[str, float | int]:
        """Every number of the row but ``epoch`` (TensorBoard's scalars)."""
        return {k: v for k, v in self.row().items() if k != "epoch"}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EpochRecord:
        """The record of a row [row][sparsegrad.train.record.EpochRecord.row] wrote, from a
        checkpoint (numbers) or from ``metrics.csv`` (strings).

        Raises:
            ValueError: a column is missing or does not parse as a number.
        """
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name == "test_acc_per_step":
                values[field.name] = read_step_columns(row, "test_acc_t")
            elif field.name == "factors":
                values[field.name] = read_step_columns(row, "factor_t")
            elif field.name not in row:
                raise ValueError(f"a per-epoch row needs the column {field.name!r}, got {sorted(row)}")
            else:
                kind = int if field.type in ("int", int) else float
                try:
                    values[field.name] = kind(row[field.name])
                except (TypeError, ValueError):
                    raise ValueError(f"column {field.name!r} must be a number, got {row[field.name]!r}") from None
        return cls(**values)
