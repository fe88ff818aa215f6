"""The serving runtime: one loaded bundle, the live overlay of events since it was published, and the answers.

    from personalize.store import load_bundle
    from personalize.runtime import Runtime
    rt = Runtime(load_bundle("models"))
    rt.recommend("C1", 10); rt.record_purchase("C1", ["I4"]); rt.profile("C1")
"""

from personalize.runtime.runtime import Recommendations, Runtime

__all__ = ["Runtime", "Recommendations"]
