"""Compiling the plain modules inside the memory-efficient region, where ``torch.compile`` does not reach.

Under ``torch.compile`` the engine is an opaque region that runs eagerly (:mod:`monai_iunet.engine.opaque`): the
invertible core is not traced, so compiling the network alone makes it no faster. The modules the invertible
blocks *call*, a coupling's residual function ``F`` for instance, are ordinary modules, though: the engine evaluates
them in forward (without a graph), in the inverse and in the backward recompute (with a graph, whose backward
autograd runs). :func:`compile_inner` compiles each of them on its own, in place, so that every one of these calls
runs compiled code while the engine around them stays eager and memory-efficient:

- the compiled forward with a graph is an AOT-autograd function: its backward is compiled too, and what it saves
  for backward lives only during one block's backward step, as before;
- the compiled modules keep their parameters, buffers and state-dict keys; while a hook is registered inside one
  of them (or a global module hook), that module runs eagerly (with a warning, once) so that the hook fires on every
  call; modules holding dropout are left eager (compiled random numbers would not be replayed exactly);
- ``dynamic=False`` by default: one graph per input shape and grad mode, so a network compiles one graph per level
  and grad mode; modules of the same structure and shape share them. The recompile limit is raised for these calls
  only, to :data:`RECOMPILE_LIMIT`, so that a deep network with many levels does not fall back to eager code.

Parameters substituted by ``torch.func.functional_call`` reach the compiled code as inputs (Dynamo treats a module's
parameters as graph inputs), so they are honoured as in eager mode.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from monai_iunet.engine.protocol import Invertible
from monai_iunet.engine.recompute import hooks_observe

__all__ = ["RECOMPILE_LIMIT", "CompiledForward", "compile_inner", "compiled_modules", "uncompile_inner"]

#: Dynamo's recompile limit while a compiled inner module runs (its default, 8, is one 4-level network's graphs)
RECOMPILE_LIMIT = 64


def _call_forward(module: nn.Module, *args: Any) -> Any:
    """The module's own ``forward`` (the class's, not the compiled one set on the instance), traced by Dynamo."""
    return type(module).forward(module, *args)


@functools.cache
def _compiled(options: tuple[tuple[str, Any], ...]):
    kwargs = dict(options)
    if isinstance(kwargs.get("options"), tuple):  # inductor's options, kept as pairs to be hashable
        kwargs["options"] = dict(kwargs["options"])
    return torch.compile(_call_forward, **kwargs)


class CompiledForward:
    """The compiled ``forward`` that :func:`compile_inner` sets on a module instance (picklable, copyable: it
    holds the module and the ``torch.compile`` options, not the compiled code).

    Args:
        module: the module whose class ``forward`` is compiled.
        options: keyword arguments of ``torch.compile`` (hashable values).
    """

    def __init__(self, module: nn.Module, options: dict[str, Any]) -> None:
        self.module = module
        self.options = tuple(sorted(options.items()))

    def __call__(self, *args: Any) -> Any:
        if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return _call_forward(self.module, *args)  # inside another compiler: let it trace the plain forward
        if hooks_observe(*list(self.module.modules())[1:]):
            _warn_hooks(self.module)
            return _call_forward(self.module, *args)  # eagerly, so that every hook fires on every call
        if not torch.is_grad_enabled():  # without a graph, whether the input requires grad is moot: one graph
            args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        with torch._dynamo.config.patch(recompile_limit=max(RECOMPILE_LIMIT, torch._dynamo.config.recompile_limit)):
            return _compiled(self.options)(self.module, *args)

    def __repr__(self) -> str:
        return f"CompiledForward({type(self.module).__name__}, {dict(self.options)})"


def _warn_hooks(module: nn.Module) -> None:
    if getattr(module, "_monai_iunet_warned_hooks", False):
        return
    module._monai_iunet_warned_hooks = True
    warnings.warn(
        f"a hook is registered on a module inside the compiled {type(module).__name__} (or a global module hook): "
        "it runs eagerly so that the hook fires on every call, as without compile_inner; remove the hook to run "
        "it compiled again (warned once per module).",
        RuntimeWarning,
        stacklevel=3,
    )


def _draws_random_numbers(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) for m in module.modules())


def _inner_modules(module: nn.Module) -> Iterator[nn.Module]:
    """The plain modules the invertible modules under ``module`` call: direct children of an invertible module that
    are not invertible themselves and hold parameters (a coupling's residual function)."""
    for parent in module.modules():
        if not isinstance(parent, Invertible):
            continue
        for child in parent.children():
            if not isinstance(child, Invertible) and any(True for _ in child.parameters()):
                if _draws_random_numbers(child):
                    warnings.warn(
                        f"compile_inner leaves {type(child).__name__} eager: it holds dropout, and compiled random "
                        "numbers are not replayed exactly when the engine recomputes it in backward.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    continue
                yield child


def compile_inner(module: nn.Module, **options: Any) -> list[nn.Module]:
    """Compile, in place, the plain modules that the invertible modules under ``module`` call.

    Each such module (for an additive coupling: its residual function ``fn``) gets an instance ``forward`` that runs
    its class's ``forward`` through ``torch.compile(**options)``; parameters, state-dict keys and the engine do not
    change. Hooks still fire: a module with a hook inside runs eagerly while the hook is registered (warned once).
    Modules holding dropout are left eager (warned). Calling it again with other options recompiles with those.

    Args:
        module: a module holding invertible modules, e.g. an :class:`~monai_iunet.networks.nets.InvertibleUNet`.
        options: keyword arguments of ``torch.compile`` (``backend``, ``mode``, ``dynamic``, ``options``);
            ``dynamic`` defaults to ``False``. Values must be hashable, except ``options`` (a dict).

    Returns:
        the modules compiled.
    """
    options = {"dynamic": False, **options}
    if isinstance(options.get("options"), dict):
        options["options"] = tuple(sorted(options["options"].items()))
    compiled = list(dict.fromkeys(_inner_modules(module)))
    for child in compiled:
        child.forward = CompiledForward(child, options)
    return compiled


def compiled_modules(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` that :func:`compile_inner` compiled."""
    return [m for m in module.modules() if isinstance(m.__dict__.get("forward"), CompiledForward)]


def uncompile_inner(module: nn.Module) -> list[nn.Module]:
    """Undo :func:`compile_inner`: the modules run their class's ``forward`` eagerly again. Returns them."""
    modules = compiled_modules(module)
    for m in modules:
        del m.__dict__["forward"]
    return modules
