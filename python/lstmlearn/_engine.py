"""The engine module chosen for this CPU at import (see _loader.py)."""

from ._loader import load

core, level = load()
