"""The schemas of layerdrop's settings, each defined once and validated once.

The CLI builds its options (flags, defaults, help) from these fields, a sweep validates every
grid point through them, and the Python API takes them as they are. Each field carries its
description; `json_schema_extra={"flags": [...]}` adds short flags for the command line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Base of every settings schema: unknown keys are refused and values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


MixedPrecision = Literal["auto", "no", "fp16", "bf16"]


class TrainConfig(Settings):
    """How a model is fine-tuned. Defaults are the paper's (those of transformers' run_glue.py)."""

    epochs: int = Field(3, ge=1, description="training epochs")
    learning_rate: float = Field(
        2e-5, gt=0, description="peak learning rate (linear decay)", json_schema_extra={"flags": ["--lr"]}
    )
    batch_size: int = Field(32, ge=1, description="training batch size (global: split across processes)")
    eval_batch_size: int = Field(64, ge=1, description="evaluation batch size")
    max_length: int = Field(128, ge=2, description="maximum tokens per example")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on biases and norms)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="fraction of steps for linear warm-up")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping norm (0: no clipping)")
    seed: int = Field(42, description="random seed (head initialisation, shuffling, dropout)")
    group_by_length: bool = Field(True, description="batch examples of similar length together")
    mixed_precision: MixedPrecision = Field("auto", description="auto (bf16 or fp16 on GPU, none on CPU), no, fp16, bf16")
