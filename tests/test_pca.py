"""PCA of the learned parameters: allocation fractions, SVD results, congruence, the entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from figures import assert_figure

from hybridland.analysis import identifiability, pca
from hybridland.model import parameters


def test_allocation_fractions_by_hand_use_flab():
    # f_a = 0.5; foliar = 0.5 * 0.2 = 0.1; labile = (1 - 0.5 - 0.1) * flab 0.5 = 0.2
    # (the SHAP script's f_fol in place of flab would give 0.4 * 0.2 = 0.08);
    # root = (0.4 - 0.2) * 0.5 = 0.1; wood = 1 - 0.5 - 0.1 - 0.2 - 0.1 = 0.1.
    got = pca.allocation_fractions({"f_gpp": 0.5, "f_fol": 0.2, "flab": 0.5, "f_root": 0.5})
    assert {k: float(v) for k, v in got.items()} == pytest.approx(
        {"autotrophic": 0.5, "foliar": 0.1, "labile": 0.2, "root": 0.1, "wood": 0.1}, abs=1e-15
    )


def test_allocation_fractions_sum_to_one_and_stay_in_unit_interval():
    rng = np.random.default_rng(0)
    params = {
        n: rng.uniform(parameters.BY_NAME[n].minimum, parameters.BY_NAME[n].maximum, 1000)
        for n in ("f_gpp", "f_fol", "flab", "f_root")
    }
    fractions = pca.allocation_fractions(params)
    np.testing.assert_allclose(sum(fractions.values()), 1.0, atol=1e-12)
    assert all(((f >= 0) & (f <= 1)).all() for f in fractions.values())


def random_parameters(rng, n):
    return {p.name: rng.uniform(p.minimum, p.maximum, n) for p in parameters.TABLE}


def test_derived_quantities_columns_and_q10():
    params = random_parameters(np.random.default_rng(1), 5)
    table = pca.derived_quantities(params)
    assert list(table.columns) == list(pca.QUANTITIES) and len(pca.QUANTITIES) == 12
    np.testing.assert_allclose(table["Q10"], np.exp(10 * params["Q10"]))
    np.testing.assert_allclose(table["leaf_onset_duration"], params["clab_release_period"])


def test_single_dominant_direction_is_recovered():
    # Five columns all driven by one latent t (signs +, -, +, +, -) plus 1 % noise,
    # at very different scales; after standardisation PC1 is (1, -1, 1, 1, -1)/sqrt(5).
    rng = np.random.default_rng(2)
    t = rng.normal(size=500)
    signs, scales = np.array([1, -1, 1, 1, -1]), np.array([1.0, 100.0, 0.01, 5.0, 3.0])
    table = pd.DataFrame(
        t[:, None] * signs * scales + 0.01 * scales * rng.normal(size=(500, 5)),
        columns=list("abcde"),
    )
    result = pca.pca(table)
    assert result.explained_variance_ratio["PC1"] > 0.999
    assert result.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    assert pca.tucker_congruence(result.loadings["PC1"], signs / np.sqrt(5)) > 0.9999
    assert result.loadings["PC1"].max() > 0  # sign convention: largest-magnitude loading positive
    assert abs(np.corrcoef(result.scores["PC1"], t)[0, 1]) > 0.999


def test_pca_ratios_sum_to_one_scores_reconstruct_and_are_uncorrelated():
    table = pca.derived_quantities(random_parameters(np.random.default_rng(3), 200))
    result = pca.pca(table)
    assert result.loadings.shape == (12, 12) and result.scores.shape == (200, 12)
    assert result.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.diff(result.explained_variance_ratio.to_numpy()) <= 1e-12).all()
    z = pca.standardise(table).to_numpy()
    np.testing.assert_allclose(
        result.scores.to_numpy() @ result.loadings.to_numpy().T, z, atol=1e-10
    )
    cov = np.cov(result.scores.to_numpy(), rowvar=False, bias=True)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-10)
    np.testing.assert_allclose(
        np.diag(cov) / np.trace(cov), result.explained_variance_ratio, atol=1e-12
    )
    # the five allocation fractions sum to 1, so one component carries no variance
    assert result.explained_variance_ratio.iloc[-1] < 1e-20


def test_constant_column_is_standardised_to_zero():
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [5.0, 5.0, 5.0]})
    np.testing.assert_array_equal(pca.standardise(table)["b"], 0.0)
    with pytest.raises(ValueError, match="non-finite values in columns \\['a'\\]"):
        pca.standardise(pd.DataFrame({"a": [1.0, np.nan], "b": [1.0, 2.0]}))


def test_tucker_congruence():
    a = np.array([1.0, 2.0, -0.5])
    assert pca.tucker_congruence(a, a) == pytest.approx(1.0)
    assert pca.tucker_congruence(a, -3 * a) == pytest.approx(1.0)
    assert pca.tucker_congruence([1.0, 0.0, 1.0], [1.0, 0.0, -1.0]) == pytest.approx(0.0)
    assert pca.tucker_congruence([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / np.sqrt(2))
    with pytest.raises(ValueError, match="shape"):
        pca.tucker_congruence([1.0, 2.0], [1.0, 2.0, 3.0])


def test_align_signs_and_congruence_table():
    truth = pd.DataFrame({"PC1": [0.6, 0.8], "PC2": [0.8, -0.6]}, index=["x", "y"])
    learned = pd.DataFrame({"PC1": [-0.6, -0.8], "PC2": [0.8, -0.6]}, index=["y", "x"])
    aligned = pca.align_signs(truth, learned)
    assert list(aligned.index) == ["x", "y"]
    assert (aligned["PC1"] > 0).all()
    table = pca.congruence(learned, truth)
    assert list(table.columns) == ["component", "congruence"]
    # learned PC1 is truth PC1 with its rows swapped: (0.6*0.8 + 0.8*0.6) / 1
    assert table["congruence"].tolist() == pytest.approx([0.96, 0.96])


def summary_rows(setup, identifiable):
    """A long identifiability table: every criterion's rows say ``identifiable`` (name -> bool)."""
    return pd.DataFrame(
        [
            (setup, n, 0.1, identifiable.get(n, True), criterion, np.nan, np.nan)
            for criterion in identifiability.CRITERIA
            for n in parameters.NAMES
        ],
        columns=list(identifiability.COLUMNS),
    )


def test_not_identifiable_flags_quantities_through_their_sources():
    table = pd.concat(
        [summary_rows("full", {"flab": False}), summary_rows("other", {"LCMA": False})]
    )
    # only the combined verdict counts: the published one alone does not flag
    published = (table.setup == "full") & (table.criterion == "cv_published")
    table.loc[published & (table.parameter == "uWUE"), "identifiable"] = False
    full = pca.identifiable_parameters(table, "full")
    assert full == set(parameters.NAMES) - {"flab"}
    assert pca.not_identifiable(full) == {
        "labile_allocation",
        "root_allocation",
        "wood_allocation",
    }
    assert pca.not_identifiable(pca.identifiable_parameters(table, "other")) == {"LCMA"}
    with pytest.raises(ValueError, match="no 'combined' rows for setup 'PFT'"):
        pca.identifiable_parameters(table, "PFT")


def test_analysed_quantities_are_the_identifiable_quantities_then_parameters():
    identifiable = set(parameters.NAMES) - {"flab"}
    flagged = {"labile_allocation", "root_allocation", "wood_allocation"}
    chosen = pca.analysed_quantities(identifiable, "identifiable")
    published = tuple(q for q in pca.QUANTITIES if q not in flagged)
    assert chosen[: len(published)] == published
    # every other identifiable parameter enters as itself; a published quantity's only
    # source (f_gpp: autotrophic_fraction) does not enter twice
    assert set(chosen[len(published) :]) == identifiable - {
        "canopy_efficiency", "uWUE", "Q10", "f_gpp", "LCMA", "clab_release_period",
        "leaf_fall_period", "leaf_lifespan",
    }  # fmt: skip
    assert pca.analysed_quantities({"Cwood", "Bday"}, "identifiable") == ("Bday", "Cwood")
    assert pca.analysed_quantities(identifiable, "all") == pca.QUANTITIES
    # one identifiable quantity leaves no plane to show: the published ones, with a warning
    assert pca.analysed_quantities({"LCMA"}, "identifiable") == pca.QUANTITIES
    with pytest.raises(ValueError, match="pca.quantities must be one of"):
        pca.analysed_quantities(identifiable, "some")


def parameter_maps(rng, lat, lon):
    """All 40 parameters on (lat, lon); the corner cell is off land (NaN)."""
    data = {}
    for name, values in random_parameters(rng, lat.size * lon.size).items():
        field = values.reshape(lat.size, lon.size)
        field[0, 0] = np.nan
        data[name] = (("lat", "lon"), field)
        data[f"{name}_std"] = (("lat", "lon"), 0.1 * field)
    return xr.Dataset(
        data, coords={"lat": lat, "lon": lon}, attrs={"grid": "0p25deg", "setup": "PFT+CLIM"}
    )


def test_pca_files_writes_tables_scores_and_figures(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    lat, lon = np.arange(4) * 0.25 + 38.125, np.arange(5) * 0.25 - 108.875
    params = parameter_maps(np.random.default_rng(4), lat, lon)
    params_nc = tmp_path / "PFT+CLIM.nc"
    params.to_netcdf(params_nc)
    summary = tmp_path / "summary.csv"
    summary_rows("PFT+CLIM", {"uWUE": False}).to_csv(summary, index=False)
    out = tmp_path / "pca"
    pca.pca_files(params_nc, summary, "0p25deg", out, truth_nc=params_nc, quantities="all")
    ratio = pd.read_csv(out / "explained_variance.csv")
    assert list(ratio.columns) == ["component", "ratio"]
    assert ratio["ratio"].sum() == pytest.approx(1.0) and ratio["component"].iloc[0] == "PC1"
    loadings = pd.read_csv(out / "loadings.csv")
    assert list(loadings.columns[:2]) == ["quantity", "PC1"] and list(loadings["quantity"]) == list(
        pca.QUANTITIES
    )
    congruence = pd.read_csv(out / "congruence.csv")  # truth = the learned maps themselves
    np.testing.assert_allclose(congruence["congruence"].iloc[:11], 1.0, atol=1e-8)
    with xr.open_dataset(out / "scores.nc") as scores:
        assert scores["score"].dims == ("component", "lat", "lon")
        assert (
            np.isnan(scores["score"][:, 0, 0]).all()
            and np.isfinite(scores["score"][:, 1:, :]).all()
        )
    for stem in ("biplot", "score_maps"):
        assert_figure(out / stem)
    with pytest.raises(ValueError, match="not '0p125deg'"):
        pca.pca_files(params_nc, summary, "0p125deg", out)


def test_pca_files_on_identifiable_quantities_compares_the_truth_on_the_same_ones(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    lat, lon = np.arange(4) * 0.25 + 38.125, np.arange(5) * 0.25 - 108.875
    params = parameter_maps(np.random.default_rng(5), lat, lon)
    params_nc = tmp_path / "PFT+CLIM.nc"
    params.to_netcdf(params_nc)
    truth = params.copy()  # the truth differs in uWUE only: not identifiable, not analysed
    truth["uWUE"] = truth["uWUE"].copy(data=np.random.default_rng(6).uniform(0.5, 30.0, (4, 5)))
    truth_nc = tmp_path / "truth.nc"
    truth.to_netcdf(truth_nc)
    summary = tmp_path / "summary.csv"
    summary_rows("PFT+CLIM", {"uWUE": False, "flab": False}).to_csv(summary, index=False)
    out = tmp_path / "pca"
    pca.pca_files(params_nc, summary, "0p25deg", out, truth_nc=truth_nc)
    loadings = pd.read_csv(out / "loadings.csv")
    dropped = {"uWUE", "labile_allocation", "root_allocation", "wood_allocation"}
    published = [q for q in pca.QUANTITIES if q not in dropped]
    others = [n for n in pca.OTHER_PARAMETERS if n != "flab"]
    assert list(loadings["quantity"]) == published + others
    congruence = pd.read_csv(out / "congruence.csv")
    np.testing.assert_allclose(congruence["congruence"], 1.0, atol=1e-8)
    with xr.open_dataset(out / "scores.nc") as scores:
        assert "uWUE" not in scores.attrs["quantities"].split()
