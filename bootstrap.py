#!/usr/bin/env python3
"""Set up and run Escompte on a machine that has only python3.

    python3 bootstrap.py demo     # venv + install + embedded PostgreSQL + demo data + API on :8000
    python3 bootstrap.py test     # venv + install + lint + type check + the whole test suite
    python3 bootstrap.py <cmd>    # any `escompte` command inside the venv, e.g. `worker`

The virtual environment lives in ./.venv and is reinstalled only when pyproject.toml or
the set of source files changes. Standard library only: this runs before anything is
installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".escompte-install"
SOURCE_DIRS = ["escompte", "api", "financing", "eligibility", "collections", "connectors", "migrations"]


def _stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
    return digest.hexdigest()


def _run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    if not PY.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    stamp = _stamp()
    if STAMP.exists() and STAMP.read_text() == stamp:
        return
    print("installing Escompte and its dependencies into .venv …", flush=True)
    # strict editable mode: a link tree under build/ that type checkers understand too
    _run(
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-e",
        ".[dev]",
        "--config-settings",
        "editable_mode=strict",
    )
    STAMP.write_text(stamp)


def test(extra: list[str]) -> None:
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    print("== ruff", flush=True)
    _run(BIN / "ruff", "check", ".", env=env)
    print("== mypy", flush=True)
    # Type-check the installed link tree, where api/, collections/ … sit under escompte/.
    trees = sorted((ROOT / "build").glob("__editable__.escompte-*"))
    if not trees:
        sys.exit("the editable link tree is missing: run `python3 bootstrap.py install`")
    mypy = subprocess.run(
        [
            str(BIN / "mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "-p",
            "escompte",
        ],
        cwd=trees[-1],
        env=env,
    )
    if mypy.returncode != 0:
        sys.exit(mypy.returncode)
    print("== pytest", flush=True)
    workers = os.environ.get("ESCOMPTE_TEST_WORKERS", "auto")
    _run(BIN / "pytest", "-n", workers, *extra, env=env)


def main() -> None:
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_venv()
    if command == "test":
        test(extra)
    elif command == "install":
        return
    else:
        os.execv(str(BIN / "escompte"), [str(BIN / "escompte"), command, *extra])


if __name__ == "__main__":
    main()
