// Reduced-precision weights for inference: bfloat16 and int8 copies of a
// weight matrix, and the products that read them.
//
// bfloat16: each weight keeps fp32's sign and exponent and 8 bits of
// mantissa (rounded to nearest even). A product widens the weights back to
// fp32 (a 16-bit shift: exact) and accumulates in fp32 FMA chains, so only
// the weights lose precision and the bytes read per step halve.
//
// int8: weights are codes in [-127, 127] with one scale per column of
// B = W^T (per output row of W): w ~ scale_w[n] * q[k, n]. The other operand
// is quantized at run time, per row: a ~ scale_a * (u - zero) with codes u in
// [0, 127] (7 bits: on AVX2 the u8 x s8 pair sums of vpmaddubsw then stay
// below 2^15 and never saturate). Products accumulate exactly in int32, then
//   C[m, n] (+)= scale_a[m] * scale_w[n] * (sum_k u[m, k] q[k, n] - zero[m] * sum_k q[k, n]).
//
// Every element of C is computed by the same operations whatever M, the
// panels of a call or the level's tile shapes, so results do not depend on
// the batch size, on the thread split or on how the columns are packed.
//
// Size key as gemm.hpp: C[M, N] (+)= A[M, K] B[K, N].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "lstmlearn/aligned.hpp"
#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// Full: the model's own dtype (no reduced copies).
enum class Precision { Full, BFloat16, Int8 };

// "float32" (Full), "bfloat16" or "int8"; throws std::invalid_argument
// naming what was expected otherwise.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision precision);

// Columns per panel of a ReducedMatrix, on every level (two AVX2 vectors).
constexpr int kReducedPanel = 16;

// B[K, N] = W^T in reduced precision, by panels of kReducedPanel columns
// (columns past N are zero).
struct ReducedMatrix {
  Precision precision = Precision::Full;
  int rows = 0;    // K
  int cols = 0;    // N
  int panels = 0;  // ceil(N / kReducedPanel)
  int depth = 0;   // K, rounded up to a multiple of 4 for int8
  // bfloat16 [panels, K, 16]: 32-bit word j of a row holds column j in its
  // low half and column 8 + j in its high half, so that one shift and one
  // mask widen a row to two fp32 vectors of 8 consecutive columns.
  AlignedVector<std::uint16_t> bf16;
  // int8 [panels, depth / 4, 16, 4]: four consecutive k of each column
  // together (what vpmaddubsw multiplies and pairs); k past K are 0.
  AlignedVector<std::int8_t> int8;
  AlignedVector<float> scale;        // int8: [panels * 16] scale_w per column
  AlignedVector<std::int32_t> sums;  // int8: [panels * 16] sum_k q[k, n]
};

// Sizes `out` for B[K, N] in `precision` (BFloat16 or Int8).
void reduced_resize(Precision precision, int K, int N, ReducedMatrix& out);
// Fills the panels [p0, p1) of a sized `out`: column n of B is row n of W,
// the K values at rows[n] (rows has N pointers).
void pack_reduced_panels(const float* const* rows, int p0, int p1, ReducedMatrix& out);

// Activation codes of int8 products (see gemm_reduced): room for the rows of
// one call, ld >= reduced depth of K.
struct CodeRows {
  std::uint8_t* codes;  // [M, ld]
  std::ptrdiff_t ld;
  float* scale;        // [M]
  std::int32_t* zero;  // [M]
};

// K rounded up to a multiple of 4: the codes one row of an int8 product takes.
inline int quantized_depth(int K) { return (K + 3) / 4 * 4; }

// Codes of the M rows of A[M, K] (stride lda), each with its own scale and
// zero point over [min(row, 0), max(row, 0)]; codes past K are 0. A row with
// a NaN or infinity gets a NaN scale (its products are NaN, as in fp32).
void quantize_rows(int M, const float* A, std::ptrdiff_t lda, int K, const CodeRows& out);

// C[M, N] (+)= A[M, K] B for the panels [p0, p1) (C points at column 0);
// `reverse` visits them last to first (the same results), as gemm_packed.
// An int8 B quantizes A's rows into `work` first; bfloat16 ignores it.
void gemm_reduced_panels(int M, const float* A, std::ptrdiff_t lda, const ReducedMatrix& B, int p0,
                         int p1, float* C, std::ptrdiff_t ldc, bool accumulate, bool reverse,
                         const CodeRows& work);

// The same over every panel.
inline void gemm_reduced(int M, const float* A, std::ptrdiff_t lda, const ReducedMatrix& B,
                         float* C, std::ptrdiff_t ldc, bool accumulate, bool reverse,
                         const CodeRows& work) {
  gemm_reduced_panels(M, A, lda, B, 0, B.panels, C, ldc, accumulate, reverse, work);
}

// The weight as the bfloat16 product reads it (round to nearest even).
float bfloat16_round(float value);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
