"""Versioned, pickle-free model bundles in a model store.

Layout of a store (``models/`` by default)::

    models/
      CURRENT                     # one line: the version being served
      20261126T150102Z-1a2b3c4d/  # one directory per published version
        manifest.json             # version, created_at, library and format version, data, params,
                                  # metrics, components (kind + sha256 of every file)
        recommender/...           # one directory per component, written by its ``save(dir)``
        customers/table.parquet   # DataFrames are stored as Parquet (kind "table")

:func:`publish` writes a version into a temporary directory, renames it into
place and then swaps ``CURRENT`` atomically (temporary file + ``os.replace``),
so a reader sees either the old or the new bundle, never half of one.
:func:`load_bundle` verifies the format version and every file's checksum
before any component is loaded, and refuses a bundle with a
:class:`~personalize.errors.BundleError` naming the offending file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from personalize import __version__
from personalize._atomic import atomic_write, fsync_dir
from personalize._json import to_jsonable
from personalize.errors import BundleError, PersonalizeError

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["FORMAT_VERSION", "SUPPORTED_FORMATS", "Bundle", "BundleWriter", "publish", "load_bundle",
           "list_versions", "current_version", "rollback", "prune", "register_loader", "read_manifest",
           "resolve_version_dir"]

FORMAT_VERSION = 1
SUPPORTED_FORMATS = frozenset({1})
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^\d{8}T\d{6}(\.\d{6})?Z-[0-9a-f]{8}$")
_TABLE_FILE = "table.parquet"


# --------------------------------------------------------------------------- component kinds
def _load_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path / _TABLE_FILE)


#: component kind -> loader, or "module:function" resolved on first use (so listing versions or publishing
#: a table never imports the model libraries, and the store depends on no model package)
_LOADERS: dict[str, Callable[[Path], Any] | str] = {
    "table": _load_table,
    "recommender": "personalize.recommenders:load_recommender",
    "candidates": "personalize.recommenders:CandidateTable.load",
    "churn": "personalize.churn.model:load_model",
    "propensity": "personalize.churn.model:load_model",
    "acceptance": "personalize.offers:AcceptanceModel.load",
    "offers": "personalize.offers:OfferScores.load",
    "uplift": "personalize.uplift:AutoUplift.load",
    "coupons": "personalize.coupons.plan:CouponTable.load",
}


def _loader(kind: str) -> Callable[[Path], Any]:
    loader = _LOADERS[kind]
    if isinstance(loader, str):
        module, _, attr = loader.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        loader = _LOADERS[kind] = obj
    return loader


def register_loader(kind: str, loader: Callable[[Path], Any]) -> None:
    """Teach :func:`load_bundle` to load components of ``kind`` (``loader(directory) -> object``)."""
    if not _NAME_RE.match(kind):
        raise PersonalizeError(f"invalid component kind {kind!r}")
    _LOADERS[kind] = loader


def _kind_of(obj: Any) -> str:
    if isinstance(obj, pd.DataFrame):
        return "table"
    kind = getattr(obj, "bundle_kind", None)
    if isinstance(kind, str):
        return kind
    if callable(getattr(obj, "save", None)):
        return "recommender"
    raise PersonalizeError(f"cannot store a {type(obj).__name__} in a bundle: it is neither a DataFrame nor has "
                           f"save(directory)")


# --------------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    # through one reused buffer: mapping the file instead would count every page of a gigabyte-sized array file
    # in the process's resident memory while it is hashed (the peak of a large training run)
    h = hashlib.sha256()
    buf = bytearray(1 << 22)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text), binary=False, sync_dir=True)


def _data_info(dataset: Dataset | None) -> dict:
    if dataset is None:
        return {}
    first, last = dataset.first_timestamp, dataset.last_timestamp
    return {"fingerprint": dataset.fingerprint(),
            "first_timestamp": None if first is None else pd.Timestamp(first).isoformat(),
            "last_timestamp": None if last is None else pd.Timestamp(last).isoformat(),
            "n_customers": int(dataset.n_customers), "n_items": int(dataset.n_items),
            "transactions": int(len(dataset))}


# --------------------------------------------------------------------------- bundle
@dataclass
class Bundle:
    """A loaded, verified bundle: its ``version``, ``path``, ``manifest`` and loaded ``components``."""

    version: str
    path: Path
    manifest: dict
    components: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.components[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.components.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.components


def _new_version(created: _dt.datetime, checksums: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(checksums):
        h.update(rel.encode())
        h.update(checksums[rel].encode())
    h.update(created.isoformat().encode())
    h.update(secrets.token_bytes(8))  # two identical publishes in one second still get distinct versions
    return created.strftime("%Y%m%dT%H%M%SZ") + "-" + h.hexdigest()[:8]


def check_keep(keep: int | None) -> None:
    """``keep`` (versions to keep when pruning) is None or at least 1: checked by :func:`publish`, :func:`prune`
    and :meth:`BundleWriter.commit`, and by a training before it starts (not after its last stage)."""
    if keep is not None and keep < 1:
        raise PersonalizeError(f"keep must be at least 1, got {keep}")


class BundleWriter:
    """A bundle written one component at a time, so that a component's memory can be freed once it is on disk.

    Components go to a staging directory in the store (``.publish-<pid>-*``)
    as they are added; :meth:`commit` writes the manifest, renames the staging
    directory to the new version and makes it CURRENT. Nothing is visible in
    the store before ``commit``; :meth:`abort` (or leaving the ``with`` block
    with an exception) removes what was written::

        with BundleWriter("models") as bundle:
            bundle.add("recommender", model)
            del model                      # on disk now
            ...
            manifest = bundle.commit(dataset, params=..., metrics=...)

    :func:`publish` is the one-call form.
    """

    def __init__(self, store: str | Path = "models") -> None:
        self.store = Path(store)
        self.store.mkdir(parents=True, exist_ok=True)
        self._tmp: Path | None = Path(tempfile.mkdtemp(dir=self.store, prefix=f".publish-{os.getpid()}-"))
        self._meta: dict[str, dict] = {}
        self._sums: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._meta

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._tmp is not None:  # not committed: an exception, or a caller that never committed
            self.abort()

    def _staging(self) -> Path:
        if self._tmp is None:
            raise PersonalizeError("this bundle was already committed or aborted")
        if not self._tmp.is_dir():
            raise BundleError(f"the staging directory {self._tmp} disappeared before the bundle was committed")
        return self._tmp

    def add(self, name: str, obj: Any) -> None:
        """Write component ``name``: a DataFrame (Parquet, kind ``"table"``) or an object with ``save(directory)``."""
        tmp = self._staging()
        if not isinstance(name, str) or not _NAME_RE.match(name) or name == MANIFEST:
            raise PersonalizeError(f"invalid component name {name!r}: use letters, digits, '_', '-', '.'")
        if name in self._meta:
            raise PersonalizeError(f"component {name!r} was already added to this bundle")
        kind = _kind_of(obj)
        if kind not in _LOADERS:
            raise PersonalizeError(f"component {name!r}: no loader registered for kind {kind!r}")
        target = tmp / name
        target.mkdir()
        if kind == "table":
            obj.to_parquet(target / _TABLE_FILE, index=False)
        else:
            obj.save(target)
        files = {f.relative_to(tmp).as_posix(): _sha256(f) for f in sorted(target.rglob("*")) if f.is_file()}
        if not files:
            raise PersonalizeError(f"component {name!r} ({type(obj).__name__}) wrote no files")
        self._sums.update(files)
        self._meta[name] = {"kind": kind, "class": type(obj).__name__, "files": files}
        os.utime(tmp)  # a long training's staging directory stays young for prune's leftover sweep

    def commit(self, dataset: Dataset | None = None, *, params: Mapping | None = None,
               metrics: Mapping | None = None, keep: int | None = None, extra: Mapping | None = None,
               data: Mapping | None = None) -> dict:
        """Write the manifest, publish the version, make it CURRENT; return the manifest (see :func:`publish`)."""
        tmp = self._staging()
        if not self._meta:
            raise PersonalizeError("a bundle needs at least one component")
        check_keep(keep)
        created = _dt.datetime.now(_dt.timezone.utc)
        try:
            version = _new_version(created, self._sums)
            manifest = {
                "version": version,
                "created_at": created.isoformat(),
                "library_version": __version__,
                "format_version": FORMAT_VERSION,
                "data": {**_data_info(dataset), **to_jsonable(dict(data or {}))},
                "params": to_jsonable(dict(params or {})),
                "metrics": to_jsonable(dict(metrics or {})),
                "components": self._meta,
            }
            if extra:
                manifest["extra"] = to_jsonable(dict(extra))
            with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(tmp)
            os.rename(tmp, self.store / version)
            self._tmp = None
            fsync_dir(self.store)
        except BaseException:
            self.abort()
            raise
        _write_atomic(self.store / CURRENT, version + "\n")
        if keep is not None:
            prune(self.store, keep=keep)
        return manifest

    def abort(self) -> None:
        """Remove everything written so far (nothing was visible in the store)."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def publish(components: Mapping[str, Any], dataset: Dataset | None = None, *, store: str | Path = "models",
            params: Mapping | None = None, metrics: Mapping | None = None, keep: int | None = None,
            extra: Mapping | None = None, data: Mapping | None = None) -> dict:
    """Write ``components`` as a new version in ``store``, make it CURRENT and return its manifest.

    ``components`` maps a name to a DataFrame (stored as Parquet, kind ``"table"``)
    or an object with ``save(directory)`` (kind from its ``bundle_kind``
    attribute, ``"recommender"`` by default). ``dataset`` supplies the data
    fingerprint and time range; ``data`` adds to that section (e.g. ``events_through_id``, the last
    stored event the training data included). ``keep`` prunes all but the newest ``keep`` versions
    afterwards (the current one is always kept). :class:`BundleWriter` writes a bundle piece by piece.
    """
    if not components:
        raise PersonalizeError("a bundle needs at least one component")
    check_keep(keep)  # before anything is written
    with BundleWriter(store) as bundle:
        for name, obj in components.items():
            bundle.add(name, obj)
        return bundle.commit(dataset, params=params, metrics=metrics, keep=keep, extra=extra, data=data)


# --------------------------------------------------------------------------- store queries
def _is_version_dir(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()


def current_version(store: str | Path = "models") -> str | None:
    """The version named in ``store/CURRENT`` (None when nothing was published)."""
    pointer = Path(store) / CURRENT
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def read_manifest(version_dir: str | Path) -> dict:
    path = Path(version_dir) / MANIFEST
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise BundleError(f"bundle file missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle file corrupted: {path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle file corrupted: {path} is not a JSON object")
    return manifest


def list_versions(store: str | Path = "models") -> list[dict]:
    """Published versions, oldest first: version, created_at, current flag, metrics (unreadable ones flagged)."""
    store = Path(store)
    if not store.is_dir():
        return []
    cur = current_version(store)
    out = []
    for p in store.iterdir():
        if not _is_version_dir(p):
            continue
        try:
            m = read_manifest(p)
            row = {"version": p.name, "created_at": m.get("created_at"), "format_version": m.get("format_version"),
                   "metrics": m.get("metrics", {}), "current": p.name == cur, "ok": True}
        except BundleError as exc:
            row = {"version": p.name, "created_at": None, "format_version": None, "metrics": {},
                   "current": p.name == cur, "ok": False, "error": str(exc)}
        out.append(row)
    out.sort(key=lambda r: (r["created_at"] or "", r["version"]))
    return out


def resolve_version_dir(path: str | Path, version: str | None = None) -> Path:
    """Directory of the bundle to load: ``path`` itself if it is a version, else its CURRENT (or ``version``)."""
    path = Path(path)
    if version is None and (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise BundleError(f"model store not found: {path}")
    if version is None:
        version = current_version(path)
        if version is None:
            raise BundleError(f"no bundle published in {path} (missing {path / CURRENT}); run `personalize train`")
    if "/" in version or "\\" in version or version.startswith("."):
        raise BundleError(f"invalid version {version!r}")
    vdir = path / version
    if not vdir.is_dir():
        raise BundleError(f"bundle {version} not found in {path}")
    return vdir


def verify_bundle(vdir: Path) -> dict:
    """Check the manifest, the format version and the sha256 of every file; return the manifest."""
    manifest = read_manifest(vdir)
    fmt = manifest.get("format_version")
    if fmt not in SUPPORTED_FORMATS:
        raise BundleError(f"bundle {vdir / MANIFEST}: unknown format_version {fmt!r} "
                          f"(this library reads {sorted(SUPPORTED_FORMATS)})")
    comps = manifest.get("components")
    if not isinstance(comps, dict) or not comps:
        raise BundleError(f"bundle {vdir / MANIFEST}: no components listed")
    if manifest.get("version") != vdir.name:
        raise BundleError(f"bundle {vdir / MANIFEST}: manifest version {manifest.get('version')!r} does not match "
                          f"directory {vdir.name!r}")
    for name, meta in comps.items():
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind not in _LOADERS:
            raise BundleError(f"bundle {vdir / MANIFEST}: component {name!r} has unknown kind {kind!r}")
        files = meta.get("files") or {}
        if not files:
            raise BundleError(f"bundle {vdir / MANIFEST}: component {name!r} lists no files")
        for rel, digest in files.items():
            f = vdir / rel
            if not f.resolve().is_relative_to(vdir.resolve()):
                raise BundleError(f"bundle {vdir / MANIFEST}: file {rel!r} escapes the bundle directory")
            if not f.is_file():
                raise BundleError(f"bundle file missing: {f}")
            if _sha256(f) != digest:
                raise BundleError(f"bundle file corrupted (sha256 mismatch): {f}")
    return manifest


def load_bundle(path: str | Path = "models", version: str | None = None) -> Bundle:
    """Load the CURRENT bundle of a store (or ``version``, or a version directory) after verifying it."""
    vdir = resolve_version_dir(path, version)
    manifest = verify_bundle(vdir)
    components = {}
    for name, meta in manifest["components"].items():
        try:
            components[name] = _loader(meta["kind"])(vdir / name)
        except BundleError:
            raise
        except Exception as exc:  # a component that verifies but cannot be read is still a broken bundle
            raise BundleError(f"bundle {vdir.name}: component {name!r} ({meta['kind']}) failed to load from "
                              f"{vdir / name}: {type(exc).__name__}: {exc}") from exc
    return Bundle(version=vdir.name, path=vdir, manifest=manifest, components=components)


# --------------------------------------------------------------------------- maintenance
def rollback(store: str | Path = "models", version: str | None = None) -> str:
    """Point CURRENT at ``version`` (default: the version published before the current one) after verifying it."""
    store = Path(store)
    versions = [v for v in list_versions(store) if v["ok"]]
    if version is None:
        cur = current_version(store)
        names = [v["version"] for v in versions]
        if cur not in names or names.index(cur) == 0:
            raise BundleError(f"no earlier version to roll back to in {store}")
        version = names[names.index(cur) - 1]
    vdir = resolve_version_dir(store, version)
    verify_bundle(vdir)
    _write_atomic(store / CURRENT, version + "\n")
    return version


def prune(store: str | Path = "models", *, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the current one); return the deleted versions."""
    check_keep(keep)
    store = Path(store)
    cur = current_version(store)
    versions = [v["version"] for v in list_versions(store)]
    survivors = set(versions[-keep:])
    if cur:
        survivors.add(cur)
    removed = []
    for v in versions:
        if v not in survivors:
            shutil.rmtree(store / v, ignore_errors=True)
            removed.append(v)
    # leftovers of publishes that crashed before the rename: not a live writer's on this machine, and an hour
    # without a new component (a writer touches its directory on every component)
    for p in store.glob(".publish-*"):
        try:
            if _writer_alive(p.name) or time.time() - p.stat().st_mtime <= 3600:
                continue
            shutil.rmtree(p, ignore_errors=True)
        except OSError:  # pragma: no cover - removed concurrently
            pass
    return removed


def _writer_alive(name: str) -> bool:
    """Whether the staging directory ``name`` (``.publish-<pid>-*``) belongs to a running process here."""
    m = re.match(r"^\.publish-(\d+)-", name)
    if m is None or int(m.group(1)) == os.getpid():
        return False  # an old-style name, or this process's own (its writers are done when it prunes)
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
