// One register_* function per bound area; register_module calls them all.
#pragma once

#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "lstmlearn/isa.hpp"
#include "lstmlearn/lstm.hpp"
#include "lstmlearn/optimizer.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

void register_module(pybind11::module_& m);  // all of the below
void register_config(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_network(pybind11::module_& m);
void register_layers(pybind11::module_& m);
void register_seq2seq(pybind11::module_& m);

// A size or count argument as Python gave it: any integer (or object with
// __index__, as NumPy's integers), in 64 bits. Taking `int` instead would let
// pybind11 refuse 2**31 with its "incompatible function arguments" dump;
// this way narrow() can say which argument is too large and what the limit is.
struct PyInt {
  long long value = 0;  // clamped to [LLONG_MIN, LLONG_MAX]
};

// `arg` as an int, or std::invalid_argument (ValueError) naming `name` and the
// limit. Whether the value makes sense (positive, ...) is the engine's check.
inline int narrow(const char* name, const PyInt& arg) {
  const long long v = arg.value;
  if (v > INT_MAX || v < INT_MIN) {
    throw std::invalid_argument(std::string(name) + " " +
                                (v == LLONG_MAX || v == LLONG_MIN ? "" : std::to_string(v) + " ") +
                                "is too " + (v > 0 ? "large" : "small") +
                                "; the engine's limit is " +
                                std::to_string(v > 0 ? INT_MAX : INT_MIN));
  }
  return static_cast<int>(v);
}

inline std::vector<int> narrow(const char* name, const std::vector<PyInt>& args) {
  std::vector<int> out;
  for (const PyInt& arg : args) out.push_back(narrow(name, arg));
  return out;
}

// [(name, offset, shape tuple), ...] of a flat parameter buffer.
inline pybind11::list layout_to_python(const std::vector<TensorInfo>& layout) {
  pybind11::list out;
  for (const auto& info : layout) {
    pybind11::tuple shape(info.shape.size());
    for (std::size_t k = 0; k < info.shape.size(); ++k) shape[k] = info.shape[k];
    out.append(pybind11::make_tuple(info.name, info.offset, shape));
  }
  return out;
}

// The optimizer of a training epoch, from the estimators' arguments.
inline OptimizerSpec optimizer_spec(const std::string& name, double learning_rate, double beta_1,
                                    double beta_2, double epsilon, double momentum, bool nesterov,
                                    double rho) {
  OptimizerSpec spec;
  if (name == "adam") {
    spec.kind = OptimizerKind::Adam;
  } else if (name == "sgd") {
    spec.kind = OptimizerKind::Sgd;
  } else if (name == "rmsprop") {
    spec.kind = OptimizerKind::RmsProp;
  } else {
    throw std::invalid_argument("unknown optimizer: " + name);
  }
  spec.learning_rate = learning_rate;
  spec.beta_1 = beta_1;
  spec.beta_2 = beta_2;
  spec.epsilon = epsilon;
  spec.momentum = momentum;
  spec.nesterov = nesterov;
  spec.rho = rho;
  return spec;
}

// Polled between mini-batches while the GIL is released: Ctrl-C stops an
// epoch at a batch boundary.
inline bool python_interrupted() {
  pybind11::gil_scoped_acquire acquire;
  return PyErr_CheckSignals() != 0;
}

// An engine object (a Network, a Seq2Seq) that Python threads share: its
// workspace is shared state, so every call holds `busy`. In a child forked
// while another thread was inside a call, the workspace that call left (packed
// weights, buffers perhaps mid-reallocation) is dropped without being freed,
// for a fresh engine.
template <class Engine, class Spec>
struct SharedEngine {
  const Spec spec;
  std::unique_ptr<Engine> engine;
  const std::size_t parameter_count;
  const std::vector<TensorInfo> layout;
  ForkSafeMutex busy;

  explicit SharedEngine(const Spec& s)
      : spec(s),
        engine(std::make_unique<Engine>(s)),
        parameter_count(engine->parameter_count()),
        layout(engine->layout()) {}

  // Holds `busy` for a call (see above).
  std::unique_lock<ForkSafeMutex> hold() {
    std::unique_lock<ForkSafeMutex> lock(busy);
    if (busy.interrupted_by_fork()) {
      (void)engine.release();  // leaked on purpose
      engine = std::make_unique<Engine>(spec);
    }
    return lock;
  }
};

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn

namespace pybind11 {
namespace detail {
template <>
struct type_caster<lstmlearn::PyInt> {
  PYBIND11_TYPE_CASTER(lstmlearn::PyInt, const_name("int"));

  bool load(handle src, bool) {
    // Integers only, as pybind11's int caster: no float, no str.
    if (!src || PyFloat_Check(src.ptr())) return false;
    object index = reinterpret_steal<object>(PyNumber_Index(src.ptr()));
    if (!index) {
      PyErr_Clear();
      return false;
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value.value = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : v;
    return true;
  }

  static handle cast(const lstmlearn::PyInt& src, return_value_policy, handle) {
    return PyLong_FromLongLong(src.value);
  }
};
}  // namespace detail
}  // namespace pybind11
