"""Download registry datasets: verified, retried, atomic; safe archive extraction.

Everything here uses the standard library (``urllib``) so that the download stage
runs in the smallest environment. Files are streamed to a temporary file in the
destination folder and renamed into place only once their size and checksum are
right, so an interrupted job never leaves a file that looks complete.

Transient failures (HTTP 5xx and 429, resets, timeouts, truncated transfers, and
an unreachable host) are retried with exponential backoff; other HTTP errors are
not. When retries run out the :class:`DownloadError` says where to put the file
by hand and which checksum it must have, for machines without network access.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import secrets
import shutil
import socket
import ssl
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any, TypeVar

from hybridland.data.sources import HASH_HEX_LENGTHS, Source, split_checksum

logger = logging.getLogger(__name__)

ZENODO_API = "https://zenodo.org/api"
USER_AGENT = "hybridland-download/0.1 (python urllib)"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
PROGRESS_MIN_BYTES = 16 << 20  # smaller files finish before a progress line would help
PROGRESS_EVERY_S = 30.0  # cadence when the server sends no Content-Length
MAX_JSON_BYTES = 32 << 20
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH}

Sleep = Callable[[float], None]
T = TypeVar("T")


class DownloadError(RuntimeError):
    """A dataset could not be downloaded, verified or unpacked."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the extraction folder."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: name in the dataset folder, URL, checksum, size.

    ``checksum`` is ``"<algorithm>:<hex>"`` or None when none is published;
    ``size`` is in bytes, None when unknown.
    """

    name: str
    url: str
    checksum: str | None
    size: int | None = None


class _Transient(Exception):
    """A failure worth retrying; ``unreachable`` when no connection was made."""

    def __init__(self, reason: str, *, unreachable: bool = False, retry_after: float = 0.0):
        super().__init__(reason)
        self.unreachable = unreachable
        self.retry_after = retry_after


# ---------------------------------------------------------------------------- fetch


def fetch(
    url: str,
    destination: Path | str,
    checksum: str | None,
    *,
    dataset: str,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    chunk_bytes: int = 1 << 20,
    sleep: Sleep = time.sleep,
) -> Path:
    """Download ``url`` to ``destination`` and verify it against ``checksum``.

    Args:
        url: http(s) URL.
        destination: final path of the file; its folder is created if needed.
        checksum: ``"md5:<hex>"``, ``"sha256:<hex>"`` (also sha1, sha512), or None
            when no checksum is published: then only the size is verified and the
            sha256 is logged so that it can be pinned.
        dataset: registry name, used in logs and error messages.
        retries: retries after the first attempt for transient failures.
        backoff_s: first wait; each retry waits twice as long as the one before
            (longer when the server sends Retry-After).
        timeout_s: socket timeout per connection and per read, in seconds.
        chunk_bytes: read size while streaming.
        sleep: waits between attempts (injectable for tests).

    Returns:
        ``destination``. A file already there with the right checksum is kept
        without downloading.

    Raises:
        DownloadError: checksum mismatch (the download is discarded), a non-retried
            HTTP error, or retries exhausted; the message names the dataset and URL,
            and says where to place the file by hand.
    """
    destination = Path(destination)
    algorithm = _algorithm(checksum, dataset)
    if checksum is not None and destination.is_file():
        if f"{algorithm}:{file_digest(destination, algorithm)}" == _normal(checksum):
            logger.info("%s: %s already present, checksum verified", dataset, destination)
            return destination
        logger.warning("%s: %s present but its checksum differs; downloading", dataset, destination)
    _check_scheme(url, dataset)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial, digest = _retrying(
            lambda: _download_once(url, destination, algorithm, timeout_s, chunk_bytes, dataset),
            label=f"{dataset}: {url}",
            retries=retries,
            backoff_s=backoff_s,
            sleep=sleep,
        )
    except _Transient as error:
        raise DownloadError(
            _gave_up(dataset, url, destination, checksum, retries, error)
        ) from error
    _verify_and_place(partial, destination, f"{algorithm}:{digest}", checksum, dataset, url)
    return destination


def file_digest(path: Path, algorithm: str = "sha256", chunk_bytes: int = 1 << 20) -> str:
    """Hex digest of a file's content."""
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as stream:
        while block := stream.read(chunk_bytes):
            hasher.update(block)
    return hasher.hexdigest()


def _algorithm(checksum: str | None, dataset: str) -> str:
    if checksum is None:
        return "sha256"
    try:
        return split_checksum(checksum)[0]
    except ValueError as error:
        raise DownloadError(f"{dataset}: {error}") from None


def _normal(checksum: str) -> str:
    algorithm, digest = split_checksum(checksum)
    return f"{algorithm}:{digest}"


def _check_scheme(url: str, dataset: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"{dataset}: URL {url!r} is not http(s)")


def _verify_and_place(
    partial: Path, destination: Path, actual: str, expected: str | None, dataset: str, url: str
) -> None:
    """Rename the finished download into place, or discard it on a checksum mismatch."""
    if expected is not None and actual != _normal(expected):
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"{dataset}: checksum mismatch for {url}: expected {expected}, got {actual}; "
            f"the download was discarded and {destination} was not written"
        )
    os.replace(partial, destination)
    if expected is None:
        logger.warning("%s: %s has no published checksum; it is %s", dataset, destination, actual)
    logger.info("%s: wrote %s (%s)", dataset, destination, actual)


def _retrying(
    action: Callable[[], T], *, label: str, retries: int, backoff_s: float, sleep: Sleep
) -> T:
    """Run ``action``, retrying on :class:`_Transient`; re-raise the last one."""
    if retries < 0:
        raise ValueError(f"{label}: retries must be >= 0, got {retries}")
    attempt = 0
    while True:
        try:
            return action()
        except _Transient as error:
            if attempt >= retries:
                raise
            delay = max(backoff_s * 2**attempt, error.retry_after)
            attempt += 1
            logger.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                label,
                attempt,
                retries + 1,
                error,
                delay,
            )
            sleep(delay)


def _gave_up(
    dataset: str, url: str, destination: Path, checksum: str | None, retries: int, error: _Transient
) -> str:
    what = "cannot reach" if error.unreachable else "gave up on"
    return f"{dataset}: {what} {url} after {retries + 1} attempts ({error}). " + _by_hand(
        destination, checksum
    )


def _by_hand(destination: Path, checksum: str | None) -> str:
    """How to supply a file without network access."""
    check = (
        f"with checksum {checksum}"
        if checksum is not None
        else "(no checksum is published; its sha256 is recorded on first use)"
    )
    return (
        f"If this machine has no network access, download the file elsewhere and "
        f"place it at {destination.absolute()} {check}; the next run verifies it and "
        f"does not download it again."
    )


# ---------------------------------------------------------------------------- one attempt


def _download_once(
    url: str, destination: Path, algorithm: str, timeout_s: float, chunk_bytes: int, dataset: str
) -> tuple[Path, str]:
    """Stream one attempt into a temporary file beside ``destination``.

    Returns the temporary file and its hex digest; the file is removed on failure.
    """
    handle, partial = _new_temp_file(destination)
    try:
        with os.fdopen(handle, "wb") as sink, _opened(url, timeout_s, dataset) as response:
            total = _content_length(response)
            logger.info("%s: downloading %s (%s)", dataset, url, _size_text(total))
            digest, received = _stream(response, sink, algorithm, total, chunk_bytes, dataset)
            sink.flush()
            os.fsync(sink.fileno())
        if total is not None and received != total:
            raise _Transient(f"truncated transfer: received {received} of {total} bytes")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial, digest


@contextmanager
def _opened(url: str, timeout_s: float, dataset: str) -> Iterator[http.client.HTTPResponse]:
    """Open ``url``, turning failures into :class:`_Transient` or :class:`DownloadError`."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # scheme checked above
    except urllib.error.HTTPError as error:
        raise _http_failure(error, url, dataset) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _connection_failure(error, url, dataset) from error
    with response:
        yield response


def _http_failure(error: urllib.error.HTTPError, url: str, dataset: str) -> Exception:
    if error.code == 429 or error.code >= 500:
        return _Transient(f"HTTP {error.code} {error.reason}", retry_after=_retry_after(error))
    return DownloadError(
        f"{dataset}: {url} answered HTTP {error.code} {error.reason}; not retried "
        "(a client error does not go away on retry: check the URL, or whether the "
        "product needs a login and should be marked manual)"
    )


def _connection_failure(error: BaseException, url: str, dataset: str) -> Exception:
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, ssl.SSLCertVerificationError):
        return DownloadError(f"{dataset}: TLS certificate of {url} not trusted: {reason}")
    unreachable = isinstance(reason, socket.gaierror) or (
        isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS
    )
    return _Transient(f"{type(reason).__name__}: {reason}", unreachable=unreachable)


def _retry_after(error: urllib.error.HTTPError) -> float:
    value = error.headers.get("Retry-After", "") if error.headers else ""
    return min(float(value), 300.0) if value.strip().isdigit() else 0.0


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _stream(
    response: http.client.HTTPResponse,
    sink: IO[bytes],
    algorithm: str,
    total: int | None,
    chunk_bytes: int,
    dataset: str,
) -> tuple[str, int]:
    """Copy the body to ``sink``; return its hex digest and byte count."""
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    progress = _Progress(dataset, total)
    received = 0
    while block := _read(response, chunk_bytes):
        sink.write(block)
        hasher.update(block)
        received += len(block)
        progress.update(received)
    return hasher.hexdigest(), received


def _read(response: http.client.HTTPResponse, size: int) -> bytes:
    """One network read; disk errors elsewhere are not mistaken for network ones."""
    try:
        return response.read(size)
    except http.client.IncompleteRead as error:
        raise _Transient(f"truncated transfer: {error!r}") from error
    except (OSError, http.client.HTTPException) as error:
        raise _Transient(f"{type(error).__name__}: {error}") from error


class _Progress:
    """Logs progress every 10% of a known size, or every PROGRESS_EVERY_S seconds."""

    def __init__(self, dataset: str, total: int | None) -> None:
        self.dataset = dataset
        self.total = total
        self.started = self.last_log = time.monotonic()
        self.next_decile = 1
        self.quiet = total is not None and total < PROGRESS_MIN_BYTES

    def update(self, received: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.total:
            decile = received * 10 // self.total
            if decile < self.next_decile:
                return
            self.next_decile = decile + 1
        elif now - self.last_log < PROGRESS_EVERY_S:
            return
        self.last_log = now
        rate = received / max(now - self.started, 1e-9) / (1 << 20)
        share = f" ({100 * received // self.total}%)" if self.total else ""
        logger.info("%s: %s%s at %.1f MiB/s", self.dataset, _size_text(received), share, rate)


def _size_text(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / (1 << 20):.1f} MiB"


# ---------------------------------------------------------------------------- zenodo


def resolve_zenodo_record(
    record_id: str | int,
    *,
    api_base: str = ZENODO_API,
    timeout_s: float = 60,
    retries: int = 4,
    backoff_s: float = 1.0,
    sleep: Sleep = time.sleep,
) -> list[RemoteFile]:
    """List the files of a Zenodo record from its JSON metadata.

    GETs ``{api_base}/records/{record_id}`` and reads ``files``: objects with
    ``key`` (file name), ``size`` (bytes), ``checksum`` (``"md5:<hex>"``) and
    ``links.self`` (download URL).

    Raises:
        DownloadError: the record cannot be fetched, or is malformed; the message
            names the record.
    """
    url = zenodo_record_url(record_id, api_base)
    label = f"Zenodo record {record_id}"
    body = _get_document(url, label, timeout_s, retries, backoff_s, sleep)
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
    """Turn a Zenodo record's JSON (already parsed) into :class:`RemoteFile` s."""
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


def _get_document(
    url: str, label: str, timeout_s: float, retries: int, backoff_s: float, sleep: Sleep
) -> bytes:
    """GET a small document (metadata, checksum file) with retries."""
    _check_scheme(url, label)
    try:
        return _retrying(
            lambda: _get_small(url, timeout_s, label),
            label=f"{label}: {url}",
            retries=retries,
            backoff_s=backoff_s,
            sleep=sleep,
        )
    except _Transient as error:
        what = "cannot reach" if error.unreachable else "gave up on"
        raise DownloadError(
            f"{label}: {what} {url} after {retries + 1} attempts ({error})"
        ) from error


def _get_small(url: str, timeout_s: float, label: str) -> bytes:
    """GET a small document (metadata, checksum file) into memory."""
    with _opened(url, timeout_s, label) as response:
        total = _content_length(response)
        if total is not None and total > MAX_JSON_BYTES:
            raise DownloadError(f"{label}: {url} is {total} bytes, too large for metadata")
        try:
            body = response.read(MAX_JSON_BYTES + 1)
        except (OSError, http.client.HTTPException) as error:
            raise _Transient(f"{type(error).__name__}: {error}") from error
    if total is not None and len(body) != total:
        raise _Transient(f"truncated transfer: received {len(body)} of {total} bytes")
    return body


# ---------------------------------------------------------------------------- archives


def extract_archive(archive: Path | str, target_dir: Path | str) -> list[Path]:
    """Unpack a zip or tar (optionally gzip/bz2/xz compressed) archive.

    Every member is checked before anything is written: an absolute path, a path
    that leaves ``target_dir`` through ``..``, a symbolic or hard link pointing
    outside it, or a device/FIFO member refuses the whole archive. Members are
    unpacked into a hidden staging folder beside ``target_dir`` and moved in only
    when all of them are out, so a refused or broken archive leaves nothing behind.

    Returns:
        The extracted files (links included, folders not), sorted.

    Raises:
        UnsafeArchiveError: naming the archive and the offending member.
        DownloadError: the file is neither a zip nor a tar archive.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    members = _archive_members(archive)
    for name, kind, link in members:
        reason = unsafe_member_reason(name, kind, link)
        if reason is not None:
            raise UnsafeArchiveError(
                f"{archive}: refusing to extract: member {name!r} {reason}; nothing was extracted"
            )
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_temp_dir(target_dir)
    try:
        _unpack(archive, staging)
        return _move_into(staging, target_dir)
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        raise DownloadError(f"{archive}: cannot extract: {error}; nothing was extracted") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unsafe_member_reason(name: str, kind: str, link: str = "") -> str | None:
    """Why an archive member is unsafe to extract, or None when it is safe.

    Args:
        name: member path as stored in the archive.
        kind: ``file``, ``dir``, ``symlink``, ``hardlink`` or ``special``.
        link: link target for ``symlink`` (relative to the member's folder) and
            ``hardlink`` (relative to the archive root).
    """
    if kind == "special":
        return "is a device or FIFO"
    if _absolute(name):
        return "has an absolute path"
    parts = _parts(name)
    if parts is None or not parts:
        return "leaves the target folder" if parts is None else "has an empty name"
    if kind in ("symlink", "hardlink"):
        base = parts[:-1] if kind == "symlink" else []
        if _absolute(link) or _parts("/".join([*base, link])) is None:
            return f"is a link to {link!r}, outside the target folder"
    return None


def _absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)


def _parts(name: str) -> list[str] | None:
    """Normalised path components, or None when ``..`` climbs above the root."""
    parts: list[str] = []
    for part in PurePosixPath(name.replace("\\", "/")).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return parts


def _archive_members(archive: Path) -> list[tuple[str, str, str]]:
    """(name, kind, link target) of every member."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            return [_zip_member(bundle, info) for info in bundle.infolist()]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            return [(m.name, _tar_kind(m), m.linkname) for m in bundle.getmembers()]
    raise DownloadError(f"{archive}: neither a zip nor a tar archive")


def _zip_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, str, str]:
    if stat.S_ISLNK(info.external_attr >> 16):
        return info.filename, "symlink", bundle.read(info).decode("utf-8", "replace")
    return info.filename, "dir" if info.is_dir() else "file", ""


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdir():
        return "dir"
    return "file" if member.isfile() else "special"


def _unpack(archive: Path, staging: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
        return
    with tarfile.open(archive) as bundle:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
            bundle.extractall(staging, filter="data")
        else:
            bundle.extractall(staging)  # members checked above


def _move_into(staging: Path, target_dir: Path) -> list[Path]:
    """Move the staged tree to ``target_dir`` (merging if it exists); list its files."""
    staged = sorted(p.relative_to(staging) for p in _files_under(staging))
    if not target_dir.exists():
        os.replace(staging, target_dir)
    else:
        for relative in staged:
            (target_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target_dir / relative)
    return [target_dir / relative for relative in staged]


def _files_under(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if Path(root, d).is_symlink()]:
            yield Path(root, name)


def archive_folder(archive: Path) -> Path | None:
    """Folder an archive is unpacked into (its name less the suffix), None if no archive."""
    for suffix in ARCHIVE_SUFFIXES:
        if archive.name.endswith(suffix) and len(archive.name) > len(suffix):
            return archive.with_name(archive.name[: -len(suffix)])
    return None


# ---------------------------------------------------------------------------- sources


def download_source(
    source: Source,
    destination_dir: Path | str,
    *,
    api_base: str = ZENODO_API,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    sleep: Sleep = time.sleep,
) -> list[Path]:
    """Bring one registry dataset into ``destination_dir``; the workflow's entry point.

    Zenodo records are resolved and each file fetched with the record's md5; direct
    URLs are fetched with the registry's, the provider's (sidecar) or a recorded
    checksum (see :mod:`hybridland.data.sources`). Manual products are not downloaded:
    their expected files must already be there. Archives are then unpacked into a
    folder named after them (skipped when that folder exists).

    Returns:
        The dataset's files, then the files unpacked from its archives.

    Raises:
        DownloadError: naming the dataset, and for a manual product saying how to
            obtain it and where to put it.
    """
    folder = Path(destination_dir)
    options: dict[str, Any] = {
        "retries": retries,
        "backoff_s": backoff_s,
        "timeout_s": timeout_s,
        "sleep": sleep,
    }
    if source.manual:
        files = manual_files(source, folder)
    else:
        remote = remote_files(source, folder, api_base=api_base, **options)
        files = [_fetch_remote(source.name, item, folder, options) for item in remote]
    return files + [member for path in files for member in _unpacked(path)]


def remote_files(
    source: Source,
    folder: Path,
    *,
    api_base: str = ZENODO_API,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    sleep: Sleep = time.sleep,
) -> list[RemoteFile]:
    """The files a non-manual source consists of, with their checksums.

    A Zenodo record's metadata is saved in ``folder`` as ``zenodo-<id>.json`` the
    first time and read from there afterwards (a record version never changes), so
    a folder prepared elsewhere can be verified on a machine without network.
    """
    get: dict[str, Any] = {
        "timeout_s": timeout_s,
        "retries": retries,
        "backoff_s": backoff_s,
        "sleep": sleep,
    }
    if source.zenodo_record is not None:
        return _zenodo_files(source, folder, api_base, get)
    if source.url is None:
        raise DownloadError(f"{source.name}: neither 'url' nor 'zenodo_record' is set")
    name = url_file_name(source.url, source.name)
    checksum = source.checksum
    if source.checksum_from == "sidecar" and source.checksum_url is not None:
        body = _get_document(source.checksum_url, source.name, **get)
        where = f"{source.name}: {source.checksum_url}"
        checksum = parse_checksum_file(body.decode("utf-8", "replace"), name, where=where)
    return [RemoteFile(name=name, url=source.url, checksum=checksum)]


def _zenodo_files(
    source: Source, folder: Path, api_base: str, get: dict[str, Any]
) -> list[RemoteFile]:
    record_id = str(source.zenodo_record)
    label = f"{source.name}: Zenodo record {record_id}"
    saved = folder / f"zenodo-{record_id}.json"
    if saved.is_file():
        logger.info("%s: using the metadata saved in %s", label, saved)
        return parse_zenodo_record(_json(saved.read_bytes(), label, str(saved)), record_id)
    url = zenodo_record_url(record_id, api_base)
    try:
        body = _get_document(url, label, **get)
    except DownloadError as error:
        raise DownloadError(
            f"{error}. Without network access, save that JSON metadata as "
            f"{saved.absolute()} and place the record's files beside it; they are then "
            "verified against the md5 checksums it lists."
        ) from error
    files = parse_zenodo_record(_json(body, label, url), record_id)
    folder.mkdir(parents=True, exist_ok=True)
    _write_bytes_atomic(saved, body)
    return files


def url_file_name(url: str, dataset: str) -> str:
    """The file name a URL ends in."""
    name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)
    if not _safe_file_name(name):
        raise DownloadError(f"{dataset}: URL {url!r} does not end in a file name")
    return name


def parse_checksum_file(text: str, file_name: str, *, where: str) -> str:
    """Read a provider's checksum file: ``<hex>  <name>`` lines or a bare digest.

    Returns ``"<algorithm>:<hex>"``, the algorithm inferred from the digest length.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    named = [f for f in lines if len(f) >= 2 and f[-1].lstrip("*").endswith(file_name)]
    chosen = named or (lines if len(lines) == 1 else [])
    if not chosen:
        raise DownloadError(f"{where}: no checksum line for {file_name!r}")
    digest = chosen[0][0].lower()
    algorithm = {v: k for k, v in HASH_HEX_LENGTHS.items()}.get(len(digest))
    if algorithm is None:
        raise DownloadError(f"{where}: {digest!r} is not a hex digest of a known length")
    checksum = f"{algorithm}:{digest}"
    try:
        split_checksum(checksum)
    except ValueError as error:
        raise DownloadError(f"{where}: {error}") from None
    return checksum


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


def _fetch_remote(dataset: str, item: RemoteFile, folder: Path, options: dict[str, Any]) -> Path:
    destination = folder / item.name
    if item.checksum is not None:
        return fetch(item.url, destination, item.checksum, dataset=dataset, **options)
    return _fetch_unpublished(dataset, item, destination, options)


def _fetch_unpublished(
    dataset: str, item: RemoteFile, destination: Path, options: dict[str, Any]
) -> Path:
    """Trust on first use: record the first copy's sha256 and hold later runs to it."""
    record = destination.with_name(destination.name + ".sha256")
    if record.is_file():
        recorded = record.read_text(encoding="utf-8").strip()
        try:
            return fetch(item.url, destination, recorded, dataset=dataset, **options)
        except DownloadError as error:
            raise DownloadError(
                f"{error} (checksum recorded at the first download in {record}; "
                "delete that file to accept the provider's current version)"
            ) from error
    if not destination.is_file():
        fetch(item.url, destination, None, dataset=dataset, **options)
    else:
        logger.warning("%s: using %s, found in place; recording its checksum", dataset, destination)
    _write_bytes_atomic(record, f"sha256:{file_digest(destination)}\n".encode())
    return destination


def _unpacked(path: Path) -> list[Path]:
    folder = archive_folder(path)
    if folder is None:
        return []
    if folder.is_dir():
        logger.info("%s already unpacked into %s", path, folder)
        return sorted(_files_under(folder))
    return extract_archive(path, folder)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    handle, partial = _new_temp_file(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _new_temp_file(final: Path) -> tuple[int, Path]:
    """A new hidden file beside ``final``, with the permissions the umask gives.

    (``tempfile.mkstemp`` would make it 0600, and the rename would keep that.)
    """
    for _ in range(100):
        candidate = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{final.parent}: no free temporary name for {final.name}")


def _new_temp_dir(final: Path) -> Path:
    """A new hidden folder beside ``final``, with the permissions the umask gives."""
    for _ in range(100):
        candidate = final.with_name(f".{final.name}.{secrets.token_hex(4)}.extracting")
        try:
            candidate.mkdir(mode=0o777)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{final.parent}: no free temporary name for {final.name}")
