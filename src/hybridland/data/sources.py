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
    registry repeats none of them. The metadata is saved beside the files, so that a
    folder prepared elsewhere is verified offline (pooch's DOI downloader asks doi.org
    and zenodo.org on every call and cannot read a saved record).
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

:func:`download_source` brings a dataset in through :mod:`hybridland.data.download`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import pooch
import yaml

from hybridland.data.download import (
    DownloadError,
    Patience,
    fetch,
    get_document,
    parse_checksum_file,
    split_checksum,
    unpack,
)
from hybridland.io import atomic_path

logger = logging.getLogger(__name__)

ZENODO_API = "https://zenodo.org/api"

Format = Literal["netcdf", "geotiff", "csv", "zip", "tar.gz", "hdf", "mixed"]
ChecksumFrom = Literal["registry", "zenodo", "sidecar", "none-published"]
GridKind = Literal["latlon", "approximate", "site", "global series"]

FORMATS: tuple[str, ...] = get_args(Format)
CHECKSUM_MODES: tuple[str, ...] = get_args(ChecksumFrom)

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


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: name in the dataset folder, URL, checksum (``alg:hex``), size."""

    name: str
    url: str
    checksum: str | None
    size: int | None = None


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


# ---------------------------------------------------------------------------- downloads


def download_source(
    source: Source,
    destination_dir: Path | str,
    *,
    api_base: str = ZENODO_API,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Bring one registry dataset into ``destination_dir``; the workflow's entry point.

    Zenodo records are resolved and each file fetched with the record's md5; direct
    URLs with the registry's, the provider's (sidecar) or a recorded checksum (see
    :mod:`hybridland.data.sources`). Manual products must already be there. Archives
    are then unpacked into a folder named after them (unless that folder exists).
    The retry options are those of :func:`hybridland.data.download.fetch`.

    Returns:
        The dataset's files, then the files unpacked from its archives.

    Raises:
        DownloadError: naming the dataset; for a manual product, how to obtain it and
            where to put it.
    """
    folder, patience = (
        Path(destination_dir),
        Patience(retries, backoff_s, timeout_s, sleep),
    )
    if source.manual:
        files = manual_files(source, folder)
    else:
        remote = _remote_files(source, folder, api_base, patience)
        files = [_fetch_remote(source.name, item, folder, patience) for item in remote]
    return files + [member for path in files for member in unpack(path)]


def _remote_files(
    source: Source, folder: Path, api_base: str, patience: Patience
) -> list[RemoteFile]:
    """The files a non-manual source consists of, with their checksums."""
    if source.zenodo_record is not None:
        return _zenodo_files(source, folder, api_base, patience)
    if source.url is None:
        raise DownloadError(f"{source.name}: neither 'url' nor 'zenodo_record' is set")
    name = url_file_name(source.url, source.name)
    checksum = source.checksum
    if source.checksum_from == "sidecar" and source.checksum_url is not None:
        body = get_document(source.checksum_url, source.name, patience)
        where = f"{source.name}: {source.checksum_url}"
        checksum = parse_checksum_file(body.decode("utf-8", "replace"), name, where=where)
    return [RemoteFile(name=name, url=source.url, checksum=checksum)]


def _zenodo_files(
    source: Source, folder: Path, api_base: str, patience: Patience
) -> list[RemoteFile]:
    """A record's files from its metadata, saved as ``zenodo-<id>.json`` and reused offline.

    A record version never changes, so a folder prepared elsewhere is verified without
    network against the md5 checksums the saved metadata lists.
    """
    record_id = str(source.zenodo_record)
    label = f"{source.name}: Zenodo record {record_id}"
    saved = folder / f"zenodo-{record_id}.json"
    if saved.is_file():
        logger.info("%s: using the metadata saved in %s", label, saved)
        return parse_zenodo_record(_json(saved.read_bytes(), label, str(saved)), record_id)
    url = zenodo_record_url(record_id, api_base)
    try:
        body = get_document(url, label, patience)
    except DownloadError as error:
        raise DownloadError(
            f"{error}. Without network access, save that JSON metadata as "
            f"{saved.absolute()} and place the record's files beside it; they are then "
            "verified against the md5 checksums it lists."
        ) from error
    files = parse_zenodo_record(_json(body, label, url), record_id)
    with atomic_path(saved) as temporary:
        temporary.write_bytes(body)
    return files


def url_file_name(url: str, dataset: str) -> str:
    """The file name a URL ends in."""
    name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)
    if not _safe_file_name(name):
        raise DownloadError(f"{dataset}: URL {url!r} does not end in a file name")
    return name


def manual_files(source: Source, folder: Path) -> list[Path]:
    """The files of a manual product, which must already be in ``folder``."""
    found = {pattern: sorted(folder.glob(pattern)) for pattern in source.expected_files}
    missing = [pattern for pattern, paths in found.items() if not paths]
    if missing:
        page = f" Landing page: {source.landing_url}." if source.landing_url else ""
        raise DownloadError(
            f"{source.name}: needs a manual download: {source.instructions}{page} "
            f"Then place files matching {', '.join(missing)} in {folder.absolute()}."
        )
    return sorted({path for paths in found.values() for path in paths})


def _fetch_remote(dataset: str, item: RemoteFile, folder: Path, patience: Patience) -> Path:
    get: dict[str, Any] = vars(patience)
    destination = folder / item.name
    if item.checksum is not None:
        return fetch(item.url, destination, item.checksum, dataset=dataset, **get)
    # Trust on first use: record the first copy's sha256 and hold later runs to it.
    record = destination.with_name(destination.name + ".sha256")
    if record.is_file():
        recorded = record.read_text(encoding="utf-8").strip()
        try:
            return fetch(item.url, destination, recorded, dataset=dataset, **get)
        except DownloadError as error:
            raise DownloadError(
                f"{error} (checksum recorded at the first download in {record}; "
                "delete that file to accept the provider's current version)"
            ) from error
    if not destination.is_file():
        fetch(item.url, destination, None, dataset=dataset, **get)
    else:
        logger.warning("%s: using %s, found in place; recording its checksum", dataset, destination)
    with atomic_path(record) as temporary:
        temporary.write_text(f"sha256:{pooch.file_hash(str(destination))}\n", encoding="utf-8")
    return destination


# ---------------------------------------------------------------------------- zenodo


def resolve_zenodo_record(
    record_id: str | int,
    *,
    api_base: str = ZENODO_API,
    timeout_s: float = 60,
    retries: int = 4,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RemoteFile]:
    """List the files of a Zenodo record from its JSON metadata at ``{api_base}/records/<id>``.

    Raises:
        DownloadError: the record cannot be fetched, or is malformed; the message
            names the record.
    """
    url = zenodo_record_url(record_id, api_base)
    label = f"Zenodo record {record_id}"
    body = get_document(url, label, Patience(retries, backoff_s, timeout_s, sleep))
    return parse_zenodo_record(_json(body, label, url), record_id)


def zenodo_record_url(record_id: str | int, api_base: str = ZENODO_API) -> str:
    """Where a record's JSON metadata is served."""
    return f"{api_base.rstrip('/')}/records/{record_id}"


def _json(body: bytes, label: str, origin: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise DownloadError(f"{label}: metadata at {origin} is not JSON ({error})") from None


def parse_zenodo_record(record: Any, record_id: str | int) -> list[RemoteFile]:
    """Turn a Zenodo record's parsed JSON into :class:`RemoteFile` s.

    ``files`` holds objects with ``key`` (file name), ``size`` (bytes), ``checksum``
    (``"md5:<hex>"``) and ``links.self`` (download URL).
    """
    label = f"Zenodo record {record_id}"
    if not isinstance(record, dict):
        raise DownloadError(f"{label}: metadata is not a JSON object")
    if "id" in record and str(record["id"]) != str(record_id):
        raise DownloadError(f"{label}: metadata is that of record {record['id']!r}")
    files = record.get("files")
    if not isinstance(files, list) or not files:
        raise DownloadError(
            f"{label}: metadata has no non-empty 'files' list (restricted or embargoed record?)"
        )
    metadata = record.get("metadata")
    licence = metadata.get("license") if isinstance(metadata, dict) else None
    if licence:
        logger.info("%s: licence %s", label, licence)
    return [_zenodo_file(entry, index, label) for index, entry in enumerate(files)]


def _zenodo_file(entry: Any, index: int, label: str) -> RemoteFile:
    where = f"{label}: files[{index}]"
    if not isinstance(entry, dict):
        raise DownloadError(f"{where} is not an object")
    name, size, checksum = entry.get("key"), entry.get("size"), entry.get("checksum")
    url = entry.get("links", {}).get("self") if isinstance(entry.get("links"), dict) else None
    if not isinstance(name, str) or not _safe_file_name(name):
        raise DownloadError(f"{where}: 'key' {name!r} is not a plain file name")
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"{where} ({name}): 'links.self' {url!r} is not an http(s) URL")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DownloadError(f"{where} ({name}): 'size' {size!r} is not a byte count")
    try:
        split_checksum(checksum if isinstance(checksum, str) else "")
    except ValueError:
        raise DownloadError(
            f"{where} ({name}): 'checksum' {checksum!r} is not 'md5:<hex>'"
        ) from None
    return RemoteFile(name=name, url=url, checksum=checksum, size=size)


def _safe_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
