"""personalize: recommendations and personalization for retailers."""

__version__ = "0.1.0"
