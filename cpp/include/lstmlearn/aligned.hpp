// Buffers aligned for Eigen's widest packet on this instruction-set level.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

template <typename T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

// Eigen peels unaligned heads of element-wise loops into scalar code whose
// rounding (FMA, fast tanh) can differ from the vector body, so a result
// would depend on where NumPy happened to allocate the parameters.
template <typename T>
bool is_aligned(const T* p) {
  return reinterpret_cast<std::uintptr_t>(p) % EIGEN_MAX_ALIGN_BYTES == 0;
}

// `p` when aligned, else its `n` values copied into `copy` (which is returned).
template <typename T>
T* aligned_or_copy(T* p, std::size_t n, AlignedVector<std::remove_const_t<T>>& copy) {
  if (is_aligned(p)) return p;
  copy.assign(p, p + n);
  return copy.data();
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
