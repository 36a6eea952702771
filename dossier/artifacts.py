"""Learned artefacts on disk: JSON with a sha256 sidecar, checked at every load.

A damaged, truncated or hand-edited artefact is refused with a message that says how
to get a good one back, instead of silently answering or verifying wrongly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dossier.errors import ModelNotInstalled

DATA = Path(__file__).with_name("data")


def write_artifact(path: Path, data: dict[str, Any]) -> str:
    """Write ``data`` as JSON and its ``.sha256`` sidecar; return the digest."""
    raw = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    path.with_suffix(".sha256").write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest


def read_artifact(path: Path, how_to_rebuild: str) -> dict[str, Any]:
    """The JSON at ``path``, once its sha256 matches the sidecar's."""
    sidecar = path.with_suffix(".sha256")
    hint = f"Rebuild it with `{how_to_rebuild}` or restore it from git."
    if not path.is_file() or not sidecar.is_file():
        raise ModelNotInstalled(f"The model file {path} (or its .sha256) is missing. {hint}")
    raw = path.read_bytes()
    expected = sidecar.read_text(encoding="utf-8").split()[0]
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise ModelNotInstalled(
            f"{path} has sha256 {digest}, but {sidecar.name} says {expected}: the file is "
            f"damaged or was edited by hand. {hint}"
        )
    data: dict[str, Any] = json.loads(raw)
    return data
