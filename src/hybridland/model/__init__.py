"""The model: DALEC993 in JAX, its parameter table, the spatialization network and the loss."""
