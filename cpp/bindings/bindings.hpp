// One register_* function per bound area; module.cpp only calls them.
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "lstmlearn/isa.hpp"
#include "lstmlearn/lstm.hpp"

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

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
