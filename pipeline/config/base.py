"""What every config section shares: unknown keys are rejected, and the reconnect/retry backoff setting."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.backoff import Backoff


class StrictModel(BaseModel):
    """Base of every config section: a misspelt option is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class BackoffConfig(StrictModel):
    """Capped exponential backoff with jitter; a section that retries subclasses it (and may change defaults)."""

    initial_backoff_s: float = Field(0.5, gt=0, description="Wait before the first retry, in seconds.")
    max_backoff_s: float = Field(30.0, gt=0, description="Cap of the exponential backoff, in seconds.")
    jitter: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Random spread of each wait, as a fraction (0.2 = ±20%), so clients don't retry in lockstep.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> BackoffConfig:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                f"max_backoff_s ({self.max_backoff_s}) must be >= initial_backoff_s ({self.initial_backoff_s})"
            )
        return self

    def backoff(self) -> Backoff:
        return Backoff(self.initial_backoff_s, self.max_backoff_s, self.jitter)
