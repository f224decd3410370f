// Build and machine facts for lstmlearn.show_config() and the ISA loader.
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
  m.def(
      "pool_size", [] { return ThreadPool::instance().size(); }, "Compute threads started so far.");
  m.def("eigen_version", [] {
    return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION);
  });
  m.def("simd_instruction_sets", [] { return std::string(Eigen::SimdInstructionSetsInUse()); });
  m.def("compiler", [] { return std::string(compiler_description()); });
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
