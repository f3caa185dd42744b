"""The exchange buffer: tensors between the judge and the candidate's process, by value.

One anonymous memory file (memfd) made by the judge and inherited by the candidate's process.
It is sealed against shrinking and against further seals, so the candidate can neither truncate
it under the judge (a SIGBUS there) nor stop the judge from writing or growing it. Every request
names where its tensors lie (`Slot`: byte offset, dtype, shape); the receiver copies them out
before it acts, so the sender can change nothing it has handed over. No pickle crosses: only
JSON and raw bytes, so the judge never runs code the candidate chose.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from typing import Any

import torch
from pydantic import BaseModel

ALIGN = 256


class Slot(BaseModel):
    """One tensor in the buffer (or a plain value, with `value`)."""

    offset: int = 0
    dtype: str = ""
    shape: list[int] = []
    value: Any = None
    is_tensor: bool = True
    exact_type: bool = True  # False: a tensor subclass, or not a tensor (output checks)
    type_name: str = "Tensor"


def create(capacity: int) -> int:
    """A new buffer of `capacity` bytes; returns its file descriptor (inheritable)."""
    fd = os.memfd_create("kernelwright-exchange", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, max(capacity, ALIGN))
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    os.set_inheritable(fd, True)
    return fd


def ensure(fd: int, capacity: int) -> None:
    """Grow the buffer to at least `capacity` bytes (only ever grows)."""
    if os.fstat(fd).st_size < capacity:
        os.ftruncate(fd, capacity)


def nbytes(values: list[Any]) -> int:
    return sum(_padded(v.numel() * v.element_size()) for v in values if isinstance(v, torch.Tensor))


def _padded(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"not a dtype: {name!r}")
    return dtype


def write(fd: int, values: list[Any]) -> list[Slot]:
    """Copy tensors into the buffer (growing it); plain values travel in the slots."""
    ensure(fd, nbytes(values))
    slots, offset = [], 0
    with _mapped(fd) as view:
        for v in values:
            if not isinstance(v, torch.Tensor):
                slots.append(Slot(value=v, is_tensor=False, type_name=type(v).__name__))
                continue
            size = v.numel() * v.element_size()
            if size:
                _copy_in(view, offset, size, v)
            slots.append(Slot(offset=offset, dtype=str(v.dtype), shape=list(v.shape),
                              exact_type=type(v) is torch.Tensor, type_name=type(v).__name__))
            offset += _padded(size)
    return slots


def read(fd: int, slots: list[Slot], device: torch.device | str) -> list[Any]:
    """Copy the slots' tensors out of the buffer onto `device` (plain values as they are)."""
    out: list[Any] = []
    size_now = os.fstat(fd).st_size
    with _mapped(fd) as view:
        for s in slots:
            if not s.is_tensor:
                out.append(s.value)
                continue
            dtype = _dtype(s.dtype)
            count = 1
            for d in s.shape:
                count *= int(d)
            size = count * torch.empty((), dtype=dtype).element_size()
            if s.offset < 0 or s.offset + size > size_now:
                raise ValueError(f"a tensor slot lies outside the exchange buffer ({s.offset}+{size})")
            if size == 0:
                out.append(torch.empty(s.shape, dtype=dtype, device=device))
                continue
            out.append(_copy_out(view, s.offset, size, dtype, s.shape, device))
    return out


def _copy_in(view: mmap.mmap, offset: int, size: int, value: torch.Tensor) -> None:
    dst = torch.frombuffer(view, dtype=torch.uint8, count=size, offset=offset)
    dst.view(value.dtype).view(value.shape).copy_(value)


def _copy_out(view: mmap.mmap, offset: int, size: int, dtype: torch.dtype, shape: list[int],
              device: torch.device | str) -> torch.Tensor:
    src = torch.frombuffer(view, dtype=torch.uint8, count=size, offset=offset)
    return src.view(dtype).view(shape).to(device, copy=True)


class _mapped:
    """The whole buffer mapped for the duration of a `with`."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> mmap.mmap:
        self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size)
        return self.map

    def __exit__(self, *exc: object) -> None:
        self.map.close()
