"""lstmlearn: fast LSTM networks on the CPU, in scikit-learn's idiom."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, nn
from ._config import config, show_config
from .estimators import LSTMClassifier, LSTMRegressor
from .generator import LSTMGenerator
from .seq2seq import LSTMSeq2Seq

__all__ = [
    "LSTMClassifier",
    "LSTMGenerator",
    "LSTMRegressor",
    "LSTMSeq2Seq",
    "__version__",
    "config",
    "datasets",
    "nn",
    "show_config",
]

try:
    __version__ = version("lstmlearn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "unknown"
