"""Download registry datasets through pooch: verified, retried, atomic; safe archive extraction.

pooch does the transfer: :func:`pooch.retrieve` streams a file to a temporary file
beside its destination with its HTTP downloader (a tqdm progress bar on a terminal),
checks the known hash and renames the file into place, and keeps a file already
there with the right hash; its ``Untar``/``Unzip`` processors unpack archives.

On top of pooch this module keeps what pooch lacks:

* the retry policy. pooch's ``retry_if_failed`` retries every failure alike after
  fixed waits; here a client error (404) or a checksum mismatch is not retried, a
  429 or 5xx waits twice as long each time, or as long as Retry-After asks;
* the message that names the file and where to place it by hand, for machines
  without network access;
* Zenodo records, read from the record's JSON metadata, which is saved beside the
  files so that a folder prepared elsewhere is verified offline. pooch's DOI
  downloader does not fit: it resolves the DOI at doi.org and asks zenodo.org on
  every call, and cannot read a saved record;
* the check of every archive member before anything is written (:func:`unsafe_member`).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any, TypeVar

import pooch
import requests

from hybridland.data.sources import HASH_HEX_LENGTHS, Source, split_checksum
from hybridland.io import atomic_path

logger = logging.getLogger(__name__)

ZENODO_API = "https://zenodo.org/api"
USER_AGENT = "hybridland-download/0.2 (pooch)"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
MAX_DOCUMENT_BYTES = 32 << 20  # metadata and checksum files
MAX_LINK_HOPS = 40  # symbolic links followed while resolving one path, as Linux does
CHUNK_BYTES = 1 << 20

Sleep = Callable[[float], None]
T = TypeVar("T")


class DownloadError(RuntimeError):
    """A dataset could not be downloaded, verified or unpacked."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the extraction folder."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: name in the dataset folder, URL, checksum (``alg:hex``), size."""

    name: str
    url: str
    checksum: str | None
    size: int | None = None


class _Transient(Exception):
    """A failure worth retrying; ``unreachable`` when no server answered."""

    def __init__(self, reason: str, *, unreachable: bool = False, retry_after: float = 0.0):
        super().__init__(reason)
        self.unreachable = unreachable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Patience:
    """Retries after the first attempt, first wait (doubled each time), timeout, sleep."""

    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60
    sleep: Sleep = time.sleep


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
    sleep: Sleep = time.sleep,
    progressbar: bool | None = None,
) -> Path:
    """Download ``url`` to ``destination`` and verify it against ``checksum``.

    ``checksum`` is ``"md5:<hex>"``, ``"sha256:<hex>"`` (also sha1, sha512), or None
    when none is published (its sha256 is logged). A file already at ``destination``
    with that checksum is kept. Transient failures are retried ``retries`` times,
    waiting ``backoff_s`` seconds and twice as long each time (or as long as
    Retry-After asks) through ``sleep``; ``timeout_s`` bounds connections and reads.
    ``progressbar`` (pooch's tqdm bar) defaults to whether stderr is a terminal.

    Raises:
        DownloadError: a malformed checksum, a mismatch (nothing is written), a client
            error, or retries exhausted: then it says where to place the file by hand.
    """
    destination, patience = Path(destination), Patience(retries, backoff_s, timeout_s, sleep)
    try:
        known = None if checksum is None else ":".join(split_checksum(checksum))
    except ValueError as error:
        raise DownloadError(f"{dataset}: {error}") from None
    show = sys.stderr.isatty() if progressbar is None else progressbar
    download = _verifying_downloader(dataset, known, destination, timeout_s, show)
    check = (
        f"with checksum {checksum}"
        if checksum is not None
        else "(no checksum is published; its sha256 is recorded on first use)"
    )
    by_hand = (
        "If this machine has no network access, download the file elsewhere and place it "
        f"at {destination.absolute()} {check}; the next run verifies it and does not "
        "download it again."
    )
    retrieve = partial(
        pooch.retrieve, url, known, destination.name, destination.parent, downloader=download
    )
    _retrying(retrieve, label=dataset, url=url, patience=patience, advice=by_hand)
    return destination


def _retrying(
    action: Callable[[], T], *, label: str, url: str, patience: Patience, advice: str = ""
) -> T:
    """Run ``action``, retrying on :class:`_Transient`; then a DownloadError saying so."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"{label}: URL {url!r} is not http(s)")
    if patience.retries < 0:
        raise ValueError(f"{label}: retries must be >= 0, got {patience.retries}")
    attempt = 0
    while True:
        try:
            return action()
        except _Transient as error:
            attempt += 1
            if attempt > patience.retries:
                what = "cannot reach" if error.unreachable else "gave up on"
                raise DownloadError(
                    f"{label}: {what} {url} after {attempt} attempts ({error})"
                    + (f". {advice}" if advice else "")
                ) from error
            delay = max(patience.backoff_s * 2 ** (attempt - 1), error.retry_after)
            logger.warning(
                "%s: %s: attempt %d/%d failed (%s); retrying in %.1f s",
                *(label, url, attempt, patience.retries + 1, error, delay),
            )
            patience.sleep(delay)


class _Sink:
    """Where pooch's HTTP downloader writes: counts and hashes the bytes on their way."""

    def __init__(self, stream: IO[bytes], algorithm: str, limit: int = 0, name: str = "") -> None:
        self.stream, self.limit, self.name, self.received = stream, limit, name, 0
        self.hasher = hashlib.new(algorithm, usedforsecurity=False)

    def write(self, block: bytes) -> int:
        self.received += len(block)
        if self.limit and self.received > self.limit:
            raise DownloadError(f"{self.name} is over {self.limit} bytes, too large for metadata")
        self.hasher.update(block)
        return self.stream.write(block)

    def flush(self) -> None:
        self.stream.flush()


def _verifying_downloader(
    dataset: str, known: str | None, destination: Path, timeout_s: float, progressbar: bool
) -> Callable[[str, str, Any], None]:
    """A pooch downloader that refuses a wrong checksum itself, with our message, unretried."""
    algorithm = known.partition(":")[0] if known else "sha256"

    def download(url: str, output_file: str, _: Any) -> None:
        with open(output_file, "wb") as stream:
            sink = _Sink(stream, algorithm)
            _transfer(url, sink, label=dataset, timeout_s=timeout_s, progressbar=progressbar)
            os.fsync(stream.fileno())
        actual = f"{algorithm}:{sink.hasher.hexdigest()}"
        if known is not None and actual != known:
            raise DownloadError(  # pooch then deletes its temporary file
                f"{dataset}: checksum mismatch for {url}: expected {known}, got {actual}; "
                f"the download was discarded and {destination} was not written"
            )
        if known is None:
            logger.warning("%s: %s has no published checksum; it is %s", dataset, url, actual)
        os.chmod(output_file, 0o644)  # pooch's temporary file is private (0600)

    return download


def _transfer(url: str, sink: _Sink, *, label: str, timeout_s: float, progressbar: bool) -> None:
    """One GET of ``url`` into ``sink`` through pooch's HTTP downloader; failures sorted."""
    answers: list[requests.Response] = []
    downloader = pooch.HTTPDownloader(
        progressbar=progressbar,
        chunk_size=CHUNK_BYTES,
        timeout=timeout_s,
        headers={"User-Agent": USER_AGENT},
        hooks={"response": lambda answer, *_, **__: answers.append(answer)},
    )
    try:
        downloader(url, sink, None)
    except requests.RequestException as error:
        raise _failure(error, url, label, answers, sink.received) from error
    total = _content_length(answers)
    if total is not None and sink.received != total:
        raise _Transient(f"truncated transfer: received {sink.received} of {total} bytes")


def _failure(
    error: requests.RequestException,
    url: str,
    label: str,
    answers: list[requests.Response],
    received: int,
) -> Exception:
    """A transient failure to retry, or a DownloadError to report now."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        code, reason = error.response.status_code, error.response.reason
        if code == 429 or code >= 500:
            wait = error.response.headers.get("Retry-After", "").strip()
            after = min(float(wait), 300.0) if wait.isdigit() else 0.0
            return _Transient(f"HTTP {code} {reason}", retry_after=after)
        return DownloadError(
            f"{label}: {url} answered HTTP {code} {reason}; not retried "
            "(a client error does not go away on retry: check the URL, or whether the "
            "product needs a login and should be marked manual)"
        )
    if isinstance(error, requests.exceptions.SSLError):
        return DownloadError(f"{label}: TLS certificate of {url} not trusted: {error}")
    total = _content_length(answers)
    if total is not None:
        received = max(received, _bytes_before_close(error))
        if received < total:
            return _Transient(f"truncated transfer: received {received} of {total} bytes")
    unreachable = not answers and isinstance(error, requests.ConnectionError)
    return _Transient(f"{type(error).__name__}: {error}", unreachable=unreachable)


def _content_length(answers: list[requests.Response]) -> int | None:
    value = answers[-1].headers.get("Content-Length", "").strip() if answers else ""
    return int(value) if value.isdigit() else None


def _bytes_before_close(error: BaseException) -> int:
    """Bytes read before the server closed early, from the IncompleteRead inside ``error``."""
    for cause in error.args:
        if isinstance(cause, http.client.IncompleteRead):
            return cause.partial if isinstance(cause.partial, int) else len(cause.partial)
        if isinstance(cause, BaseException):
            return _bytes_before_close(cause)
    return 0


def _get_document(url: str, label: str, patience: Patience) -> bytes:
    """GET a small document (metadata, checksum file) into memory, with retries."""

    def get() -> bytes:
        buffer = io.BytesIO()
        sink = _Sink(buffer, "sha256", limit=MAX_DOCUMENT_BYTES, name=f"{label}: {url}")
        _transfer(url, sink, label=label, timeout_s=patience.timeout_s, progressbar=False)
        return buffer.getvalue()

    return _retrying(get, label=label, url=url, patience=patience)


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
    """List the files of a Zenodo record from its JSON metadata at ``{api_base}/records/<id>``.

    Raises:
        DownloadError: the record cannot be fetched, or is malformed; the message
            names the record.
    """
    url = zenodo_record_url(record_id, api_base)
    label = f"Zenodo record {record_id}"
    body = _get_document(url, label, Patience(retries, backoff_s, timeout_s, sleep))
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


# ---------------------------------------------------------------------------- checksum files


def parse_checksum_lines(text: str, *, where: str, bare_digest: bool = False) -> dict[str, str]:
    """``file name -> "<algorithm>:<hex>"`` from ``md5sum``/``sha256sum`` style text.

    Lines are ``<hex>  <name>`` (``<hex> *<name>`` in binary mode); the algorithm
    follows from the digest length. Blank lines and ``#`` comments are skipped. With
    ``bare_digest``, a text holding only a digest maps ``""`` to it.

    Raises:
        DownloadError: one sentence naming ``where`` and the malformed line's number.
    """
    entries: dict[str, str] = {}
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    for number, line in lines:
        digest, _, name = line.partition(" ")
        name = name.strip().removeprefix("*")
        algorithm = {v: k for k, v in HASH_HEX_LENGTHS.items()}.get(len(digest))
        well_formed = algorithm is not None and all(c in "0123456789abcdefABCDEF" for c in digest)
        if not well_formed or not (name or (bare_digest and len(lines) == 1)):
            raise DownloadError(
                f"{where}: line {number} is not '<hex digest>  <file name>': {line!r}"
            )
        entries[name] = f"{algorithm}:{digest.lower()}"
    return entries


def parse_checksum_file(text: str, file_name: str, *, where: str) -> str:
    """The checksum of ``file_name`` in a provider's checksum file (or its bare digest)."""
    entries = parse_checksum_lines(text, where=where, bare_digest=True)
    named = [c for name, c in entries.items() if PurePosixPath(name).name == file_name]
    chosen = named or ([entries[""]] if "" in entries else [])
    if not chosen:
        raise DownloadError(f"{where}: no checksum line for {file_name!r}")
    return chosen[0]


# ---------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class Member:
    """An archive member: ``kind`` is file, dir, symlink, hardlink or special.

    ``link`` is a symlink's target (relative to the member's folder) or a hard
    link's (relative to the archive root).
    """

    name: str
    kind: str
    link: str = ""


def extract_archive(archive: Path | str, target_dir: Path | str) -> list[Path]:
    """Unpack a zip or tar (optionally compressed) archive with pooch's Unzip/Untar.

    Every member is checked first (:func:`unsafe_member`): one unsafe member refuses
    the whole archive. Members are unpacked into a hidden staging folder beside
    ``target_dir`` and moved in only when all are out, so a refused or broken
    archive leaves nothing behind.

    Returns:
        The extracted files (links included, folders not), sorted.

    Raises:
        UnsafeArchiveError: naming the archive and the offending member.
        DownloadError: the file is neither a zip nor a tar archive.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [_zip_member(bundle, info) for info in bundle.infolist()]
        unpacker: Callable[..., Any] = pooch.Unzip
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            members = [Member(m.name, _tar_kind(m), m.linkname) for m in bundle.getmembers()]
        unpacker = pooch.Untar
    else:
        raise DownloadError(f"{archive}: neither a zip nor a tar archive")
    refused = unsafe_member(members)
    if refused is not None:
        name, reason = refused
        raise UnsafeArchiveError(
            f"{archive}: refusing to extract: member {name!r} {reason}; nothing was extracted"
        )
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target_dir.name}.", suffix=".extracting", dir=target_dir.parent)
    ).absolute()
    try:
        staging.chmod(0o755)
        unpacker(extract_dir=str(staging))(str(archive.absolute()), "download", None)
        return _move_into(staging, target_dir)
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        raise DownloadError(f"{archive}: cannot extract: {error}; nothing was extracted") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def unsafe_member(members: Iterable[Member]) -> tuple[str, str] | None:
    """The first member that would write or point outside the target folder, and why.

    Paths are resolved as extraction lays them out, member after member, following
    the symbolic links the archive made earlier: ``b -> .`` then ``a -> b/c/../..``
    makes ``a`` the target's parent, though its text looks inside. Links are checked
    again once all members are known. Unknown path components count as folders.
    """
    tree = _Tree()
    for member in members:
        reason = tree.add(member)
        if reason is not None:
            return member.name, reason
    for location, (name, link) in tree.links.items():
        if tree.resolve(list(location), follow_last=True) is None:
            return name, f"is a link to {link!r}, outside the target folder"
    return None


class _Tree:
    """The symbolic links an archive has made so far, by resolved location."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, ...], tuple[str, str]] = {}

    def add(self, member: Member) -> str | None:
        """Record ``member``; why it is unsafe, or None."""
        if member.kind == "special":
            return "is a device or FIFO"
        if _absolute(member.name):
            return "has an absolute path"
        # Extraction writes files and folders through an existing link at their name.
        location = self.resolve(_split(member.name), follow_last=member.kind != "symlink")
        if location is None:
            return "leaves the target folder"
        if not location and member.kind != "dir":
            return "has an empty name"
        if member.kind in ("symlink", "hardlink"):
            base = list(location[:-1]) if member.kind == "symlink" else []
            target = None if _absolute(member.link) else self.resolve(base + _split(member.link))
            if target is None:
                return f"is a link to {member.link!r}, outside the target folder"
            if member.kind == "symlink":
                self.links[location] = (member.name, member.link)
        return None

    def resolve(self, parts: list[str], follow_last: bool = True) -> tuple[str, ...] | None:
        """Where ``parts`` lead from the target folder; None outside it (or in a link loop)."""
        path: list[str] = []
        hops = 0
        while parts:
            part, parts = parts[0], parts[1:]
            if part in ("", "."):
                continue
            if part == "..":
                if not path:
                    return None
                path.pop()
                continue
            path.append(part)
            entry = self.links.get(tuple(path))
            if entry is not None and (parts or follow_last):
                hops += 1
                if hops > MAX_LINK_HOPS or _absolute(entry[1]):
                    return None
                path.pop()
                parts = _split(entry[1]) + parts
        return tuple(path)


def _split(name: str) -> list[str]:
    return name.replace("\\", "/").split("/")


def _absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)


def _zip_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    if stat.S_ISLNK(info.external_attr >> 16):
        return Member(info.filename, "symlink", bundle.read(info).decode("utf-8", "replace"))
    return Member(info.filename, "dir" if info.is_dir() else "file")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdir():
        return "dir"
    return "file" if member.isfile() else "special"


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
    URLs with the registry's, the provider's (sidecar) or a recorded checksum (see
    :mod:`hybridland.data.sources`). Manual products must already be there. Archives
    are then unpacked into a folder named after them (unless that folder exists).
    The retry options are those of :func:`fetch`.

    Returns:
        The dataset's files, then the files unpacked from its archives.

    Raises:
        DownloadError: naming the dataset; for a manual product, how to obtain it and
            where to put it.
    """
    folder, patience = Path(destination_dir), Patience(retries, backoff_s, timeout_s, sleep)
    if source.manual:
        files = manual_files(source, folder)
    else:
        remote = _remote_files(source, folder, api_base, patience)
        files = [_fetch_remote(source.name, item, folder, patience) for item in remote]
    return files + [member for path in files for member in _unpacked(path)]


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
        body = _get_document(source.checksum_url, source.name, patience)
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
        body = _get_document(url, label, patience)
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
    get: dict[str, Any] = {
        "retries": patience.retries,
        "backoff_s": patience.backoff_s,
        "timeout_s": patience.timeout_s,
        "sleep": patience.sleep,
    }
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


def _unpacked(path: Path) -> list[Path]:
    folder = archive_folder(path)
    if folder is None:
        return []
    if folder.is_dir():
        logger.info("%s already unpacked into %s", path, folder)
        return sorted(_files_under(folder))
    return extract_archive(path, folder)
