"""lstmlearn: fast LSTM networks on the CPU, in scikit-learn's idiom."""

from importlib.metadata import PackageNotFoundError, version

from . import _threads, datasets, nn, preprocessing
from ._config import config, show_config
from ._persist import load
from .estimators import LSTMClassifier, LSTMRegressor
from .forecaster import LSTMForecaster
from .generator import LSTMGenerator
from .seq2seq import LSTMSeq2Seq

__all__ = [
    "LSTMClassifier",
    "LSTMForecaster",
    "LSTMGenerator",
    "LSTMRegressor",
    "LSTMSeq2Seq",
    "__version__",
    "config",
    "datasets",
    "load",
    "nn",
    "preprocessing",
    "show_config",
]

# threadpoolctl's threadpool_info() and threadpool_limits() see the engine.
_threads.register_controller()

try:
    __version__ = version("lstmlearn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "unknown"


def __getattr__(name: str):
    # onnx is an optional extra: the skl2onnx registration is imported on first use.
    if name == "register_skl2onnx":
        from ._onnx import register_skl2onnx

        return register_skl2onnx
    # So is matplotlib (the plot extra): the displays are imported on first use.
    if name in ("ForecastDisplay", "LossCurveDisplay"):
        from . import display

        return getattr(display, name)
    raise AttributeError(f"module 'lstmlearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"ForecastDisplay", "LossCurveDisplay"})
