// Buffers aligned for Eigen's widest packet on this instruction-set level.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

template <typename T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
