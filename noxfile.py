"""Developer sessions: ``nox`` runs lint, typecheck, tests, interop and docs; see README.md."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "interop", "docs"]

CORE_MODULES = ",".join(
    f"trio_mqttconn/{name}.py"
    for name in (
        "_codec",
        "_properties",
        "_packets",
        "_topics",
        "_subtree",
        "_events",
        "_session",
        "_journal",
        "_message",
        "_frozen",
        "_backoff",
    )
)
DEBIAN_PACKAGES = ("mosquitto",)
MIN_PYTHON = (3, 11)


def find_interpreters() -> list[str]:
    """Every CPython >= 3.11 on this machine, one per exact version, as real paths.

    The tests session runs on each of them, so that a patch-level difference (Debian
    12's 3.11.2 against a pyenv 3.11.7, say) cannot hide behind the one interpreter
    a developer happens to use. Looked for on PATH, in /usr/bin and /usr/local/bin,
    and in pyenv's versions; the interpreter running nox is always one of them.
    """
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    dirs += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin")))
    candidates = [sys.executable]
    for directory in dict.fromkeys(dirs):
        if "shims" in directory:  # pyenv's shims only forward to the versions above
            continue
        candidates += sorted(glob.glob(os.path.join(directory, "python3.[0-9]*")))
    found: dict[str, str] = {}
    probe = "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.executable)"
    for candidate in candidates:
        if candidate.endswith("-config") or not os.access(candidate, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [candidate, "-I", "-c", probe],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        version, executable = out[0], os.path.realpath(out[1])
        if tuple(int(part) for part in version.split(".")[:2]) >= MIN_PYTHON:
            found.setdefault(version, executable)
    return [
        found[v] for v in sorted(found, key=lambda v: tuple(map(int, v.split("."))))
    ]


PYTHONS = find_interpreters()


def _have_mosquitto() -> bool:
    return any(
        shutil.which("mosquitto", path=path)
        for path in (os.environ.get("PATH", ""), "/usr/sbin:/usr/local/sbin")
    )


def ensure_mosquitto(session: nox.Session, *extra_packages: str) -> None:
    """Install Debian's mosquitto when missing (as root with apt-get), else stop clearly."""
    if _have_mosquitto() and not extra_packages:
        return
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = [*DEBIAN_PACKAGES, *extra_packages]
        session.log(f"installing {' '.join(packages)} with apt-get")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run(
            "apt-get", "install", "-y", "-qq", *packages, external=True, env=env
        )
        return
    if not _have_mosquitto():
        session.error(
            "the tests need the Eclipse Mosquitto broker and it is not installed: "
            "run `sudo apt-get install mosquitto` (Debian/Ubuntu) or install it from "
            "https://mosquitto.org/download/, then run nox again"
        )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (core, engine, real mosquitto, shim) with coverage.

    Once per interpreter >= 3.11 that the machine has (see `find_interpreters`).
    """
    ensure_mosquitto(session)
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        *(session.posargs or ["tests"]),
    )
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")
    session.run("coverage", "report", f"--include={CORE_MODULES}", "--fail-under=100")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    # Pinned: a new ruff release must not fail CI on code that did not change.
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, tests, examples and this file; public types."""
    session.install("-e", ".[test,typecheck]", "nox")
    session.run("mypy", "trio_mqttconn", "tests", "noxfile.py", "docs/examples")
    session.run("pyright", "--verifytypes", "trio_mqttconn", "--ignoreexternal")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (warnings are errors), then check it in a real browser.

    Headless chromium (Debian's package, installed here when missing, as root) loads
    the built index, which must raise no console error, and the search page, which
    must find ``MqttConnection``; see tests/docs_browser_check.py. The check first
    proves on a broken site that it reports each kind of fault.
    """
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "-n", "--keep-going", "-b", "html", "docs", "docs/_build"
    )
    browsers = ("chromium", "chromium-browser", "google-chrome")
    if not any(shutil.which(name) for name in browsers):
        if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
            session.log("installing chromium with apt-get (for the browser check)")
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            session.run("apt-get", "update", "-qq", external=True, env=env)
            session.run(
                "apt-get", "install", "-y", "-qq", "chromium", external=True, env=env
            )
        else:
            session.error(
                "the docs session checks the built HTML in headless chromium, which is "
                "not installed: run `sudo apt-get install chromium` (Debian/Ubuntu), "
                "then run nox again"
            )
    session.run("python", "tests/docs_browser_check.py", "--self-test")
    session.run("python", "tests/docs_browser_check.py", "docs/_build")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with peer libraries (not part of the default run)."""
    # libmosquitto-dev and gcc build the C reference client (the near-limit row).
    ensure_mosquitto(session, "libmosquitto-dev", "gcc")
    session.install("-e", ".[bench,test]")
    session.run("python", "bench/codec.py", *session.posargs)
    if os.path.exists("bench/clients.py"):
        session.run("python", "bench/clients.py", *session.posargs)
    session.run("python", "bench/shared.py", *session.posargs)
    session.run("python", "bench/request_response.py", *session.posargs)
    session.run("python", "bench/session_store.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Start a private mosquitto and publish/receive through it."""
    ensure_mosquitto(session)
    session.install("-e", ".[test]")
    session.run("python", "-m", "trio_mqttconn", "demo", *session.posargs)


# Run in the fresh venv of `build`, from outside the checkout: what a user who
# installed the wheel gets. argv[1] is the version _version.py declares.
_WHEEL_PROBE = """
import sys
from importlib.metadata import entry_points
from importlib.resources import files

import trio_mqttconn
import trio_mqttconn.testing

assert "site-packages" in trio_mqttconn.__file__, trio_mqttconn.__file__
assert trio_mqttconn.__version__ == sys.argv[1], (trio_mqttconn.__version__, sys.argv[1])
assert files("trio_mqttconn").joinpath("py.typed").is_file(), "py.typed is missing"
plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
assert plugins.get("trio_mqttconn") == "trio_mqttconn.testing.plugin", plugins
heavy = {"pytest", "trustme"} & set(sys.modules)
assert not heavy, f"import trio_mqttconn.testing imported {heavy}"
print("wheel ok:", trio_mqttconn.__version__, trio_mqttconn.__file__)
"""


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel, twine-check them, and try the wheel in a fresh venv.

    The fresh venv gets only the wheel and its runtime dependencies (no pytest, no
    trustme); it must import trio_mqttconn and trio_mqttconn.testing, ship
    ``py.typed``, report the version of ``trio_mqttconn/_version.py`` (the one place
    it is written; hatch reads it from there) and expose the pytest11 entry point.
    """
    session.install("build", "twine")
    tmp = os.path.abspath(session.create_tmp())
    dist = os.path.join(tmp, "dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", dist)
    sdists = glob.glob(os.path.join(dist, "*.tar.gz"))
    wheels = glob.glob(os.path.join(dist, "*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(
            f"expected one sdist and one wheel in {dist}, found {sdists + wheels}"
        )
    session.run("twine", "check", "--strict", *sdists, *wheels)

    with open("trio_mqttconn/_version.py", encoding="utf-8") as file:
        declared = re.search(r'^__version__ = "([^"]+)"$', file.read(), re.MULTILINE)
    if declared is None:
        session.error('trio_mqttconn/_version.py has no line __version__ = "..."')
    version = declared.group(1)
    if not os.path.basename(wheels[0]).startswith(f"trio_mqttconn-{version}-"):
        session.error(f"the wheel {wheels[0]} is not version {version}")

    venv = os.path.join(tmp, "wheel-venv")
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", venv)
    python = os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")
    session.run(python, "-m", "pip", "install", "-q", wheels[0], external=True)
    # -I and a working directory outside the checkout: the wheel, not the sources.
    with session.chdir(tmp):
        session.run(python, "-I", "-c", _WHEEL_PROBE, version, external=True)


@nox.session
def interop(session: nox.Session) -> None:
    """Run our message queue against the upstream Python one, both ways (interop/).

    The upstream queue is ``pip-services4-mqtt`` from the package index; it needs
    paho-mqtt 1.x, which conflicts with the bench extra (paho 2.2), hence a session
    (and a venv) of its own, outside ``tests/``. Part of the default run: interop
    with the upstream ports is a promise, so CI keeps it.
    """
    ensure_mosquitto(session)
    session.install("-e", ".[test]")
    session.install("pip-services4-mqtt==0.0.1", "paho-mqtt>=1.6,<2")
    session.run("pytest", *(session.posargs or ["interop"]))


@nox.session
def soak(session: nox.Session) -> None:
    """Mixed QoS traffic through random network faults for 10 minutes (not in CI).

    ``nox -s soak -- --duration 60 --seed 7`` for a shorter or repeated run.
    """
    ensure_mosquitto(session)
    session.install("-e", ".[test]")
    session.run("python", "bench/soak.py", *session.posargs)
