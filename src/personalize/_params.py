"""Hyperparameters the scikit-learn way: keyword-only in ``__init__``, stored untouched, read back by name."""

from __future__ import annotations

import inspect
from typing import Any

from personalize.errors import PersonalizeError


class Params:
    """``get_params`` and ``repr`` from the keyword-only parameters of ``__init__``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        """Keyword-only parameters of ``__init__``; through ``**kwargs`` also those of the parent's."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            names += [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names]
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                break
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__`` (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Change hyperparameters by name (scikit-learn style); unknown names are an error."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise PersonalizeError(f"unknown parameter {k!r} for {type(self).__name__}")
            setattr(self, k, v)
        return self

    def clone(self):
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
