#include "lstmlearn/isa.hpp"

#include <Eigen/Core>
#include <string>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define LSTMLEARN_X86 1
#include <immintrin.h>
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

#ifndef LSTMLEARN_ISA_NAME
#error "LSTMLEARN_ISA_NAME must name the level this engine is compiled for (CMakeLists.txt)"
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

const char* compiled_isa() { return LSTMLEARN_ISA_NAME; }

const char* simd_instruction_sets() { return Eigen::SimdInstructionSetsInUse(); }

#ifdef LSTMLEARN_X86
namespace {

struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
#if defined(_MSC_VER)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
  r.eax = static_cast<unsigned>(out[0]);
  r.ebx = static_cast<unsigned>(out[1]);
  r.ecx = static_cast<unsigned>(out[2]);
  r.edx = static_cast<unsigned>(out[3]);
#else
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
  return r;
}

// XCR0: which register states the operating system saves on a context switch.
unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

bool os_saves_avx(unsigned long long xcr0) { return (xcr0 & 0x6) == 0x6; }
bool os_saves_avx512(unsigned long long xcr0) { return (xcr0 & 0xe6) == 0xe6; }

bool has_osxsave_and_avx() {
  const CpuidRegs l1 = cpuid(1, 0);
  const bool osxsave = (l1.ecx >> 27) & 1;
  const bool avx = (l1.ecx >> 28) & 1;
  return osxsave && avx;
}

}  // namespace

bool cpu_has_avx2() {
  if (cpuid(0, 0).eax < 7 || !has_osxsave_and_avx()) return false;
  if (!os_saves_avx(xgetbv0())) return false;
  const CpuidRegs l1 = cpuid(1, 0);
  const CpuidRegs l7 = cpuid(7, 0);
  const bool fma = (l1.ecx >> 12) & 1;
  const bool f16c = (l1.ecx >> 29) & 1;
  const bool avx2 = (l7.ebx >> 5) & 1;
  const bool bmi1 = (l7.ebx >> 3) & 1;
  const bool bmi2 = (l7.ebx >> 8) & 1;
  return fma && f16c && avx2 && bmi1 && bmi2;
}

bool cpu_has_avx512() {
  if (!cpu_has_avx2()) return false;
  if (!os_saves_avx512(xgetbv0())) return false;
  const CpuidRegs l7 = cpuid(7, 0);
  const bool f = (l7.ebx >> 16) & 1;
  const bool dq = (l7.ebx >> 17) & 1;
  const bool cd = (l7.ebx >> 28) & 1;
  const bool bw = (l7.ebx >> 30) & 1;
  const bool vl = (l7.ebx >> 31) & 1;
  return f && dq && cd && bw && vl;
}

void enable_flush_to_zero() {
  // FTZ (bit 15) and DAZ (bit 6) of MXCSR.
  _mm_setcsr(_mm_getcsr() | 0x8040u);
}

FlushToZeroScope::FlushToZeroScope() : saved_(_mm_getcsr()) { enable_flush_to_zero(); }
FlushToZeroScope::~FlushToZeroScope() { _mm_setcsr(static_cast<unsigned>(saved_)); }

#else  // not x86

bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }

#if defined(__aarch64__) && !defined(_MSC_VER)
namespace {
unsigned long long read_fpcr() {
  unsigned long long fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  return fpcr;
}
void write_fpcr(unsigned long long fpcr) { __asm__ volatile("msr fpcr, %0" : : "r"(fpcr)); }
}  // namespace

void enable_flush_to_zero() { write_fpcr(read_fpcr() | (1ull << 24)); }  // FZ
FlushToZeroScope::FlushToZeroScope() : saved_(read_fpcr()) { enable_flush_to_zero(); }
FlushToZeroScope::~FlushToZeroScope() { write_fpcr(saved_); }
#else
void enable_flush_to_zero() {}
FlushToZeroScope::FlushToZeroScope() {}
FlushToZeroScope::~FlushToZeroScope() {}
#endif

#endif

const char* compiler_description() {
  static const std::string text = [] {
#if defined(__clang__)
    return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("GCC ") + __VERSION__;
#elif defined(_MSC_VER)
    return std::string("MSVC ") + std::to_string(_MSC_FULL_VER);
#else
    return std::string("unknown compiler");
#endif
  }();
  return text.c_str();
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
