"""An artifact's weights mapped from its safetensors file instead of read into memory.

Every process that loads the same artifact (the workers of ``recfunnel serve --workers N``) then
holds one copy of the weights between them, the operating system's page cache of the file, where
reading the file gave each process a copy of its own. The map is private (copy-on-write): a process
that writes to a tensor writes to its own copy of the page, never to the file or another process.

safetensors maps the file too, but copies each tensor out of the map; the format is simple enough
(an 8-byte header length, a JSON header of dtypes, shapes and byte ranges, the bytes) to read and
check here and put the tensors on the mapped bytes. A file this cannot map is read by safetensors.

An artifact is replaced by writing a new directory and renaming it over the old one (what
recfunnel does): a process keeps the file it mapped. Writing over ``model.safetensors`` in place
would change the weights of every process that mapped it.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import sys
from pathlib import Path
from typing import Any

import torch

#: safetensors' names of the dtypes recfunnel writes; a file with another one is read, not mapped.
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
#: The most header bytes read (safetensors refuses larger headers too).
MAX_HEADER = 100 * 2**20
#: The most dimensions a tensor may have (PyTorch's own limit is 64).
MAX_DIMS = 16


def map_weights(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The tensors of the safetensors file ``path`` on a private map of it; ``None`` where they
    cannot be mapped as they are (a big-endian machine, a dtype not in ``DTYPES``, no bytes to
    map), for the caller to read the file with safetensors instead.

    The header is read, checked and mapped from one open file, so a file renamed over ``path``
    meanwhile cannot mix two files' headers and bytes.

    Raises:
        ValueError: The file is not a valid safetensors file: a header that is not a JSON object
            of dtypes, shapes and byte ranges, or a range outside the file or not holding its
            tensor's dtype and shape.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import save_file
        >>> file = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(file))
        >>> map_weights(file)["w"]
        tensor([[0., 1., 2.],
                [3., 4., 5.]])
    """
    if sys.byteorder != "little":
        return None
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < 8:
            raise ValueError(f"{size} bytes: too short for a safetensors header")
        (length,) = struct.unpack("<Q", file.read(8))
        if length > min(MAX_HEADER, size - 8):
            raise ValueError(f"a header of {length:,} bytes in a file of {size:,}")
        try:
            header = json.loads(file.read(length))
        except RecursionError:  # nested past Python's stack: no header of ours
            raise ValueError("the header nests too deeply to be a safetensors header") from None
        entries = _entries(header)
        start = 8 + length
        if entries is None or size == start:  # a dtype to convert, or only empty tensors: read instead
            return None
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors = {}
    for name, (dtype, shape, (first, last)) in entries.items():
        begin, end = start + first, start + last
        count = end - begin
        numel = math.prod(shape)
        if end > size:
            raise ValueError(f"tensor {name!r} ends at byte {end:,}, past the file's {size:,} (a truncated file?)")
        if not start <= begin <= end or numel * dtype.itemsize != count:
            raise ValueError(f"tensor {name!r}: its byte range does not hold its dtype and shape")
        if numel == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        tensor = torch.frombuffer(mapped, dtype=dtype, count=numel, offset=begin).reshape(shape)
        # a tensor off its dtype's alignment (safetensors aligns them; another writer may not) is copied
        tensors[name] = tensor if begin % dtype.itemsize == 0 else tensor.clone()
    return tensors


def _entries(header: Any) -> dict[str, tuple[torch.dtype, list[int], tuple[int, int]]] | None:
    """The header's tensors as (dtype, shape, byte range); ``None`` if a dtype is not in ``DTYPES``.

    Raises:
        ValueError: The header is not a safetensors header.
    """
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
            raise ValueError(f"tensor {name!r}: no dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(type(n) is int and 0 <= n < 2**62
                                                                           for n in shape):
            raise ValueError(f"tensor {name!r}: its shape is not a list of at most {MAX_DIMS} sizes below 2**62")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int and n >= 0 for n in offsets):
            raise ValueError(f"tensor {name!r}: its data_offsets are not two byte offsets")
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            return None
        entries[name] = (dtype, shape, (offsets[0], offsets[1]))
    return entries
