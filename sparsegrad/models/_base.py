"""timm's model interface for the spiking networks: stem, stages, per-timestep head.

Feature maps (``features_only=True``, ``forward_intermediates``, ``forward_features``)
are time-first spikes ``[T, B, C, H, W]``: each stage's output as the next stage reads it.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import torch
from timm.models import build_model_with_cfg
from torch import nn

from ..layers import Classifier, checkpoint_seq


class SpikingNet(nn.Module):
    """Base of the registered models: ``stem`` -> ``stem_pool`` -> ``stages`` -> ``head``.

    A subclass builds ``stem`` (a [SpikingEncoder][sparsegrad.layers.SpikingEncoder]),
    ``stem_pool``, ``stages`` (an ``nn.Sequential`` of ``nn.Sequential`` blocks), ``head``
    (a [Classifier][sparsegrad.layers.Classifier]) and ``feature_info`` (timm's list of
    ``{num_chs, reduction, module}``, one per feature map), and sets ``stem_is_feature``
    when the stem's output is the first feature map.
    """

    stem_is_feature = False

    def _init_interface(self, num_features: int, num_classes: int, drop_rate: float, global_pool: str) -> None:
        self.num_features, self.num_classes, self.drop_rate = num_features, num_classes, drop_rate
        self.grad_checkpointing = False
        self.head = Classifier(num_features, num_classes, drop_rate, global_pool)

    def _feature_maps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        x = self.stem(x)
        if self.stem_is_feature:
            yield x
        x = self.stem_pool(x)
        for stage in self.stages:
            x = checkpoint_seq(stage, x) if self.grad_checkpointing and torch.is_grad_enabled() else stage(x)
            yield x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``[T, B, C, H, W]`` (what the head reads) of static images
        ``[B, C, H, W]`` or event frames ``[B, T, C, H, W]``."""
        (last,) = deque(self._feature_maps(x), maxlen=1)
        return last

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Per-timestep logits ``[T, B, num_classes]``, or with ``pre_logits=True`` the
        pooled (or flattened) features ``[T, B, num_features]`` the Linear reads."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature maps listed in ``feature_info``, time-first ``[T, B, C, H, W]``.

        Args:
            x: static images ``[B, C, H, W]`` or event frames ``[B, T, C, H, W]``.
            indices: the last ``n`` maps if an int, all if None, else those indices.
            norm: unused (these networks have no final norm); timm's signature.
            stop_early: stop after the last map wanted.
            output_fmt: ``"NCHW"`` only: each frame of a map is ``[B, C, H, W]``.
            intermediates_only: return only the maps.

        Returns:
            The maps, or ``(last output, maps)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' (frames of [T, B, C, H, W] maps), got {output_fmt!r}")
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        maps = []
        for i, fmap in enumerate(self._feature_maps(x)):
            if i in take:
                maps.append(fmap)
            if stop_early and i == max_index:
                break
        return maps if intermediates_only else (fmap, maps)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last feature map wanted (and the head)."""
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        self.stages = self.stages[: max(max_index + 1 - int(self.stem_is_feature), 0)]
        if prune_head:
            self.reset_classifier(0)
        return take

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new Linear readout with ``num_classes`` outputs (0: none, pre-logits out).

        Raises:
            ValueError: a ``global_pool`` other than the model's (``"avg"`` for the
                ResNets, ``""`` (flatten) for the plain conv nets).
        """
        if global_pool not in (None, self.head.global_pool):
            raise ValueError(
                f"global_pool={global_pool!r} is not supported by {type(self).__name__}, whose "
                f"classifier reads global_pool={self.head.global_pool!r}"
            )
        self.num_classes = num_classes
        self.head = Classifier(self.num_features, num_classes, self.drop_rate, self.head.global_pool)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block of the stages in backward instead of storing its
        activations ([checkpoint_seq][sparsegrad.layers.checkpoint_seq]): same gradients
        and same batch-norm state, for stateless neurons."""
        self.grad_checkpointing = enable


def feature_take_indices(num_maps: int, indices: int | list[int] | tuple[int, ...] | None) -> tuple[list[int], int]:
    """The feature maps ``forward_intermediates`` returns: all (``None``), the last ``n``
    (an int), or the given indices (negative ones count from the end); and the largest.

    Follows timm's rule (its helper of the same name is private, ``timm.models._features``).

    Raises:
        ValueError: an index outside the ``num_maps`` maps.
    """
    if indices is None:
        indices = num_maps
    if isinstance(indices, int):
        if not 0 < indices <= num_maps:
            raise ValueError(f"indices={indices}: the last n maps need 1 <= n <= {num_maps}")
        take = list(range(num_maps - indices, num_maps))
    else:
        take = [i + num_maps if i < 0 else i for i in indices]
        if not take or any(not 0 <= i < num_maps for i in take):
            raise ValueError(f"indices={list(indices)} must lie in [-{num_maps}, {num_maps}) (the feature maps)")
    return take, max(take)


def default_cfg(**kwargs) -> dict:
    """A registered model's ``pretrained_cfg`` (no weights)."""
    return {"url": "", "first_conv": "stem.conv_bn.conv", "classifier": "head.fc", **kwargs}


def build_spiking(cls: type[SpikingNet], variant: str, pretrained: bool, num_feature_maps: int, **kwargs) -> SpikingNet:
    """Build ``variant`` through timm; ``features_only=True`` gives all feature maps by default.

    Raises:
        ValueError: ``pretrained=True`` (sparsegrad ships no weights).
    """
    if pretrained:
        raise ValueError(
            f"{variant}: sparsegrad ships no pretrained weights; use pretrained=False and "
            "load a checkpoint with checkpoint_path= or load_state_dict"
        )
    feature_cfg = {"feature_cls": "getter", "out_indices": tuple(range(num_feature_maps))}
    return build_model_with_cfg(cls, variant, pretrained=False, feature_cfg=feature_cfg, **kwargs)
