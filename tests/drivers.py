"""A small synthetic model driver in the layout of hybridland.data.driver, for fast tests."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import xarray as xr

from hybridland import contract
from hybridland.data import driver
from hybridland.model import dalec, network
from hybridland.training import bench


def truth_parameters(predictors, seed: int = 0) -> dict:
    """The parameters behind :func:`tiny_driver`'s observations (predictors: its columns or the
    driver itself), from a random network of MAT, MAP and SAND."""
    truth_net = network.init_network(jax.random.key(seed), 3)
    z = np.stack([np.asarray(predictors[k]) for k in ("MAT", "MAP", "SAND")], -1)
    return network.physical_parameters(
        truth_net, (z - z.mean(0)) / z.std(0), np.zeros(z.shape[0], np.float32)
    )


def tiny_driver(
    n_patches: int = 6, slots: int = 4, first_year: int = 2010, years: int = 2, seed: int = 0
) -> xr.Dataset:
    """``n_patches`` patches of ``slots`` cells, observations from a forward run of a random
    network."""
    rng = np.random.default_rng(seed)
    cells, calendar = n_patches * slots, driver.monthly_calendar(first_year, first_year + years - 1)
    months = len(calendar)
    met, climate = bench.synthetic_climate(rng, cells, months)
    predictors = {
        p: v for p, v in zip(contract.PFT, rng.dirichlet(np.ones(len(contract.PFT)), cells).T)
    }
    predictors |= {
        p: rng.normal(10.0, 3.0, cells) for p in contract.CLIM + contract.AGE + contract.SOIL
    }
    params = truth_parameters(predictors, seed)
    out = {
        k: np.asarray(v).T
        for k, v in dalec.simulate(
            params, met, climate, outputs=("lai", "SIF", "ET", "nbe", "next_som_pool")
        ).outputs.items()
    }
    patch = np.repeat(np.arange(n_patches), slots)
    test = patch == n_patches - 1
    data = {
        "lat": ("cell", np.asarray(climate.lat)),
        "lon": ("cell", rng.uniform(-110, -100, cells)),
        "cell_y": ("cell", np.arange(cells) // 6),
        "cell_x": ("cell", np.arange(cells) % 6),
        "patch": ("cell", patch),
        "test": ("cell", test),
        "patch_test": ("patch_id", np.arange(n_patches) == n_patches - 1),
        **{p: ("cell", v) for p, v in predictors.items()},
        **{f: (("cell", "time"), np.asarray(getattr(met, f)).T) for f in contract.FORCING},
        **{
            f: ("time", np.asarray(getattr(met, f))[:, 0])
            for f in ("co2", "days", "doy", "delta_t")
        },
        "t_mean": ("cell", np.asarray(climate.t_mean)),
        "p_mean": ("cell", np.asarray(climate.p_mean)),
        "lai": (("cell", "time"), out["lai"]),
        "sif": (("cell", "time"), out["SIF"]),
        "et": (("cell", "time"), out["ET"]),
        "nbe": (("patch_id", "time"), out["nbe"].reshape(n_patches, slots, months).mean(1)),
        "som": ("cell", out["next_som_pool"].mean(1)),
        "land_mask": (("y", "x"), np.ones((cells // 6 + 1, 6), bool)),
    }
    return xr.Dataset(
        data, coords={"time": pd.DatetimeIndex(calendar.time), "patch_id": np.arange(n_patches)}
    )
