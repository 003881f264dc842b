"""Hyperparameters of the trained transformer, kept free of torch so that the CLI starts fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a `RowTransformer`.

    Attributes:
        cardinalities: Cardinality of each variable in topological order; fixes the token width.
        d_model: Width of the residual stream.
        num_layers: Transformer blocks.
        num_heads: Attention heads per block; must divide ``d_model``.
        mlp_width: Hidden width of each block's MLP.
        layer_norm: Normalize before attention, before each MLP and before the head (pre-LN).
            Without it the residual stream stays linear in the one-hot values, which lets
            attention average exact indicator features (see the module docstring).
    """

    cardinalities: tuple[int, ...]
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 2
    mlp_width: int = 128
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if not self.cardinalities or any(int(c) < 1 for c in self.cardinalities):
            raise ValueError(f"cardinalities must be a non-empty list of positive integers; got {self.cardinalities}")
        for name in ("d_model", "num_layers", "num_heads", "mlp_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}; "
                "choose a head count that divides the width"
            )

    def to_dict(self) -> dict[str, object]:
        settings = asdict(self)
        settings["cardinalities"] = list(self.cardinalities)
        return settings

    @classmethod
    def from_dict(cls, settings: dict[str, object]) -> ModelConfig:
        values = dict(settings)
        values["cardinalities"] = tuple(int(c) for c in values["cardinalities"])  # type: ignore[union-attr]
        return cls(**values)  # type: ignore[arg-type]
