"""The UI's client models mirror the API's public schemas, field by field.

``ui/client.py`` may not import ``service`` (the UI reaches it only over HTTP; see the
import contracts in pyproject.toml), so its models are copies; this test may import both,
and fails when a field is added to, removed from, or retyped in one side only. The
client's fields keep defaults where the service's are required: it reads leniently, so
required-ness is not compared.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from service import ingestion as i
from service import schemas as s
from service.feedback import FeedbackPublic
from ui import client as c

PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (c.Answer, s.AnswerPublic),
    (c.AnswerSentence, s.AnswerSentencePublic),
    (c.Citation, s.CitationPublic),
    (c.Passage, s.PassagePublic),
    (c.SearchResult, s.SearchPublic),
    (c.Collection, s.CollectionPublic),
    (c.Document, s.DocumentPublic),
    (c.DocumentDetail, s.DocumentDetailPublic),
    (c.Page, s.PagePublic),
    (c.Conflict, s.ConflictPublic),
    (c.DisagreeingSource, s.DisagreeingSourcePublic),
    (c.Feedback, FeedbackPublic),
    (c.ChatMessage, s.ChatMessage),
    (c.IngestProblem, i.ProblemPublic),
    (c.DocumentRef, i.DocumentRef),
    (c.IngestResult, i.IngestResultPublic),
    (c.Job, i.JobPublic),
]
# A $ref to a client model stands for the service model it mirrors.
SAME = {ui.__name__: api.__name__ for ui, api in PAIRS}


def shape(prop: dict[str, Any]) -> Any:
    """A property's type with names, descriptions, defaults and bounds left out."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return ("model", SAME.get(name, name))
    if "anyOf" in prop:
        return ("any", tuple(sorted((shape(p) for p in prop["anyOf"]), key=repr)))
    if "enum" in prop:
        return ("enum", tuple(sorted(prop["enum"])))
    if "const" in prop:
        return ("enum", (prop["const"],))
    kind = prop.get("type")
    if kind == "array":
        return ("array", shape(prop.get("items", {})))
    if kind == "object":
        return ("dict", shape(prop.get("additionalProperties", {})))
    return kind


def fields(model: type[BaseModel]) -> dict[str, Any]:
    props = model.model_json_schema(mode="serialization")["properties"]
    return {name: shape(prop) for name, prop in props.items()}


@pytest.mark.parametrize(("ui", "api"), PAIRS, ids=[ui.__name__ for ui, _ in PAIRS])
def test_client_model_has_the_api_fields_with_the_same_types(
    ui: type[BaseModel], api: type[BaseModel]
) -> None:
    ours, theirs = fields(ui), fields(api)
    assert sorted(ours) == sorted(theirs), (
        f"only in ui.client.{ui.__name__}: {sorted(set(ours) - set(theirs))}; "
        f"only in the API's {api.__name__}: {sorted(set(theirs) - set(ours))}"
    )
    retyped = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert not retyped, f"{ui.__name__} vs {api.__name__} (ui, api): {retyped}"


def test_the_shape_check_notices_a_drifted_field() -> None:
    """The comparison above is not vacuous: a changed type or a missing field shows."""

    class Narrower(c.Citation):
        start: str  # type: ignore[assignment]

    class Wider(c.Citation):
        extra: int = 0

    assert fields(Narrower)["start"] != fields(s.CitationPublic)["start"]
    assert set(fields(Wider)) - set(fields(s.CitationPublic)) == {"extra"}


def test_the_client_trims_a_conversation_to_what_the_api_accepts() -> None:
    assert c.MAX_CHAT_MESSAGES == s.MAX_MESSAGES
