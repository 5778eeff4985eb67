"""Prints the requirement of the locked uv release with the hashes of its wheels, for
`pip install --require-hashes -r`: scripts/setup.sh and the image install the lock tool this way,
then export the lock (uv.lock) for pip. Standard library only: it runs before anything is installed.

    python3 scripts/uv_pin.py [path/to/uv.lock]
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def uv_requirement(lock_path: Path) -> str:
    lock = tomllib.loads(lock_path.read_text())
    (uv,) = [package for package in lock["package"] if package["name"] == "uv"]
    hashes = " ".join(f"--hash={wheel['hash']}" for wheel in uv["wheels"])
    return f"uv=={uv['version']} {hashes}"


if __name__ == "__main__":
    print(uv_requirement(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "uv.lock")))
