"""Fetch files through pooch, verified, retried and atomic; unpack archives safely.

pooch does the transfer: :func:`pooch.retrieve` streams to a temporary file beside the
destination (a tqdm progress bar on a terminal), checks the known hash, renames the file
into place and keeps a file already there with that hash; ``Untar``/``Unzip`` unpack
archives. Kept here, as pooch lacks them: the retry policy (pooch's ``retry_if_failed``
retries a 404 or a checksum mismatch like a 503, after fixed waits, ignoring
Retry-After), the message that says where to place a file by hand, and the check of
every archive member before anything is written (:func:`unsafe_member`).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import re
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

logger = logging.getLogger(__name__)

USER_AGENT = "hybridland-download/0.2 (pooch)"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
MAX_DOCUMENT_BYTES = 32 << 20  # metadata and checksum files
MAX_LINK_HOPS = 40  # symbolic links followed while resolving one path, as Linux does
CHUNK_BYTES = 1 << 20
HASH_HEX_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}

Sleep = Callable[[float], None]
T = TypeVar("T")


class DownloadError(RuntimeError):
    """A dataset could not be downloaded, verified or unpacked."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the extraction folder."""


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
        logger.info("%s: downloaded %s (%d bytes, %s)", dataset, url, sink.received, actual)

    return download


def _transfer(url: str, sink: _Sink, *, label: str, timeout_s: float, progressbar: bool) -> None:
    """One GET of ``url`` into ``sink`` through pooch's HTTP downloader; failures sorted."""
    answers: list[requests.Response] = []
    downloader = pooch.HTTPDownloader(
        progressbar=progressbar,
        chunk_size=CHUNK_BYTES,
        timeout=timeout_s,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},  # bytes as stored
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
    """The announced size of the body as stored (unknown if the server compressed it)."""
    headers = answers[-1].headers if answers else {}
    value = headers.get("Content-Length", "").strip()
    identity = headers.get("Content-Encoding", "identity").strip().lower() == "identity"
    return int(value) if value.isdigit() and identity else None


def _bytes_before_close(error: BaseException) -> int:
    """Bytes read before the server closed early, from the IncompleteRead inside ``error``."""
    for cause in error.args:
        if isinstance(cause, http.client.IncompleteRead):
            return cause.partial if isinstance(cause.partial, int) else len(cause.partial)
        if isinstance(cause, BaseException):
            return _bytes_before_close(cause)
    return 0


def get_document(url: str, label: str, patience: Patience) -> bytes:
    """GET a small document (metadata, checksum file) into memory, with retries."""

    def get() -> bytes:
        buffer = io.BytesIO()
        sink = _Sink(buffer, "sha256", limit=MAX_DOCUMENT_BYTES, name=f"{label}: {url}")
        _transfer(url, sink, label=label, timeout_s=patience.timeout_s, progressbar=False)
        return buffer.getvalue()

    return _retrying(get, label=label, url=url, patience=patience)


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
    by_length = {length: algorithm for algorithm, length in HASH_HEX_LENGTHS.items()}
    for number, line in lines:
        digest, name = (line.split(maxsplit=1) + [""])[:2]
        name = name.removeprefix("*")
        algorithm = by_length.get(len(digest))
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
    """Unpack a zip or tar archive with pooch's Unzip/Untar; its files (and links), sorted.

    Every member is checked first (:func:`unsafe_member`); one unsafe member refuses
    the archive (UnsafeArchiveError). Members are unpacked into a hidden staging folder
    and moved in when all are out, so a refused or broken archive leaves nothing behind.
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


def unpack(path: Path) -> list[Path]:
    """The files unpacked from ``path`` into :func:`archive_folder` (once), none if no archive."""
    folder = archive_folder(path)
    if folder is None:
        return []
    if folder.is_dir():
        logger.info("%s already unpacked into %s", path, folder)
        return sorted(_files_under(folder))
    return extract_archive(path, folder)
