// A small GEMM for the recurrent step: C[M, N] (+)= A[M, K] B[K, N] with B
// packed once per call and reused at every time step.
//
// Eigen's general product packs both operands on every call; in the time loop
// that means re-packing W_hh (4H x H) at each step for a product whose other
// operand is only a few rows. Packing B once into column panels and streaming
// A's rows through a register-blocked kernel removes that cost.
//
// Size key: M = rows of A and C (batch rows), K = inner size, N = columns;
// NR = columns per panel, MR = rows per register tile.
#pragma once

#include <cstddef>

#include "lstmlearn/aligned.hpp"
#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

template <typename T>
struct PackedMatrix {
  int rows = 0;    // K
  int cols = 0;    // N
  int panels = 0;  // ceil(N / NR)
  // [panels, K, NR], columns past N are zero.
  AlignedVector<T> data;
};

// Columns per packed panel for T on this instruction-set level.
template <typename T>
int packed_panel_width();

// Packs B[K, N] given as W[N, K] row-major, that is B = W^T (transposed = true),
// or as B[K, N] row-major with row stride ldb (transposed = false).
template <typename T>
void pack_matrix(const T* W, int K, int N, std::ptrdiff_t ldw, bool transposed,
                 PackedMatrix<T>& out);

// pack_matrix in two parts, so that threads can pack disjoint panels: size
// `out` for B[K, N], then fill the panels [p0, p1).
template <typename T>
void pack_matrix_resize(int K, int N, PackedMatrix<T>& out);
template <typename T>
void pack_matrix_panels(const T* W, std::ptrdiff_t ldw, bool transposed, int p0, int p1,
                        PackedMatrix<T>& out);

// Packs B[K, N] = W^T where row n of W (K values) is at rows[n]: rows
// gathered from anywhere, e.g. a few units of each gate.
template <typename T>
void pack_matrix_rows(const T* const* rows, int K, int N, PackedMatrix<T>& out);

// C[M, N] = A[M, K] B (accumulate = false) or C = C + A B (accumulate = true).
// Each element is one sequential FMA chain over k = 0..K-1, starting from 0
// or from C's value: results do not depend on M, on the thread or on
// alignment, and a sum split over consecutive accumulating calls gives the
// same bits as one call over all of it. Rows of A and C may be strided.
// `reverse` as for gemm_packed_panels below.
template <typename T>
void gemm_packed(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, T* C,
                 std::ptrdiff_t ldc, bool accumulate, bool reverse = false);

// The same for the panels [p0, p1) only: columns [p0 * NR, min(p1 * NR, N))
// of C (C points at column 0). Each element is computed exactly as by
// gemm_packed, so a product split by panels across threads is bitwise equal.
// `reverse` visits the panels last to first (same results): alternating the
// direction from call to call starts each call on the panels the previous
// one left in cache, when B is larger than the cache.
template <typename T>
void gemm_packed_panels(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, int p0,
                        int p1, T* C, std::ptrdiff_t ldc, bool accumulate, bool reverse = false);

// C = (C +) A B + A2 B2, with B [K, N] and B2 [K2, N] of the same width: each
// element's chain runs over B's k, then on over B2's, so the result is the
// same bits as gemm_packed(A, B) followed by an accumulating
// gemm_packed(A2, B2), in one pass over C.
template <typename T>
void gemm_packed2(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, const T* A2,
                  std::ptrdiff_t lda2, const PackedMatrix<T>& B2, T* C, std::ptrdiff_t ldc,
                  bool accumulate, bool reverse = false);

// gemm_packed2 on the panels [p0, p1) (B2 may be null: no second operand).
template <typename T>
void gemm_packed2_panels(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B,
                         const T* A2, std::ptrdiff_t lda2, const PackedMatrix<T>* B2, int p0,
                         int p1, T* C, std::ptrdiff_t ldc, bool accumulate, bool reverse = false);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
