// Size limits of the engine, checked by every spec's validate().
//
// Sizes travel through the engine as int: loop bounds, GEMM dimensions,
// arguments of the layer functions. Offsets and buffer sizes are computed in
// std::size_t or Eigen::Index (64 bits). So that no product of sizes that is
// still computed in int can wrap, validate() checks, in 64 bits, that every
// dimension of every tensor a spec implies, and its element count, fit in an
// int; the same holds for the rows (batch x steps) of a call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// Largest dimension, and largest element count of one tensor.
constexpr std::int64_t kMaxIndex = std::numeric_limits<int>::max();
// Largest parameter count of a model: its bytes in float64 fit a ptrdiff_t
// (std::vector's and NumPy's limit). Memory runs out long before.
constexpr std::int64_t kMaxParameters = std::numeric_limits<std::ptrdiff_t>::max() / 8;

// Throws std::invalid_argument "<what> <value> is too large; the engine's
// limit is 2147483647" when value > kMaxIndex.
inline void check_index(const char* what, std::int64_t value) {
  if (value > kMaxIndex) {
    throw std::invalid_argument(std::string(what) + " " + std::to_string(value) +
                                " is too large; the engine's limit is " +
                                std::to_string(kMaxIndex));
  }
}

// Throws std::invalid_argument when a dimension of `tensor` or its element
// count exceeds kMaxIndex, e.g. "hidden_size 1073741824 gives a weight_hh of
// 4294967296 x 1073741824 elements; the engine's limit is 2147483647 per
// dimension". `size` = `value` names the size that made the tensor so large.
// The message is built only on failure: validate() runs on every call.
inline void check_tensor(const char* size, std::int64_t value, const char* tensor,
                         std::initializer_list<std::int64_t> shape) {
  bool too_wide = false, too_many = false;
  std::int64_t count = 1;
  for (const std::int64_t n : shape) {
    too_wide = too_wide || n > kMaxIndex;
    // count * n > kMaxIndex, without overflow (count stays <= kMaxIndex).
    too_many = too_many || (count > 0 && n > kMaxIndex / count);
    if (!too_many) count *= n;
  }
  if (!too_wide && !too_many) return;
  std::string dims;
  for (const std::int64_t n : shape) dims += (dims.empty() ? "" : " x ") + std::to_string(n);
  throw std::invalid_argument(std::string(size) + " " + std::to_string(value) + " gives a " +
                              tensor + " of " + dims + " elements; the engine's limit is " +
                              std::to_string(kMaxIndex) +
                              (too_wide ? " per dimension" : " elements per tensor"));
}

// Rows of one call, batch x steps, each row of a GEMM or a time-distributed
// layer: they must fit an int. `steps` must be positive.
inline void check_rows(const char* what, std::int64_t batch, std::int64_t steps) {
  if (batch > kMaxIndex / steps) {
    throw std::invalid_argument(std::string(what) + ": batch " + std::to_string(batch) +
                                " x steps " + std::to_string(steps) +
                                " rows is too many; the engine's limit is " +
                                std::to_string(kMaxIndex) + " rows per call");
  }
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
