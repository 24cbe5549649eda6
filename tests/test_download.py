"""Download layer against a scripted HTTP server on 127.0.0.1; never the internet."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import stat
import tarfile
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridland.data import download, sources
from hybridland.data.download import DownloadError, UnsafeArchiveError
from hybridland.data.sources import RemoteFile
from hybridland.studies import fluxnet

# ---------------------------------------------------------------------------- server


@dataclass
class Reply:
    """One scripted answer: status, body, and optionally a lying Content-Length."""

    body: bytes = b""
    status: int = 200
    content_length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Script:
    """Replies per path; each request takes the next one, the last one repeats."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def next_reply(self, path: str) -> Reply:
        with self.lock:
            self.hits[path] += 1
            queue = self.replies.get(path)
            if not queue:
                return Reply(b"not scripted", status=404)
            return queue.pop(0) if len(queue) > 1 else queue[0]


class Handler(BaseHTTPRequestHandler):
    script: Script  # set per server by the fixture

    def do_GET(self) -> None:
        reply = self.script.next_reply(self.path)
        self.send_response(reply.status)
        length = reply.content_length if reply.content_length is not None else len(reply.body)
        self.send_header("Content-Length", str(length))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)
        self.close_connection = True  # a short body then closes: a truncated transfer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    base: str
    script: Script

    def serve(self, path: str, *replies: Reply) -> str:
        self.script.replies[path] = list(replies)
        return self.base + path

    def hits(self, path: str) -> int:
        return self.script.hits[path]


@pytest.fixture
def server() -> Iterator[Server]:
    script = Script()
    handler = type("ScriptedHandler", (Handler,), {"script": script})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", script)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fast(sleeps: list[float]) -> dict[str, Any]:
    """Download options that record waits instead of sleeping."""
    return {"retries": 2, "backoff_s": 0.5, "timeout_s": 5, "sleep": sleeps.append}


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PAYLOAD = b"monthly driver bytes\n" * 50

# ---------------------------------------------------------------------------- fetch


def test_fetch_writes_verified_file_and_no_temporaries(server, tmp_path, fast):
    url = server.serve("/data/driver.nc", Reply(PAYLOAD))
    target = tmp_path / "raw" / "driver.nc"
    result = download.fetch(url, target, md5(PAYLOAD), dataset="demo", progressbar=True, **fast)
    assert result == target
    assert target.read_bytes() == PAYLOAD
    assert list(target.parent.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 == 0o644


def test_present_file_with_right_checksum_is_not_downloaded_again(server, tmp_path, fast):
    url = server.serve("/data/driver.nc", Reply(PAYLOAD))
    target = tmp_path / "driver.nc"
    download.fetch(url, target, sha256(PAYLOAD), dataset="demo", **fast)
    download.fetch(url, target, sha256(PAYLOAD), dataset="demo", **fast)
    assert server.hits("/data/driver.nc") == 1


def test_checksum_mismatch_discards_download_and_names_everything(server, tmp_path, fast):
    url = server.serve("/data/driver.nc", Reply(PAYLOAD))
    target = tmp_path / "driver.nc"
    wrong = "md5:" + "0" * 32
    with pytest.raises(DownloadError) as caught:
        download.fetch(url, target, wrong, dataset="demo", **fast)
    message = str(caught.value)
    assert message.startswith("demo: checksum mismatch for ")
    assert f"for {url}: expected {wrong}, got {md5(PAYLOAD)}" in message
    assert list(tmp_path.iterdir()) == []


def test_server_error_is_retried_with_backoff(server, tmp_path, fast, sleeps):
    url = server.serve("/data/driver.nc", Reply(b"busy", status=500), Reply(PAYLOAD))
    target = download.fetch(url, tmp_path / "driver.nc", md5(PAYLOAD), dataset="demo", **fast)
    assert target.read_bytes() == PAYLOAD
    assert server.hits("/data/driver.nc") == 2
    assert sleeps == [0.5]


def test_too_many_requests_honours_retry_after(server, tmp_path, fast, sleeps):
    busy = Reply(b"slow down", status=429, headers={"Retry-After": "7"})
    url = server.serve("/data/driver.nc", busy, Reply(PAYLOAD))
    download.fetch(url, tmp_path / "driver.nc", md5(PAYLOAD), dataset="demo", **fast)
    assert sleeps == [7.0]


def test_truncated_transfer_is_retried(server, tmp_path, fast, sleeps):
    short = Reply(PAYLOAD[:100], content_length=len(PAYLOAD))
    url = server.serve("/data/driver.nc", short, Reply(PAYLOAD))
    target = download.fetch(url, tmp_path / "driver.nc", md5(PAYLOAD), dataset="demo", **fast)
    assert target.read_bytes() == PAYLOAD
    assert sleeps == [0.5]


def test_always_truncated_fails_clearly_and_leaves_nothing(server, tmp_path, fast, sleeps):
    url = server.serve("/data/driver.nc", Reply(PAYLOAD[:100], content_length=len(PAYLOAD)))
    target = tmp_path / "driver.nc"
    with pytest.raises(DownloadError) as caught:
        download.fetch(url, target, md5(PAYLOAD), dataset="demo", **fast)
    message = str(caught.value)
    assert f"demo: gave up on {url} after 3 attempts" in message
    assert f"truncated transfer: received 100 of {len(PAYLOAD)} bytes" in message
    assert sleeps == [0.5, 1.0]
    assert list(tmp_path.iterdir()) == []


def test_not_found_is_not_retried(server, tmp_path, fast, sleeps):
    url = server.serve("/data/missing.nc", Reply(b"no", status=404))
    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found; not retried") as caught:
        download.fetch(url, tmp_path / "missing.nc", md5(PAYLOAD), dataset="demo", **fast)
    assert str(caught.value).startswith(f"demo: {url} answered HTTP 404")
    assert server.hits("/data/missing.nc") == 1
    assert sleeps == []
    assert list(tmp_path.iterdir()) == []


def test_unreachable_network_says_where_to_place_the_file(tmp_path, fast, sleeps):
    url = f"http://127.0.0.1:{closed_port()}/data/driver.nc"
    target = tmp_path / "raw" / "driver.nc"
    checksum = md5(PAYLOAD)
    with pytest.raises(DownloadError) as caught:
        download.fetch(url, target, checksum, dataset="demo", **fast)
    message = str(caught.value)
    assert message.startswith(f"demo: cannot reach {url} after 3 attempts")
    assert f"place it at {target.absolute()} with checksum {checksum}" in message
    assert len(sleeps) == 2
    assert list(target.parent.iterdir()) == []


def test_malformed_checksum_is_refused_before_downloading(server, tmp_path, fast):
    url = server.serve("/data/driver.nc", Reply(PAYLOAD))
    with pytest.raises(DownloadError, match=r"demo: checksum 'md5:xyz'"):
        download.fetch(url, tmp_path / "driver.nc", "md5:xyz", dataset="demo", **fast)
    assert server.hits("/data/driver.nc") == 0


# ---------------------------------------------------------------------------- zenodo


def zenodo_record(server: Server, files: dict[str, bytes]) -> dict[str, Any]:
    entries = []
    for name, data in files.items():
        url = server.serve(f"/api/records/42/files/{name}/content", Reply(data))
        entries.append(
            {"key": name, "size": len(data), "checksum": md5(data), "links": {"self": url}}
        )
    return {"id": 42, "metadata": {"license": {"id": "cc-by-4.0"}}, "files": entries}


BUNDLE = {"driver.nc": PAYLOAD, "co2.csv": b"year,month,co2\n2010,1,388.5\n"}


def test_zenodo_record_is_resolved_from_its_metadata(server, fast):
    record = zenodo_record(server, BUNDLE)
    server.serve("/api/records/42", Reply(json.dumps(record).encode()))
    files = sources.resolve_zenodo_record(42, api_base=server.base + "/api", **fast)
    assert files == [
        RemoteFile(name, f"{server.base}/api/records/42/files/{name}/content", md5(data), len(data))
        for name, data in BUNDLE.items()
    ]


def test_zenodo_source_downloads_every_file_with_the_record_md5(server, tmp_path, fast):
    record = zenodo_record(server, BUNDLE)
    server.serve("/api/records/42", Reply(json.dumps(record).encode()))
    source = make_source({"zenodo_record": "42"})
    paths = sources.download_source(source, tmp_path, api_base=server.base + "/api", **fast)
    assert paths == [tmp_path / name for name in BUNDLE]
    assert all((tmp_path / name).read_bytes() == data for name, data in BUNDLE.items())


def test_zenodo_metadata_is_saved_so_later_runs_work_offline(server, tmp_path, fast):
    record = zenodo_record(server, BUNDLE)
    server.serve("/api/records/42", Reply(json.dumps(record).encode()))
    source = make_source({"zenodo_record": "42"})
    first = sources.download_source(source, tmp_path, api_base=server.base + "/api", **fast)
    assert json.loads((tmp_path / "zenodo-42.json").read_text()) == record
    offline = f"http://127.0.0.1:{closed_port()}/api"
    assert sources.download_source(source, tmp_path, api_base=offline, **fast) == first
    assert server.hits("/api/records/42") == 1


def test_zenodo_unreachable_says_where_to_save_the_metadata(tmp_path, fast):
    offline = f"http://127.0.0.1:{closed_port()}/api"
    with pytest.raises(DownloadError) as caught:
        sources.download_source(
            make_source({"zenodo_record": "42"}), tmp_path, api_base=offline, **fast
        )
    message = str(caught.value)
    assert message.startswith(f"demo: Zenodo record 42: cannot reach {offline}/records/42")
    assert f"save that JSON metadata as {tmp_path.absolute() / 'zenodo-42.json'}" in message


def test_zenodo_file_corrupted_in_transit_is_refused(server, tmp_path, fast):
    record = zenodo_record(server, BUNDLE)
    server.serve("/api/records/42/files/co2.csv/content", Reply(b"tampered"))
    server.serve("/api/records/42", Reply(json.dumps(record).encode()))
    with pytest.raises(DownloadError, match=r"demo: checksum mismatch .*co2\.csv/content"):
        sources.download_source(
            make_source({"zenodo_record": "42"}), tmp_path, api_base=server.base + "/api", **fast
        )
    assert not (tmp_path / "co2.csv").exists()


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"files": []}, "no non-empty 'files' list"),
        ({"id": 8, "files": []}, "metadata is that of record 8"),
        ({"files": [{"key": "a.nc", "size": 1, "checksum": "md5:1"}]}, "'links.self' None"),
        ({"files": [{"key": "../a.nc", "size": 1}]}, "'key' '../a.nc' is not a plain file name"),
        (
            {"files": [{"key": "a.nc", "size": 1, "links": {"self": "https://x/a"}}]},
            "'checksum' None is not 'md5:<hex>'",
        ),
    ],
)
def test_malformed_zenodo_record_names_the_record(server, fast, record, complaint):
    server.serve("/api/records/7", Reply(json.dumps(record).encode()))
    with pytest.raises(DownloadError, match="Zenodo record 7") as caught:
        sources.resolve_zenodo_record("7", api_base=server.base + "/api", **fast)
    assert complaint in str(caught.value)


def test_zenodo_metadata_that_is_not_json_is_refused(server, fast):
    server.serve("/api/records/7", Reply(b"<html>maintenance</html>"))
    with pytest.raises(DownloadError, match=r"Zenodo record 7: metadata at .* is not JSON"):
        sources.resolve_zenodo_record("7", api_base=server.base + "/api", **fast)


# ---------------------------------------------------------------------------- other sources


def make_source(extra: dict[str, Any]) -> sources.Source:
    entry = {
        "description": "d",
        "citation": "c",
        "licence": "l",
        "format": "csv",
        "native_grid": "global series",
        **extra,
    }
    return sources.source_from_mapping("demo", entry)


def test_unpublished_checksum_is_recorded_then_enforced(server, tmp_path, fast):
    url = server.serve("/gml/co2_mm_gl.csv", Reply(b"v1"))
    source = make_source({"url": url, "checksum_from": "none-published"})
    (path,) = sources.download_source(source, tmp_path, **fast)
    assert (tmp_path / "co2_mm_gl.csv.sha256").read_text().strip() == sha256(b"v1")
    sources.download_source(source, tmp_path, **fast)
    assert server.hits("/gml/co2_mm_gl.csv") == 1
    path.unlink()
    server.serve("/gml/co2_mm_gl.csv", Reply(b"v2, updated in place"))
    with pytest.raises(DownloadError, match=r"delete that file to accept"):
        sources.download_source(source, tmp_path, **fast)


def test_sidecar_checksum_is_read_from_the_provider(server, tmp_path, fast):
    url = server.serve("/d/lai.nc", Reply(PAYLOAD))
    line = f"{hashlib.sha256(PAYLOAD).hexdigest()}  lai.nc\n".encode()
    sums = server.serve("/d/SHA256SUMS", Reply(b"0" * 64 + b"  other.nc\n" + line))
    source = make_source({"url": url, "checksum_from": "sidecar", "checksum_url": sums})
    (path,) = sources.download_source(source, tmp_path, **fast)
    assert path.read_bytes() == PAYLOAD


def test_manual_source_missing_says_how_and_where(tmp_path):
    source = make_source(
        {
            "manual": True,
            "instructions": "Log in to the portal.",
            "expected_files": ["*.hdf"],
            "landing_url": "https://example.org/p",
        }
    )
    with pytest.raises(DownloadError) as caught:
        sources.download_source(source, tmp_path / "lc")
    message = str(caught.value)
    assert message.startswith("demo: needs a manual download: Log in to the portal.")
    assert f"place files matching *.hdf in {(tmp_path / 'lc').absolute()}" in message
    (tmp_path / "lc").mkdir()
    (tmp_path / "lc" / "a.hdf").write_bytes(b"x")
    assert sources.download_source(source, tmp_path / "lc") == [tmp_path / "lc" / "a.hdf"]


def test_archive_source_is_downloaded_and_unpacked(server, tmp_path, fast):
    data = zip_bytes({"bundle/mask.csv": b"1,0\n", "bundle/split.csv": b"3\n"})
    url = server.serve("/d/bundle.zip", Reply(data))
    source = make_source({"url": url, "checksum": sha256(data), "format": "zip"})
    paths = sources.download_source(source, tmp_path, **fast)
    unpacked = tmp_path / "bundle"
    assert paths == [
        tmp_path / "bundle.zip",
        unpacked / "bundle/mask.csv",
        unpacked / "bundle/split.csv",
    ]
    assert sources.download_source(source, tmp_path, **fast) == paths


# ---------------------------------------------------------------------------- archives


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def tar_gz(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            bundle.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_safe_archives_unpack(tmp_path):
    archive = tmp_path / "ok.zip"
    archive.write_bytes(zip_bytes({"a.txt": b"a", "sub/b.txt": b"b"}))
    files = download.extract_archive(archive, tmp_path / "ok")
    assert files == [tmp_path / "ok/a.txt", tmp_path / "ok/sub/b.txt"]
    entries = [tar_entry("d/c.txt"), tar_entry("d/link", tarfile.SYMTYPE, "c.txt")]
    tar = tar_gz(tmp_path / "ok.tar.gz", entries, {"d/c.txt": b"c"})
    files = download.extract_archive(tar, tmp_path / "ok2")
    assert [f.name for f in files] == ["c.txt", "link"]
    assert (tmp_path / "ok2/d/link").read_bytes() == b"c"


def test_zip_escaping_with_dotdot_is_refused(tmp_path):
    archive = tmp_path / "in" / "evil.zip"
    archive.parent.mkdir()
    archive.write_bytes(zip_bytes({"fine.txt": b"ok", "../evil.txt": b"gotcha"}))
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./evil\.txt' leaves the target"):
        download.extract_archive(archive, tmp_path / "in" / "out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.zip", "in"]


def test_tar_with_absolute_path_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    archive = tar_gz(tmp_path / "abs.tar.gz", [tar_entry(str(victim))], {str(victim): b"x"})
    with pytest.raises(UnsafeArchiveError, match="has an absolute path; nothing was extracted"):
        download.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abs.tar.gz"]


@pytest.mark.parametrize(
    ("kind", "link"),
    [(tarfile.SYMTYPE, "../../outside"), (tarfile.SYMTYPE, "/etc"), (tarfile.LNKTYPE, "../x")],
)
def test_tar_with_link_escaping_is_refused(tmp_path, kind, link):
    entries = [tar_entry("d/escape", kind, link), tar_entry("d/escape/evil.txt")]
    archive = tar_gz(tmp_path / "link.tar.gz", entries, {"d/escape/evil.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match=r"member 'd/escape' is a link to .*outside"):
        download.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.tar.gz"]


CHAIN = [
    tar_entry("b", tarfile.SYMTYPE, "."),
    tar_entry("a", tarfile.SYMTYPE, "b/c/../.."),
    tar_entry("a/evil"),
]


@pytest.mark.parametrize("members", [CHAIN, [tar_entry("c", tarfile.DIRTYPE), *CHAIN]])
def test_link_chain_out_of_the_target_is_refused_without_tarfile_filter(
    tmp_path, monkeypatch, members
):
    # b -> . makes "b/c/../.." the target's parent, though its text looks inside. With
    # "c" present, tarfile without a filter (Python 3.11.0-3.11.3) writes "evil" outside.
    monkeypatch.delattr(tarfile, "data_filter")
    (tmp_path / "in").mkdir()
    archive = tar_gz(tmp_path / "in" / "chain.tar.gz", members, {"a/evil": b"gotcha"})
    with pytest.raises(UnsafeArchiveError) as caught:
        download.extract_archive(archive, tmp_path / "in" / "out")
    assert str(caught.value) == (
        f"{archive}: refusing to extract: member 'a' is a link to 'b/c/../..', outside "
        "the target folder; nothing was extracted"
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "in",
        "in/chain.tar.gz",
    ]


def test_link_that_a_later_link_turns_outwards_is_refused(tmp_path):
    # a -> x/.. is the target itself until x -> . makes it the target's parent.
    entries = [tar_entry("a", tarfile.SYMTYPE, "x/.."), tar_entry("x", tarfile.SYMTYPE, ".")]
    archive = tar_gz(tmp_path / "late.tar", entries, {})
    with pytest.raises(UnsafeArchiveError, match=r"member 'a' is a link to 'x/\.\.', outside"):
        download.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.tar"]


def test_links_inside_the_target_are_followed_not_refused(tmp_path):
    entries = [
        tar_entry("data", tarfile.DIRTYPE),
        tar_entry("here", tarfile.SYMTYPE, "."),
        tar_entry("latest", tarfile.SYMTYPE, "here/data/../data"),
        tar_entry("latest/x.csv"),
    ]
    archive = tar_gz(tmp_path / "ok.tar", entries, {"latest/x.csv": b"1"})
    files = download.extract_archive(archive, tmp_path / "out")
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == [
        "data/x.csv",
        "here",
        "latest",
    ]
    assert (tmp_path / "out" / "data" / "x.csv").read_bytes() == b"1"


def test_zip_symlink_out_of_the_target_is_refused(tmp_path):
    link = zipfile.ZipInfo("d/up")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("d/fine.txt", b"ok")
        bundle.writestr(link, "../..")
    archive = tmp_path / "link.zip"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(
        UnsafeArchiveError, match=r"member 'd/up' is a link to '\.\./\.\.', outside"
    ):
        download.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.zip"]


def test_tar_device_member_is_refused(tmp_path):
    archive = tar_gz(tmp_path / "dev.tar", [tar_entry("null", tarfile.CHRTYPE)], {})
    with pytest.raises(UnsafeArchiveError, match="is a device or FIFO"):
        download.extract_archive(archive, tmp_path / "out")


def test_not_an_archive_is_reported(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DownloadError, match=r"junk\.zip: neither a zip nor a tar archive"):
        download.extract_archive(junk, tmp_path / "out")


# ---------------------------------------------------------------------------- checksum files

SUMS_OK = f"# made by sha256sum\n{hashlib.sha256(b'a').hexdigest()}  a.nc\n\n{'0' * 32} *b.nc\n\n"


def test_checksum_file_skips_blank_lines_and_comments():
    assert download.parse_checksum_lines(SUMS_OK, where="SUMS") == {
        "a.nc": sha256(b"a"),
        "b.nc": "md5:" + "0" * 32,
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "0" * 64 + "  a.nc\nnot-a-digest  b.nc\n",
            "line 2 is not '<hex digest>  <file name>': 'not-a-digest  b.nc'",
        ),
        (
            "\n" + "0" * 63 + "  a.nc\n",
            f"line 2 is not '<hex digest>  <file name>': '{'0' * 63}  a.nc'",
        ),
        (
            "0" * 64 + "  a.nc\n" + "0" * 64 + "\n",
            f"line 2 is not '<hex digest>  <file name>': '{'0' * 64}'",
        ),
    ],
)
def test_malformed_checksum_line_is_refused_naming_file_and_line(text, line):
    with pytest.raises(DownloadError) as caught:
        download.parse_checksum_lines(text, where="/d/SHA256SUMS")
    assert str(caught.value) == f"/d/SHA256SUMS: {line}"


def test_provider_checksum_file_may_be_a_bare_digest():
    digest = hashlib.md5(b"x", usedforsecurity=False).hexdigest()
    assert download.parse_checksum_file(f"{digest}\n\n", "x.nc", where="w") == f"md5:{digest}"
    with pytest.raises(DownloadError, match=r"^w: no checksum line for 'x\.nc'$"):
        download.parse_checksum_file(SUMS_OK, "x.nc", where="w")


def test_fluxnet_checksums_skip_blank_lines_and_refuse_malformed_ones(tmp_path):
    (tmp_path / "a.nc").write_bytes(b"a")
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(b'a').hexdigest()}  a.nc\n\n")
    fluxnet.verify_checksums(tmp_path)
    sums.write_text(f"{hashlib.sha256(b'a').hexdigest()}  a.nc\n\ngarbage\n")
    with pytest.raises(fluxnet.FluxnetError) as caught:
        fluxnet.verify_checksums(tmp_path)
    assert str(caught.value) == f"{sums}: line 3 is not '<hex digest>  <file name>': 'garbage'"


# ---------------------------------------------------------------------------- registry


def test_packaged_registry_loads_with_the_study_products():
    registry = sources.load_registry()
    bundle = registry["differland_global"]
    assert (bundle.zenodo_record, bundle.checksum_from) == ("13984226", "zenodo")
    assert bundle.doi == "10.5281/zenodo.13984226"
    assert registry["cms_flux_nbe"].native_grid == sources.NativeGrid("latlon", 4.0, 5.0)
    assert registry["noaa_co2_monthly"].native_grid.kind == "global series"
    expected = {
        "modis_mcd12c1",
        "soil_texture",
        "elevation",
        "canopy_height",
        "forest_age",
        "era5_monthly",
        "noaa_co2_monthly",
        "gfed5_burned_area",
        "modis_lai",
        "lcspp_sif",
        "gleam_et",
        "cms_flux_nbe",
        "grace_ewt",
        "xu_biomass",
        "hwsd_soil_carbon",
    }
    assert expected <= set(registry)
    assert all(s.instructions and s.expected_files for s in registry.values() if s.manual)


def write_registry(tmp_path: Path, entry: dict[str, Any]) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"lai": entry}}))
    return path


VALID = {
    "description": "d",
    "citation": "c",
    "licence": "l",
    "format": "netcdf",
    "native_grid": 0.5,
    "url": "https://example.org/lai.nc",
    "checksum": "md5:" + "a" * 32,
}


def test_registry_rejects_an_unknown_key(tmp_path):
    path = write_registry(tmp_path, {**VALID, "resolution": 0.5})
    with pytest.raises(ValueError, match=r"sources\.yaml: dataset 'lai': unknown key 'resolution'"):
        sources.load_registry(path)


def test_registry_rejects_a_missing_field(tmp_path):
    entry = {k: v for k, v in VALID.items() if k != "licence"}
    with pytest.raises(ValueError, match=r"dataset 'lai': missing required key 'licence'"):
        sources.load_registry(write_registry(tmp_path, entry))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"checksum": "md5:123"}, "key 'checksum': checksum 'md5:123'"),
        ({"format": "grib"}, "key 'format' has value 'grib'"),
        ({"native_grid": -1}, "key 'native_grid' has value -1"),
        ({"zenodo_record": "1"}, "give exactly one of 'url' and 'zenodo_record'"),
        ({"manual": True}, "key 'url' cannot be used with 'manual: true'"),
        ({"checksum_from": "sidecar"}, "key 'checksum' is required with, and only with"),
    ],
)
def test_registry_rejects_inconsistent_entries(tmp_path, change, complaint):
    with pytest.raises(ValueError, match="dataset 'lai'") as caught:
        sources.load_registry(write_registry(tmp_path, {**VALID, **change}))
    assert complaint in str(caught.value)
