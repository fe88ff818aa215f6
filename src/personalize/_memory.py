"""Give memory freed by the process back to the operating system between the stages of a long job.

A training run allocates and frees gigabytes in each stage (a window's feature matrix, a day's customer
frames). Freed memory is not always returned: glibc's allocator keeps freed heap pages below its
(growing) mmap threshold, and Arrow's memory pool keeps freed blocks for reuse. The resident size then
stays at the high-water mark of every earlier stage and the next stage's peak stacks on top of it.
:func:`release_memory` asks both to return what they hold unused; it changes no value and costs a few
milliseconds. On platforms without glibc it only releases Arrow's pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_memory"]

_libc = None


def _malloc_trim():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _libc = lib if hasattr(lib, "malloc_trim") else False
            except OSError:  # pragma: no cover - a Linux without a loadable libc
                _libc = False
    return _libc


def release_memory() -> None:
    """Return unused heap and Arrow pool memory to the OS (see the module docstring)."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        try:
            pa.default_memory_pool().release_unused()
        except Exception:  # noqa: BLE001 - an older pyarrow without release_unused: nothing to give back
            pass
    lib = _malloc_trim()
    if lib:
        lib.malloc_trim(0)
