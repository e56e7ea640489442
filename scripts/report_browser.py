"""A minimal headless-Chromium driver (DevTools protocol over a pipe), standard library only.

Used to check that a report opens and renders in a real browser (``scripts/check_report.py``,
the browser tests and ``benchmarks/bench_report.py``). A development tool: it lives in
``scripts/``, outside the package, so it is not installed with biasprobe. Chromium is started with
``--remote-debugging-pipe``: it reads commands on file descriptor 3 and writes replies and
events on descriptor 4, as NUL-terminated JSON messages.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: Flags that keep a headless Chromium off the network and quick to start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    # Software WebGL, so that the report's WebGL traces are exercised without a GPU.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
)
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class BrowserError(RuntimeError):
    """Chromium could not be started or did not answer."""


def find_chromium() -> str | None:
    """Path of a Chrome/Chromium executable (``BROWSER_PATH`` first, then PATH), or None."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file() and os.access(env, os.X_OK):
        return env
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class HeadlessChromium:
    """A headless Chromium with one page, driven over the DevTools protocol.

    Use as a context manager::

        with HeadlessChromium() as browser:
            browser.navigate(Path("report.html").resolve().as_uri())
            browser.evaluate("document.title")

    Attributes:
        console: console messages and exceptions seen so far, as dicts with ``level`` and
            ``text``.
    """

    def __init__(
        self,
        executable: str | None = None,
        *,
        width: int = 1400,
        height: int = 1000,
        timeout: float = 60.0,
    ) -> None:
        exe = executable or find_chromium()
        if not exe:
            raise BrowserError("no Chrome or Chromium found (set BROWSER_PATH)")
        self.exe = exe
        self.width, self.height, self.timeout = width, height, timeout
        self.console: list[dict[str, Any]] = []
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self._events: queue.Queue = queue.Queue()
        self._session: str | None = None
        self._proc: subprocess.Popen | None = None

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> HeadlessChromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start Chromium and open a blank page."""
        self._profile = tempfile.mkdtemp(prefix="biasprobe-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Move the child's ends above 10 so that dup2 onto 3 and 4 cannot clobber them.
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def _setup_child() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [
            self.exe,
            *CHROMIUM_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                preexec_fn=_setup_child,  # noqa: PLW1509 - single-threaded at this point
                close_fds=False,
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self._write = os.fdopen(to_child_w, "wb", buffering=0)
        self._read = os.fdopen(from_child_r, "rb", buffering=0)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )

    def close(self) -> None:
        """Stop Chromium and remove its temporary profile."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                self.call("Browser.close", session=False, timeout=5)
            except (BrowserError, OSError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in ("_write", "_read"):
            try:
                getattr(self, f).close()
            except (AttributeError, OSError):
                pass
        if hasattr(self, "_profile"):
            shutil.rmtree(self._profile, ignore_errors=True)
        self._proc = None

    def stderr_tail(self, n: int = 2000) -> str:
        """The end of Chromium's own log (for error messages)."""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-n:]
        except (AttributeError, OSError, ValueError):
            return ""

    # ---------------------------------------------------------------- protocol

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._read.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    self._on_event(msg)
        with self._lock:
            for q in self._replies.values():
                q.put({"error": {"message": "Chromium closed the connection"}})

    def _on_event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
            )
            self.console.append({"level": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            exc = d.get("exception", {}).get("description") or d.get("text", "")
            self.console.append({"level": "exception", "text": exc})
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.console.append({"level": e.get("level"), "text": e.get("text", "")})
        self._events.put(msg)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one DevTools command and return its result.

        Raises:
            BrowserError: the command failed or timed out.
        """
        with self._lock:
            self._next_id += 1
            mid = self._next_id
            q: queue.Queue = queue.Queue()
            self._replies[mid] = q
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session and self._session:
            msg["sessionId"] = self._session
        try:
            self._write.write(json.dumps(msg).encode("utf-8") + b"\0")
        except (OSError, ValueError) as e:
            raise BrowserError(f"Chromium is not running: {e}\n{self.stderr_tail()}") from None
        try:
            reply = q.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise BrowserError(f"Chromium did not answer {method}") from None
        finally:
            with self._lock:
                self._replies.pop(mid, None)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    # ---------------------------------------------------------------- helpers

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """Evaluate a JavaScript expression in the page and return its (JSON) value."""
        res = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise BrowserError(f"page script failed: {text}")
        return res.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        """Open ``url`` in the page (returns once navigation has started)."""
        res = self.call("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise BrowserError(f"cannot open {url}: {res['errorText']}")

    def wait_for(self, expression: str, timeout: float = 30.0, poll: float = 0.02) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value.

        Raises:
            BrowserError: still falsy after ``timeout`` seconds.
        """
        end = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # the page may be between documents
            if value:
                return value
            if time.monotonic() > end:
                raise BrowserError(f"timed out after {timeout:g} s waiting for {expression}")
            time.sleep(poll)

    def screenshot(
        self, path: Path, *, full_page: bool = True, selector: str | None = None
    ) -> Path:
        """Save a PNG of the page (whole page, viewport, or one element)."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                "(() => { const r = document.querySelector("
                + json.dumps(selector)
                + ").getBoundingClientRect();"
                " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()"
            )
            params["clip"] = {
                "x": box[0],
                "y": box[1],
                "width": box[2],
                "height": box[3],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        elif full_page:
            w, h = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions seen so far."""
        return [
            f"{m['level']}: {m['text']}"
            for m in self.console
            if m.get("level") in ("error", "exception", "assert")
        ]
