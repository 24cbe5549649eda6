"""Bad inputs and faults meet one clear sentence naming the file, key or variable.

Every case of docs/refusals.md has one small test here: config files and values, damaged
or implausible data files, checkpoints of another run, the benchmark's arguments,
temporaries left by a killed job.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from drivers import tiny_driver
from test_driver import GRID, OPTIONS, PERIOD, inputs, regridded

from hybridland import cli, io
from hybridland import config as study_config
from hybridland.data import driver, validate

ROOT = Path(__file__).resolve().parents[1]


def default() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def changed(**sections) -> dict:
    config = default()
    for key, value in sections.items():
        config[key] = config[key] | value if isinstance(value, dict) else value
    return config


@functools.cache
def _tiny():
    return tiny_driver()


def tiny():
    """The small driver of tests/drivers.py (made once: it runs the model), a copy to change."""
    return _tiny().copy(deep=True)


def refused(message: str):
    return pytest.raises(study_config.ConfigError, match=re.escape(message))


# ---- config files


def test_duplicate_key_names_key_file_and_line(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("training:\n  epochs: 5\n  members: 2\n  epochs: 50\n")
    with refused(
        f"{overlay}, line 4: key 'epochs' is given twice in one section (first on line 2), "
        "and YAML would silently keep the last; keep one"
    ):
        study_config.check_files([ROOT / "config/config.yaml", overlay])


def test_malformed_yaml_names_file_and_line(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("driver:\n  patch_deg: [1.0, 1.0\nseed: 3\n")
    with refused(
        f"{overlay}, line 3: not valid YAML (expected ',' or ']', but got ':'); correct it"
    ):
        study_config.load_yaml(overlay)


def test_missing_overlay_names_the_path(tmp_path):
    with refused(
        f"config file {tmp_path / 'nope.yaml'} does not exist; check the path given to --configfile"
    ):
        study_config.check_files([tmp_path / "nope.yaml"])


def test_overlay_that_is_not_a_mapping(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("- seed\n")
    with refused(f"{overlay}: a config file must be a mapping of keys to values"):
        study_config.load_yaml(overlay)


def test_shipped_config_files_read_strictly():
    paths = [ROOT / "config/config.yaml", *sorted((ROOT / "config/studies").glob("*.yaml"))]
    study_config.check_files(paths)


# ---- config values


@pytest.mark.parametrize(
    "config, message",
    [
        (
            changed(region={"west": -107.9, "east": -107.8}),
            (
                "region.west (-107.9) to region.east (-107.8) covers 1 0p25deg cell (0.25 deg); "
                "at least 2 are needed in each direction: widen the region"
            ),
        ),
        (
            changed(region={"south": 38.0, "north": 38.125}, grids=["0p125deg"]),
            (
                "region.south (38.0) to region.north (38.125) covers 1 0p125deg cell (0.125 deg); "
                "at least 2 are needed in each direction: widen the region"
            ),
        ),
        (
            changed(region={"west": -108.0, "east": -106.0, "south": 38.0, "north": 39.0}),
            (
                "region holds 2 patches of driver.patch_deg [1.0, 1.0] on 0p25deg; "
                "driver.test_fraction takes 1 and training.dev_fraction 1 of them, which leaves "
                "none to train on; enlarge the region or lower driver.patch_deg"
            ),
        ),
        # cases the checks already refused: they must keep doing so
        (
            changed(driver={"patch_deg": [1.0, 0.3]}),
            "driver.patch_deg (lon 0.3) is not a whole number of 0p25deg cells (0.25 deg)",
        ),
        (
            changed(region={"west": -100.0, "east": -110.0}),
            "region.west (-100.0) must be less than region.east (-110.0)",
        ),
        (
            changed(period={"first_year": 2015, "last_year": 2012}),
            "period.first_year (2015) is after period.last_year (2012)",
        ),
        (changed(twin={"truth_resolution": 0.03}), "twin.truth_resolution (0.03) must divide 0.1"),
        (
            changed(training={"keep_best": 4}),
            "training.keep_best (4) exceeds training.members (3)",
        ),
        (
            changed(grids=["0p25deg", "sites"]),
            "grids lists 'sites', which only a fluxnet16 study has (source is 'twin')",
        ),
        (
            changed(setups={"per_grid": {"0p25deg": ["PFT+SOIL+CLIM"]}}),
            "setups.per_grid.0p25deg lists ['PFT+SOIL+CLIM'], which are not setups of the groups",
        ),
        (
            changed(analyses={"grids": ["0p125deg"]}),
            "analyses.grids names '0p125deg', but setups.per_grid does not train",
        ),
        (
            changed(identifiability={"keep_best": 7}),
            "identifiability.keep_best (7) exceeds identifiability.members (6)",
        ),
        (
            {**default(), "datasets": {"forcing": default()["datasets"]["forcing"]}},
            "datasets lacks ['landcover', 'soil', 'elevation', 'canopy_height', 'forest_age']",
        ),
    ],
)
def test_config_values_the_run_cannot_use(config, message):
    with refused(message):
        study_config.check(config)


def test_schema_bounds_max_infinite_share():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as schema_validate

    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    config = changed(driver={"max_infinite_share": 1.5})
    with pytest.raises(WorkflowError, match=re.escape("1.5 is greater than the maximum of 1")):
        schema_validate(config, schema)
    config = default()
    schema_validate(config, schema)
    assert config["driver"]["max_infinite_share"] == validate.DEFAULT_MAX_INFINITE_SHARE


# ---- data files


def write_products(root: Path, data: dict) -> tuple[list[Path], Path, Path]:
    """The regridded products, the CO2 table and the site file as the workflow writes them."""
    co2, sites = inputs()
    paths = []
    for name, dataset in data.items():
        paths.append(root / f"{name}.nc")
        dataset.to_netcdf(paths[-1])
    co2.to_csv(root / "co2.csv", index=False)
    sites.to_netcdf(root / "sites.nc")
    return paths, root / "co2.csv", root / "sites.nc"


def assemble_files(tmp_path: Path, data: dict, options=OPTIONS) -> Path:
    paths, co2, sites = write_products(tmp_path, data)
    destination = tmp_path / "driver" / "0p25deg.nc"
    driver.assemble_driver_file(paths, co2, sites, destination, GRID, options, PERIOD, seed=1)
    return destination


def test_fill_value_in_forcing_stops_assembly_naming_file_cell_and_time(tmp_path):
    data = regridded()
    data["forcing"]["precip"][0, 1, 2] = -9999.0
    data["forcing"]["precip"][5, 3, 3] = -9999.0
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            f"{tmp_path / 'forcing.nc'}: forcing 'precip' has 2 of 384 values outside its "
            "physical range [0, 1000] mm d-1 (first -9999 at time 2010-01-16, lat 38.375, "
            "lon -107.375); a fill value or wrong units? correct the input and rerun"
        ),
    ):
        assemble_files(tmp_path, data)
    assert not (tmp_path / "driver" / "0p25deg.nc").exists()


def test_fill_value_in_a_predictor_and_an_observation(tmp_path):
    data = regridded()
    data["soil"]["SAND"][2, 2] = -999.0
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            "regridded dataset 'soil': predictor 'SAND' has 1 of 16 values outside its physical "
            "range [0, 100] % (first -999 at lat 38.625, lon -107.375)"
        ),
    ):
        driver.assemble(data, *inputs(), GRID, OPTIONS, PERIOD, seed=1)
    data = regridded()
    data["lai"]["lai"][3, 0, 1] = 1e20
    with pytest.raises(
        driver.DriverError,
        match=re.escape("regridded dataset 'lai': observation 'lai' has 1 of 384 values outside"),
    ):
        driver.assemble(data, *inputs(), GRID, OPTIONS, PERIOD, seed=1)


def test_declared_fill_value_is_a_gap_not_data():
    data = regridded()
    data["lai"]["lai"][3, 0, 1] = -9999.0
    data["lai"]["lai"].attrs["_FillValue"] = -9999.0
    assembled = driver.assemble(data, *inputs(), GRID, OPTIONS, PERIOD, seed=1)
    cell = int(np.flatnonzero((assembled.cell_y.values == 0) & (assembled.cell_x.values == 1))[0])
    assert np.isnan(assembled.lai.values[cell, 3])
    assert np.isfinite(assembled.lai.values).sum() == assembled.lai.size - 1


def test_infinite_observations_are_counted_then_refused_above_the_share(caplog):
    data = regridded()
    data["sif"]["sif"][4, 2, 1] = np.inf
    lenient = dataclasses.replace(OPTIONS, max_infinite_share=0.01)
    with caplog.at_level(logging.WARNING):
        assembled = driver.assemble(data, *inputs(), GRID, lenient, PERIOD, seed=1)
    assert (
        "regridded dataset 'sif': observation 'sif' is infinite in 1 of 384 values "
        "(0.260%, first at time 2010-05-16, lat 38.625, lon -107.625); they count as gaps"
    ) in caplog.text
    assert np.isinf(assembled.sif.values).sum() == 0 and np.isnan(assembled.sif.values).sum() == 1
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            "regridded dataset 'sif': observation 'sif' is infinite in 1 of 384 values (0.260%, "
            "first at time 2010-05-16, lat 38.625, lon -107.625), more than "
            "driver.max_infinite_share (0.100%) allows; correct the product or raise "
            "driver.max_infinite_share"
        ),
    ):
        driver.assemble(data, *inputs(), GRID, OPTIONS, PERIOD, seed=1)  # default share


def test_too_few_patches_with_land(tmp_path):
    data = regridded()
    land = np.zeros((4, 4))
    land[:2, :2] = 1.0  # one patch of land
    data["landcover"]["land_fraction"].values[:] = land
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            "1 patches have enough land cells and 1 of them are test patches; a member needs 2 "
            "more (one to train on, one for development): enlarge the region or lower "
            "driver.patch_deg, driver.min_patch_fraction or driver.land_threshold"
        ),
    ):
        driver.assemble(data, *inputs(), GRID, OPTIONS, PERIOD, seed=1)


def test_truncated_empty_and_missing_products_name_the_file(tmp_path):
    data = regridded()
    paths, co2, sites = write_products(tmp_path, data)
    forcing = tmp_path / "forcing.nc"
    forcing.write_bytes(forcing.read_bytes()[:2000])
    destination = tmp_path / "driver.nc"
    args = (co2, sites, destination, GRID, OPTIONS, PERIOD, 1)
    with pytest.raises(
        io.UnreadableFileError,
        match=re.escape(f"file {forcing} is truncated or corrupt; delete it and rerun"),
    ):
        driver.assemble_driver_file(paths, *args)
    forcing.write_bytes(b"")
    with pytest.raises(
        io.UnreadableFileError,
        match=re.escape(f"file {forcing} is empty (0 bytes); delete it and rerun"),
    ):
        driver.assemble_driver_file(paths, *args)
    data["forcing"].drop_vars(list(data["forcing"].data_vars)).to_netcdf(forcing)
    with pytest.raises(
        io.UnreadableFileError,
        match=re.escape(f"file {forcing} holds no variables; delete it and rerun"),
    ):
        driver.assemble_driver_file(paths, *args)
    data["forcing"].drop_vars("precip").to_netcdf(forcing)
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            f"regridded dataset 'forcing' lacks variable 'precip' (file {forcing}); "
            "delete the file and rerun"
        ),
    ):
        driver.assemble_driver_file(paths, *args)


@pytest.fixture
def driver_file(tmp_path) -> Path:
    path = tmp_path / "driver.nc"
    tiny().to_netcdf(path)
    return path


def test_nan_in_the_driver_is_named_on_every_read_before_training(driver_file):
    from hybridland.training import jobs, train

    broken = tiny()
    broken["t_max"][3, 7] = np.nan
    broken.to_netcdf(driver_file)
    message = re.escape(
        f"driver {driver_file}: forcing 't_max' is NaN or infinite in 1 of 576 values "
        "(first nan at cell 3, time 2010-08-16); it must be complete: correct the input and rerun"
    )
    with pytest.raises(driver.DriverError, match=message):
        driver.open_driver(driver_file)
    options = train.TrainOptions.from_config(
        {
            "epochs": 2,
            "learning_rate": 3e-3,
            "patches_per_step": 2,
            "dev_fraction": 0.2,
            "checkpoint_every": 1,
            "max_restarts": 2,
            "width": 8,
            "depth": 2,
        },
        {"reduction": "mean", "coarse_min_valid": 0.8, "weights": {"lai": 1.0}},
    )
    out = driver_file.parent / "member00"
    with pytest.raises(driver.DriverError, match=message):
        jobs.train_files(
            driver_file, [["PFT", 0]], 3, options, [out / "weights.npz"], [out / "member.json"]
        )


def test_fill_value_and_missing_variable_in_the_driver(driver_file):
    broken = tiny()
    broken["precip"][2, 0] = -9999.0
    broken.to_netcdf(driver_file)
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            f"driver {driver_file}: forcing 'precip' has 1 of 576 values outside its physical "
            "range [0, 1000] mm d-1 (first -9999 at cell 2, time 2010-01-16)"
        ),
    ):
        driver.open_driver(driver_file)
    tiny().drop_vars("precip").to_netcdf(driver_file)
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            f"driver {driver_file} lacks forcing variable 'precip'; delete the driver and rerun "
            "to rebuild it"
        ),
    ):
        driver.open_driver(driver_file)


def test_a_driver_needs_the_predictors_of_the_groups_it_declares(driver_file):
    # FLUXNET16's sites have PFT and CLIM predictors only, and say so.
    without_age = tiny().drop_vars(["forest_age", "canopy_height"])
    without_age.to_netcdf(driver_file)
    with pytest.raises(driver.DriverError, match="lacks predictor variable 'canopy_height'"):
        driver.open_driver(driver_file)
    without_age.assign_attrs(predictor_groups="PFT CLIM SOIL").to_netcdf(driver_file)
    assert "forest_age" not in driver.open_driver(driver_file)
    without_age.assign_attrs(predictor_groups="PFT TREES").to_netcdf(driver_file)
    with pytest.raises(
        driver.DriverError,
        match=re.escape(
            f"driver {driver_file}: attribute predictor_groups names unknown groups ['TREES']"
        ),
    ):
        driver.open_driver(driver_file)


def test_truncated_driver_names_the_file(driver_file):
    driver_file.write_bytes(driver_file.read_bytes()[:5000])
    with pytest.raises(
        io.UnreadableFileError,
        match=re.escape(f"file {driver_file} is truncated or corrupt; delete it and rerun"),
    ):
        driver.open_driver(driver_file)


def test_check_dalec_names_a_corrupt_reference(tmp_path, capsys, reference_path):
    bad = tmp_path / "cases.nc"
    bad.write_bytes(reference_path.read_bytes()[:3000])
    assert cli.main(["check-dalec", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"hybridland check-dalec: file {bad} is truncated or corrupt; delete it and rerun\n"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--months", "0"], "months must be at least 12 (the loss's annual terms and EDC need "),
        (["--cells", "0"], "cells must be at least 1, got 0"),
    ],
)
def test_bench_refuses_sizes_it_cannot_time(capsys, argv, message):
    assert cli.main(["bench", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"hybridland bench: {message}")


def test_a_killed_writers_temporary_is_deleted_on_the_next_write(tmp_path):
    destination = tmp_path / "truth.nc"
    stale = tmp_path / ".truth.nc.k1ll3d_x.tmp"
    stale.write_text("partial")
    other = tmp_path / ".other.nc.k1ll3d_x.tmp"  # another output's: left alone
    other.write_text("partial")
    with io.atomic_path(destination) as temporary:
        assert io.stale_temporaries(destination) == [temporary]
        temporary.write_text("done")
    assert destination.read_text() == "done"
    assert not stale.exists() and other.exists()


# ---- checkpoints


def options_for_checkpoints():
    from hybridland.training import train

    return train.TrainOptions.from_config(
        {
            "epochs": 2,
            "learning_rate": 3e-3,
            "patches_per_step": 2,
            "dev_fraction": 0.2,
            "checkpoint_every": 1,
            "max_restarts": 2,
            "width": 8,
            "depth": 2,
        },
        {
            "reduction": "mean",
            "coarse_min_valid": 0.8,
            "weights": {"lai": 1.0, "sif": 10.0, "et": 1.0, "nbe": 1.0, "violation": 1.0},
        },
    )


def test_checkpoint_of_another_split_is_not_resumed(tmp_path, caplog):
    from hybridland.training import checkpoints, jobs

    options, first = options_for_checkpoints(), tiny()
    checkpoint = tmp_path / "checkpoint.npz"
    jobs.train_members(first, [("PFT", 0)], 3, options, checkpoint)  # saves after epoch 1 of 2
    assert int(np.load(checkpoint)["epoch"][0]) == 1
    patch = first.patch.values
    moved = first.assign(  # the same cells, another test patch
        patch_test=("patch_id", first.patch_id.values == 0), test=("cell", patch == 0)
    )
    with caplog.at_level(logging.INFO):
        resumed = jobs.train_members(moved, [("PFT", 0)], 3, options, checkpoint)[0]
    assert (
        f"not resuming from {checkpoint}: it was written for a different driver; starting afresh"
        in caplog.text
    )
    assert "resuming from" not in caplog.text.replace("not resuming from", "")
    clean = jobs.train_members(moved, [("PFT", 0)], 3, options, tmp_path / "clean.npz")[0]
    assert resumed.info["history"] == clean.info["history"]
    for x, y in zip(
        checkpoints.flatten(resumed.net, "").values(), checkpoints.flatten(clean.net, "").values()
    ):
        np.testing.assert_array_equal(x, y)


def test_checkpoint_fingerprint_covers_driver_split_and_loss():
    from hybridland.model import loss
    from hybridland.training import jobs

    options, base = options_for_checkpoints(), tiny()
    reference = jobs.checkpoint_fingerprint(base, [("PFT", 0)], 3, options)
    other_loss = dataclasses.replace(options, loss=loss.LossConfig.from_mapping({"lai": 2.0}))
    variants = {
        "predictors": base.assign(SAND=base.SAND + 1.0),
        "forcing": base.assign(precip=base.precip * 1.01),
        "targets": base.assign(lai=base.lai.where(base.lai < 1.0)),
        "patches": base.assign(patch=("cell", np.roll(base.patch.values, 1))),
        "test flags": base.assign(patch_test=("patch_id", base.patch_id.values == 0)),
    }
    for what, variant in variants.items():
        assert jobs.checkpoint_fingerprint(variant, [("PFT", 0)], 3, options) != reference, what
    assert jobs.checkpoint_fingerprint(base, [("PFT", 0)], 3, other_loss) != reference
    for members in ([("CLIM", 0)], [("PFT", 1)], [("PFT", 0), ("CLIM", 0)]):
        assert jobs.checkpoint_fingerprint(base, members, 3, options) != reference, members
    assert jobs.checkpoint_fingerprint(base.copy(deep=True), [("PFT", 0)], 3, options) == reference


def test_each_training_job_has_its_own_checkpoint(driver_file, monkeypatch):
    from hybridland.training import jobs

    used = []
    monkeypatch.setattr(
        jobs,
        "train_members",
        lambda driver, members, seed, options, checkpoint: used.append(checkpoint) or [],
    )
    grid_dir = driver_file.parent / "train" / "0p25deg"

    def job(members):
        weights = [grid_dir / s / f"member{m:02d}" / "weights.npz" for s, m in members]
        infos = [w.with_name("member.json") for w in weights]
        jobs.train_files(driver_file, members, 3, None, weights, infos)

    job([["PFT", 0], ["PFT", 1], ["PFT", 2]])  # train_setup
    job([["PFT", 3], ["PFT", 4], ["PFT", 5]])  # train_extra_members
    job([["PFT", 4]])  # train_member
    job([["CLIM", 0], ["PFT", 0], ["CLIM", 1], ["PFT", 1]])  # a grid's job
    assert used == [
        grid_dir / "PFT" / "checkpoint.members00-01-02.npz",
        grid_dir / "PFT" / "checkpoint.members03-04-05.npz",
        grid_dir / "PFT" / "member04" / "checkpoint.npz",
        grid_dir / "checkpoint.grid.npz",
    ]
    with pytest.raises(ValueError, match=re.escape("2 members but 1 weights and 1 info files")):
        jobs.train_files(driver_file, [["PFT", 0], ["PFT", 1]], 3, None, ["w"], ["i"])


def test_unreadable_checkpoint_is_not_resumed(tmp_path, caplog):
    from hybridland.training import checkpoints, train

    checkpoint = tmp_path / "checkpoint.npz"
    checkpoint.write_bytes(b"PK\x03\x04 not a zip")
    fresh = train._resume(checkpoint, {"driver": "x"}, (None, None), 1)
    assert fresh.epoch == [0]
    assert f"not resuming from {checkpoint}: it is unreadable" in caplog.text
    checkpoints.save_npz(checkpoint, {"fingerprint": np.array("0123abcd-PFT-[0]-3-24-pad10")})
    assert train._resume(checkpoint, {"driver": "x"}, (None, None), 1).epoch == [0]
    assert (
        f"not resuming from {checkpoint}: it has no fingerprint by part; starting afresh"
        in caplog.text
    )


def test_the_documented_ranges_are_the_checked_ones():
    assert validate.ranges_markdown() in (ROOT / "docs/refusals.md").read_text()
