"""Service configuration from ``PERSONALIZE_*`` environment variables (pydantic-settings).

:func:`load_settings` is what ``personalize serve`` calls in the parent process
before any worker starts: a bad value is one line naming the setting (never
the value of an API key) and exit code 2, instead of workers crashing and
being respawned forever.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from personalize.errors import PersonalizeError
from personalize.store.events import default_events_path

Scope = Literal["recommend", "profile", "events", "audience", "admin", "privacy"]
SCOPES: tuple[str, ...] = ("recommend", "profile", "events", "audience", "admin", "privacy")
MIN_KEY_LENGTH = 8
#: hard caps; the settings may set lower limits, and the OpenAPI schema shows the configured ones
MAX_K_CAP = 1000
AUDIENCE_PAGE_CAP = 1_000_000


class Settings(BaseSettings):
    """Every knob of the service. ``PERSONALIZE_API_KEYS='{"shop-key-1": ["recommend"]}'`` etc."""

    model_config = SettingsConfigDict(env_prefix="PERSONALIZE_", extra="ignore")

    models: Path = Field(Path("models"), description="model store (directory with CURRENT) or one bundle directory")
    events_db: Path | None = Field(None, description="SQLite event store; default <models>/events.sqlite")
    api_keys: dict[str, list[Scope]] = Field(default_factory=dict, repr=False,
                                             description="JSON object: API key (at least 8 characters) -> scopes")
    max_k: int = Field(100, ge=1, le=MAX_K_CAP, description="largest k a request may ask for")
    max_list: int = Field(100, ge=1, le=10_000, description="max items in a session and events in one POST")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="largest request body")
    audience_page_max: int = Field(100_000, ge=1, le=AUDIENCE_PAGE_CAP, description="largest audience page")
    poll_interval: float = Field(0.5, ge=0.0, le=60.0,
                                 description="seconds between checks of the model store: a new CURRENT bundle, "
                                             "events and erasures recorded by other worker processes (0 = no "
                                             "background loop; tests drive it by hand)")
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        short = sum(1 for key in v if len(key) < MIN_KEY_LENGTH)
        if short:  # never repeat a key in a message
            raise ValueError(f"{short} API key(s) shorter than {MIN_KEY_LENGTH} characters")
        return v

    @property
    def events_path(self) -> Path:
        return self.events_db if self.events_db is not None else default_events_path(self.models)


def _describe(exc: ValidationError) -> str:
    """One line naming each bad setting, without echoing values (they may be keys)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        name = "PERSONALIZE_" + str(err["loc"][0]).upper() if err.get("loc") else "settings"
        msg = err.get("msg", "invalid")
        if err.get("loc") and err["loc"][0] == "api_keys":
            if err.get("type") == "json_invalid" or "JSON" in msg:
                msg = "must be a JSON object of key -> list of scopes, e.g. '{\"shop-key-1\": [\"recommend\"]}'"
            elif err.get("type") == "literal_error":
                msg = f"unknown scope; scopes are {', '.join(SCOPES)}"
        parts.append(f"{name}: {msg}")
    return "; ".join(dict.fromkeys(parts))


def load_settings(**overrides) -> Settings:
    """Settings from the environment (plus ``overrides``); :class:`PersonalizeError` naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise PersonalizeError(f"invalid configuration: {_describe(exc)}") from None
    except (json.JSONDecodeError, ValueError) as exc:  # pydantic-settings decodes complex values itself
        text = str(exc)
        what = "PERSONALIZE_API_KEYS" if "api_keys" in text else "a PERSONALIZE_* setting"
        raise PersonalizeError(f"invalid configuration: {what} is not valid JSON") from None
