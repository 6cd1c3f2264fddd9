"""Large buffers go back to the operating system when they are freed, so a worker's memory stays flat.

glibc serves an allocation above its mmap threshold (128 KiB at first) with a mapping of its own, which
it unmaps when the allocation is freed; but freeing such a mapping raises the threshold to its size (up
to 32 MiB). After the first multi-megabyte record, buffers of that size - a decompressed record batch, a
hostile record being refused - come from the heap instead, whose freed space fragments and is seldom
returned: the worker's resident memory then grows with every large record (measured: +66 MiB after five
2 MB records read from lz4 batches, +39 MiB after twelve with the threshold fixed). Fixing the threshold
keeps the first behaviour; the cost is a mapping per buffer over 128 KiB, a few per input message at most.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt(3)
LARGE_BUFFER_BYTES = 128 * 1024


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; False where the C library has no ``mallopt`` (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))
