// One register_* function per bound area; module.cpp only calls them.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "lstmlearn/isa.hpp"
#include "lstmlearn/lstm.hpp"
#include "lstmlearn/optimizer.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

void register_config(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_network(pybind11::module_& m);
void register_layers(pybind11::module_& m);
void register_seq2seq(pybind11::module_& m);

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

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
