"""Fetch the small UEA/UCR `.ts` datasets that the aeon wheel ships, into a local cache.

The aeon wheel (pinned below, checked against its SHA-256) carries a few archive datasets under
``aeon/datasets/data/<Name>/<Name>_TRAIN.ts`` / ``_TEST.ts``. This script downloads the wheel with
``python -m pip download aeon==VERSION --no-deps`` (no aeon install, no other dependency), and
extracts the chosen datasets' TRAIN and TEST files to ``DEST/<Name>/``. Standard library + pip only.

Idempotent: files already present with the recorded SHA-256 are left alone; the wheel is only
downloaded when a file is missing. ``DEST`` gets a ``.gitignore`` of ``*`` so the cache is never
committed.

Usage: python benchmarks/fetch_datasets.py [--dest DIR] [--all] [NAME ...]
  default NAMES: BasicMotions ArrowHead OSULeaf JapaneseVowels;  --all: every .ts dataset in the wheel
Prints one line per dataset and, last, the cache directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

AEON_VERSION = "1.6.0"
WHEEL = f"aeon-{AEON_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
DEFAULT_NAMES = ("BasicMotions", "ArrowHead", "OSULeaf", "JapaneseVowels")
PREFIX = "aeon/datasets/data/"
DEFAULT_DEST = Path(__file__).resolve().parent / ".data"
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wheel_path(dest: Path) -> Path:
    """The pinned wheel in DEST/_wheel, downloaded with pip if absent; its SHA-256 is checked."""
    wheel = dest / "_wheel" / WHEEL
    if not wheel.exists():
        wheel.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", f"aeon=={AEON_VERSION}", "--no-deps"]
        command += ["--only-binary=:all:", "--disable-pip-version-check", "--quiet", "-d", str(wheel.parent)]
        print(f"downloading {WHEEL} with pip ...", file=sys.stderr)
        subprocess.run(command, check=True)
        if not wheel.exists():
            sys.exit(f"error: pip did not produce {wheel}")
    actual = sha256(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        sys.exit(f"error: {WHEEL} has SHA-256 {actual}, expected {WHEEL_SHA256} (deleted; run again)")
    return wheel


def available(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    """Dataset name -> member names of its <Name>_TRAIN.ts and <Name>_TEST.ts."""
    found: dict[str, list[str]] = {}
    for member in archive.namelist():
        if not member.startswith(PREFIX) or not member.endswith(".ts"):
            continue
        folder, _, file = member[len(PREFIX) :].rpartition("/")
        name = folder.split("/")[-1]
        if file in (f"{name}_TRAIN.ts", f"{name}_TEST.ts"):
            found.setdefault(name, []).append(member)
    return {name: sorted(members) for name, members in found.items() if len(members) == 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"datasets (default: {' '.join(DEFAULT_NAMES)})")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"cache directory (default: {DEFAULT_DEST})")
    parser.add_argument("--all", action="store_true", help="every dataset with TRAIN and TEST .ts files in the wheel")
    args = parser.parse_args()
    dest: Path = args.dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / ".gitignore").exists():
        write_atomic(dest / ".gitignore", b"*\n")
    manifest_path = dest / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("aeon") != AEON_VERSION:
        manifest = {"aeon": AEON_VERSION, "wheel_sha256": WHEEL_SHA256, "files": {}}
    files: dict[str, str] = manifest["files"]
    names = list(args.names or DEFAULT_NAMES)

    def present(name: str) -> bool:
        wanted = [f"{name}/{name}_{part}.ts" for part in ("TRAIN", "TEST")]
        return all(rel in files and (dest / rel).exists() and sha256(dest / rel) == files[rel] for rel in wanted)

    if args.all or not all(present(name) for name in names):
        with zipfile.ZipFile(wheel_path(dest)) as archive:
            ships = available(archive)
            if args.all:
                names = sorted(ships)
            missing = [name for name in names if name not in ships]
            if missing:
                sys.exit(f"error: not in {WHEEL}: {', '.join(missing)} (it ships: {', '.join(sorted(ships))})")
            for name in names:
                if present(name):
                    continue
                for member in ships[name]:
                    rel = f"{name}/{member.rsplit('/', 1)[1]}"
                    write_atomic(dest / rel, archive.read(member))
                    files[rel] = sha256(dest / rel)
        write_atomic(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    for name in names:
        print(f"{name}: {dest / name}/{name}_TRAIN.ts, {name}_TEST.ts", file=sys.stderr)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
