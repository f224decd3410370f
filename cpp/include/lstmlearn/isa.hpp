// Each instruction-set level compiles the engine into its own extension
// module. The engine lives in a per-level inline namespace so that no symbol
// (inline functions and templates included) compiled for one level can be
// picked up by another, even if several levels are loaded in one process.
#pragma once

#ifndef LSTMLEARN_ISA_NAMESPACE
#define LSTMLEARN_ISA_NAMESPACE isa_baseline
#endif

#ifndef LSTMLEARN_ISA_NAME
#define LSTMLEARN_ISA_NAME "baseline"
#endif

#define LSTMLEARN_BEGIN_ISA_NAMESPACE inline namespace LSTMLEARN_ISA_NAMESPACE {
#define LSTMLEARN_END_ISA_NAMESPACE }

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// The level this copy of the engine was compiled for.
inline const char* compiled_isa() { return LSTMLEARN_ISA_NAME; }

// Whether the running CPU (and operating system) supports AVX2+FMA and
// AVX-512 (F, BW, DQ, VL, CD). Safe to call from the baseline build.
bool cpu_has_avx2();
bool cpu_has_avx512();

// Sets flush-to-zero and denormals-are-zero on the calling thread.
void enable_flush_to_zero();

// Flush-to-zero for the lifetime of the object; the caller's previous
// floating-point control state is restored afterwards.
class FlushToZeroScope {
 public:
  FlushToZeroScope();
  ~FlushToZeroScope();
  FlushToZeroScope(const FlushToZeroScope&) = delete;
  FlushToZeroScope& operator=(const FlushToZeroScope&) = delete;

 private:
  unsigned long long saved_ = 0;
};

// Description of the compiler that built this module.
const char* compiler_description();

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
