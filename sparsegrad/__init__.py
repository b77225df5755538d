"""sparsegrad: directly training spiking neural networks with sparse surrogate gradients.

Implements MSG (masked surrogate gradient) and TWO (temporally weighted output) from
"Directly Training Temporal Spiking Neural Network with Sparse Surrogate Gradient".
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
