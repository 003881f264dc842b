"""A transformer trained to predict one variable of a query row from a context of rows.

The input is the shared one-token-per-row encoding (`bnbench.transformers.encoding`):
``N`` context tokens followed by ``Q`` query tokens, all for one target variable per
episode. The model is a pre-LayerNorm transformer encoder whose attention mask is

* a context token attends only to itself,
* a query token attends to every context token and to itself, never to other queries.

Context rows are exchangeable, so no positional embedding is used. Because context
tokens never attend to each other, their states are computed row by row and the cost
is linear in N for a fixed number of queries. Because queries never see each other,
the prediction for a query depends only on the context and that query.
`RowTransformer.dense_forward` runs the same weights as an ordinary masked
transformer over the whole sequence, and the tests check that both agree.

In-context counting fits this mask. An MLP turns the query's visible prefix into
features of the target's parent values, and attention puts equal weight on the context
rows that share them. The averaged one-hot values of those rows are then the count
estimate of the target's conditional. The query's own token gets a share of 1/(n + 1)
among n matching rows, which tells the model how many rows matched.

The output is one logit per value feature (``values_width``); every logit outside the
target's block is -inf, so a softmax gives a distribution over the target's states
for any mix of cardinalities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bnbench.transformers.config import ModelConfig
from bnbench.transformers.encoding import RowEncoding


def _norm(config: ModelConfig) -> nn.Module:
    return nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()


class Block(nn.Module):
    """One pre-LayerNorm block: masked self-attention then an MLP, each with a residual connection."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_width = config.d_model // config.num_heads
        self.attention_norm = _norm(config)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.attention_out = nn.Linear(config.d_model, config.d_model)
        self.mlp_norm = _norm(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.mlp_width),
            nn.GELU(),
            nn.Linear(config.mlp_width, config.d_model),
        )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d_model) -> (B, H, L, head_width)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_width).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, L, head_width) -> (B, L, d_model)."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_width)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of the normalized stream, each ``(B, H, L, head_width)``."""
        q, k, v = self.qkv(self.attention_norm(x)).chunk(3, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def context_update(self, context: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Advance context tokens ``(B, N, d_model)``; each attends to itself alone, so attention returns its value."""
        context = context + self.attention_out(self._merge(values))
        return context + self.mlp(self.mlp_norm(context))

    def query_update(
        self, queries: torch.Tensor, context_keys: torch.Tensor, context_values: torch.Tensor
    ) -> torch.Tensor:
        """Advance query tokens ``(B, Q, d_model)`` attending to the context keys/values ``(B, H, N, hw)`` and to themselves."""
        q, k_self, v_self = self.project(queries)  # each (B, H, Q, hw)
        scale = 1.0 / math.sqrt(self.head_width)
        context_scores = q @ context_keys.transpose(-1, -2) * scale  # (B, H, Q, N)
        self_scores = (q * k_self).sum(dim=-1, keepdim=True) * scale  # (B, H, Q, 1)
        weights = torch.softmax(torch.cat([context_scores, self_scores], dim=-1), dim=-1)  # (B, H, Q, N + 1)
        attended = weights[..., :-1] @ context_values + weights[..., -1:] * v_self  # (B, H, Q, hw)
        queries = queries + self.attention_out(self._merge(attended))
        return queries + self.mlp(self.mlp_norm(queries))


class RowTransformer(nn.Module):
    """The trained transformer; see the module docstring for its attention mask and output."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoding = RowEncoding(tuple(config.cardinalities))
        self.embed = nn.Linear(self.encoding.width, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.final_norm = _norm(config)
        self.head = nn.Linear(config.d_model, self.encoding.values_width)
        block_of_feature = self.encoding.variable_of_feature  # (values_width,)
        self.register_buffer("variable_of_feature", block_of_feature, persistent=False)

    def encode_context(self, context_tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of the context at every block, each ``(B, H, N, head_width)``.

        They depend on the context and the target only, so one call serves any number of queries.
        """
        context = self.embed(context_tokens)  # (B, N, d_model)
        cache = []
        for index, block in enumerate(self.blocks):
            _, keys, values = block.project(context)
            cache.append((keys, values))
            if index + 1 < len(self.blocks):
                context = block.context_update(context, values)
        return cache

    def query_logits(
        self, query_tokens: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]], target: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(B, Q, values_width)`` for query tokens ``(B, Q, width)``; -inf outside each episode's target block."""
        queries = self.embed(query_tokens)  # (B, Q, d_model)
        for block, (keys, values) in zip(self.blocks, cache):
            queries = block.query_update(queries, keys, values)
        logits = self.head(self.final_norm(queries))  # (B, Q, values_width)
        return self.mask_logits(logits, target)

    def forward(self, context_tokens: torch.Tensor, query_tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, Q, values_width)`` from context ``(B, N, width)`` and query ``(B, Q, width)`` tokens.

        ``target`` is the target variable of each episode, shape ``(B,)``.
        """
        return self.query_logits(query_tokens, self.encode_context(context_tokens), target)

    def mask_logits(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Set logits outside the target's block to -inf; ``logits`` ``(B, Q, values_width)``, ``target`` ``(B,)``."""
        in_block = self.variable_of_feature[None, :] == target[:, None]  # (B, values_width)
        return logits.masked_fill(~in_block[:, None, :], float("-inf"))

    def dense_forward(
        self, context_tokens: torch.Tensor, query_tokens: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """`forward` computed as an ordinary transformer over the full sequence with a boolean attention mask.

        It costs O((N + Q)^2) and exists to show that `forward` is that transformer.
        """
        num_context, num_queries = context_tokens.shape[1], query_tokens.shape[1]
        length = num_context + num_queries
        allowed = torch.eye(length, dtype=torch.bool, device=context_tokens.device)  # (L, L)
        allowed[num_context:, :num_context] = True

        x = self.embed(torch.cat([context_tokens, query_tokens], dim=1))  # (B, L, d_model)
        for block in self.blocks:
            q, k, v = block.project(x)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, L, hw)
            x = x + block.attention_out(block._merge(attended))
            x = x + block.mlp(block.mlp_norm(x))
        logits = self.head(self.final_norm(x[:, num_context:]))
        return self.mask_logits(logits, target)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(config: ModelConfig, seed: int) -> RowTransformer:
    """A freshly initialized model; ``seed`` fixes the weights without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RowTransformer(config)


def target_block_probabilities(logits: torch.Tensor, encoding: RowEncoding, target: int) -> torch.Tensor:
    """Softmax over the block of one ``target`` shared by all episodes: ``(B, Q, values_width)`` -> ``(B, Q, card)``."""
    start = encoding.offsets[target]
    block = logits[..., start : start + encoding.cardinalities[target]]
    return torch.softmax(block, dim=-1)


@torch.no_grad()
def predict_conditionals(
    model: RowTransformer, context: torch.Tensor, queries: torch.Tensor, target: int, query_chunk: int = 256
) -> torch.Tensor:
    """P(x_target | prefix of each query row) from integer rows.

    Args:
        model: The trained model (put in eval mode by the caller).
        context: Context rows ``(B, N, M)``, integer codes on the model's device.
        queries: Query rows ``(B, Q, M)``; columns at and after ``target`` are ignored.
        target: The target variable, shared by every episode.
        query_chunk: Queries evaluated at once; bounds the ``(B, H, chunk, N)`` attention weights.

    Returns:
        Probabilities ``(B, Q, card_target)`` in float32.
    """
    encoding = model.encoding
    num_episodes = context.shape[0]
    targets = torch.full((num_episodes,), target, dtype=torch.long, device=context.device)
    cache = model.encode_context(encoding.encode(context, targets, query=False))
    pieces = []
    for start in range(0, queries.shape[1], query_chunk):
        tokens = encoding.encode(queries[:, start : start + query_chunk], targets, query=True)
        pieces.append(target_block_probabilities(model.query_logits(tokens, cache, targets), encoding, target))
    if not pieces:
        return torch.zeros((num_episodes, 0, encoding.cardinalities[target]), device=context.device)
    return torch.cat(pieces, dim=1)
