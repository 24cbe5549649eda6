"""Land cover classes: the IGBP classes of MODIS MCD12C1 and the study's 10 PFTs.

The regridder turns IGBP class maps into PFT fractions with this table, and the FLUXNET16
study turns its sites' IGBP labels into the same PFT columns.
"""

from __future__ import annotations

from collections.abc import Mapping

from hybridland.contract import PFT

#: IGBP classes as coded in MODIS MCD12C1 (Majority_Land_Cover_Type_1, collection 6.x).
#: Unlike MCD12Q1 (1..17, water = 17), MCD12C1 codes water as 0 and barren as 16;
#: 255 is the product's fill value.
IGBP_CLASSES: dict[int, str] = {
    0: "water",
    1: "evergreen needleleaf forest",
    2: "evergreen broadleaf forest",
    3: "deciduous needleleaf forest",
    4: "deciduous broadleaf forest",
    5: "mixed forest",
    6: "closed shrubland",
    7: "open shrubland",
    8: "woody savanna",
    9: "savanna",
    10: "grassland",
    11: "permanent wetland",
    12: "cropland",
    13: "urban and built-up",
    14: "cropland/natural vegetation mosaic",
    15: "snow and ice",
    16: "barren",
}
IGBP_WATER = 0
IGBP_FILL = 255

#: The 10 plant functional types of the study and the IGBP land classes each gathers.
PFT_FROM_IGBP: dict[str, tuple[int, ...]] = {
    "NF": (1, 3),
    "DBF": (4,),
    "EBF": (2,),
    "MF": (5,),
    "SH": (6, 7),
    "SAV": (8, 9),
    "GRA": (10,),
    "WET": (11,),
    "CRO": (12, 14),
    "NVG": (13, 15, 16),
}


def check_pft_mapping(mapping: Mapping[str, tuple[int, ...]] = PFT_FROM_IGBP) -> None:
    """Raise ValueError unless the PFTs are the study's, in its order, and every IGBP land
    class (1..16) is in exactly one of them."""
    if tuple(mapping) != PFT:
        raise ValueError(f"PFT mapping has {tuple(mapping)}, expected the study's {PFT}")
    codes = [code for group in mapping.values() for code in group]
    land = sorted(set(IGBP_CLASSES) - {IGBP_WATER})
    if sorted(codes) != land:
        raise ValueError(
            f"PFT mapping covers IGBP codes {sorted(codes)}, expected {land} once each"
        )


check_pft_mapping()
