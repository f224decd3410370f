"""lstmlearn: fast LSTM networks on the CPU, in scikit-learn's idiom."""

from . import nn
from ._config import config, show_config

__all__ = ["config", "nn", "show_config"]
