"""Open a page in headless Chromium over the DevTools protocol and collect what went wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def chromium() -> str | None:
    """The Chromium executable (Debian's package), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> None:
    """Skip the calling test without Chromium; with CI set, fail instead, since CI installs it."""
    import pytest

    if chromium() is not None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI is set but chromium is not installed (.ci/run installs it)", pytrace=False)
    pytest.skip("chromium is not installed (Debian: apt-get install chromium)")


@dataclass
class PageReport:
    errors: list[str] = field(
        default_factory=list
    )  # console errors, uncaught exceptions, failed loads
    text: str = ""  # the rendered page's visible text


def _devtools_port(profile: Path, deadline: float) -> int:
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError("Chromium did not open its DevTools port")


def open_page(path: Path, settle_s: float = 8.0, timeout_s: float = 60.0) -> PageReport:
    """Load ``path`` and return the console errors and exceptions seen within ``settle_s`` of
    loading."""
    import websocket  # websocket-client, a test dependency

    executable = chromium()
    if executable is None:
        raise FileNotFoundError("chromium is not installed")
    deadline = time.monotonic() + timeout_s
    # Chromium's helper processes can still write into the profile as it is removed.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _devtools_port(Path(profile), deadline)
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/json/list", timeout=10
            ) as response:
                page = next(t for t in json.load(response) if t["type"] == "page")
            socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout_s)
            return _inspect(socket, path.resolve().as_uri(), settle_s, deadline)
        finally:
            process.terminate()
            process.wait(timeout=20)


def _inspect(socket, url: str, settle_s: float, deadline: float) -> PageReport:
    report, counter = PageReport(), iter(range(1, 10**6))

    def send(method: str, **params) -> int:
        number = next(counter)
        socket.send(json.dumps({"id": number, "method": method, "params": params}))
        return number

    def collect(event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            report.errors.append(
                "console: "
                + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            report.errors.append(
                "exception: " + details.get("exception", {}).get("description", details["text"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            report.errors.append(
                f"log: {params['entry']['text']} ({params['entry'].get('url', '')})"
            )

    def reply(number: int) -> dict:
        while time.monotonic() < deadline:
            message = json.loads(socket.recv())
            if message.get("id") == number:
                return message.get("result", {})
            collect(message)
        raise TimeoutError("no reply from Chromium")

    for method in ("Runtime.enable", "Log.enable", "Page.enable"):
        reply(send(method))
    reply(send("Page.navigate", url=url))
    socket.settimeout(0.5)
    settle_until = time.monotonic() + settle_s
    while time.monotonic() < settle_until:
        try:
            collect(json.loads(socket.recv()))
        except websocket_timeout():
            pass
    socket.settimeout(max(1.0, deadline - time.monotonic()))
    result = reply(
        send("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
    )
    report.text = result.get("result", {}).get("value", "")
    return report


def websocket_timeout() -> type[Exception]:
    import websocket

    return websocket.WebSocketTimeoutException
