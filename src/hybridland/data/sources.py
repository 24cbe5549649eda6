"""The registry of datasets the study downloads, or expects to be placed by hand.

Each dataset is one :class:`Source`. The registry itself is the packaged YAML file
``hybridland/data/sources.yaml``; :func:`load_registry` reads and validates it, so
a misspelt key or a missing field stops the run before any download starts.

Where a file comes from, and how its integrity is checked, is one of four modes,
chosen by ``checksum_from``:

``registry``
    ``url`` is a direct download and ``checksum`` (``"md5:<hex>"`` or
    ``"sha256:<hex>"``) is written in the registry.
``zenodo``
    ``zenodo_record`` names a Zenodo record. File names, download URLs, sizes and
    md5 checksums are read from the record's JSON metadata at download time, so the
    registry repeats none of them.
``sidecar``
    ``url`` is a direct download and the provider publishes the checksum in a small
    text file at ``checksum_url`` (an ``md5sum``/``sha256sum`` style line, or a bare
    hex digest). The algorithm follows from the digest length.
``none-published``
    ``url`` is a direct download with no published checksum (for instance a table
    the provider updates in place). The first download is trusted, its sha256 is
    recorded beside the file as ``<file>.sha256`` and every later run verifies
    against that record, so a study never silently picks up a changed file.

Products behind a login or a request form carry ``manual: true``: nothing is
downloaded, ``instructions`` say how to obtain them and ``expected_files`` (glob
patterns) say what must then be present in the dataset's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

Format = Literal["netcdf", "geotiff", "csv", "zip", "tar.gz", "hdf", "mixed"]
ChecksumFrom = Literal["registry", "zenodo", "sidecar", "none-published"]
GridKind = Literal["latlon", "approximate", "site", "global series"]

FORMATS: tuple[str, ...] = get_args(Format)
CHECKSUM_MODES: tuple[str, ...] = get_args(ChecksumFrom)
HASH_HEX_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REQUIRED = ("description", "citation", "licence", "format", "native_grid")
_OPTIONAL = (
    "url",
    "checksum",
    "checksum_from",
    "checksum_url",
    "zenodo_record",
    "doi",
    "landing_url",
    "manual",
    "instructions",
    "expected_files",
)
_TEXT_KEYS = tuple(
    k for k in _REQUIRED + _OPTIONAL if k not in ("native_grid", "manual", "expected_files")
)


class RegistryError(ValueError):
    """A registry entry is malformed; the message names file, dataset and key."""


@dataclass(frozen=True)
class NativeGrid:
    """The grid a product is published on.

    Attributes:
        kind: ``latlon`` (regular latitude-longitude grid with cell sizes
            ``dlat_deg`` x ``dlon_deg``), ``approximate`` (a projected or irregular
            grid whose nominal resolution is about ``dlat_deg`` = ``dlon_deg``; see
            ``note``), ``site`` (point records) or ``global series`` (one value per
            time step for the whole globe).
        dlat_deg: cell height in degrees, None for ``site`` and ``global series``.
        dlon_deg: cell width in degrees, None for ``site`` and ``global series``.
        note: the projection or tiling for ``approximate`` grids.
    """

    kind: GridKind
    dlat_deg: float | None = None
    dlon_deg: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Source:
    """One dataset of the study: what it is, where it comes from, how it is checked.

    Attributes:
        name: registry key, lower-case snake case (also the Snakemake wildcard).
        description: what the product is and what the study takes from it.
        citation: the reference to cite.
        licence: the licence or terms of use, as far as they are known.
        format: file format as published (``mixed`` for bundles of several).
        native_grid: the grid the product is published on.
        url: direct download URL (modes ``registry``, ``sidecar``,
            ``none-published``).
        checksum: ``"<algorithm>:<hex>"``, only in mode ``registry``.
        checksum_from: how the checksum is obtained; see the module docstring.
            When omitted: ``zenodo`` with ``zenodo_record``, ``none-published``
            with ``manual`` (files placed by hand are checked for presence only)
            and ``registry`` otherwise.
        checksum_url: where the provider publishes the checksum (mode ``sidecar``).
        zenodo_record: Zenodo record id (mode ``zenodo``).
        doi: the dataset DOI, without the ``https://doi.org/`` prefix.
        landing_url: the public page describing the product.
        manual: True when the product must be obtained by hand (login, request).
        instructions: how to obtain it by hand; required when ``manual``.
        expected_files: glob patterns that must match in the dataset folder once
            a manual product is in place; required when ``manual``.
    """

    name: str
    description: str
    citation: str
    licence: str
    format: Format
    native_grid: NativeGrid
    url: str | None = None
    checksum: str | None = None
    checksum_from: ChecksumFrom = "registry"
    checksum_url: str | None = None
    zenodo_record: str | None = None
    doi: str | None = None
    landing_url: str | None = None
    manual: bool = False
    instructions: str | None = None
    expected_files: tuple[str, ...] = field(default_factory=tuple)


def split_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"md5:<hex>"`` into ``("md5", "<hex>")``, lower-cased and validated.

    Raises:
        ValueError: unknown algorithm, or a digest of the wrong length or alphabet.
    """
    algorithm, sep, digest = checksum.strip().partition(":")
    algorithm, digest = algorithm.lower(), digest.lower()
    if not sep or algorithm not in HASH_HEX_LENGTHS:
        known = ", ".join(HASH_HEX_LENGTHS)
        raise ValueError(f"checksum {checksum!r} is not '<algorithm>:<hex>' with one of {known}")
    if len(digest) != HASH_HEX_LENGTHS[algorithm] or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(
            f"checksum {checksum!r}: a {algorithm} digest has "
            f"{HASH_HEX_LENGTHS[algorithm]} hex digits"
        )
    return algorithm, digest


def default_registry_path() -> Path:
    """The packaged ``sources.yaml``."""
    return Path(str(resources.files("hybridland") / "data" / "sources.yaml"))


def load_registry(path: Path | str | None = None) -> dict[str, Source]:
    """Read and validate a registry file (the packaged one when ``path`` is None).

    Raises:
        RegistryError: a ValueError naming the file, the dataset and the offending
            key or value.
    """
    origin = Path(path) if path is not None else default_registry_path()
    with origin.open(encoding="utf-8") as stream:
        document = yaml.safe_load(stream)
    return registry_from_mapping(document, origin=str(origin))


def registry_from_mapping(document: Any, *, origin: str = "registry") -> dict[str, Source]:
    """Validate a parsed registry document ``{"datasets": {name: entry}}``."""
    if not isinstance(document, Mapping) or set(document) != {"datasets"}:
        keys = sorted(document) if isinstance(document, Mapping) else type(document).__name__
        raise RegistryError(f"{origin}: expected a single top-level key 'datasets', got {keys}")
    datasets = document["datasets"]
    if not isinstance(datasets, Mapping) or not datasets:
        raise RegistryError(f"{origin}: 'datasets' must be a non-empty mapping of name to entry")
    return {
        str(name): source_from_mapping(str(name), entry, origin=origin)
        for name, entry in datasets.items()
    }


def source_from_mapping(name: str, entry: Any, *, origin: str = "registry") -> Source:
    """Build and validate one :class:`Source` from its registry entry."""
    where = f"{origin}: dataset '{name}'"
    if not _NAME.match(name):
        raise RegistryError(f"{where}: name must be lower-case snake case")
    if not isinstance(entry, Mapping):
        raise RegistryError(f"{where}: entry must be a mapping, got {type(entry).__name__}")
    _check_keys(entry, where)
    texts: dict[str, Any] = {k: _text(entry, k, where) for k in _TEXT_KEYS if k in entry}
    texts.setdefault("checksum_from", _default_checksum_from(entry))
    source = Source(
        name=name,
        native_grid=parse_native_grid(entry["native_grid"], where),
        manual=_flag(entry, "manual", where),
        expected_files=_patterns(entry, where),
        **texts,
    )
    _check_format(source, where)
    _check_origin(source, where)
    return source


def _default_checksum_from(entry: Mapping[Any, Any]) -> str:
    if "zenodo_record" in entry:
        return "zenodo"
    return "none-published" if entry.get("manual") is True else "registry"


def parse_native_grid(value: Any, where: str = "registry") -> NativeGrid:
    """Read ``native_grid`` from its registry forms.

    ``0.05`` is a regular 0.05 x 0.05 deg grid, ``[4, 5]`` a 4 deg (lat) x 5 deg
    (lon) grid, ``site`` and ``global series`` are themselves, and
    ``{approx_deg: 0.0045, note: "MODIS sinusoidal 500 m tiles"}`` a projected grid
    of about that resolution.
    """
    if isinstance(value, str) and value in ("site", "global series"):
        return NativeGrid(kind=value)  # type: ignore[arg-type]
    if _positive(value):
        return NativeGrid("latlon", float(value), float(value))
    if isinstance(value, list) and len(value) == 2 and all(_positive(v) for v in value):
        return NativeGrid("latlon", float(value[0]), float(value[1]))
    if _approximate(value):
        size = float(value["approx_deg"])
        return NativeGrid("approximate", size, size, value["note"])
    raise RegistryError(
        f"{where}: key 'native_grid' has value {value!r}; expected degrees (0.05), "
        "[dlat, dlon], 'site', 'global series' or {approx_deg: ..., note: ...}"
    )


def _approximate(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and set(value) == {"approx_deg", "note"}
        and _positive(value["approx_deg"])
        and isinstance(value["note"], str)
    )


def _check_keys(entry: Mapping[Any, Any], where: str) -> None:
    for key in entry:
        if key not in _REQUIRED + _OPTIONAL:
            raise RegistryError(f"{where}: unknown key '{key}'")
    for key in _REQUIRED:
        if key not in entry:
            raise RegistryError(f"{where}: missing required key '{key}'")


def _text(entry: Mapping[Any, Any], key: str, where: str) -> str:
    value = entry[key]
    if key == "zenodo_record" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{where}: key '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def _flag(entry: Mapping[Any, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise RegistryError(f"{where}: key '{key}' must be true or false, got {value!r}")
    return value


def _patterns(entry: Mapping[Any, Any], where: str) -> tuple[str, ...]:
    value = entry.get("expected_files", [])
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise RegistryError(f"{where}: key 'expected_files' must be a list of glob patterns")
    if any(Path(p).is_absolute() or ".." in Path(p).parts for p in value):
        raise RegistryError(f"{where}: key 'expected_files' must stay inside the dataset folder")
    return tuple(value)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _check_format(source: Source, where: str) -> None:
    if source.format not in FORMATS:
        raise RegistryError(
            f"{where}: key 'format' has value {source.format!r}; expected one of {FORMATS}"
        )
    if source.checksum_from not in CHECKSUM_MODES:
        raise RegistryError(
            f"{where}: key 'checksum_from' has value {source.checksum_from!r}; "
            f"expected one of {CHECKSUM_MODES}"
        )
    for key in ("url", "checksum_url", "landing_url"):
        value = getattr(source, key)
        if value is not None and not value.startswith(("https://", "http://")):
            raise RegistryError(f"{where}: key '{key}' must be an http(s) URL, got {value!r}")


def _check_origin(source: Source, where: str) -> None:
    """The keys that say where the data come from must describe exactly one mode."""
    if source.manual:
        _check_manual(source, where)
        return
    if source.instructions is not None or source.expected_files:
        raise RegistryError(f"{where}: 'instructions' and 'expected_files' need 'manual: true'")
    if (source.url is None) == (source.zenodo_record is None):
        raise RegistryError(f"{where}: give exactly one of 'url' and 'zenodo_record'")
    if source.zenodo_record is not None:
        _check_zenodo(source, where)
    else:
        _check_direct(source, where)


def _check_manual(source: Source, where: str) -> None:
    for key in ("url", "zenodo_record", "checksum", "checksum_url"):
        if getattr(source, key) is not None:
            raise RegistryError(f"{where}: key '{key}' cannot be used with 'manual: true'")
    if source.checksum_from != "none-published":
        raise RegistryError(
            f"{where}: key 'checksum_from' must be 'none-published' with 'manual: true' "
            f"(files placed by hand are checked for presence only), got {source.checksum_from!r}"
        )
    if source.instructions is None:
        raise RegistryError(f"{where}: missing required key 'instructions' (manual: true)")
    if not source.expected_files:
        raise RegistryError(f"{where}: missing required key 'expected_files' (manual: true)")


def _check_zenodo(source: Source, where: str) -> None:
    if source.checksum_from != "zenodo":
        raise RegistryError(
            f"{where}: key 'checksum_from' must be 'zenodo' with 'zenodo_record', "
            f"got {source.checksum_from!r}"
        )
    if not source.zenodo_record or not source.zenodo_record.isdigit():
        raise RegistryError(
            f"{where}: key 'zenodo_record' must be digits, got {source.zenodo_record!r}"
        )
    if source.checksum is not None or source.checksum_url is not None:
        raise RegistryError(f"{where}: checksums of a Zenodo record come from its metadata")


def _check_direct(source: Source, where: str) -> None:
    mode = source.checksum_from
    if mode == "zenodo":
        raise RegistryError(f"{where}: checksum_from 'zenodo' needs 'zenodo_record'")
    if (mode == "registry") != (source.checksum is not None):
        raise RegistryError(
            f"{where}: key 'checksum' is required with, and only with, "
            f"checksum_from 'registry' (got {mode!r})"
        )
    if (mode == "sidecar") != (source.checksum_url is not None):
        raise RegistryError(
            f"{where}: key 'checksum_url' is required with, and only with, "
            f"checksum_from 'sidecar' (got {mode!r})"
        )
    if source.checksum is not None:
        try:
            split_checksum(source.checksum)
        except ValueError as error:
            raise RegistryError(f"{where}: key 'checksum': {error}") from None
