"""TWO, the Temporally Weighted Output (paper Eq. 15-17, Algorithm 1)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn

from ._validate import check_choice, check_int, check_real, check_timesteps

__all__ = ["TemporalWeightedHead"]


class TemporalWeightedHead(nn.Module):
    """Weights a spiking model's per-timestep outputs by factors that follow accuracy.

    ``forward`` returns ``y = sum_t factors[t] * I_L[t]`` (Eq. 15). With uniform factors,
    the initial state, this is the usual ``mean_t I_L[t]``. In training,
    ``forward(x, target=labels)`` counts per timestep the samples whose own argmax of
    ``I_L[t]`` is the label (``c_t``), and the factors move towards the normalised counts:

    ```text
    Delta_t = c_t / sum_s c_s                                        (Eq. 16)
    factors_t <- beta * factors_t + (1 - beta) * Delta_t              (Eq. 17)
    ```

    so they stay positive and sum to 1. A sample whose logits at a timestep are not all
    finite counts as wrong there (the argmax of a NaN row would be class 0). With
    ``update_every="epoch"`` (the authors' code) the counts are gathered over an epoch and
    the trainer applies them with
    [update_factors][sparsegrad.temporal.TemporalWeightedHead.update_factors] at the
    epoch's end; with ``"step"`` (Algorithm 1 read per minibatch) the update happens inside
    every training forward, after the output is computed and before the loss. Under
    ``torch.distributed`` the counts are summed over ranks first, so every rank holds the
    same factors. No timestep right: factors unchanged. Nothing is counted or updated in
    ``eval()``.

    Args:
        model: a module returning per-timestep outputs with ``T`` along ``time_dim``
            (``[T, B, K]`` for ``time_dim=0``).
        T: number of timesteps, an int ``>= 1``. Integer arguments may be Python, numpy
            or 0-d torch integers, ``beta`` any real scalar; bools and strings are refused
            (the checkers of ``sparsegrad._validate``).
        beta: EMA momentum in ``[0, 1)``. Default 0.7 (paper).
        update_every: ``"epoch"`` (default) or ``"step"``.
        time_dim: the time dimension of the model's output. Default 0.
        warmup_epochs: keep the factors uniform during the first epochs (counted by
            [update_factors][sparsegrad.temporal.TemporalWeightedHead.update_factors]
            calls). Default 0.

    Shape:
        - Output of ``model``: ``[T, B, K]`` (after moving ``time_dim`` to the front).
        - ``target``: integer class indices ``[B]`` in ``[0, K)``, or float scores/one-hot
          ``[B, K]`` (argmax taken).
        - Output: ``[B, K]``. ``last_step_logits``: ``[T, B, K]`` of the latest forward.

    State (all in the ``state_dict``, all tensors, so ``safetensors.torch.save_file`` and
    ``accelerate``'s ``save_state``/``load_state`` take it): buffers ``factors [T]`` and
    ``epochs []`` (completed epochs); ``correct [T]`` and ``seen []``, the counts since the
    last update, are kept per rank outside the buffers (``DistributedDataParallel`` would
    overwrite them with rank 0's at every forward) and added to the ``state_dict`` by a
    state-dict hook. A ``state_dict`` of an older version, with the counts under
    ``_extra_state``, still loads.

    Warns:
        UserWarning: [update_factors][sparsegrad.temporal.TemporalWeightedHead.update_factors]
            is called and no training forward since the last call passed ``target=``
            (the factors cannot move).

    Raises:
        ValueError: bad arguments (the message names the value); a model output that is
            not a 3-D tensor, or whose ``time_dim`` is not ``T`` long; a target of another
            shape or dtype, or with a class index outside ``[0, K)``.

    Reference: paper Eq. 15-17 and Algorithm 1; docs/design.md §2.4.

    Example:
        ```python
        head = TemporalWeightedHead(timm.create_model("spiking_convnet_s", T=10), T=10)
        for frames, labels in loader:                    # frames [B, T, 2, 34, 34]
            loss = F.cross_entropy(head(frames, target=labels), labels)
            ...
        head.update_factors()                            # at each epoch's end
        ```
    """

    def __init__(
        self,
        model: nn.Module,
        T: int,
        *,
        beta: float = 0.7,
        update_every: str = "epoch",
        time_dim: int = 0,
        warmup_epochs: int = 0,
    ):
        super().__init__()
        where = "TemporalWeightedHead: "
        T = check_timesteps(where + "T", T)
        beta = check_real(where + "beta", beta, 0.0, 1.0, hi_open=True, what="(EMA momentum)")
        update_every = check_choice(where + "update_every", update_every, ("epoch", "step"))
        time_dim = check_int(where + "time_dim", time_dim)
        warmup_epochs = check_int(where + "warmup_epochs", warmup_epochs, 0)
        self.model = model
        self.T = T
        self.beta = beta
        self.update_every = update_every
        self.time_dim = time_dim
        self.warmup_epochs = warmup_epochs
        self.register_buffer("factors", torch.full((T,), 1.0 / T))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))
        # Per-rank counts are plain tensors put into the state_dict by hooks, not buffers:
        # DDP broadcasts rank 0's buffers over the others at every forward.
        self.correct = torch.zeros(T, dtype=torch.long)
        self.seen = torch.zeros((), dtype=torch.long)
        self.register_state_dict_post_hook(_save_counts)
        self.register_load_state_dict_pre_hook(_load_counts)
        self._counted = False  # a training forward with target= since the last update_factors
        self.last_step_logits: torch.Tensor | None = None

    def forward(self, x, target: torch.Tensor | None = None) -> torch.Tensor:
        out = self._per_step(self.model(x))
        self.last_step_logits = out
        # A copy: "step" mode updates the buffer in place below, before backward reads it.
        y = torch.einsum("t,tbk->bk", self.factors.to(out.dtype, copy=True), out)
        if self.training and target is not None:
            self._count(out.detach(), target)
            if self.update_every == "step":
                self._update()
        return y

    def _per_step(self, out) -> torch.Tensor:
        expected = f"per-timestep outputs [T={self.T}, B, K] (time at dim {self.time_dim})"
        if not isinstance(out, torch.Tensor) or out.ndim != 3:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"TemporalWeightedHead: the model must return {expected}, got {got}")
        if not -3 <= self.time_dim < 3:
            raise ValueError(
                f"TemporalWeightedHead: time_dim={self.time_dim} is outside the 3 dims of the "
                f"model's output {list(out.shape)}"
            )
        if out.shape[self.time_dim] != self.T:
            raise ValueError(
                f"TemporalWeightedHead: expected T={self.T} along dim {self.time_dim} of the "
                f"model's output, got shape {list(out.shape)}"
            )
        return out.movedim(self.time_dim, 0)

    @torch.no_grad()
    def _count(self, out: torch.Tensor, target: torch.Tensor) -> None:
        labels = self._labels(target, batch=out.shape[1], classes=out.shape[2]).to(out.device)
        if self.correct.device != out.device:
            self.correct, self.seen = self.correct.to(out.device), self.seen.to(out.device)
        # A timestep with a non-finite logit is wrong: argmax would read a NaN row as class 0.
        hits = (out.argmax(-1) == labels) & torch.isfinite(out).all(-1)
        self.correct += hits.sum(1)
        self.seen += labels.shape[0]
        self._counted = True

    @staticmethod
    def _labels(target, batch: int, classes: int) -> torch.Tensor:
        """Class indices ``[B]`` from indices or from ``[B, K]`` scores; bad targets raise."""
        accepted = f"[B={batch}] integer class indices in [0, {classes}) or [B={batch}, K={classes}] float scores"
        if not isinstance(target, torch.Tensor):
            raise ValueError(f"TemporalWeightedHead: target must be a tensor of {accepted}, got {type(target).__name__}")
        if target.ndim == 2 and target.is_floating_point() and tuple(target.shape) == (batch, classes):
            return target.argmax(-1)
        if target.ndim != 1 or target.shape[0] != batch or target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"TemporalWeightedHead: target must be {accepted}, got {target.dtype} of shape {list(target.shape)}"
            )
        bad = (target < 0) | (target >= classes)
        if bad.any():
            raise ValueError(
                f"TemporalWeightedHead: target holds class index {int(target[bad][0])}, outside "
                f"[0, {classes}) (ignore_index-style labels are not supported)"
            )
        return target

    @torch.no_grad()
    def _update(self) -> None:
        """Eq. 16-17 from the counts gathered since the last update (none while warming
        up); then clear them."""
        if int(self.epochs) < self.warmup_epochs:
            self.correct.zero_()
            self.seen.zero_()
            return
        counts = self.correct.clone()
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
        total = counts.sum()
        if total > 0:
            delta = counts.to(self.factors.dtype) / total
            self.factors.mul_(self.beta).add_(delta, alpha=1 - self.beta)
        self.correct.zero_()
        self.seen.zero_()

    def update_factors(self) -> None:
        """End of an epoch: apply Eq. 16-17 to the epoch's counts (``"epoch"`` mode),
        and count the epoch for ``warmup_epochs``. In ``"step"`` mode the updates happen
        in each training forward; this call only counts the epoch.

        Warns:
            UserWarning: no training forward since the last call passed ``target=``: there
                was nothing to count, so the factors did not move.
        """
        if not self._counted and int(self.seen) == 0:
            warnings.warn(
                "TemporalWeightedHead.update_factors(): no training forward since the last update "
                "passed target=, so nothing was counted and the factors stay as they are; call "
                "the head as head(x, target=labels) in train() mode",
                UserWarning,
                stacklevel=2,
            )
        if self.update_every == "epoch":
            self._update()
        self._counted = False
        self.epochs += 1

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, beta={self.beta}, update_every={self.update_every!r}, "
            f"time_dim={self.time_dim}, warmup_epochs={self.warmup_epochs}"
        )



_COUNTS = ("correct", "seen")


def _save_counts(module: TemporalWeightedHead, state_dict, prefix: str, local_metadata) -> None:
    """State-dict post-hook: the per-rank counts as tensors beside the buffers."""
    for name in _COUNTS:
        state_dict[prefix + name] = getattr(module, name).detach()


def _load_counts(module: TemporalWeightedHead, state_dict, prefix, local_metadata, strict,
                 missing_keys, unexpected_keys, error_msgs) -> None:
    """Load-state-dict pre-hook: takes the counts out of ``state_dict`` (or out of the
    ``_extra_state`` dict that older versions saved) before torch matches the buffers."""
    legacy = state_dict.pop(prefix + "_extra_state", None)
    for name in _COUNTS:
        key = prefix + name
        value = state_dict.pop(key, None)
        if value is None and isinstance(legacy, Mapping):
            value = legacy.get(name)
        current = getattr(module, name)
        if value is None:
            missing_keys.append(key)
        elif not isinstance(value, torch.Tensor) or value.shape != current.shape:
            got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            error_msgs.append(
                f"size mismatch for {key}: copying {got} from the checkpoint, the shape in the "
                f"current model is {list(current.shape)} (T={module.T})"
            )
        else:
            setattr(module, name, value.detach().to(current.device, current.dtype, copy=True))
