"""Model bundles: publish, list, roll back, prune and load verified, pickle-free bundles.

    from personalize.registry import publish, load_bundle, list_versions, rollback, prune
    manifest = publish({"recommender": als, "customers": table}, dataset, store="models", keep=5)
    bundle = load_bundle("models")            # the CURRENT version, verified
    runtime = Runtime(bundle)                 # what the HTTP service calls
"""

from personalize.registry.candidates import CandidateTable
from personalize.registry.store import (FORMAT_VERSION, SUPPORTED_FORMATS, Bundle, MissingComponentError,
                                        current_version, list_versions, load_bundle, prune, publish, read_manifest,
                                        register_loader, resolve_version_dir, rollback, verify_bundle)

__all__ = ["FORMAT_VERSION", "SUPPORTED_FORMATS", "Bundle", "CandidateTable", "MissingComponentError",
           "current_version", "list_versions",
           "load_bundle", "prune", "publish", "read_manifest", "register_loader", "resolve_version_dir", "rollback",
           "verify_bundle", "Runtime", "train_bundle"]


def __getattr__(name):  # lazy: Runtime/train_bundle pull in heavier modules
    if name == "Runtime":
        from personalize.registry.runtime import Runtime

        return Runtime
    if name == "train_bundle":
        from personalize.registry.build import train_bundle

        return train_bundle
    raise AttributeError(name)
