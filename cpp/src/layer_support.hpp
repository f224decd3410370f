// Private helpers shared by the layer sources (layers.cpp, conv.cpp,
// attention.cpp): row-major Eigen views of raw buffers and workspace carving.
#pragma once

#include <Eigen/Core>
#include <array>
#include <cstddef>

#include "lstmlearn/lstm.hpp"  // AlignedVector

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE
namespace detail {

using Index = Eigen::Index;

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatMap = Eigen::Map<RowMatrix<T>>;
template <typename T>
using ConstMatMap = Eigen::Map<const RowMatrix<T>>;
template <typename T>
using RowMap = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRowMap = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <typename T>
using ColMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstColMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

template <typename T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
// A row-major view whose rows are `stride` elements apart (padded rows).
template <typename T>
using StridedMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// A [rows, cols] row-major view of a raw buffer.
template <typename T>
MatMap<T> mat(T* data, Index rows, Index cols) {
  return MatMap<T>(data, rows, cols);
}
template <typename T>
ConstMatMap<T> mat(const T* data, Index rows, Index cols) {
  return ConstMatMap<T>(data, rows, cols);
}

// out[c] = sum over r of m[r, c], adding rows in order: the order, and so the
// rounding, does not depend on where `out` sits (an Eigen colwise().sum() into
// an unaligned destination would peel columns into a different order).
template <typename T>
void sum_rows(T* out, const T* m, Index rows, Index cols) {
  RowMap<T> acc(out, cols);
  if (rows == 0) {
    acc.setZero();
    return;
  }
  acc = ConstRowMap<T>(m, cols);
  for (Index r = 1; r < rows; ++r) acc += ConstRowMap<T>(m + r * cols, cols);
}

// m[r] += row for each row of m [rows, n]. A loop over rows rather than
// rowwise() +=: Eigen's broadcasts have no packet access and run one scalar
// at a time (and would make any element-wise function of them scalar too).
template <typename T>
void add_to_rows(T* m, const T* row, Index rows, Index n) {
  const ConstArrayMap<T> add(row, n);
  for (Index r = 0; r < rows; ++r) ArrayMap<T>(m + r * n, n) += add;
}

// Splits `workspace` into consecutive buffers of the given sizes, growing it
// if needed. Offsets are multiples of 64 bytes, so every buffer keeps the
// workspace's alignment and element-wise Eigen code on it vectorises the same
// way on every call.
template <typename T, std::size_t M>
std::array<T*, M> carve(AlignedVector<T>& workspace, const std::array<std::size_t, M>& sizes) {
  constexpr std::size_t kAlign = 64 / sizeof(T);
  std::array<std::size_t, M> offsets{};
  std::size_t total = 0;
  for (std::size_t i = 0; i < M; ++i) {
    offsets[i] = total;
    total += (sizes[i] + kAlign - 1) / kAlign * kAlign;
  }
  if (workspace.size() < total) workspace.resize(total);
  std::array<T*, M> out{};
  for (std::size_t i = 0; i < M; ++i) out[i] = workspace.data() + offsets[i];
  return out;
}

}  // namespace detail
LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
