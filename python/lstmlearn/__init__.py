"""lstmlearn: fast LSTM networks on the CPU, in scikit-learn's idiom."""

from . import nn
from ._config import config, show_config
from .estimators import LSTMClassifier, LSTMRegressor

__all__ = ["LSTMClassifier", "LSTMRegressor", "config", "nn", "show_config"]
