"""An artifact's weights mapped from its safetensors file instead of read into memory.

Every process that loads the same artifact (the workers of ``recfunnel serve --workers N``) then
holds one copy of the weights between them, the operating system's page cache of the file, where
reading the file gave each process a copy of its own. The map is private (copy-on-write): a process
that writes to a tensor writes to its own copy of the page, never to the file or another process.

safetensors maps the file too, but copies each tensor out of the map; the format is simple enough
(an 8-byte header length, a JSON header of dtypes, shapes and byte ranges, the bytes) to put
tensors on the mapped bytes here, once safetensors itself has checked the header.

An artifact is replaced by writing a new directory and renaming it over the old one (what
recfunnel does): a process keeps the file it mapped. Writing over ``model.safetensors`` in place
would change the weights of every process that mapped it.
"""

from __future__ import annotations

import json
import mmap
import struct
import sys
from pathlib import Path

import torch
from safetensors import safe_open

#: safetensors' names of the dtypes recfunnel writes; a file with another one is read, not mapped.
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
#: The most header bytes read (safetensors refuses larger headers too).
MAX_HEADER = 100 * 2**20


def map_weights(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The tensors of the safetensors file ``path`` on a private map of it; ``None`` where they
    cannot be mapped as they are (a big-endian machine, a dtype not in ``DTYPES``), for the caller
    to read the file instead.

    Raises:
        safetensors.SafetensorError, OSError, ValueError: The file is not a valid safetensors file
            (as ``safetensors.torch.load_file`` raises them).

    Example:
        >>> import tempfile
        >>> from safetensors.torch import save_file
        >>> file = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(file))
        >>> map_weights(file)["w"]
        tensor([[0., 1., 2.],
                [3., 4., 5.]])
    """
    with safe_open(str(path), framework="pt") as checked:  # safetensors checks the header and ranges
        names = set(checked.keys())
    if sys.byteorder != "little":
        return None
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        if length > MAX_HEADER:
            raise ValueError(f"header of {length:,} bytes is larger than {MAX_HEADER:,}")
        header = json.loads(file.read(length))
        start, size = 8 + length, file.seek(0, 2)
        if size == start:  # only empty tensors: nothing to map
            return None
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors = {}
    for name in names:
        entry = header[name]
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            return None
        shape = [int(n) for n in entry["shape"]]
        begin, end = (start + int(offset) for offset in entry["data_offsets"])
        count = end - begin
        numel = count // dtype.itemsize if dtype.itemsize else 0
        if not start <= begin <= end <= size or numel * dtype.itemsize != count or numel != _numel(shape):
            raise ValueError(f"tensor {name!r}: its byte range does not hold its dtype and shape")
        if numel == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        tensor = torch.frombuffer(mapped, dtype=dtype, count=numel, offset=begin).reshape(shape)
        # a tensor off its dtype's alignment (safetensors aligns them; another writer may not) is copied
        tensors[name] = tensor if begin % dtype.itemsize == 0 else tensor.clone()
    return tensors


def _numel(shape: list[int]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total
