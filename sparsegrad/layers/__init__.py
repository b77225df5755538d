"""Spiking layers on time-first ``[T, B, ...]`` tensors, shared by the model zoo.

Per-frame modules (conv, BN, pooling, Linear) run on the merged ``[T*B, ...]`` tensor
through one helper, [apply_merged][sparsegrad.layers.apply_merged]; neurons run over the
whole sequence. The neuron of every block is injectable (``neuron_layer=`` of
[SpikingConfig][sparsegrad.layers.SpikingConfig]). See docs/design.md §3.

Example:
    ```python
    from sparsegrad.layers import ConvBNNeuron, SeqToANN, SpikingConfig, TimeAvgPool2d

    cfg = SpikingConfig(T=10, v_threshold=0.5)       # LIF unless neuron_layer= says otherwise
    net = nn.Sequential(
        ConvBNNeuron(2, 32, 3, cfg=cfg), TimeAvgPool2d(2),
        SeqToANN(nn.Flatten(), nn.Linear(32 * 17 * 17, 10)),
    )
    net(torch.rand(10, 4, 2, 34, 34)).shape          # [T=10, B=4, 10]
    ```
"""

from .blocks import Classifier, ConvBN, ConvBNNeuron, SpikingEncoder
from .checkpoint import checkpoint_seq, is_recomputing
from .config import LIF_CONSTANTS, SpikingConfig
from .norm import BN_MODES, TimeBatchNorm2d
from .sequence import SeqToANN, TimeAvgPool2d, apply_merged

__all__ = [
    "apply_merged",
    "SeqToANN",
    "TimeAvgPool2d",
    "TimeBatchNorm2d",
    "BN_MODES",
    "checkpoint_seq",
    "is_recomputing",
    "SpikingConfig",
    "LIF_CONSTANTS",
    "ConvBN",
    "ConvBNNeuron",
    "SpikingEncoder",
    "Classifier",
]
