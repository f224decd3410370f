"""Pick the engine build for the best instruction-set level this CPU supports.

The extension is compiled once per x86-64 level into ``_core_baseline``,
``_core_avx2`` and ``_core_avx512``. The baseline module runs on every CPU, so
it is imported first and asked what the CPU supports; then the best available
level is imported. ``LSTMLEARN_ISA=baseline|avx2|avx512`` forces a level.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

LEVELS = ("baseline", "avx2", "avx512")
ENV_VAR = "LSTMLEARN_ISA"


def built_levels() -> list[str]:
    """Levels whose module is present in this installation."""
    return [level for level in LEVELS if importlib.util.find_spec(f"lstmlearn._core_{level}")]


def supported_levels(baseline: ModuleType) -> list[str]:
    """Levels the running CPU and operating system can execute."""
    levels = ["baseline"]
    if baseline.cpu_has_avx2():
        levels.append("avx2")
        if baseline.cpu_has_avx512():
            levels.append("avx512")
    return levels


def select_level(requested: str | None, built: list[str], supported: list[str]) -> str:
    """Return the level to load.

    Parameters
    ----------
    requested : str or None
        The value of ``LSTMLEARN_ISA``; None or empty picks the best level.
    built : list of str
        Levels compiled into this installation.
    supported : list of str
        Levels the CPU supports.

    Raises
    ------
    ImportError
        If ``requested`` is not a known level, was not built, or needs
        instructions this CPU lacks.
    """
    usable = [level for level in LEVELS if level in built and level in supported]
    if not requested:
        if not usable:
            raise ImportError(f"lstmlearn: no usable engine build (built: {built})")
        return usable[-1]
    level = requested.strip().lower()
    if level not in LEVELS:
        raise ImportError(
            f"{ENV_VAR}={requested!r} is not a known level; expected one of {', '.join(LEVELS)}"
        )
    if level not in built:
        raise ImportError(
            f"{ENV_VAR}={requested!r}: this installation has no {level} build "
            f"(built levels: {', '.join(built)})"
        )
    if level not in supported:
        raise ImportError(
            f"{ENV_VAR}={requested!r}: this CPU does not support {level} "
            f"(supported levels: {', '.join(supported)}); unset {ENV_VAR} or choose one of those"
        )
    return level


def load() -> tuple[ModuleType, str]:
    """Import and return the engine module chosen for this CPU, and its level."""
    baseline = importlib.import_module("lstmlearn._core_baseline")
    level = select_level(os.environ.get(ENV_VAR), built_levels(), supported_levels(baseline))
    return importlib.import_module(f"lstmlearn._core_{level}"), level
