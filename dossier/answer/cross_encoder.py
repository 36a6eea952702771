"""The neural answer model: a cross-encoder that reads the question and a sentence together.

MiniLM-L6, fine-tuned here (``python -m training.train_cross_encoder``) with a listwise
softmax over ``[NULL, candidates...]``: each candidate's logit says how well that sentence
answers, and the learned NULL logit stands for "none of them does". It runs on
onnxruntime (int8), never torch; the ONNX file is sha256-checked when first loaded and
loaded only on first use, so importing this module costs nothing.

A candidate is read as ``headline: sentence`` (the headline names what a sentence's
"it" or "the firm" is about), paired with the question: ``[CLS] question [SEP] headline:
sentence [SEP]``, at most :data:`MAX_TOKENS` tokens.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dossier.errors import ModelNotInstalled

log = logging.getLogger(__name__)

MAX_TOKENS = 96


def pair_context(title: str, sentence: str) -> str:
    """What the model reads beside the question: the headline, then the sentence."""
    title = title.strip()
    if not title or title == sentence.strip():
        return sentence
    return f"{title}: {sentence}"


def pair_tokenizer(max_tokens: int = MAX_TOKENS) -> Any:
    """MiniLM's tokenizer (the file the embedder verifies), set up for question pairs."""
    from tokenizers import Tokenizer

    from dossier.index.embeddings import minilm_files

    tokenizer = Tokenizer.from_file(str(minilm_files()[1]))
    tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def encode_pairs(
    tokenizer: Any, question: str, contexts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, token_type_ids), padded to the longest pair."""
    encodings = tokenizer.encode_batch([(question, c) for c in contexts])
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    types = np.array([e.type_ids for e in encodings], dtype=np.int64)
    return ids, mask, types


class CrossEncoder:
    """Logits for (question, context) pairs from the ONNX file at ``path``."""

    def __init__(self, path: Path, sha256: str, *, threads: int = 0) -> None:
        self.path = path
        self.sha256 = sha256
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            if not self.path.exists():
                raise ModelNotInstalled(
                    f"{self.path} is missing: rebuild it with "
                    "python -m training.train_cross_encoder"
                )
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
            if digest != self.sha256:
                raise ModelNotInstalled(
                    f"{self.path} has sha256 {digest}, expected {self.sha256}: the file is "
                    "damaged or not the one the answer model was fitted with; rebuild it with "
                    "python -m training.train_cross_encoder"
                )
            import onnxruntime as ort

            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            self._tokenizer = pair_tokenizer()
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            log.info("cross-encoder loaded from %s", self.path)

    def logits(self, question: str, contexts: Sequence[str]) -> np.ndarray:
        if not contexts:
            return np.zeros(0, dtype=np.float32)
        if self._session is None:
            self._load()
        ids, mask, types = encode_pairs(self._tokenizer, question, contexts)
        (out,) = self._session.run(
            ["logits"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        return np.asarray(out, dtype=np.float32).reshape(-1)
