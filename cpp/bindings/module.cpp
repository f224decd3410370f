// The extension module of one instruction-set level: only its name
// (_core_baseline, _core_avx2, _core_avx512) is compiled per level; everything
// it registers is in the bindings, compiled once (register_config.cpp).
#include <pybind11/pybind11.h>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE
void register_module(pybind11::module_& m);
LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn

PYBIND11_MODULE(LSTMLEARN_MODULE_NAME, m) { lstmlearn::register_module(m); }
