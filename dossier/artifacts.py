"""Learned artefacts on disk: JSON with a sha256 sidecar, checked at every load.

A damaged, truncated or hand-edited artefact is refused with a message that says how
to get a good one back, instead of silently answering or verifying wrongly. The small
model they hold, :class:`Standardized`, is shared by the answer model and the support
scorer, so it lives here rather than in either stage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class Standardized:
    """An affine model over standardised features: z = (x - mean) / std."""

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    # Hidden layers (tanh), then a linear output; a plain linear model has none.
    hidden: tuple[tuple[np.ndarray, np.ndarray], ...]
    weights: np.ndarray
    bias: float

    def __call__(self, X: np.ndarray) -> np.ndarray:
        h = (np.asarray(X, dtype=np.float64) - self.mean) / self.std
        for W, b in self.hidden:
            h = np.tanh(h @ W + b)
        out: np.ndarray = h @ self.weights + self.bias
        return out

    def probability(self, x: np.ndarray) -> float:
        """The logistic of one feature row's output (a logistic model's probability)."""
        z = float(self(x[None, :])[0])
        return float(1.0 / (1.0 + np.exp(-z)))

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "hidden": [[W.tolist(), b.tolist()] for W, b in self.hidden],
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Standardized:
        return cls(
            names=tuple(data["names"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            std=np.asarray(data["std"], dtype=np.float64),
            hidden=tuple(
                (np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64))
                for W, b in data["hidden"]
            ),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
        )
