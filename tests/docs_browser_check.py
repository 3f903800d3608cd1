"""Check the built HTML documentation in a real headless browser (Debian's chromium).

Usage::

    python tests/docs_browser_check.py docs/_build      # check the built docs
    python tests/docs_browser_check.py --self-test      # prove the check catches faults

It serves the directory over HTTP on 127.0.0.1 (``python -m http.server`` in a child
process, on a free port), starts headless chromium with the DevTools protocol on a
pipe (``--remote-debugging-pipe``: the browser reads commands from file descriptor 3
and writes answers and events to 4, JSON messages ended by a NUL byte; no port, no
WebSocket) and checks that

1. ``index.html`` loads without console errors;
2. ``search.html?q=MqttConnection``, once Sphinx's JavaScript search has finished,
   lists a result that names ``MqttConnection``, also without console errors.

A console error is a ``console.error``/``console.assert`` call, an uncaught
exception, or a browser log entry at level ``error`` (a resource that failed to
load, a blocked request ...). The exit status is 0 when everything holds, else 1 with
one line per problem. ``--self-test`` serves a deliberately broken site and fails
unless every kind of fault is reported, so the check cannot pass by seeing nothing.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Seconds a page may take to load (and the search to finish) before it fails.
PAGE_TIMEOUT = 30.0
#: After the load event, events are still collected until the page was quiet this long.
QUIET_PERIOD = 0.5
SEARCH_QUERY = "MqttConnection"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
)

# The search page's state, read by Runtime.evaluate: Sphinx leaves the summary empty
# until the search finished, then says how many pages matched.
_SEARCH_STATE_JS = """
(() => {
  const summary = document.querySelector("#search-results .search-summary");
  const links = document.querySelectorAll("#search-results ul.search li a");
  return {
    finished: summary !== null && summary.textContent.trim() !== "",
    summary: summary === null ? null : summary.textContent.trim(),
    results: Array.from(links, (a) => a.textContent.trim()),
  };
})()
"""


class CheckFailed(Exception):
    """The browser could not be driven (it died, timed out or answered an error)."""


def find_chromium() -> str | None:
    """The chromium (or chrome) executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve *directory* on a free loopback port; yield its base URL."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(directory),
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        line = server.stdout.readline()
        try:
            port = int(line.split(" port ")[1].split()[0])
        except (IndexError, ValueError):
            raise CheckFailed(
                f"the HTTP server did not say which port it serves on: {line!r}"
            ) from None
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        # Chromium reads commands from fd 3 and writes to fd 4 (its own view).
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # The shell puts the pipe ends at 3 and 4 and becomes chromium (exec).
        redirect = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        with log.open("wb") as log_file:
            self._process = subprocess.Popen(
                [
                    "/bin/sh",
                    "-c",
                    redirect,
                    executable,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(to_browser_read, from_browser_write),
            )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Ask the browser to quit, then make sure it did."""
        try:
            self.call("Browser.close", timeout=5)
        except (CheckFailed, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = PAGE_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one command; return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        message["params"] = params or {}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next_message(deadline, waiting_for=method)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise CheckFailed(f"{method} failed: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def collect(self, seconds: float) -> None:
        """Keep events that arrive within *seconds*."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._next_message(deadline, waiting_for=None))
            except TimeoutError:
                return

    def wait_for_event(self, method: str, session: str) -> None:
        """Wait until the event *method* of *session* arrived (it may already have)."""
        deadline = time.monotonic() + PAGE_TIMEOUT
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            seen = len(self.events)
            self.events.append(self._next_message(deadline, waiting_for=method))

    def _next_message(self, deadline: float, waiting_for: str | None) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                if waiting_for is None:
                    raise TimeoutError
                raise CheckFailed(
                    f"chromium did not answer {waiting_for} within {PAGE_TIMEOUT:g} s"
                )
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise CheckFailed(
                    f"chromium exited (status {self._process.poll()}) "
                    f"while we waited for {waiting_for or 'events'}"
                )
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message


def console_errors(events: list[dict[str, Any]], session: str) -> list[str]:
    """The console errors among *events* of one page, one line each."""
    errors = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in (
            "error",
            "assert",
        ):
            text = " ".join(
                str(arg.get("value", arg.get("description", "")))
                for arg in params.get("args", [])
            )
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            text = exception.get("description") or details.get("text", "")
            errors.append(f"uncaught exception: {text.splitlines()[0] if text else ''}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                where = f" ({entry['url']})" if entry.get("url") else ""
                errors.append(
                    f"{entry.get('source', 'browser')}: {entry.get('text')}{where}"
                )
    return errors


def open_page(browser: Browser, url: str) -> str:
    """Open *url* in a new tab, wait for its load event; return the session id."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})
    attached = browser.call(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    session: str = attached["sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_for_event("Page.loadEventFired", session)
    browser.collect(QUIET_PERIOD)
    return session


def evaluate(browser: Browser, session: str, expression: str) -> Any:
    """Evaluate *expression* in the page; return its value."""
    answer = browser.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True},
        session=session,
    )
    if "exceptionDetails" in answer:
        raise CheckFailed(
            f"evaluating in the page failed: {answer['exceptionDetails']}"
        )
    return answer["result"].get("value")


def check_site(browser: Browser, base_url: str) -> list[str]:
    """Run both checks against the site at *base_url*; return the problems found."""
    problems = []
    index = open_page(browser, f"{base_url}/index.html")
    problems += [f"index.html: {e}" for e in console_errors(browser.events, index)]

    search_url = f"{base_url}/search.html?q={SEARCH_QUERY}"
    search = open_page(browser, search_url)
    deadline = time.monotonic() + PAGE_TIMEOUT
    state = evaluate(browser, search, _SEARCH_STATE_JS)
    while not state["finished"] and time.monotonic() < deadline:
        browser.collect(0.1)
        state = evaluate(browser, search, _SEARCH_STATE_JS)
    if not state["finished"]:
        problems.append(
            f"search.html: the search for {SEARCH_QUERY} did not finish within "
            f"{PAGE_TIMEOUT:g} s (summary: {state['summary']!r})"
        )
    elif not any(SEARCH_QUERY in result for result in state["results"]):
        problems.append(
            f"search.html: no result names {SEARCH_QUERY} "
            f"({state['summary']!r}; results: {state['results'][:5]!r})"
        )
    problems += [f"search.html: {e}" for e in console_errors(browser.events, search)]
    return problems


def run(directory: Path, chromium: str) -> list[str]:
    """Serve *directory*, drive chromium against it; return the problems found."""
    with tempfile.TemporaryDirectory(prefix="docs-browser-check-") as tmp:
        log = Path(tmp) / "chromium.log"
        with serve(directory) as base_url:
            browser = Browser(chromium, Path(tmp) / "profile", log)
            try:
                return check_site(browser, base_url)
            except CheckFailed as exc:
                tail = log.read_text(errors="replace").splitlines()[-20:]
                raise CheckFailed(
                    f"{exc}\n--- last lines of chromium's output:\n" + "\n".join(tail)
                ) from None
            finally:
                browser.close()


BROKEN_INDEX = """<!doctype html><html><head><title>broken</title></head><body>
<img src="missing.png" alt="a resource that is not there">
<script>console.error("self-test console error"); undefinedFunction();</script>
</body></html>
"""
BROKEN_SEARCH = """<!doctype html><html><head><title>search</title></head><body>
<div id="search-results"><h2>Search Results</h2>
<p class="search-summary">Search finished, found one page matching the search query.</p>
<ul class="search"><li><a href="index.html">Something else</a></li></ul></div>
</body></html>
"""


def self_test(chromium: str) -> list[str]:
    """Check a broken site; return what the check failed to notice."""
    with tempfile.TemporaryDirectory(prefix="docs-browser-self-test-") as tmp:
        site = Path(tmp)
        (site / "index.html").write_text(BROKEN_INDEX)
        (site / "search.html").write_text(BROKEN_SEARCH)
        found = run(site, chromium)
    expected = {
        "console.error on the index": "index.html: console.error: self-test console error",
        "uncaught exception on the index": "index.html: uncaught exception: ReferenceError",
        "missing resource on the index": "missing.png",
        "search without the expected result": f"search.html: no result names {SEARCH_QUERY}",
    }
    missed = [
        f"self-test: the check did not report the {what} (it reported: {found!r})"
        for what, needle in expected.items()
        if not any(needle in problem for problem in found)
    ]
    return missed


def _say(stream: TextIO, line: str) -> None:
    stream.write(f"docs browser check: {line}\n")
    stream.flush()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, help="the built HTML")
    parser.add_argument(
        "--self-test", action="store_true", help="check a broken site instead"
    )
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        _say(
            sys.stderr,
            "chromium is not installed; on Debian/Ubuntu run "
            "`sudo apt-get install chromium`",
        )
        return 1
    try:
        if args.self_test:
            problems = self_test(chromium)
            what = "self-test (a broken site is reported as broken)"
        else:
            if args.directory is None or not (args.directory / "index.html").is_file():
                parser.error(f"no built HTML (index.html) in {args.directory}")
            problems = run(args.directory, chromium)
            what = f"{args.directory}: index loads cleanly, search finds {SEARCH_QUERY}"
    except CheckFailed as exc:
        _say(sys.stderr, str(exc))
        return 1
    for problem in problems:
        _say(sys.stderr, problem)
    if problems:
        return 1
    _say(sys.stdout, f"passed: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
