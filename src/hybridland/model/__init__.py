"""The model: DALEC993 in JAX, its parameter table, the spatialization network and the loss.

Comments cite the model's specification as ``spec N.M``: section N.M of
``docs/spec/dalec993.md`` (its provenance is in ``docs/spec/README.md``).
"""
