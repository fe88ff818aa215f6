"""The model store: what lives in the ``models/`` directory a service reads.

* versioned, checksummed, pickle-free bundles and the ``CURRENT`` pointer
  (:mod:`personalize.store.bundles`: publish (at once or piece by piece), load, list, roll back, prune);
* the durable event store of real-time events (:mod:`personalize.store.events`).

    from personalize.store import BundleWriter, publish, load_bundle, list_versions, rollback, prune
    manifest = publish({"recommender": als, "customers": table}, dataset, store="models", keep=5)
    with BundleWriter("models") as bundle:   # piece by piece: each component can be freed once written
        bundle.add("recommender", als)
        manifest = bundle.commit(dataset, keep=5)
    bundle = load_bundle("models")            # the CURRENT version, verified
"""

from personalize.store.bundles import (CURRENT, FORMAT_VERSION, MANIFEST, SUPPORTED_FORMATS, Bundle, BundleWriter,
                                       current_version, list_versions, load_bundle, prune, publish, read_manifest,
                                       register_loader, resolve_version_dir, rollback, verify_bundle)
from personalize.store.events import EVENT_TYPES, Event, EventStore

__all__ = ["CURRENT", "FORMAT_VERSION", "MANIFEST", "SUPPORTED_FORMATS", "Bundle", "BundleWriter", "current_version",
           "list_versions", "load_bundle", "prune", "publish", "read_manifest", "register_loader",
           "resolve_version_dir", "rollback", "verify_bundle", "EVENT_TYPES", "Event", "EventStore"]
