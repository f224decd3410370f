// The engine is compiled once per instruction-set level, each copy into its
// own extension module with hidden visibility, so that no symbol of one level
// (inline functions and templates included) can be bound to another's, even
// when several levels are loaded in one process; the bindings are compiled once
// and linked into every module. They therefore share one namespace, and every
// fact that depends on the level (its name, Eigen's instruction sets) is a
// function defined in the engine, never an inline one the bindings would
// compile at the baseline level.
#pragma once

// Each engine source is compiled per level for float32, together with all that
// does not depend on the dtype, and once more at the baseline level for its
// float64 instantiations alone (LSTMLEARN_FLOAT64_PART): float64 serves
// gradient checks and precision, not speed, and compiling it once per level
// would double the build.
#ifdef LSTMLEARN_FLOAT64_PART
#define LSTMLEARN_ENGINE_DTYPE double
#else
#define LSTMLEARN_ENGINE_DTYPE float
#endif

#define LSTMLEARN_BEGIN_ISA_NAMESPACE inline namespace engine {
#define LSTMLEARN_END_ISA_NAMESPACE }

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// The level this copy of the engine was compiled for.
const char* compiled_isa();

// The SIMD instruction sets Eigen uses in this copy of the engine.
const char* simd_instruction_sets();

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
