"""Developer sessions: ``nox`` runs lint, typecheck, tests and docs; see README.md."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

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
        "_message",
        "_backoff",
    )
)
DEBIAN_PACKAGES = ("mosquitto",)


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


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (core, engine, real mosquitto, shim) with coverage."""
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
    session.install("ruff>=0.6")
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
    """Build the documentation; warnings are errors."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "-n", "--keep-going", "-b", "html", "docs", "docs/_build"
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with peer libraries (not part of the default run)."""
    # libmosquitto-dev and gcc build the C reference client (the near-limit row).
    ensure_mosquitto(session, "libmosquitto-dev", "gcc")
    session.install("-e", ".[bench,test]")
    session.run("python", "bench/codec.py", *session.posargs)
    if os.path.exists("bench/clients.py"):
        session.run("python", "bench/clients.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Start a private mosquitto and publish/receive through it."""
    ensure_mosquitto(session)
    session.install("-e", ".[test]")
    session.run("python", "-m", "trio_mqttconn", "demo", *session.posargs)
