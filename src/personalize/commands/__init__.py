"""CLI commands: one module per command (or command group), each with a ``register(app)``.

Every command module is imported when the CLI starts, so a module imports
only what is light at top level (``commands.common``, ``errors``, ``store``)
and the library packages it runs (data, analytics, recommenders, churn,
pipeline, runtime: 0.5-1.7 s of imports each, mostly LightGBM, SciPy and
pandas internals) inside the command function. ``personalize --help`` and a
mistyped option stay instant.
"""
