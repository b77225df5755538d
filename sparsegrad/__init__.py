"""sparsegrad: directly training spiking neural networks with sparse surrogate gradients.

Implements the two methods of *Directly Training Temporal Spiking Neural Network with Sparse
Surrogate Gradient* (Li Yang, Feifei Zhao, Dongcheng Zhao, Yi Zeng):

- MSG, the masked surrogate gradient: [MaskedGradient][sparsegrad.masked.MaskedGradient]
  multiplies the surrogate derivative of every spike by a Bernoulli(1 - p) mask (Eq. 10-14).
- TWO, the temporally weighted output:
  [TemporalWeightedHead][sparsegrad.temporal.TemporalWeightedHead] weights a model's
  per-timestep logits `[T, B, K]` by factors that follow each timestep's accuracy
  (Eq. 15-17, Algorithm 1).

Around them: the fused multi-step [LIF][sparsegrad.neuron.LIF] neuron, the surrogate
gradients of [sparsegrad.surrogate][], the paper's networks registered in timm
([sparsegrad.models][]), datasets ([sparsegrad.data][]) and the training engine
([sparsegrad.train][]). The decisions the code takes, and where it departs from the paper,
are in [docs/design.md][design] (e.g. [docs/design.md §2.3][design-msg] for MSG).

Example:
    ```python
    import torch
    from torch import nn
    from sparsegrad import LIF, MaskedGradient, TemporalWeightedHead

    net = nn.Sequential(nn.Linear(64, 128), LIF(), nn.Linear(128, 10))  # [T, B, 64] -> [T, B, 10]
    msg = MaskedGradient(p=0.5).attach(net)
    model = TemporalWeightedHead(net, T=4)
    x, y = torch.rand(4, 32, 64), torch.randint(0, 10, (32,))
    loss = nn.functional.cross_entropy(model(x, target=y), y)  # model(x) is [32, 10]
    loss.backward()         # surrogate gradients masked with p = 0.5
    model.update_factors()  # TWO: the factors move towards each timestep's accuracy
    ```
"""

from . import functional, models, neuron, surrogate
from .masked import MaskedGradient
from .neuron import LIF
from .temporal import TemporalWeightedHead

__all__ = [
    "MaskedGradient",
    "TemporalWeightedHead",
    "LIF",
    "functional",
    "models",
    "neuron",
    "surrogate",
]
__version__ = "0.1.0"
