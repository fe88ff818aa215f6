"""A folder of named arrays (``arrays.npz``, no pickle) and a JSON ``meta.json``: how the bundle's
precomputed tables (offer scores, coupon options) are stored; and :func:`read_npz`, how every ``.npz`` of a
bundle (recommenders, candidate tables, these tables) is read."""

from __future__ import annotations

import io
import json
import mmap
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from personalize._atomic import atomic_write
from personalize.errors import BundleError


def save_arrays(directory, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and ``meta`` into ``directory`` (created), each file atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "arrays.npz", lambda fh: np.savez(fh, **arrays))
    atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2)), binary=False)
    return d


def read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (``np.savez``'s layout, no pickle), without copying it.

    The file is mapped copy-on-write (pages shared with every other process that maps it, e.g. the
    service's other workers; a write to an array copies only the page it touches) and every page is
    mapped at once, so what a process holds does not grow later as requests touch the arrays. An
    uncompressed member (what ``np.savez`` writes) becomes a view of the mapping; a compressed one is
    read the ordinary way. Raises ``ValueError`` for a file that is not such an archive or a member that needs pickle, and
    ``OSError`` when it cannot be read. The zip CRCs are not checked: a bundle's files are verified by
    their sha256 before they are loaded.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise ValueError(f"{path} is empty")
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    # map every page now (a read per page: the page cache's pages, no copy; MAP_POPULATE on a writable
    # private mapping would copy them all)
    int(np.frombuffer(mm, np.uint8)[::mmap.PAGESIZE].sum())
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:  # reads the central directory only
            infos = zf.infolist()
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                if info.compress_type != zipfile.ZIP_STORED:
                    with zf.open(info) as member:
                        out[name] = np.lib.format.read_array(member, allow_pickle=False)
                    continue
                out[name] = _stored_member(mm, info, path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is not an npz archive: {exc}") from None
    return out


def _stored_member(mm: mmap.mmap, info: zipfile.ZipInfo, path) -> np.ndarray:
    """The array of an uncompressed ``.npy`` member, as a view of the mapped archive."""
    head = info.header_offset
    sig, = struct.unpack_from("<I", mm, head)
    if sig != 0x04034B50:
        raise ValueError(f"{path}: member {info.filename!r} has no local header")
    name_len, extra_len = struct.unpack_from("<HH", mm, head + 26)
    start = head + 30 + name_len + extra_len
    if start + info.file_size > len(mm):
        raise ValueError(f"{path}: member {info.filename!r} runs past the end of the file")
    fp = io.BytesIO(mm[start:start + min(info.file_size, 65536 + 16)])
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:  # pragma: no cover - read_magic refuses others
        raise ValueError(f"{path}: member {info.filename!r} has npy version {version}")
    if dtype.hasobject:
        raise ValueError(f"{path}: member {info.filename!r} holds Python objects (pickle is not read)")
    count = int(np.prod(shape, dtype=np.int64))
    offset = start + fp.tell()
    if offset + count * dtype.itemsize > start + info.file_size:
        raise ValueError(f"{path}: member {info.filename!r} is shorter than its header says")
    arr = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def load_arrays(directory, names: Iterable[str], unreadable: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` written by :func:`save_arrays`; ``customer_ids`` comes back as an object array.

    Raises BundleError ``unreadable`` (with ``{dir}`` filled in) and the cause when a file is missing or bad.
    """
    d = Path(directory)
    try:
        meta = json.loads((d / "meta.json").read_text())
        z = read_npz(d / "arrays.npz")
        arrays = {k: z[k] for k in names}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{unreadable.format(dir=d)}: {exc}") from None
    if "customer_ids" in arrays:
        arrays["customer_ids"] = arrays["customer_ids"].astype(object)
    return meta, arrays
