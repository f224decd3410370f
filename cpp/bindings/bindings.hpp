// One register_* function per bound area; module.cpp only calls them.
#pragma once

#include <pybind11/pybind11.h>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

void register_config(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_network(pybind11::module_& m);
void register_layers(pybind11::module_& m);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
