// Build and machine facts for lstmlearn.show_config() and the ISA loader, and
// the modules' entry points.
#include <Eigen/Core>
#include <string>

#include "bindings.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace py = pybind11;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

void register_config(py::module_& m) {
  m.attr("ISA") = compiled_isa();
  m.def("cpu_has_avx2", &cpu_has_avx2, "Whether the CPU and OS support AVX2 and FMA.");
  m.def("cpu_has_avx512", &cpu_has_avx512,
        "Whether the CPU and OS support AVX-512 F, BW, DQ, VL and CD.");
  m.def("available_cores", &available_cores, "Cores this process may run on.");
  m.def("thread_limit", &thread_limit, "The process-wide thread limit; 0 when there is none.");
  m.def("set_thread_limit", &set_thread_limit, py::arg("n_threads"),
        "Run every call on at most n_threads threads; n_threads <= 0 removes the limit.");
  m.def("_set_oversubscription_check", &set_oversubscription_check, py::arg("enabled"),
        "Whether teams run on the caller alone while the machine is oversubscribed (tests).");
  m.def("resolve_threads", &resolve_threads, py::arg("n_threads"),
        "The threads a call asking for n_threads runs on (<= 0: all cores), under the limit.");
  m.def(
      "pool_size", [] { return ThreadPool::instance().size(); }, "Compute threads started so far.");
  m.def("eigen_version", [] {
    return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION);
  });
  m.def("simd_instruction_sets", [] { return std::string(simd_instruction_sets()); });
  m.def("compiler", [] { return std::string(compiler_description()); });
}

void register_module(py::module_& m) {
  m.doc() = "lstmlearn engine, compiled for one instruction-set level";
  register_config(m);
  register_lstm(m);
  register_network(m);
  register_layers(m);
  register_seq2seq(m);
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn

// Every level's module is these bindings linked with that level's engine, and
// Python calls the PyInit_ function named after the file it loads, so the entry
// points of all three levels are defined here, compiled once, in every module.
PYBIND11_MODULE(_core_baseline, m) { lstmlearn::register_module(m); }
PYBIND11_MODULE(_core_avx2, m) { lstmlearn::register_module(m); }
PYBIND11_MODULE(_core_avx512, m) { lstmlearn::register_module(m); }

// The thread limit as plain C functions, exported from the extension module,
// for threadpoolctl's controller (python/lstmlearn/_threads.py), which finds
// the loaded module by these names and calls them through ctypes. Each level's
// module has its own pair, for its own pool. The module is built with hidden
// visibility, hence the explicit export.
#if defined(_WIN32)
#define LSTMLEARN_EXPORT extern "C" __declspec(dllexport)
#else
#define LSTMLEARN_EXPORT extern "C" __attribute__((visibility("default")))
#endif

LSTMLEARN_EXPORT int lstmlearn_get_thread_limit() { return lstmlearn::thread_limit(); }

LSTMLEARN_EXPORT void lstmlearn_set_thread_limit(int n_threads) {
  lstmlearn::set_thread_limit(n_threads);
}
