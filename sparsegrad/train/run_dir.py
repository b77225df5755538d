"""Run folders: one timestamped folder per run, written by the main process only."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

__all__ = ["create_run_dir", "write_json", "write_csv"]


def create_run_dir(accelerator: Accelerator, out_dir: str | os.PathLike, name: str) -> Path:
    """Creates ``out_dir/<name>-<YYYYmmdd-HHMMSS>`` and returns it on every process.

    The main process picks the name (adding ``-1``, ``-2``, ... if it exists) and creates
    the folder; the path is broadcast so that all processes agree on it.

    Args:
        accelerator: the run's Accelerator.
        out_dir: parent folder, created if missing.
        name: prefix of the folder's name (e.g. the recipe's name).

    Returns:
        The folder's path.
    """
    path = [None]
    if accelerator.is_main_process:
        base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        candidate, i = base, 0
        while candidate.exists():
            i += 1
            candidate = base.with_name(f"{base.name}-{i}")
        candidate.mkdir(parents=True)
        path = [str(candidate)]
    if accelerator.num_processes > 1:
        broadcast_object_list(path, from_process=0)
    return Path(path[0])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically (a temporary file, then a rename).

    Paths and other non-JSON values are written as their ``str``.
    """
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
