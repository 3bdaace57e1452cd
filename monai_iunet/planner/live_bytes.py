"""A dispatch mode that follows how many bytes of tensors are alive after every operation."""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["LiveBytes"]


class LiveBytes(TorchDispatchMode):
    """Records the bytes of live tensors after every operation (tensors are freed when their storage dies).

    Storages shrunk in place (``storage.resize_(0)``, as memcnn frees the inputs of its blocks) are noticed by
    re-reading the size of every live storage after each operation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[weakref.ref, int]] = {}
        self.current = 0
        self.phase = "forward"
        self.peak = (0, 0, "forward", "-")  # (live, index of the op, phase, op)
        self.convs: list[tuple[int, int, str, str, tuple]] = []  # (live, index, phase, op, shapes/args)
        self.count = 0

    def _release(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key, (ref, nbytes) in list(self.live.items()):
            storage = ref()
            if storage is not None and storage.nbytes() != nbytes:
                self.live[key] = (ref, storage.nbytes())
                self.current += storage.nbytes() - nbytes
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = id(storage), storage.nbytes()
                if key not in self.live:
                    self.live[key] = (weakref.ref(storage), nbytes)
                    self.current += nbytes
                    weakref.finalize(storage, self._release, key)
        self.count += 1
        if self.current > self.peak[0]:
            self.peak = (self.current, self.count, self.phase, str(func))
        if func is torch.ops.aten.convolution.default:
            x, w, _, stride, padding, dilation, transposed, output_padding, groups = args[:9]
            shapes = (tuple(x.shape), tuple(w.shape), tuple(out.shape), stride, padding, dilation, transposed)
            self.convs.append((self.current, self.count, self.phase, str(func), (*shapes, output_padding, groups)))
        elif func is torch.ops.aten.convolution_backward.default:
            grad_out, x, w, _, stride, padding, dilation, transposed, output_padding, groups = args[:10]
            shapes = (tuple(x.shape), tuple(w.shape), tuple(grad_out.shape), stride, padding, dilation, transposed)
            self.convs.append((self.current, self.count, self.phase, str(func), (*shapes, output_padding, groups)))
        return out
