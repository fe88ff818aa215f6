"""Service configuration from ``PERSONALIZE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["recommend", "profile", "events", "audience", "admin"]
SCOPES: tuple[str, ...] = ("recommend", "profile", "events", "audience", "admin")


class Settings(BaseSettings):
    """Every knob of the service. ``PERSONALIZE_API_KEYS='{"key": ["recommend"]}'`` etc."""

    model_config = SettingsConfigDict(env_prefix="PERSONALIZE_", extra="ignore")

    models: Path = Field(Path("models"), description="model store (directory with CURRENT) or one bundle directory")
    events_db: Path | None = Field(None, description="SQLite event store; default <models>/events.sqlite")
    api_keys: dict[str, list[Scope]] = Field(default_factory=dict, repr=False,
                                             description="JSON object: API key -> list of scopes")
    max_k: int = Field(100, ge=1, le=1000)
    max_list: int = Field(100, ge=1, le=10_000, description="max items in a session and events in one POST")
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    audience_page_max: int = Field(100_000, ge=1)
    event_sync_interval: float = Field(1.0, ge=0.0,
                                       description="seconds between polls of the event store for purchases "
                                                   "recorded by other worker processes (0 = off)")
    log_level: str = "info"

    @field_validator("api_keys")
    @classmethod
    def _keys_not_empty(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key in v:
            if len(key) < 8:
                raise ValueError("API keys must be at least 8 characters long")
        return v

    @property
    def events_path(self) -> Path:
        if self.events_db is not None:
            return self.events_db
        base = self.models if self.models.is_dir() and not (self.models / "manifest.json").exists() \
            else self.models.parent
        return base / "events.sqlite"
