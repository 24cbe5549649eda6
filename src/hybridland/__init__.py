"""hybridland: a differentiable DALEC993 land model with a spatialization network."""

__version__ = "0.1.0"
