// The extension module of one instruction-set level; its name
// (_core_baseline, _core_avx2, _core_avx512) comes from the build.
#include "bindings.hpp"

PYBIND11_MODULE(LSTMLEARN_MODULE_NAME, m) {
  m.doc() = "lstmlearn engine, compiled for one instruction-set level";
  lstmlearn::register_config(m);
  lstmlearn::register_lstm(m);
  lstmlearn::register_network(m);
  lstmlearn::register_layers(m);
  lstmlearn::register_seq2seq(m);
}
