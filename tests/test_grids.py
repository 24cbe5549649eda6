"""Tests for hybridland.data.grids: edge/centre conventions, the UCRB window, areas, CF output."""

import dataclasses
import math

import numpy as np
import pytest

from hybridland.data import grids
from hybridland.data.grids import EARTH_RADIUS_M, UCRB_BOX, Box, Grid


def is_multiple(values: np.ndarray, step: float) -> bool:
    return bool(np.allclose(values / step, np.round(values / step), rtol=0, atol=1e-9))


@pytest.fixture
def quarter() -> Grid:
    return grids.standard_grid("0p25deg")


@pytest.fixture
def eighth() -> Grid:
    return grids.standard_grid("0p125deg")


def test_quarter_degree_edges_on_multiples_of_a_quarter(quarter):
    assert is_multiple(quarter.lat_edges, 0.25)
    assert is_multiple(quarter.lon_edges, 0.25)
    assert is_multiple(np.asarray(quarter.lat) - 0.125, 0.25)
    assert quarter.lat[0] == 36.125


def test_nldas_eighth_degree_centres_at_x_0625(eighth):
    assert is_multiple(eighth.lat_edges, 0.125)
    assert is_multiple(eighth.lon_edges, 0.125)
    assert is_multiple(np.asarray(eighth.lat) - 0.0625, 0.125)
    assert is_multiple(np.asarray(eighth.lon) - 0.0625, 0.125)
    assert eighth.lat[0] == 36.0625
    assert eighth.lon[0] == -112.1875


def test_ucrb_window_is_54_by_63_on_the_nldas_grid(eighth):
    assert eighth.shape == (54, 63)
    assert eighth.box == UCRB_BOX


def test_quarter_grid_of_ucrb_has_half_the_cells_per_side(eighth, quarter):
    # 63 is odd: the quarter-degree box snaps outward to 32 columns (ceil of 63 / 2).
    assert quarter.shape == (eighth.shape[0] // 2, math.ceil(eighth.shape[1] / 2)) == (27, 32)
    assert quarter.box == Box(west=-112.25, east=-104.25, south=36.0, north=42.75)


@pytest.mark.parametrize("name", ["0p25deg", "0p125deg"])
def test_bounds_are_contiguous_and_hold_their_centres(name):
    grid = grids.standard_grid(name)
    for centres, bounds in ((grid.lat, grid.lat_bounds), (grid.lon, grid.lon_bounds)):
        c, b = np.asarray(centres), np.asarray(bounds)
        assert np.all(np.diff(c) > 0)
        np.testing.assert_array_equal(b[1:, 0], b[:-1, 1])
        np.testing.assert_allclose(c, b.mean(axis=1), rtol=0, atol=1e-12)


def test_box_is_snapped_outward_to_whole_cells():
    grid = Grid.regular("g", 0.25, -109.9, -107.1, 37.01, 38.99, anchor=0.0)
    assert grid.box == Box(-110.0, -107.0, 37.0, 39.0)
    assert grid.shape == (8, 12)


def test_box_on_cell_edges_is_not_widened():
    grid = Grid.regular("g", 0.125, -109.0, -108.0, 38.0, 38.5, anchor=0.0)
    assert grid.shape == (4, 8)


def test_anchor_shifts_the_edges():
    grid = Grid.regular("g", 1.0, -109.0, -107.0, 38.0, 40.0, anchor=0.5)
    assert grid.lat_edges[0] == 37.5
    assert grid.shape == (3, 3)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (Box(-108.0, -108.0, 38.0, 39.0), r"east \(-108.0\) must exceed west \(-108.0\)"),
        (Box(-107.0, -108.0, 38.0, 39.0), r"east \(-108.0\) must exceed west \(-107.0\)"),
        (Box(-109.0, -108.0, 39.0, 38.0), r"north \(38.0\) must exceed south \(39.0\)"),
        (Box(-109.0, -108.0, 38.0, 91.0), r"north \(91.0\) must lie in"),
        (Box(-109.0, -108.0, math.nan, 39.0), r"south is not a finite number"),
    ],
)
def test_empty_or_inverted_box_names_the_bad_bound(box, message):
    with pytest.raises(ValueError, match=message):
        Grid.regular("g", 0.25, *box, anchor=0.0)


def test_cell_areas_follow_the_spherical_band_formula(quarter):
    area = quarter.cell_area()
    south, north = np.deg2rad(quarter.lat_bounds[0])
    expected = EARTH_RADIUS_M**2 * np.deg2rad(0.25) * (np.sin(north) - np.sin(south))
    assert area.shape == quarter.shape
    assert area[0, 0] == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(area, area[:, :1] * np.ones_like(area), rtol=1e-13)
    assert np.all(np.diff(area[:, 0]) < 0)  # cells shrink northwards


def test_global_areas_sum_to_the_sphere():
    world = Grid.regular("world", 0.25, -180.0, 180.0, -90.0, 90.0, anchor=0.0)
    assert world.shape == (720, 1440)
    assert world.cell_area().sum() == pytest.approx(4 * math.pi * EARTH_RADIUS_M**2, rel=1e-12)


def test_to_dataset_is_cf(eighth):
    ds = eighth.to_dataset()
    assert ds.attrs["grid"] == "0p125deg"
    assert ds.lat.attrs["bounds"] == "lat_bounds" and "lat_bounds" in ds
    assert ds.lon.attrs["bounds"] == "lon_bounds" and "lon_bounds" in ds
    assert ds.lat.attrs["units"] == "degrees_north" and ds.lat.attrs["standard_name"] == "latitude"
    assert ds.lon.attrs["units"] == "degrees_east" and ds.lon.attrs["standard_name"] == "longitude"
    assert ds.lat_bounds.dims == ("lat", "bnds") and ds.lat_bounds.shape == (54, 2)
    assert ds.cell_area.attrs["units"] == "m2"
    assert bool((ds.lat.diff("lat") > 0).all())


def test_from_config_matches_regular():
    config = {
        "name": "0p25deg",
        "resolution": 0.25,
        "box": {"west": -112.25, "east": -104.375, "south": 36.0, "north": 42.75},
    }
    assert Grid.from_config(config) == grids.standard_grid("0p25deg")
    without_resolution = {k: v for k, v in config.items() if k != "resolution"}
    assert Grid.from_config(without_resolution) == grids.standard_grid("0p25deg")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "0p25deg", "resolution": 0.125, "box": dict(UCRB_BOX._asdict())}, "contradicts"),
        ({"name": "x", "box": dict(UCRB_BOX._asdict())}, "'resolution' is required"),
        ({"name": "0p25deg", "box": {"west": -110.0}}, r"box lacks \['east', 'north', 'south'\]"),
        (
            {"name": "0p25deg", "box": dict(UCRB_BOX._asdict()), "res": 1},
            r"unknown key\(s\) \['res'\]",
        ),
    ],
)
def test_from_config_rejects_bad_config(config, message):
    with pytest.raises(ValueError, match=message):
        Grid.from_config(config)


def test_grid_is_frozen_and_hashable(quarter):
    with pytest.raises(dataclasses.FrozenInstanceError):
        quarter.name = "other"  # type: ignore[misc]
    assert hash(quarter) == hash(grids.standard_grid("0p25deg"))


def test_non_contiguous_bounds_are_rejected():
    with pytest.raises(ValueError, match="lon_bounds are not contiguous between cells 0 and 1"):
        Grid("bad", (0.5,), (0.5, 1.75), ((0.0, 1.0),), ((0.0, 1.0), (1.5, 2.0)))


def test_from_centres_puts_bounds_halfway():
    grid = Grid.from_centres("s", [10.0, 11.0, 12.0], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(grid.lat_edges, [9.5, 10.5, 11.5, 12.5])
    np.testing.assert_allclose(grid.lon_edges, [0.25, 0.75, 1.25, 1.75])


def test_unknown_standard_grid_name():
    with pytest.raises(ValueError, match="grid name '1deg' is not one of"):
        grids.standard_grid("1deg")
