"""CUDA's device rules on a CPU-only PyTorch, to test where tensors go without a GPU.

Inside ``with pretend_cuda():`` a tensor moved to ``cuda`` (``.to``, ``.cuda()``) or made there
(``device="cuda"``, ``new_*`` of a GPU tensor) keeps its data in CPU memory, but its storage is
marked as on the GPU: it says so through ``.device`` and ``.is_cuda``, refuses ``.numpy()``, and
every op that reads it (forward, backward and optimiser steps, all seen at PyTorch's dispatch)
marks what it makes. An op that takes tensors from both sides fails with ``DeviceMix``, as a
GPU kernel fails, except where CUDA allows it: copies between devices, CPU index tensors, 0-dim
CPU scalars in elementwise ops, and a packed sequence's CPU lengths and batch sizes.

It checks placement only: CUDA's kernels, streams, memory and NCCL are not run (collectives go
through gloo on the CPU data). Tensors PyTorch's C++ code makes without operands inside a call
on GPU tensors (a GRU's zero state, say) count as the GPU's, as they would be there.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map

CPU = torch.device("cpu")
aten = torch.ops.aten
#: ops whose second result CUDA leaves on the CPU (a packed sequence's batch sizes, its lengths)
HOST_SECOND = {aten._pack_padded_sequence.default, aten._pad_packed_sequence.default}
#: ops CUDA runs with operands on both sides
CROSS = {aten.copy_.default, aten._to_copy.default, aten.index.Tensor, aten.index_put_.default,
         aten.index_put.default, aten._index_put_impl_.default, aten.gru.data, aten.lstm.data,
         aten.rnn_tanh.data, aten.rnn_relu.data, *HOST_SECOND}
#: ops beside the elementwise ones whose CUDA kernels take a 0-dim CPU tensor (``t[:, 0] = 0``)
SCALAR_TAKERS = {aten.fill_.Tensor, aten.fill.Tensor, aten.masked_fill_.Tensor, aten.masked_fill.Tensor,
                 aten.where.self, aten.index_fill_.int_Tensor, aten.index_fill.int_Tensor}
INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}


class DeviceMix(RuntimeError):
    """An op took tensors on the GPU and on the CPU."""


class Placement:
    """The storages on the pretend GPU (by their C++ address), each forgotten when it dies."""

    def __init__(self, index: int) -> None:
        self.device = torch.device("cuda", index)
        self.gpu: set[int] = set()
        self.inside_gpu_call = 0  # > 0 while a torch function with operands on the GPU runs

    @staticmethod
    def _storage(t: torch.Tensor) -> Any:
        if t.layout == torch.sparse_coo:
            return Placement._storage(t._values())
        if t.layout != torch.strided:
            return Placement._storage(t.values())
        return t.untyped_storage()

    def on_gpu(self, t: torch.Tensor) -> bool:
        return self._storage(t)._cdata in self.gpu

    def mark(self, t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.sparse_coo:
            self.mark(t._indices())
        storage = self._storage(t)  # one Python object for its storage while that lives
        if storage._cdata not in self.gpu:
            self.gpu.add(storage._cdata)
            weakref.finalize(storage, self.gpu.discard, storage._cdata)
        return t

    def unmark(self, t: torch.Tensor) -> torch.Tensor:
        self.gpu.discard(self._storage(t)._cdata)
        return t

    def mark_all(self, out: Any) -> Any:
        return tree_map(lambda t: self.mark(t) if isinstance(t, torch.Tensor) else t, out)


def _is_cuda(device: Any) -> bool:
    return device is not None and not isinstance(device, torch.Tensor) and torch.device(device).type == "cuda"


class _Dispatch(TorchDispatchMode):
    """Every aten op: refuse operands from both sides, mark what ops on the GPU make."""

    def __init__(self, placement: Placement) -> None:
        super().__init__()
        self.placement = placement

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        placement = self.placement
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        gpu = [t for t in tensors if placement.on_gpu(t)]
        pointwise = torch.Tag.pointwise in getattr(func, "tags", ()) or func in SCALAR_TAKERS
        cpu = [t for t in tensors if not placement.on_gpu(t)  # CUDA's elementwise kernels take CPU scalars
               and not (pointwise and t.dim() == 0 and t.layout == torch.strided)]
        if gpu and cpu and func not in CROSS:
            raise DeviceMix(f"{func} took tensors on {placement.device} and on the CPU (shapes "
                            f"{[tuple(t.shape) for t in cpu]})")
        if func in INDEXING and cpu:  # CPU indices are fine; CPU data or values are not
            values = args[2] if len(args) > 2 else None
            if placement.on_gpu(args[0]) and isinstance(values, torch.Tensor) and values.dim() > 0 \
                    and not placement.on_gpu(values):
                raise DeviceMix(f"{func}: values on the CPU put into a tensor on {placement.device}")
            if not placement.on_gpu(args[0]) and gpu:
                raise DeviceMix(f"{func}: a CPU tensor indexed with tensors on {placement.device}")
        out = func(*args, **kwargs)
        if not tensors and placement.inside_gpu_call:  # made by PyTorch's own code for an op on the GPU
            return placement.mark_all(out)
        if func is aten.copy_.default or not gpu:  # a copy's destination stays where it is
            return out
        if func in HOST_SECOND:
            placement.mark(out[0])
            placement.unmark(out[1])
            return out
        return placement.mark_all(out)


class _Function(TorchFunctionMode):
    """The Python level: ``.device``, ``.is_cuda``, ``.numpy()``, moves, and tensors made with
    ``device=`` or ``new_*``."""

    def __init__(self, placement: Placement) -> None:
        super().__init__()
        self.placement = placement

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        placement = self.placement
        owner = getattr(func, "__self__", None)
        if owner is torch._C.TensorBase.device:
            return placement.device if placement.on_gpu(args[0]) else CPU
        if owner is torch._C.TensorBase.is_cuda:
            return placement.on_gpu(args[0])
        if func is torch._C.TensorBase.numpy and placement.on_gpu(args[0]):
            raise TypeError(f"can't convert {placement.device} device type tensor to numpy. Use Tensor.cpu() to "
                            "copy the tensor to host memory first.")
        if func in (torch._C.TensorBase.cuda, torch._C.TensorBase.cpu):
            return self._move(args[0], func is torch._C.TensorBase.cuda)
        if func is torch._C.TensorBase.to:
            device, dtype, _, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
            if len(args) > 1 and isinstance(args[1], torch.Tensor):
                device = placement.device if placement.on_gpu(args[1]) else CPU
            source = args[0] if dtype is None else func(args[0], dtype=dtype)
            return source if device is None else self._move(source, _is_cuda(device))
        name = getattr(func, "__name__", "")
        if name.startswith("new_") and args and isinstance(args[0], torch.Tensor) and "device" not in kwargs:
            out = func(*args, **kwargs)  # made where its source is
            return placement.mark(out) if placement.on_gpu(args[0]) else out
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = CPU
            return placement.mark_all(func(*args, **kwargs))
        if not any(isinstance(t, torch.Tensor) and placement.on_gpu(t) for t in tree_flatten((args, kwargs))[0]):
            return func(*args, **kwargs)
        placement.inside_gpu_call += 1
        try:
            out = func(*args, **kwargs)
        finally:
            placement.inside_gpu_call -= 1
        if name in ("_pack_padded_sequence", "_pad_packed_sequence"):
            placement.mark(out[0])
            placement.unmark(out[1])
        return out

    def _move(self, t: torch.Tensor, to_gpu: bool) -> torch.Tensor:
        if to_gpu == self.placement.on_gpu(t):
            return t
        with _disable_current_modes():  # a new storage, as a copy between devices makes
            moved = t.coalesce().clone() if t.layout == torch.sparse_coo else t.clone()
        return self.placement.mark(moved) if to_gpu else moved


@contextlib.contextmanager
def pretend_cuda(index: int = 0, *, gpus: int = 1) -> Iterator[Placement]:
    """CUDA's device rules on the CPU inside the block: this process's GPU is ``cuda:index``, of
    ``gpus`` on the machine (``torch.cuda`` says it has them; NCCL says it is there)."""
    placement = Placement(index)
    patches = [mock.patch("torch.cuda.is_available", return_value=True),
               mock.patch("torch.cuda.device_count", return_value=gpus),
               mock.patch("torch.cuda.current_device", return_value=index),
               mock.patch("torch.cuda.get_rng_state", return_value=torch.zeros(0, dtype=torch.uint8)),
               mock.patch("torch.distributed.is_nccl_available", return_value=True),
               *(mock.patch(f"torch.cuda.{name}") for name in ("set_device", "synchronize", "_lazy_init",
                                                                "set_rng_state", "manual_seed", "manual_seed_all"))]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        stack.enter_context(_Function(placement))
        stack.enter_context(_Dispatch(placement))
        yield placement
