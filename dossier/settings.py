"""The one settings class. Every knob is a ``DOSSIER_*`` variable or a line in ``.env``."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Lines that news sites inject into article bodies. Matched against whole
# stripped lines, case-insensitively, so real sentences are never cut.
DEFAULT_BOILERPLATE = [
    r"-\s*advertisement\s*-",
    r"advertisement",
    r"recent articles",
    r"related stories",
    r"related articles",
    r"credit:\s*/?",
    r"read more:?",
    r"share this( article)?:?",
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOSSIER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=Path(".dossier"), description="Where the index lives.")
    corpus_dir: Path = Field(default=Path("corpus"), description="Curated collections.")
    default_collection: str = "albania-iran"

    # Storage: an embedded Chroma on disk, or a `chroma run` server.
    store: Literal["chroma-persistent", "chroma-http", "memory"] = "chroma-persistent"
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8000

    # Embeddings and answers are looked up by name in small registries.
    embedder: str = "minilm-onnx"
    embed_batch_size: int = Field(default=32, ge=1, le=1024)
    embed_threads: int = Field(default=0, ge=0, description="0 lets onnxruntime decide.")
    embed_model: str | None = Field(
        default=None, description="Model name for DOSSIER_EMBEDDER=openai."
    )
    embed_base_url: str | None = None
    answerer: str = "extractive"

    # Ingestion.
    chunk_size: int = Field(default=200, ge=32, le=2048, description="Tokens per chunk.")
    chunk_overlap: int = Field(default=30, ge=0, le=512)
    boilerplate_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_BOILERPLATE))
    ingest_max_file_mb: float = Field(
        default=5.0, gt=0, description="Larger files are skipped, with a message saying so."
    )
    ingest_group_chunks: int = Field(
        default=256, ge=1, description="Chunks embedded and committed together."
    )
    # Ingesting from URLs (ingest/fetch.py); a page's size limit is DOSSIER_INGEST_MAX_FILE_MB.
    fetch_allow: list[str] = Field(
        default_factory=list,
        description="Hosts (e.g. intranet.example) or CIDRs (e.g. 10.1.0.0/16, 127.0.0.1) "
        "that URL ingestion may reach although they are private, loopback, link-local or "
        "otherwise non-public; every other such address is refused (SSRF guard).",
    )
    fetch_public: bool = Field(
        default=True,
        description="Fetch public internet addresses; false: only what DOSSIER_FETCH_ALLOW "
        "names (an intranet-only deployment, or a test that must stay off the network).",
    )
    fetch_timeout_s: float = Field(
        default=10.0, gt=0, description="Connect timeout, and the longest wait for each read."
    )
    fetch_total_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest time one URL may take, redirects included (a slow drip of "
        "bytes would never trip the per-read timeout).",
    )
    fetch_max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects followed per URL; each hop is re-checked."
    )

    # Retrieval and answering.
    top_k: int = Field(default=5, ge=1, le=50)
    # Upper bounds of the API schema (service.schemas): these may be lowered, not raised.
    max_top_k: int = Field(default=50, ge=1, le=50)
    candidate_k: int = Field(default=40, ge=1, description="Per-retriever depth before fusion.")
    dense_weight: float = Field(default=0.6, ge=0.0, le=1.0)
    fusion: Literal["zscore", "relative", "rrf"] = "zscore"
    bm25_k1: float = Field(default=0.9, gt=0)
    bm25_b: float = Field(default=0.4, ge=0, le=1)
    version_check_s: float = Field(
        default=0.5,
        ge=0,
        description="How often a server checks a collection's version to pick up an ingest "
        "made by another process (BM25 index, embedded vector index); 0: every request.",
    )
    rerank_depth: int = Field(
        default=20, ge=0, description="Fused candidates re-scored by sentence."
    )
    rerank_weight: float = Field(default=2.0, ge=0, description="0 turns sentence re-scoring off.")
    max_question_chars: int = Field(default=1000, ge=10, le=1000)
    max_answer_sentences: int = Field(default=3, ge=1, le=10)
    # The default answerer's learned model; None is the artefact shipped in dossier/data/.
    answer_model_path: Path | None = None
    # "neural": the cross-encoder rereads the linear model's best few sentences and decides
    # with it (dossier/answer/neural.py); "linear": the linear model alone (faster).
    answer_model: Literal["neural", "linear"] = "neural"
    neural_model_path: Path | None = Field(
        default=None, description="The neural answer model's artefact; None: the shipped one."
    )
    # Refuse below this P(answerable); None is the model's (chosen on news validation
    # questions for at most 10% false refusals).
    answerable_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # Per collection: its own threshold, or the name of one of the model's calibrations
    # (P(answerable) is not calibrated across kinds of text; the artefact holds a threshold
    # per validation domain, e.g. {"encyclopedia": "squad2"}).
    answerable_thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)] | str] = Field(
        default_factory=dict
    )
    # Sentence vectors kept in memory: answers to questions on the same articles reuse them.
    sentence_cache_size: int = Field(default=50_000, ge=0)
    # Embed every sentence at ingest and save the vectors beside the BM25 index, so a
    # question's first answer needs no sentence embedding (dossier/index/sentence_vectors.py).
    # Off: ingest skips them and answers embed sentences on demand, as before.
    sentence_vectors: bool = True
    # Read each passage's sentence spans and terms from the table saved with the vectors
    # (dossier/index/sentence_table.py) instead of splitting and stemming them per request.
    # Off: computed on first use, as before (for comparison; answers are the same).
    stored_sentences: bool = True
    # Say when sources disagree: an answer sentence whose figure or date another retrieved
    # document states otherwise gets a closing "Sources disagree: [n] gives ..." sentence
    # and an entry in the answer's `conflicts` (dossier/verify/conflicts.py).
    conflict_detection: bool = True
    # Passages a targeted BM25 search for each answer sentence that states a value adds
    # to the retrieved ones before comparing (0: compare with the retrieved ones only).
    conflict_search_k: int = Field(default=5, ge=0, le=50)
    # The hand-set rules of DOSSIER_ANSWERER=rules (kept for comparison with the model).
    refusal_min_similarity: float = 0.25
    refusal_min_coverage: float = 0.45
    refusal_min_sentence_similarity: float = 0.6

    # Support scoring (evals, answer verification): "auto" uses the LLM judge when an
    # endpoint is configured below, else the offline scorer.
    support_scorer: str = "auto"
    # P(supported) at or above which the offline scorer accepts; None is the threshold
    # chosen on validation when the model was fit (training/train_support.py).
    support_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # Public benchmarks for `dossier eval`; default: the shared/ folder beside the repo.
    shared_dir: Path | None = None

    # An OpenAI-compatible endpoint; no secret has a default.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    # The LLM answerer (DOSSIER_ANSWERER=llm) against that endpoint.
    llm_timeout_s: float = Field(default=30.0, gt=0, description="Per request, connect included.")
    llm_max_tokens: int = Field(default=256, ge=16, le=8192)
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    llm_retries: int = Field(default=2, ge=0, le=10, description="Retries after the first try.")
    llm_backoff_s: float = Field(default=0.5, ge=0.0, description="First retry delay; doubles.")
    # What verification does with a generated sentence its citations do not support:
    # annotate keeps it marked unsupported, strip drops it, strict refuses the answer.
    llm_verification: Literal["annotate", "strip", "strict"] = "annotate"
    # Verification runs on every answer, so it defaults to the fast offline scorer; "auto"
    # or "llm-judge" would add model calls per sentence to each request.
    llm_verify_scorer: str = "offline"
    llm_attribute_uncited: bool = Field(
        default=True,
        description="Cite a passage for a generated sentence without [n] when it supports it.",
    )

    # Conversations: how a follow-up becomes a standalone question (dossier.chat.condense).
    # "auto" condenses with the LLM endpoint when one is configured, else offline.
    chat_condenser: Literal["auto", "offline", "llm"] = "auto"
    chat_max_turns: int = Field(
        default=6, ge=0, le=100, description="Earlier user turns read; the latest are kept."
    )
    chat_skip_shown: bool = Field(
        default=False,
        description="A follow-up's answer does not repeat sentences of earlier answers "
        "(off: it lowered key facts on the validation conversations).",
    )
    chat_max_history_chars: int = Field(
        default=8000, ge=0, description="Character budget of the history read; the latest kept."
    )
    # Server-side conversations (POST /v1/conversations): stored whole in
    # <data_dir>/conversations.sqlite3; only the latest turns above are read for each answer.
    conversation_max_messages: int = Field(
        default=200,
        ge=2,
        le=100_000,
        description="Messages (questions and answers) one stored conversation may hold.",
    )

    # Where keys, feedback, conversations and ingestion jobs live: unset, SQLite files in
    # data_dir (one host); postgresql://user:password@host:5432/db, one PostgreSQL database
    # that several API hosts share (dossier/state/). It may hold a password, so it is a secret.
    state_url: SecretStr | None = Field(
        default=None, description="postgresql://… for state shared by several hosts."
    )

    # HTTP service.
    host: str = "127.0.0.1"
    port: int = 8900
    ui_port: int = 8501
    # API keys (`dossier keys create`): None means on whenever `host` is not loopback, so
    # the zero-config embedded default stays open on 127.0.0.1 only. Off beyond loopback
    # is refused at start-up.
    auth: bool | None = None
    # Token bucket per API key (per client IP without one): a burst, refilled at this rate.
    rate_limit_per_minute: float = Field(default=600.0, gt=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    max_body_mb: float = Field(default=20.0, gt=0, description="Larger requests get 413.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API; none by default.",
    )
    answer_timeout_s: float = Field(
        default=60.0, gt=0, description="An answer that takes longer gets 504."
    )
    # Background ingestion jobs over HTTP.
    ingest_sync_max_documents: int = Field(
        default=20, ge=1, description="Larger upsert batches run as a background job."
    )
    # A running job's host writes its heartbeat (and reads cancel requests) this often; a
    # job whose heartbeat is 3 intervals old is taken as orphaned (its host died) and marked
    # failed. Hosts sharing PostgreSQL need clocks in step to well within that.
    ingest_job_heartbeat_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a host running ingestion jobs proves it is alive.",
    )

    # Streamlit UI: it reaches the service only over HTTP, at this URL.
    api_url: str = "http://127.0.0.1:8900"
    ui_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Longest wait for an answer to start, or for the next piece of its stream.",
    )
    ui_api_key: SecretStr | None = Field(
        default=None, description="The key the UI sends, when the API requires one."
    )
    evals_reports_dir: Path = Field(
        default=Path("evals/reports"),
        description="Where `dossier eval --out` writes <suite>.json; the Evals page reads it.",
    )

    @property
    def auth_required(self) -> bool:
        return self.auth if self.auth is not None else not is_loopback(self.host)

    @property
    def ingest_max_file_bytes(self) -> int:
        return int(self.ingest_max_file_mb * 1_000_000)

    @property
    def fetched_path(self) -> Path:
        """Pages fetched for URL ingestion, kept so their source can be re-read."""
        return self.data_dir / "fetched"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def conversations_path(self) -> Path:
        """Stored conversations (dossier/chat/conversations.py), beside the index."""
        return self.data_dir / "conversations.sqlite3"

    @property
    def lexical_path(self) -> Path:
        """Saved BM25 indexes, one folder per collection version (see dossier/index/lexical.py)."""
        return self.data_dir / "lexical"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
