"""Versions and machine facts stored with every record."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from functools import lru_cache
from typing import Any

PACKAGES = ("bnbench", "numpy", "torch", "pyro-ppl", "pgmpy")


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


@lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        facts["torch_threads"] = torch.get_num_threads()
        facts["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        facts["cuda"] = None
    return facts
