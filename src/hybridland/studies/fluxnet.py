"""FLUXNET16: a cross-site study on 16 real eddy-covariance sites.

Cells are sites, each its own patch. Every site has a 9-year record (108
months) in different calendar years, so sites are stacked along ``cell`` on a
record-relative month axis (``time`` = month of the record) and carry their own
calendar: ``days``, ``doy``, ``delta_t`` and ``co2`` are (cell, time). The
driver follows the contract of :func:`hybridland.data.driver.assemble` as far as it
applies (predictors, forcing, fine targets, patch, test flags, predictor means
and standard deviations), so the training code of :mod:`hybridland.training.train` runs
on it unchanged: ``test_month`` keeps the test years out of every training loss
and ``<target>_weight`` carries inverse-variance weights from the supplied
uncertainties.

Spatial generalisation: the network is trained without the held-out sites of a
fold (one climate cluster, or one site) on the training years of the others,
predicts the held-out sites' parameters, and DALEC993 is run over their whole
record; skill is scored on their test years. All folds and members of a setup
train in one vmapped JAX program (a fold is a training-site mask). The upper
bound calibrates one raw parameter vector per site on its own training years
(same loss), all sites vmapped in one program.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import xarray as xr

from hybridland import contract
from hybridland.data import download, driver, landcover
from hybridland.io import atomic_path, write_csv, write_netcdf
from hybridland.model import loss, network, parameters, targets
from hybridland.training import evaluate, train

logger = logging.getLogger(__name__)

DATA = Path(__file__).parent.parent / "data" / "fluxnet16"
MONTHLY = "fluxnet16_monthly.nc"
GRID = "sites"
SCHEMES = ("leave_cluster_out", "leave_site_out")
CALIBRATION = "per_site_calibration"
CALIBRATION_SETUP = "per_site"
HELDOUT_COLUMNS = ("scheme", "setup", "site", "variable", "nse", "r", "rmse")
MEDIAN_COLUMNS = ("scheme", "setup", "variable", "median_nse", "median_r", "median_rmse", "sites")
# The study's targets: driver target -> variable of the monthly file (uncertainty <variable>_unc).
MONTHLY_TARGETS = {"gpp_ec": "gpp", "reco_ec": "reco", "nbe": "nbe", "et_ec": "et", "lai": "lai"}
FORCING = {"t_min": "t2m_min", "t_max": "t2m_max", "rad": "ssrd", "vpd": "vpd", "precip": "precip"}
# IGBP abbreviations of the site table -> MCD12C1 codes (landcover.IGBP_CLASSES).
IGBP_CODES = {
    "ENF": 1,
    "EBF": 2,
    "DNF": 3,
    "DBF": 4,
    "MF": 5,
    "CSH": 6,
    "OSH": 7,
    "WSA": 8,
    "SAV": 9,
    "GRA": 10,
    "WET": 11,
    "CRO": 12,
    "URB": 13,
    "CVM": 14,
    "SNO": 15,
    "BSV": 16,
}
WEIGHT_RANGE = (0.1, 10.0)  # clip of the relative inverse-variance weights


class FluxnetError(ValueError):
    """Data or configuration that cannot make the study; the message names the file or key."""


# ---- data


def verify_checksums(directory: Path | str = DATA) -> None:
    """Raise FluxnetError unless every file listed in ``SHA256SUMS`` matches its checksum."""
    sums = Path(directory) / "SHA256SUMS"
    try:
        listed = download.parse_checksum_lines(sums.read_text(encoding="utf-8"), where=str(sums))
    except download.DownloadError as error:
        raise FluxnetError(str(error)) from None
    for name, checksum in listed.items():
        algorithm, expected = checksum.split(":")
        digest = hashlib.new(algorithm, (sums.parent / name).read_bytes()).hexdigest()
        if digest != expected:
            raise FluxnetError(
                f"{sums.parent / name}: {algorithm} {digest} differs from SHA256SUMS ({expected})"
            )


def read_monthly(path: Path | str = DATA / MONTHLY) -> xr.Dataset:
    with xr.open_dataset(path) as data:
        return data.load()


def pft_one_hot(igbp: Sequence[str]) -> dict[str, np.ndarray]:
    """The study's 10 PFTs (landcover.PFT_FROM_IGBP) as 0/1 columns from IGBP abbreviations."""
    unknown = sorted(set(igbp) - set(IGBP_CODES))
    if unknown:
        raise FluxnetError(
            f"site table: IGBP classes {unknown} are unknown; known: {sorted(IGBP_CODES)}"
        )
    codes = np.array([IGBP_CODES[c] for c in igbp])
    return {
        pft: np.isin(codes, landcover.PFT_FROM_IGBP[pft]).astype(np.float64) for pft in contract.PFT
    }


def record_months(monthly: xr.Dataset) -> np.ndarray:
    """Index into ``time`` of each site's record months, (site, month); records must be equally long."""
    rows = [np.flatnonzero(monthly.split.values[i] > 0) for i in range(monthly.sizes["site"])]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise FluxnetError(f"{MONTHLY}: site records differ in length ({sorted(lengths)} months)")
    for site, r in zip(monthly.site.values, rows):
        if np.any(np.diff(r) != 1):
            raise FluxnetError(f"{MONTHLY}: the record of {site} is not contiguous")
    return np.stack(rows)


def observed(
    monthly: xr.Dataset, name: str, index: np.ndarray, min_valid_fraction: float
) -> np.ndarray:
    """Monthly means of ``name`` on the records, (site, month); NaN where too few days were valid."""
    values = np.take_along_axis(monthly[name].values.astype(np.float64), index, axis=1)
    days = monthly.days_in_month.values[index]
    n_valid = np.take_along_axis(monthly[f"{name}_n_valid"].values, index, axis=1)
    return np.where(n_valid >= np.ceil(min_valid_fraction * days), values, np.nan)


def uncertainty_weight(values: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """Relative inverse-variance weights (median 1 over observed months, clipped); 1 without uncertainty."""
    ok = np.isfinite(values) & np.isfinite(uncertainty) & (uncertainty > 0)
    if not ok.any():
        return np.ones_like(values)
    inverse = np.where(ok, 1.0 / np.where(ok, uncertainty, 1.0) ** 2, np.nan)
    weight = np.clip(inverse / np.nanmedian(inverse), *WEIGHT_RANGE)
    return np.where(ok, weight, 1.0)


def site_calendars(monthly: xr.Dataset, index: np.ndarray) -> dict[str, np.ndarray]:
    """Per site and record month: days since 2000-01-01, day of year and days in the month (mid-month means)."""
    out = {"days": [], "doy": [], "days_in_month": []}
    for row in index:
        years = pd.DatetimeIndex(monthly.time.values[row]).year
        calendar = driver.monthly_calendar(int(years[0]), int(years[-1]))
        if len(calendar) != len(row):
            raise FluxnetError(
                f"{MONTHLY}: a record of {len(row)} months does not span whole years"
            )
        for key, values in out.items():
            values.append(calendar[key].to_numpy())
    return {k: np.stack(v) for k, v in out.items()}


def assemble(
    monthly: xr.Dataset, min_valid_fraction: float, delta_t: str | int = "calendar"
) -> xr.Dataset:
    """The driver of the 16 sites (see the module docstring)."""
    index = record_months(monthly)
    names = [str(s) for s in monthly.site.values]
    take = lambda name: np.take_along_axis(monthly[name].values.astype(np.float64), index, axis=1)
    forcing = {f: take(v) for f, v in FORCING.items()} | {
        "co2": take("co2"),
        "burned_area": np.zeros(index.shape),
    }
    driver.check_finite({k: v.T for k, v in forcing.items()}, "forcing variable")
    calendar = site_calendars(monthly, index)
    step = (
        calendar["days_in_month"] if delta_t == "calendar" else np.full(index.shape, float(delta_t))
    )
    predictors = pft_one_hot([str(c) for c in monthly.igbp.values])
    predictors |= {
        "MAT": monthly.mean_annual_temp.values,
        "MAP": monthly.mean_annual_precip.values,
        "elevation": monthly.elevation.values,
    }
    columns = contract.PFT + contract.CLIM
    matrix = np.stack([predictors[p] for p in columns], axis=-1)
    targets = {
        t: observed(monthly, v, index, min_valid_fraction) for t, v in MONTHLY_TARGETS.items()
    }
    weights = {
        t: uncertainty_weight(targets[t], take(f"{v}_unc")) for t, v in MONTHLY_TARGETS.items()
    }
    split = np.take_along_axis(monthly.split.values, index, axis=1)
    dates = monthly.time.values[index]
    cell = np.arange(len(names))
    units = {p: "1" for p in contract.PFT} | {"MAT": "degC", "MAP": "mm yr-1", "elevation": "m"}
    return xr.Dataset(
        {
            "lat": (
                "cell",
                monthly.lat.values,
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "lon": (
                "cell",
                monthly.lon.values,
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
            "patch": (
                "cell",
                cell.astype(np.int32),
                {"long_name": "patch number (one site per patch)"},
            ),
            "test": (
                "cell",
                np.zeros(len(names), bool),
                {"long_name": "cell lies in a fixed test patch (none: the test split is temporal)"},
            ),
            "patch_test": (
                "patch_id",
                np.zeros(len(names), bool),
                {"long_name": "patch is a test patch"},
            ),
            "test_month": (
                ("cell", "time"),
                split == 2,
                {"long_name": "month is in the site's test years (kept out of training)"},
            ),
            "date": (("cell", "time"), dates, {"long_name": "first day of the month"}),
            **{
                p: (
                    "cell",
                    predictors[p].astype(np.float32),
                    {"long_name": f"predictor {p}", "units": units[p]},
                )
                for p in columns
            },
            "predictor_mean": (
                "predictor",
                matrix.mean(axis=0),
                {"long_name": "mean over the sites"},
            ),
            "predictor_std": (
                "predictor",
                matrix.std(axis=0),
                {"long_name": "population std over the sites"},
            ),
            **{
                f: (("cell", "time"), v.astype(np.float32), {"units": u})
                for (f, v), u in zip(
                    forcing.items(), ("degC", "degC", "MJ m-2 d-1", "hPa", "mm d-1", "ppm", "1")
                )
            },
            "days": (
                ("cell", "time"),
                calendar["days"],
                {"units": "d", "long_name": "mid-step days since 2000-01-01"},
            ),
            "doy": (
                ("cell", "time"),
                calendar["doy"],
                {"units": "d", "long_name": "mean day of year of the step"},
            ),
            "delta_t": (("cell", "time"), step, {"units": "d", "long_name": "step length"}),
            "t_mean": (
                "cell",
                monthly.mean_annual_temp.values,
                {"units": "degC", "long_name": "long-term mean air temperature (site table)"},
            ),
            "p_mean": (
                "cell",
                monthly.mean_annual_precip.values / contract.DAYS_PER_YEAR_MAP,
                {"units": "mm d-1", "long_name": "long-term mean precipitation (site table)"},
            ),
            **{
                t: (
                    ("cell", "time"),
                    v.astype(np.float32),
                    {"units": monthly[MONTHLY_TARGETS[t]].attrs.get("units", "")},
                )
                for t, v in targets.items()
                if t != "nbe"
            },
            "nbe": (
                ("patch_id", "time"),
                targets["nbe"].astype(np.float32),
                {
                    "units": monthly.nbe.attrs.get("units", ""),
                    "long_name": "tower NEE of the patch's site",
                },
            ),
            **{
                f"{t}_weight": (
                    ("cell", "time"),
                    w.astype(np.float32),
                    {"long_name": f"relative inverse-variance weight of {t}"},
                )
                for t, w in weights.items()
            },
            "ec_weight": (
                "cell",
                np.ones(len(names), np.float32),
                {"long_name": "representativeness weight of the site in the cell"},
            ),
        },
        coords={
            "cell": cell,
            "time": np.arange(index.shape[1]),
            "site": ("cell", names),
            "cluster": ("cell", [str(c) for c in monthly.cluster.values]),
            "igbp": ("cell", [str(c) for c in monthly.igbp.values]),
            "predictor": list(columns),
            "patch_id": cell.astype(np.int32),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "hybridland model driver, FLUXNET16 sites",
            "grid": GRID,
            "min_valid_fraction": min_valid_fraction,
            "time_axis": "month of each site's record (0 = its first January)",
        },
    )


def assemble_driver_file(
    source: Path | str, destination: Path | str, min_valid_fraction: float, delta_t: str | int
) -> None:
    """Entry point of the fluxnet_driver rule: verify the packaged data, assemble, write atomically."""
    verify_checksums(Path(source).parent)
    result = assemble(read_monthly(source), min_valid_fraction, delta_t)
    logger.info(
        "driver %s: %d sites x %d months, %d test months per site",
        GRID,
        result.sizes["cell"],
        result.sizes["time"],
        int(result.test_month[0].sum()),
    )
    write_netcdf(result, destination)


# ---- folds


def folds(drv: xr.Dataset, scheme: str) -> dict[str, np.ndarray]:
    """Fold name -> held-out cells (bool, cell): one fold per climate cluster or per site."""
    if scheme == "leave_cluster_out":
        labels = drv.cluster.values
    elif scheme == "leave_site_out":
        labels = drv.site.values
    else:
        raise FluxnetError(f"fluxnet.schemes: unknown scheme {scheme!r}; known: {list(SCHEMES)}")
    return {str(label): labels == label for label in dict.fromkeys(labels)}


def training_cells(held_out: np.ndarray) -> np.ndarray:
    """Cells a fold trains on; asserts that no held-out cell is among them."""
    train_cells = ~held_out
    assert not np.any(train_cells & held_out), "a held-out site is in the training cells"
    assert held_out.any() and train_cells.any(), (
        "a fold must hold out some sites and train on others"
    )
    return train_cells


# ---- cross-validated network training


class FoldRun(NamedTuple):
    """One (scheme, fold, member) of a setup."""

    scheme: str
    fold: str
    member: int
    held_out: np.ndarray  # (cell,) bool


def fold_runs(drv: xr.Dataset, schemes: Sequence[str], members: Sequence[int]) -> list[FoldRun]:
    return [FoldRun(s, f, m, h) for s in schemes for f, h in folds(drv, s).items() for m in members]


def training_runs(drv: xr.Dataset, setup: str, runs: Sequence[FoldRun]) -> list[train.TrainingRun]:
    """The runs as the training loop takes them: seeds labelled by fold, the fold's sites train, no dev."""
    patch_ids = drv.patch_id.values
    if not np.array_equal(drv.patch.values, patch_ids):
        raise FluxnetError("the FLUXNET driver must hold one site per patch, in cell order")
    return [
        train.TrainingRun(
            f"{setup}:{r.scheme}:{r.fold}",
            r.member,
            patch_ids[training_cells(r.held_out)],
            patch_ids[:0],
        )
        for r in runs
    ]


def train_folds(
    drv: xr.Dataset, setup: str, runs: Sequence[FoldRun], seed: int, options: train.TrainOptions
) -> tuple[list[network.Network], list[network.Standardizer], np.ndarray]:
    """Train every run with :func:`hybridland.training.train.train_runs`, all in one program.

    Returns nets, standardisers and final training losses. Features are not padded
    (FLUXNET trains one program per setup), and a run whose loss turns non-finite
    stops training and gets an infinite final loss.
    """
    trained = train.train_runs(
        drv,
        setup,
        training_runs(drv, setup, runs),
        seed,
        options,
        feature_pad=1,
        diverged="stop",
    )
    final = np.array([np.inf if t.diverged else t.history[-1][0] for t in trained])
    return [t.net for t in trained], [t.standardizer for t in trained], final


def kept_runs(runs: Sequence[FoldRun], final: np.ndarray, keep: int) -> list[int]:
    """Indices of the ``keep`` runs of each (scheme, fold) with the lowest final training loss."""
    kept = []
    for key in dict.fromkeys((r.scheme, r.fold) for r in runs):
        index = [i for i, r in enumerate(runs) if (r.scheme, r.fold) == key]
        ranked = sorted(index, key=lambda i: (final[i], runs[i].member))[:keep]
        if not np.isfinite(final[ranked]).any():
            raise FluxnetError(f"{key[0]} fold {key[1]}: every member diverged")
        kept += sorted(i for i in ranked if np.isfinite(final[i]))
    return kept


def target_series(sim: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Model counterparts of the targets from DALEC outputs, each (cell, time)."""
    return {t: np.asarray(targets.model_quantity(t, sim, None)).T for t in MONTHLY_TARGETS}


def simulate_targets(drv: xr.Dataset, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run DALEC993 on every site with per-site parameters; targets' model series (cell, time)."""
    sim = evaluate.simulate_cells(drv, params, outputs=("lai", "gpp", "ET", "nee", "nbe"))
    return target_series(sim)


def predict_heldout(
    drv: xr.Dataset,
    setup: str,
    runs: Sequence[FoldRun],
    nets: Sequence[network.Network],
    standardizers: Sequence[network.Standardizer],
    kept: Sequence[int],
    seed: int,
) -> xr.Dataset:
    """Ensemble-mean (over kept members) simulations and parameters of each site where it is held out, (scheme, cell, time)."""
    raw = train.raw_features(drv, setup, seed)
    schemes = list(dict.fromkeys(r.scheme for r in runs))
    shape = (len(schemes), drv.sizes["cell"])
    series = {t: np.zeros(shape + (drv.sizes["time"],)) for t in MONTHLY_TARGETS}
    params = {p: np.zeros(shape) for p in parameters.NAMES}
    count = np.zeros(shape)
    for i in kept:
        run = runs[i]
        z = jnp.asarray(standardizers[i].apply(raw), jnp.float32)
        p = {
            k: np.asarray(v)
            for k, v in network.physical_parameters(nets[i], z[:, :-1], z[:, -1]).items()
        }
        sim = simulate_targets(drv, p)
        s, h = schemes.index(run.scheme), run.held_out
        for t in MONTHLY_TARGETS:
            series[t][s, h] += sim[t][h]
        for k in parameters.NAMES:
            params[k][s, h] += p[k][h]
        count[s, h] += 1
    if np.any(count == 0):
        raise FluxnetError(f"{setup}: some sites have no held-out prediction")
    return xr.Dataset(
        {
            **{
                t: (
                    ("scheme", "cell", "time"),
                    v / count[..., None],
                    {"units": drv[t].attrs.get("units", "")},
                )
                for t, v in series.items()
            },
            **{
                k: (("scheme", "cell"), v / count, {"units": parameters.BY_NAME[k].units})
                for k, v in params.items()
            },
            "members": (
                ("scheme", "cell"),
                count.astype(np.int32),
                {"long_name": "kept members averaged"},
            ),
        },
        coords={
            "scheme": schemes,
            "cell": drv.cell.values,
            "site": ("cell", drv.site.values),
            "time": drv.time.values,
        },
        attrs={
            "setup": setup,
            "title": "held-out predictions: ensemble mean over kept members of the fold that holds the site out",
        },
    )


def crossval_files(
    driver_path: Path | str,
    setup: str,
    schemes: Sequence[str],
    members: Sequence[int],
    keep: int,
    seed: int,
    options: train.TrainOptions,
    destination: Path | str,
    report: Path | str,
) -> None:
    """Entry point of the fluxnet_crossval rule: train all folds of a setup, predict the held-out sites."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    runs = fold_runs(drv, schemes, members)
    logger.info("%s: %d runs (%s) in one program", setup, len(runs), ", ".join(schemes))
    nets, standardizers, final = train_folds(drv, setup, runs, seed, options)
    kept = kept_runs(runs, final, keep)
    write_netcdf(predict_heldout(drv, setup, runs, nets, standardizers, kept, seed), destination)
    rows = [
        {
            "scheme": r.scheme,
            "fold": r.fold,
            "member": r.member,
            "final_train_loss": float(final[i]),
            "kept": i in kept,
        }
        for i, r in enumerate(runs)
    ]
    with atomic_path(report) as tmp:
        tmp.write_text(json.dumps({"setup": setup, "runs": rows}, indent=1, allow_nan=True))


# ---- per-site calibration (the upper bound)


@dataclass(frozen=True)
class CalibrationOptions:
    steps: int
    learning_rate: float

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> CalibrationOptions:
        return cls(int(mapping["steps"]), float(mapping["learning_rate"]))


def raw_to_physical(raw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Physical parameters from raw per-group vectors (..., n_group) through the bounded transform."""
    return parameters.merge_groups(
        {g: parameters.to_physical(raw[g], g) for g in parameters.GROUPS}
    )


def make_calibration(config: loss.LossConfig, optimiser: optax.GradientTransformation, steps: int):
    """Jitted ``steps`` full-batch Adam steps on every site at once; sites are independent (vmapped)."""

    def site_loss(raw, met, climate, observations):
        params = {k: v[None] for k, v in raw_to_physical(raw).items()}  # one slot
        return loss.total_loss(params, met, climate, observations, config)

    batched = jax.vmap(
        site_loss, in_axes=(0, 1, 0, 1)
    )  # met/obs (time, site, slot), climate (site, slot)

    def run(raw, opt_state, met, climate, observations):
        def step(carry, _):
            raw, opt_state = carry
            value, grads = jax.value_and_grad(
                lambda r: jnp.sum(batched(r, met, climate, observations))
            )(raw)
            updates, opt_state = optimiser.update(grads, opt_state, raw)
            return (optax.apply_updates(raw, updates), opt_state), value

        (raw, opt_state), values = jax.lax.scan(step, (raw, opt_state), None, length=steps)
        return raw, opt_state, values, batched(raw, met, climate, observations)

    return jax.jit(run)


def calibrate_sites(
    drv: xr.Dataset, config: loss.LossConfig, options: CalibrationOptions, chunk: int = 100
) -> tuple[dict[str, np.ndarray], np.ndarray, list[float]]:
    """One parameter vector per site on its training months (raw start 0, the geometric mid-range).

    Returns physical parameters (cell,), the final loss per site and the summed loss every ``chunk`` steps.
    """
    shared = train.pack(drv, drv.patch_id.values)
    loss.check_observations(shared.observations, config)
    n = drv.sizes["cell"]
    raw = {
        g: jnp.zeros((n, len(parameters.group_names(g))), jnp.float32) for g in parameters.GROUPS
    }
    optimiser = optax.adam(options.learning_rate)
    opt_state = optimiser.init(raw)
    history = []
    done = 0
    while done < options.steps:
        steps = min(chunk, options.steps - done)
        raw, opt_state, values, per_site = make_calibration(config, optimiser, steps)(
            raw, opt_state, shared.met, shared.climate, shared.observations
        )
        done += steps
        history.append(float(values[-1]))
        logger.info(
            "per-site calibration step %d/%d: summed loss %.5g", done, options.steps, history[-1]
        )
    params = {k: np.asarray(v) for k, v in raw_to_physical(raw).items()}
    return params, np.asarray(per_site, np.float64), history


def calibrate_files(
    driver_path: Path | str,
    config: loss.LossConfig,
    options: CalibrationOptions,
    destination: Path | str,
) -> None:
    """Entry point of the fluxnet_calibrate rule: calibrate every site, simulate its record."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    params, final, history = calibrate_sites(drv, config, options)
    bad = [str(s) for s, v in zip(drv.site.values, final) if not np.isfinite(v)]
    if bad:
        raise FluxnetError(f"per-site calibration: loss not finite at sites {bad}")
    sim = simulate_targets(drv, params)
    result = xr.Dataset(
        {
            **{
                t: (("scheme", "cell", "time"), v[None], {"units": drv[t].attrs.get("units", "")})
                for t, v in sim.items()
            },
            **{
                k: (("scheme", "cell"), v[None], {"units": parameters.BY_NAME[k].units})
                for k, v in params.items()
            },
            "final_loss": ("cell", final),
            "loss_history": ("chunk", np.asarray(history)),
        },
        coords={
            "scheme": [CALIBRATION],
            "cell": drv.cell.values,
            "site": ("cell", drv.site.values),
            "time": drv.time.values,
        },
        attrs={
            "setup": CALIBRATION_SETUP,
            "steps": options.steps,
            "learning_rate": options.learning_rate,
        },
    )
    write_netcdf(result, destination)


# ---- evaluation


def site_scores(obs: np.ndarray, sim: np.ndarray) -> dict[str, float]:
    """NSE, Pearson r and RMSE of one site's monthly series over finite pairs."""
    return {
        "nse": evaluate.r2_score(obs, sim),
        "r": evaluate.pearson_r(obs, sim),
        "rmse": evaluate.rmse(obs, sim),
    }


def test_observations(drv: xr.Dataset) -> dict[str, np.ndarray]:
    """Observed targets on test months only, (cell, time); NaN elsewhere."""
    test = drv.test_month.values
    return {t: np.where(test, drv[t].values, np.nan) for t in MONTHLY_TARGETS}


def heldout_table(drv: xr.Dataset, predictions: Sequence[xr.Dataset]) -> pd.DataFrame:
    """Per scheme, setup, site and target: NSE, r and RMSE on the site's test months."""
    obs = test_observations(drv)
    rows = []
    for pred in predictions:
        for scheme in pred.scheme.values:
            for c, site in enumerate(drv.site.values):
                for t in MONTHLY_TARGETS:
                    scores = site_scores(obs[t][c], pred[t].sel(scheme=scheme).values[c])
                    rows.append(
                        {
                            "scheme": str(scheme),
                            "setup": pred.attrs["setup"],
                            "site": str(site),
                            "variable": t,
                            **scores,
                        }
                    )
    return pd.DataFrame(rows, columns=list(HELDOUT_COLUMNS))


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median over sites of NSE, r and RMSE per scheme, setup and variable (sites with a finite NSE counted)."""
    grouped = table.groupby(["scheme", "setup", "variable"], sort=False)
    out = grouped[["nse", "r", "rmse"]].median().add_prefix("median_").reset_index()
    out["sites"] = grouped["nse"].count().to_numpy()
    return out[list(MEDIAN_COLUMNS)]


def pooled_metrics(
    drv: xr.Dataset, predictions: Sequence[xr.Dataset], scheme: str = "leave_site_out"
) -> pd.DataFrame:
    """metrics.csv rows: test-month skill pooled over all held-out sites of ``scheme``, one ensemble row per setup and target."""
    obs = test_observations(drv)
    rows = []
    for pred in predictions:
        if scheme not in pred.scheme.values:
            continue
        for t in MONTHLY_TARGETS:
            o, s = obs[t], pred[t].sel(scheme=scheme).values
            n = int(np.sum(np.isfinite(o) & np.isfinite(s)))
            rows.append(
                {
                    "grid": GRID,
                    "setup": pred.attrs["setup"],
                    "member": "ensemble",
                    "variable": t,
                    "split": "test",
                    "metric": evaluate.POOLED,
                    "r2_score": evaluate.r2_score(o, s),
                    "explained_variance": evaluate.explained_variance(o, s),
                    "n": n,
                }
            )
    return pd.DataFrame(rows, columns=list(evaluate.METRIC_COLUMNS))


# Scores are written to six significant digits.
FLOAT_FORMAT = "%.6g"


def evaluate_files(
    driver_path: Path | str,
    crossval: Sequence[Path | str],
    calibration: Path | str,
    heldout: Path | str,
    median_table: Path | str,
    metrics: Path | str,
) -> None:
    """Entry point of the fluxnet_evaluate rule: held-out-site scores, their medians and metrics.csv."""
    with xr.open_dataset(driver_path) as data:
        drv = data.load()
    predictions = [xr.open_dataset(p).load() for p in crossval]
    with xr.open_dataset(calibration) as data:
        upper = data.load()
    table = heldout_table(drv, predictions + [upper])
    write_csv(table, heldout, FLOAT_FORMAT)
    write_csv(medians(table), median_table, FLOAT_FORMAT)
    write_csv(pooled_metrics(drv, predictions), metrics, FLOAT_FORMAT)
    logger.info("scored %d (scheme, setup, site, variable) rows", len(table))


# ---- figure


def figure(median_table: pd.DataFrame, table: pd.DataFrame):
    """Held-out NSE per setup and scheme (site values and medians), per-site calibration as the reference line."""
    from hybridland.analysis import plots

    fig, axes = plots.new_figure(1, len(MONTHLY_TARGETS), panel=(3.0, 3.4), sharey=True)
    networks = table[table.scheme != CALIBRATION]
    setups = list(dict.fromkeys(networks.setup))
    colours = {"leave_cluster_out": "tab:orange", "leave_site_out": "tab:blue"}
    for ax, target in zip(axes[0], MONTHLY_TARGETS):
        for k, scheme in enumerate(SCHEMES):
            for j, setup in enumerate(setups):
                x = j + (k - 0.5) * 0.3
                rows = networks[
                    (networks.scheme == scheme)
                    & (networks.setup == setup)
                    & (networks.variable == target)
                ]
                ax.scatter(
                    np.full(len(rows), x),
                    rows.nse.clip(lower=-1.0),
                    s=6,
                    color=colours[scheme],
                    alpha=0.35,
                )
                med = median_table[
                    (median_table.scheme == scheme)
                    & (median_table.setup == setup)
                    & (median_table.variable == target)
                ]
                ax.scatter(
                    [x],
                    med.median_nse.clip(lower=-1.0),
                    marker="D",
                    s=28,
                    color=colours[scheme],
                    label=scheme.replace("_", " ") if j == 0 else None,
                )
        upper = median_table[
            (median_table.scheme == CALIBRATION) & (median_table.variable == target)
        ]
        ax.axhline(
            float(upper.median_nse.iloc[0]),
            color="k",
            ls="--",
            lw=1,
            label="per-site calibration (median)",
        )
        ax.axhline(0.0, color="0.7", lw=0.8)
        ax.set_xticks(range(len(setups)), setups, rotation=45, ha="right", fontsize="small")
        ax.set_title(target)
        ax.set_ylim(-1.05, 1.0)
    axes[0, 0].set_ylabel("held-out NSE, test years (clipped at -1)")
    axes[0, 0].legend(fontsize="x-small", loc="lower left")
    return fig


def figure_files(heldout: Path | str, median_table: Path | str, stem: Path | str) -> None:
    """Entry point of the fluxnet_figure rule: PNG and PDF of :func:`figure`."""
    from hybridland.analysis import plots

    plots.save_figure(figure(pd.read_csv(median_table), pd.read_csv(heldout)), stem)
