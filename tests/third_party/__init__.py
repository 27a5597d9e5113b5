"""Files that no one at Escompte wrote: samples published by other projects, fetched
from PyPI (the index pip is configured with) at a pinned version whose archive hash is
checked, then kept in ``.cache/third-party/`` for the next runs. Nothing of theirs is
committed here; the tests read the files where they were unpacked.

- ``factur-x`` 7.8 (BSD, Akretion): the library Escompte uses to read Factur-X PDFs.
  Its source archive carries the Factur-X / ZUGFeRD specification's sample invoices: a
  Factur-X PDF, CII XML of every profile, UBL 2.1 invoices (one of the French CTC
  extension), ZUGFeRD 1.0 XML.
- ``odoo-addon-account_statement_import_camt`` 19.0.1.0.0.8 (AGPL-3, the Odoo
  Community Association): its bank statement samples (camt.053.001.02 from a Dutch test
  bank, one in CHF, one without entries) and, for each, the statement that Odoo reads from
  it ("golden" files), written by its authors.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "third-party"


@dataclass(frozen=True)
class Archive:
    requirement: str  # name==version
    sha256: str
    binary: bool  # a wheel (else the source archive)
    members: str  # the folder inside the archive whose files are kept

    @property
    def folder(self) -> Path:
        return CACHE / self.requirement.replace("==", "-")


FACTUR_X = Archive(
    "factur-x==7.8",
    "c7efa5e559612a790faf97904aa5bc64300d11f7c35c9ba52467b0c5fb6d4c53",
    binary=False,
    members="factur_x-7.8/tests/fixtures/",
)
OCA_CAMT = Archive(
    "odoo-addon-account_statement_import_camt==19.0.1.0.0.8",
    "18e4d7f054d929dbcc142ee1a56a6b72ae253a3568b536b2493e5647047b3c6e",
    binary=True,
    members="odoo/addons/account_statement_import_camt/tests/samples/",
)


def fetch(archive: Archive) -> Path:
    """The archive's sample folder, downloaded and unpacked once (safe across parallel
    test workers)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    done = archive.folder / ".complete"
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _download_and_unpack(archive)
            done.touch()
    return archive.folder


def _download_and_unpack(archive: Archive) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
        binary = "--only-binary" if archive.binary else "--no-binary"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                binary,
                ":all:",
                "--dest",
                tmp,
                "-r",
                str(requirements),
            ],
            capture_output=True,
            text=True,
        )
        files = [p for p in Path(tmp).iterdir() if p.name != "requirements.txt"]
        if result.returncode != 0 or len(files) != 1:
            raise RuntimeError(
                f"could not download {archive.requirement} from the package index:\n{result.stderr[-2000:]}"
            )
        path = files[0]
        if hashlib.sha256(path.read_bytes()).hexdigest() != archive.sha256:
            raise RuntimeError(f"{path.name}: not the archive whose hash is pinned")
        if archive.folder.exists():
            shutil.rmtree(archive.folder)
        archive.folder.mkdir(parents=True)
        for name, data in _members(path, archive.members):
            target = archive.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _members(path: Path, prefix: str) -> list[tuple[str, bytes]]:
    out = []
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.startswith(prefix) and not info.is_dir():
                    out.append((info.filename[len(prefix) :], z.read(info)))
    else:
        with tarfile.open(path) as t:
            for member in t.getmembers():
                if member.name.startswith(prefix) and member.isfile():
                    data = t.extractfile(member)
                    assert data is not None
                    out.append((member.name[len(prefix) :], data.read()))
    if not out:
        raise RuntimeError(f"{path.name} holds nothing under {prefix}")
    for name, _ in out:  # nothing may land outside the cache folder
        if name.startswith("/") or ".." in Path(name).parts:
            raise RuntimeError(f"{path.name}: unexpected member {name}")
    return out
