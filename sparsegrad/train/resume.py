"""What a resume may change, and every check that a run fits a configuration, done before
anything of the run is deleted or written.

A run folder's ``config.json`` records the configuration it was trained with;
[recorded_config][sparsegrad.train.resume.recorded_config] reads it back (``--resume RUN``
alone continues the run). [check_config][sparsegrad.train.resume.check_config] refuses a
resume that changes a field outside ``MUTABLE``, naming each;
[check_fits][sparsegrad.train.resume.check_fits] refuses a checkpoint whose weights, TWO
factors or MSG state do not fit the network about to be trained.

Reference: docs/design.md §6 (run folder, exact resume).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from sparsegrad.masked import MaskedGradient
from sparsegrad.temporal import TemporalWeightedHead
from sparsegrad.train.checkpoint import load_checkpoint
from sparsegrad.train.config import RecipeConfig
from sparsegrad.train.store import RunFolder, locate

__all__ = ["MUTABLE", "check_config", "check_fits", "command_name", "flag_value", "recorded_config", "resume_command"]

# The fields a resume may change: none of them changes the data a seed sees or the result it
# reaches. Every other field (dataset, data_root, limits, folds, T, model, surrogate, p, the
# optimiser, smoke...) is refused, including any field added later until it is listed here.
# epochs extends the run (the cosine is re-planned); seeds adds or drops whole seeds; the rest
# are where files go, what is logged and how fast the data is read. num_workers keeps the
# experiment but moves the augmentation draws to the workers' generators.
MUTABLE = frozenset({
    "name", "out_dir", "resume", "download", "epochs", "seeds", "checkpoint_every", "keep_checkpoints",
    "num_workers", "frame_cache", "cache_dir", "check_data", "tensorboard", "plots", "paper_result",
})

_PATHS = frozenset({"data_root", "out_dir", "resume", "cache_dir"})


def recorded_config(path: str | os.PathLike) -> RecipeConfig | None:
    """The configuration the run that ``path`` points into was started with (its
    ``config.json``), or ``None`` when ``path`` is not inside a run folder.

    Fields the file lacks keep their defaults; fields it holds that
    [RecipeConfig][sparsegrad.train.config.RecipeConfig] no longer has are ignored.
    """
    try:
        run, _ = locate(Path(path).expanduser())
    except ValueError:
        return None
    if not run.config.is_file():
        return None
    recorded = json.loads(run.config.read_text()).get("config", {})
    hints = typing.get_type_hints(RecipeConfig)
    values = {}
    for field in dataclasses.fields(RecipeConfig):
        if field.name in recorded:
            value = recorded[field.name]
            if value is not None and field.name in _PATHS:
                value = Path(value)
            elif isinstance(value, list) and typing.get_origin(hints[field.name]) is tuple:
                value = tuple(value)
            values[field.name] = value
    return RecipeConfig(**values)


def command_name() -> str:
    """How this program was started: ``python -m sparsegrad.train`` or ``python <script>``."""
    script = Path(sys.argv[0])
    if script.name == "__main__.py" and script.parent.name == "train" and script.parent.parent.name == "sparsegrad":
        return "python -m sparsegrad.train"
    return f"python {shlex.quote(sys.argv[0])}"


def resume_command(run_dir: str | os.PathLike) -> str:
    """The command that continues the run in ``run_dir`` (its ``config.json`` holds the rest)."""
    return f"{command_name()} --resume {shlex.quote(str(run_dir))}"


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def flag_value(field: str, value: Any) -> str:
    """``field`` as the command-line flag that sets ``value`` (``--no-msg``, ``--seeds 0 1``)."""
    flag = _flag(field)
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, (list, tuple)):
        return f"{flag} {' '.join(str(v) for v in value)}"
    return f"{flag} {value}"


def _same(field: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if field in _PATHS and old is not None and new is not None:
        return Path(old).expanduser().resolve() == Path(new).expanduser().resolve()
    return False


def check_config(run: RunFolder, eff: RecipeConfig, where: str) -> dict[str, list]:
    """Refuses to resume ``run`` with ``eff`` if a field outside
    ``MUTABLE`` differs from the run's recorded effective
    configuration; returns the mutable fields that differ, ``{field: [old, new]}``.

    A field the run's ``config.json`` does not record (a run older than the field) is not compared.

    Raises:
        ValueError: the message names every differing field, its recorded and its new value.
    """
    recorded = json.loads(run.config.read_text()).get("effective", {})
    now = eff.jsonable()
    changed = {k: [v, now[k]] for k, v in recorded.items() if k in now and not _same(k, v, now[k])}
    refused = {k: v for k, v in changed.items() if k not in MUTABLE}
    if refused:
        was = ", ".join(flag_value(k, old) for k, (old, _) in refused.items())
        asked = ", ".join(flag_value(k, new) for k, (_, new) in refused.items())
        raise ValueError(
            f"{where}: this run was trained with {was}, not {asked}. A resume may change only "
            f"{', '.join(_flag(k) for k in sorted(MUTABLE - {'resume'}))}, which cannot change the "
            "data or the result; leave the others as recorded (--resume RUN alone continues the run as it "
            "was) or start a new run without --resume. Nothing was changed.")
    return {k: v for k, v in changed.items() if k != "resume"}


def _weights_mismatch(weights: Mapping[str, Any], model: nn.Module) -> list[str]:
    saved = {k: tuple(v.shape) for k, v in weights.items()}
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = [f"{k}: {list(saved[k])} in the checkpoint, {list(shape)} in the model"
                for k, shape in wanted.items() if k in saved and saved[k] != shape]
    missing, unexpected = sorted(wanted.keys() - saved.keys()), sorted(saved.keys() - wanted.keys())
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the checkpoint ({', '.join(missing[:3])}...)")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) the model does not have ({', '.join(unexpected[:3])}...)")
    return problems


def _state_mismatch(state: Mapping, eff: RecipeConfig) -> list[str]:
    problems = []
    for rank in state["ranks"]:
        if len(rank["factors"]) != eff.T:
            problems.append(f"TWO factors for T = {len(rank['factors'])}, --T is {eff.T}")
            break
        try:
            TemporalWeightedHead(nn.Identity(), eff.T, beta=eff.beta).load_state_dict(rank["two"], strict=False)
            if eff.msg and rank["msg"] is not None:
                MaskedGradient(p=eff.p, seed=0).load_state_dict(rank["msg"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            problems.append(f"its TWO or MSG state does not load ({type(err).__name__}: {err})")
            break
    return problems


def check_fits(state_path: str | os.PathLike, eff: RecipeConfig, model: nn.Module) -> None:
    """Refuses a checkpoint that ``model`` (the network about to train) and ``eff`` cannot take:
    weight names or shapes, the T of its TWO factors, its TWO and MSG state.

    Raises:
        ValueError: the message names the checkpoint, the model and what does not fit.
        DamagedCheckpointError: a file of the checkpoint is unreadable.
    """
    state_path = Path(state_path)
    weights, state = load_checkpoint(state_path)
    problems = _weights_mismatch(weights, model) + _state_mismatch(state, eff)
    if problems:
        trained = state.get("config", {}).get("model", "another model")
        raise ValueError(f"--resume: checkpoint {state_path} does not fit --model {eff.model} (this run was trained "
                         f"with --model {trained}): " + "; ".join(problems[:4]) + ". Nothing was changed.")
