"""A stand-in for torchvision, put first on the ``PYTHONPATH`` of the test InvokeAI server only.

The package index serves only CUDA builds of torchvision, which fail at import beside the CPU
torch ("operator torchvision::nms does not exist"), and InvokeAI imports torchvision at start-up
for image nodes the model manager never runs. Every attribute and every submodule of this package
is a harmless dummy, so the server starts and its model manager works as it does for users.
It is test scaffolding of the InvokeAI environment, never part of invokeai_ti.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

__version__ = "0.0.0+stand-in"


class _Dummy:
    """Answers calls, attribute reads and subclassing with more dummies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Dummy":
        return _Dummy()

    def __getattr__(self, name: str) -> "_Dummy":
        if name.startswith("__"):
            raise AttributeError(name)
        return _Dummy()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (_Dummy,)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Dummy()


class _StandInModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes every ``torchvision.<anything>`` import a package of dummies."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith(__name__ + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


sys.meta_path.insert(0, _StandInModules())
