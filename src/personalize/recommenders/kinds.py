"""The one map of recommender kinds to classes (used to load saved models and by the CLI's model names).

Every :class:`~personalize.recommenders.base.Recommender` subclass with a
``kind`` registers itself when its class is defined; importing
:mod:`personalize.recommenders` defines them all.
"""

from __future__ import annotations

from personalize.errors import ParameterError

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> None:
    _REGISTRY[cls.kind] = cls


def registry() -> dict[str, type]:
    """kind -> class, for every recommender defined so far."""
    return dict(_REGISTRY)


def get(kind: str) -> type | None:
    return _REGISTRY.get(kind)


def make(name: str, **params):
    """A new, unfitted recommender of kind ``name`` (``ParameterError`` listing the kinds otherwise)."""
    cls = _REGISTRY.get(str(name).strip().lower())
    if cls is None:
        raise ParameterError(f"unknown model {name!r}; choose from {', '.join(sorted(_REGISTRY))}")
    return cls(**params)
