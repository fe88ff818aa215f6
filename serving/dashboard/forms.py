"""The dashboard's forms: query strings and form bodies validated by pydantic models, every error naming its field.

The audience form has the parameters of ``GET /v1/audiences`` (same names, same limits), so a filter set means
the same thing on the page, in its CSV download and in the API; the runtime applies them in one place
(:meth:`personalize.runtime.Runtime.audience`).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from serving.routers.audiences import Lifecycle
from serving.schemas import Channel


def _blank_is_none(v):
    return None if isinstance(v, str) and not v.strip() else v


def _as_list(v):
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    return [s for s in (x.strip() if isinstance(x, str) else x for x in items) if s not in ("", None)]


def number(**constraints):
    """An optional number: a blank field is None; ``constraints`` (ge, le) apply to a given value."""
    return Annotated[Annotated[float, Field(**constraints)] | None, BeforeValidator(_blank_is_none)]


Number = number()
Text = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_is_none)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class AudienceForm(_Form):
    consent: Literal["email", "sms", "personalization"] = "email"
    segment: Annotated[list[str], BeforeValidator(_as_list), Field(max_length=50)] = []
    lifecycle: Annotated[list[Lifecycle], BeforeValidator(_as_list), Field(max_length=10)] = []
    tier: Annotated[list[str], BeforeValidator(_as_list), Field(max_length=50)] = []
    min_clv: Number = None
    min_churn_risk: number(ge=0, le=1) = None
    max_churn_risk: number(ge=0, le=1) = None
    offer_id: Text = None
    coupon_level: Text = None
    budget: number(ge=0) = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_churn_risk is not None and self.max_churn_risk is not None \
                and self.min_churn_risk > self.max_churn_risk:
            raise ValueError("min_churn_risk must not be above max_churn_risk")
        return self

    def runtime_args(self) -> dict:
        """Keyword arguments of :meth:`Runtime.audience` (what ``GET /v1/audiences`` passes for these params)."""
        return {"consent": self.consent, "segments": self.segment or None, "lifecycle": self.lifecycle or None,
                "tiers": self.tier or None, "min_clv": self.min_clv, "min_churn_risk": self.min_churn_risk,
                "max_churn_risk": self.max_churn_risk, "offer_id": self.offer_id, "coupon_level": self.coupon_level,
                "budget": self.budget}

    def query(self) -> str:
        """The same filters as a query string (for the CSV link and the equivalent API call)."""
        pairs: list[tuple[str, str]] = [("consent", self.consent)]
        for name in ("segment", "lifecycle", "tier"):
            pairs += [(name, v) for v in getattr(self, name)]
        for name in ("min_clv", "min_churn_risk", "max_churn_risk", "offer_id", "coupon_level", "budget"):
            v = getattr(self, name)
            if v is not None:
                pairs.append((name, f"{v:g}" if isinstance(v, float) else str(v)))
        return urlencode(pairs)


class CouponForm(_Form):
    channel: Channel = "email"
    budget: number(ge=0) = None


class ReadoutForm(_Form):
    alpha: Annotated[float, BeforeValidator(lambda v: 0.05 if _blank_is_none(v) is None else v),
                     Field(gt=0, lt=0.5)] = 0.05
    cuped: Annotated[list[str], BeforeValidator(_as_list), Field(max_length=10)] = []


class LoginForm(_Form):
    key: Annotated[str, Field(min_length=1, max_length=500)]
    csrf_token: Annotated[str, Field(max_length=200)] = ""


class TokenForm(_Form):
    csrf_token: Annotated[str, Field(max_length=200)] = ""


def multi(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Query / form pairs as a dict; a repeated name becomes a list (the model says which names may repeat)."""
    out: dict[str, str | list[str]] = {}
    for k, v in pairs:
        if k in out:
            prev = out[k]
            out[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            out[k] = v
    return out


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body (the only kind the dashboard's forms send)."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100)


def parse(model: type[_Form], data: dict) -> tuple[_Form | None, dict[str, str]]:
    """``(form, {})`` or ``(None, {field: message})``; messages never repeat the input (it may be a key)."""
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors(include_input=False, include_url=False):
            loc = [str(p) for p in e.get("loc", ()) if not isinstance(p, int)]
            field = loc[0] if loc else "form"
            msg = e.get("msg", "invalid")
            if e.get("type") == "extra_forbidden":   # shown with the form as a whole
                field, msg = "form", f"{field}: unknown parameter"
            elif field != "form":
                msg = f"{field}: {msg}"
            errors.setdefault(field, msg.removeprefix("Value error, "))
        return None, errors
