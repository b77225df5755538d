"""The run folder: its layout, its atomic writes, where each seed resumes, what is finished.

Every path of a run folder is named here, and only here:

    <run>/                           RunFolder
        config.json                  requested and effective configuration, environment, resumes
        results.json, results.csv    per seed and mean over seeds
        seed-<s>/                    SeedFolder
            metrics.csv              one EpochRecord per row
            result.json, firing_rate.json
            checkpoints/             model-e<N>.safetensors + state-e<N>.pt (checkpoint.py)
            tensorboard/, plots/

Files are written atomically (a temporary file in the same folder, then a rename), by the
main process only. A checkpoint's files are [checkpoint][sparsegrad.train.checkpoint]'s; what
they hold is [state][sparsegrad.train.state]'s.

Reference: docs/design.md §6 (run folder, exact resume).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from sparsegrad.train.checkpoint import checkpoint_epoch, latest_checkpoint, list_checkpoints, weights_path
from sparsegrad.train.record import EpochRecord

__all__ = ["RunFolder", "SeedFolder", "create_run_dir", "locate", "resume_points", "slug", "write_csv",
           "write_json"]


def slug(label: str) -> str:
    """A folder name for a variant label: lower case, ``&`` as ``-and-``, anything but letters,
    digits, ``.`` and ``-`` as ``-``, no leading or trailing ``-`` (``"+MSG&TWO"`` -> ``"msg-and-two"``)."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in label.lower().replace("&", "-and-")).strip("-")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically; paths and other non-JSON values as their ``str``."""
    _atomic_write(Path(path), json.dumps(obj, indent=2, default=str) + "\n")


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Writes rows of dicts as CSV with a header (the keys, in first-seen order), atomically."""
    rows = list(rows)
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(Path(path), buf.getvalue())


def create_run_dir(accelerator: Accelerator, out_dir: str | os.PathLike, name: str) -> Path:
    """Creates ``out_dir/<name>-<YYYYmmdd-HHMMSS>`` (``-1``, ``-2``, ... if taken) on the main
    process and returns it on every process (the path is broadcast).

    Each name is claimed by one ``mkdir``, which fails if the folder exists, so runs started in
    the same second by several processes or machines sharing ``out_dir`` get distinct folders."""
    path = [None]
    if accelerator.is_main_process:
        base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        base.parent.mkdir(parents=True, exist_ok=True)
        candidate, i = base, 0
        while True:
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                i += 1
                candidate = base.with_name(f"{base.name}-{i}")
        path = [str(candidate)]
    if accelerator.num_processes > 1:
        broadcast_object_list(path, from_process=0)
    return Path(path[0])


def _entry(name: str, doc: str) -> property:
    return property(lambda self: self.path / name, doc=f"``{name}``: {doc}")


@dataclass(frozen=True)
class SeedFolder:
    """One seed's folder ``<run>/seed-<s>/`` and its records."""

    path: Path
    metrics = _entry("metrics.csv", "one EpochRecord per row")
    result = _entry("result.json", "the seed's final record (report.seed_result)")
    firing_rate = _entry("firing_rate.json", "{layer: firing rate} after training")
    checkpoints = _entry("checkpoints", "model-e<N>.safetensors + state-e<N>.pt")
    tensorboard = _entry("tensorboard", "the per-epoch scalars")
    plots = _entry("plots", "the run's figures")

    def write_history(self, history: Sequence[EpochRecord]) -> None:
        """Rewrites ``metrics.csv``, one row per record."""
        write_csv(self.metrics, [r.row() for r in history])

    def read_history(self) -> list[EpochRecord]:
        """The records ``metrics.csv`` holds.

        Raises:
            FileNotFoundError: no ``metrics.csv``.
            ValueError: a row lacks a column (the message names it and the file).
        """
        with open(self.metrics, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        try:
            return [EpochRecord.from_row(row) for row in rows]
        except ValueError as err:
            raise ValueError(f"{self.metrics}: {err}") from None

    def read_firing_rate(self) -> dict[str, float]:
        """``{layer: rate}`` of ``firing_rate.json``."""
        return json.loads(self.firing_rate.read_text())

    def finished(self, epochs: int) -> dict | None:
        """The seed's ``result.json`` if it trained all ``epochs``, else ``None``."""
        if not self.result.is_file():
            return None
        result = json.loads(self.result.read_text())
        return result if result.get("complete") and result.get("epochs") == epochs else None

    def truncate_after(self, state_path: Path) -> None:
        """Resuming from an older checkpoint: drops the later ones and the seed's result."""
        epoch = checkpoint_epoch(state_path)
        for later in list_checkpoints(self.checkpoints):
            if checkpoint_epoch(later) > epoch:
                weights_path(later).unlink(missing_ok=True)
                later.unlink(missing_ok=True)
        self.result.unlink(missing_ok=True)


@dataclass(frozen=True)
class RunFolder:
    """A run folder ``<run>/`` (module docstring)."""

    path: Path
    config = _entry("config.json", "requested and effective configuration, environment, resumes")
    results = _entry("results.json", "every seed's record, the summary and the table")

    def seed(self, seed: int) -> SeedFolder:
        """The folder of ``seed``."""
        return SeedFolder(self.path / f"seed-{seed}")

    def read_results(self) -> dict:
        """``results.json``: ``{"name", "summary", "runs", "table", "paper_result"}``."""
        return json.loads(self.results.read_text())

    def finished(self, epochs: int, seeds: int = 1) -> bool:
        """Whether ``results.json`` holds ``seeds`` complete seeds of ``epochs`` epochs."""
        if not self.results.is_file():
            return False
        runs = self.read_results()["runs"]
        return len(runs) == seeds and all(r["complete"] and r["epochs"] == epochs for r in runs)


def locate(path: Path) -> tuple[RunFolder, int | None]:
    """The run folder a ``--resume`` path points into (the run, a seed folder, its
    checkpoints folder or one state file), and the seed a state file names (else ``None``).

    Raises:
        ValueError: a state file outside ``<run>/seed-<s>/checkpoints/``.
    """
    if path.is_file():
        checkpoint_epoch(path)  # validates the name
        seed_dir = path.parent.parent
        if path.parent.name != "checkpoints" or not seed_dir.name.startswith("seed-"):
            raise ValueError(f"--resume {path}: expected <run>/seed-<s>/checkpoints/state-e<N>.pt")
        return RunFolder(seed_dir.parent), int(seed_dir.name[5:])
    if path.name == "checkpoints":
        return RunFolder(path.parent.parent), None
    if path.name.startswith("seed-") and not (path / "config.json").exists():
        return RunFolder(path.parent), None
    return RunFolder(path), None


def resume_points(path: str | os.PathLike, seeds: tuple[int, ...],
                  epochs: int) -> tuple[RunFolder, dict[int, Path | None], int | None]:
    """Where each seed resumes: ``(run folder, {seed: state file or None}, seed named by a file)``.

    Raises:
        FileNotFoundError: ``path`` is missing or not inside a run folder.
        ValueError: a state file of a seed not among ``seeds``, or a checkpoint past ``epochs``
            (the message names both epoch counts).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--resume {path}: no such file or folder")
    run, explicit_seed = locate(path)
    if not run.config.is_file():
        raise FileNotFoundError(f"--resume {path}: {run.path} is not a run folder (no config.json)")
    if explicit_seed is not None and explicit_seed not in seeds:
        raise ValueError(f"--resume {path} is a checkpoint of seed {explicit_seed}, not among --seeds {seeds}")
    points = {s: latest_checkpoint(run.seed(s).checkpoints) for s in seeds}
    if explicit_seed is not None:
        points[explicit_seed] = path
    for point in points.values():
        if point is not None and checkpoint_epoch(point) > epochs:
            raise ValueError(f"--epochs {epochs} is fewer than the {checkpoint_epoch(point)} epochs already "
                             f"trained in {point}; resume with --epochs {checkpoint_epoch(point)} or more")
    return run, points, explicit_seed
