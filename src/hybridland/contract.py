"""The driver contract: names every stage agrees on.

A driver (one per study and grid) holds predictors per cell, forcing and fine targets
per (cell, time), coarse targets per (patch, time) and static targets per cell. These
names are the contract between the data sources, the model and the analyses.
"""

from __future__ import annotations

import pandas as pd

PFT = ("NF", "DBF", "EBF", "MF", "SH", "SAV", "GRA", "WET", "CRO", "NVG")
CLIM = ("MAT", "MAP", "elevation")
AGE = ("canopy_height", "forest_age")
SOIL = ("BULK_DEN", "SAND", "SILT", "CLAY", "GRAVEL")
PREDICTOR_GROUPS: dict[str, tuple[str, ...]] = {"PFT": PFT, "CLIM": CLIM, "AGE": AGE, "SOIL": SOIL}
PREDICTORS = PFT + CLIM + AGE + SOIL
FORCING = ("t_min", "t_max", "rad", "vpd", "precip", "burned_area")
# Target name -> (dataset, variable); fine targets are per cell, coarse per patch.
FINE_TARGETS = {
    "lai": ("lai", "lai"),
    "sif": ("sif", "sif"),
    "et": ("et", "et"),
    "biomass": ("biomass", "biomass"),
}
COARSE_TARGETS = {"nbe": ("nbe", "nbe"), "ewt": ("ewt", "ewt_anomaly")}
STATIC_TARGETS = {"som": ("som", "som")}
TARGETS = {**FINE_TARGETS, **COARSE_TARGETS, **STATIC_TARGETS}
SITE_TARGETS = {"gpp_ec": "gpp", "reco_ec": "reco", "et_ec": "et"}
DAYS_PER_YEAR_MAP = 365.22  # MAP (mm yr-1) <-> mean rate (mm d-1), as the published code
# Origin of the driver's time axis (days since).
EPOCH = pd.Timestamp("2000-01-01")
