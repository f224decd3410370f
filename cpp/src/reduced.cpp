// Reduced-precision weights and their products. See reduced.hpp.
//
// Kernels per level: AVX2 (the avx2 and avx512 builds) runs 256-bit
// intrinsics: bfloat16 rows widened by a shift and a mask, then FMA; int8 by
// vpmaddubsw (u8 x s8, pairs summed to s16), vpmaddwd by ones (quads to
// s32) and vpaddd. Other builds (baseline) run the same arithmetic in plain
// loops; int8 products then give the same sums, and every level computes
// each element by the same rounding steps except that bfloat16 chains are
// FMA on AVX2 and multiply-then-add elsewhere.
#include "lstmlearn/reduced.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "unroll.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#define LSTMLEARN_REDUCED_AVX2 1
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

constexpr int NR = kReducedPanel;
constexpr int kCodes = 127;  // activation codes 0..127, weight codes -127..127

// Round to nearest even for |x| < 2^22, as cvtps2dq does under the default
// rounding mode: adding 1.5 * 2^23 leaves no fraction bits (no libm call on
// the baseline build, and the same result as the vector conversion).
inline float round_even(float x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (x + kMagic) - kMagic;
}

std::uint16_t to_bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // to nearest, ties to even
  return static_cast<std::uint16_t>(bits >> 16);
}

inline float from_bfloat16(std::uint16_t half) {
  const std::uint32_t bits = static_cast<std::uint32_t>(half) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Where column c of a panel sits in a bfloat16 row (see ReducedMatrix).
constexpr int bf16_slot(int c) { return c < 8 ? 2 * c : 2 * (c - 8) + 1; }

// Per-row quantization parameters of the activations.
struct RowCode {
  float scale;  // a ~ scale * (u - zero)
  float inverse;
  std::int32_t zero;
  bool codes;  // false: every code is 0 (a zero or non-finite row)
};

RowCode row_code(float lo, float hi, bool finite) {
  if (!finite || !std::isfinite(lo) || !std::isfinite(hi)) {
    return {std::numeric_limits<float>::quiet_NaN(), 0.0f, 0, false};
  }
  const float range = hi - lo;  // lo <= 0 <= hi
  const float inverse = static_cast<float>(kCodes) / range;
  if (!(range > 0.0f) || !std::isfinite(inverse)) return {0.0f, 0.0f, 0, false};
  const float zero = round_even(-lo * inverse);
  return {range / static_cast<float>(kCodes), inverse,
          static_cast<std::int32_t>(std::min(zero, static_cast<float>(kCodes))), true};
}

inline std::uint8_t code_of(float a, const RowCode& rc) {
  const int u = static_cast<int>(round_even(a * rc.inverse)) + rc.zero;
  return static_cast<std::uint8_t>(std::clamp(u, 0, kCodes));
}

#if defined(LSTMLEARN_REDUCED_AVX2)

inline float horizontal_min(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

RowCode quantize_row(const float* a, int K, std::uint8_t* q) {
  __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 x = _mm256_loadu_ps(a + k);
    vlo = _mm256_min_ps(vlo, x);
    vhi = _mm256_max_ps(vhi, x);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  float lo = horizontal_min(vlo), hi = horizontal_max(vhi);
  bool finite = _mm256_movemask_ps(bad) == 0;
  for (int j = k; j < K; ++j) {
    lo = std::min(lo, a[j]);
    hi = std::max(hi, a[j]);
    finite = finite && !std::isnan(a[j]);
  }
  const RowCode rc = row_code(lo, hi, finite);
  const int depth = quantized_depth(K);
  if (!rc.codes) {
    std::fill_n(q, depth, std::uint8_t{0});
    return rc;
  }
  const __m256 inverse = _mm256_set1_ps(rc.inverse);
  const __m256i zero = _mm256_set1_epi32(rc.zero), top = _mm256_set1_epi32(kCodes);
  const __m256i low = _mm256_setzero_si256();
  // packs and packus interleave 128-bit lanes: this puts the 4-byte groups
  // back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  k = 0;
  for (; k + 32 <= K; k += 32) {
    __m256i v[4];
    LSTMLEARN_UNROLL for (int i = 0; i < 4; ++i) {
      const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(a + k + 8 * i), inverse);
      v[i] = _mm256_add_epi32(_mm256_cvtps_epi32(x), zero);
      v[i] = _mm256_min_epi32(_mm256_max_epi32(v[i], low), top);
    }
    const __m256i bytes =
        _mm256_packus_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k),
                        _mm256_permutevar8x32_epi32(bytes, order));
  }
  for (; k < K; ++k) q[k] = code_of(a[k], rc);
  for (; k < depth; ++k) q[k] = 0;
  return rc;
}

#else

RowCode quantize_row(const float* a, int K, std::uint8_t* q) {
  float lo = 0.0f, hi = 0.0f;
  bool finite = true;
  for (int k = 0; k < K; ++k) {
    lo = std::min(lo, a[k]);
    hi = std::max(hi, a[k]);
    finite = finite && !std::isnan(a[k]);
  }
  const RowCode rc = row_code(lo, hi, finite);
  const int depth = quantized_depth(K);
  int k = 0;
  if (rc.codes) {
    for (; k < K; ++k) q[k] = code_of(a[k], rc);
  }
  for (; k < depth; ++k) q[k] = 0;
  return rc;
}

#endif

// One tile: rows [0, R) of C against P consecutive panels, the first
// `cols` columns stored (only the last panel may be partial).
#if defined(LSTMLEARN_REDUCED_AVX2)

constexpr int kVec = 8;

// acc[r][v] from C (accumulate) or 0; a partial vector through a buffer.
template <int R, int V>
inline void load_tile(__m256 (&acc)[R][V], const float* C, std::ptrdiff_t ldc, int cols,
                      bool accumulate) {
  LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < V; ++v) {
      const int n = std::clamp(cols - v * kVec, 0, kVec);
      if (!accumulate || n == 0) {
        acc[r][v] = _mm256_setzero_ps();
      } else if (n == kVec) {
        acc[r][v] = _mm256_loadu_ps(C + r * ldc + v * kVec);
      } else {
        alignas(32) float part[kVec] = {};
        std::copy_n(C + r * ldc + v * kVec, n, part);
        acc[r][v] = _mm256_load_ps(part);
      }
    }
  }
}

template <int R, int V>
inline void store_tile(const __m256 (&acc)[R][V], float* C, std::ptrdiff_t ldc, int cols) {
  LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < V; ++v) {
      const int n = std::clamp(cols - v * kVec, 0, kVec);
      if (n == kVec) {
        _mm256_storeu_ps(C + r * ldc + v * kVec, acc[r][v]);
      } else if (n > 0) {
        alignas(32) float part[kVec];
        _mm256_store_ps(part, acc[r][v]);
        std::copy_n(part, n, C + r * ldc + v * kVec);
      }
    }
  }
}

template <int R, int P>
void bf16_tile(int K, const float* A, std::ptrdiff_t lda, const std::uint16_t* panels,
               std::size_t stride, float* C, std::ptrdiff_t ldc, int cols, bool accumulate) {
  __m256 acc[R][2 * P];
  load_tile(acc, C, ldc, cols, accumulate);
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int k = 0; k < K; ++k) {
    LSTMLEARN_UNROLL for (int p = 0; p < P; ++p) {
      const __m256i w = _mm256_load_si256(
          reinterpret_cast<const __m256i*>(panels + p * stride + static_cast<std::size_t>(k) * NR));
      const __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));   // columns 0-7
      const __m256 hi = _mm256_castsi256_ps(_mm256_and_si256(w, high));  // columns 8-15
      LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
        const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
        acc[r][2 * p] = _mm256_fmadd_ps(a, lo, acc[r][2 * p]);
        acc[r][2 * p + 1] = _mm256_fmadd_ps(a, hi, acc[r][2 * p + 1]);
      }
    }
  }
  store_tile(acc, C, ldc, cols);
}

template <int R, int P>
void int8_tile(int depth, const CodeRows& q, const std::int8_t* panels, std::size_t stride,
               const float* scale_w, const std::int32_t* sums, float* C, std::ptrdiff_t ldc,
               int cols, bool accumulate) {
  __m256i acc[R][2 * P];
  LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < 2 * P; ++v) acc[r][v] = _mm256_setzero_si256();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int k4 = 0; k4 < depth / 4; ++k4) {
    __m256i a[R];
    LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
      std::int32_t quad;
      std::memcpy(&quad, q.codes + r * q.ld + 4 * k4, sizeof quad);
      a[r] = _mm256_set1_epi32(quad);
    }
    LSTMLEARN_UNROLL for (int p = 0; p < P; ++p) {
      LSTMLEARN_UNROLL for (int v = 0; v < 2; ++v) {
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(
            panels + p * stride + static_cast<std::size_t>(k4) * 4 * NR + v * 32));
        LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
          // u8 x s8 pairs to s16 (at most 2 * 127 * 127 < 2^15), quads to s32.
          const __m256i pairs = _mm256_maddubs_epi16(a[r], w);
          acc[r][2 * p + v] = _mm256_add_epi32(acc[r][2 * p + v], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
  }
  __m256 out[R][2 * P];
  load_tile(out, C, ldc, cols, accumulate);
  LSTMLEARN_UNROLL for (int r = 0; r < R; ++r) {
    const __m256i zero = _mm256_set1_epi32(q.zero[r]);
    const __m256 scale_a = _mm256_set1_ps(q.scale[r]);
    LSTMLEARN_UNROLL for (int v = 0; v < 2 * P; ++v) {
      const __m256i s = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums + v * kVec));
      const __m256i exact = _mm256_sub_epi32(acc[r][v], _mm256_mullo_epi32(zero, s));
      const __m256 scale = _mm256_mul_ps(scale_a, _mm256_load_ps(scale_w + v * kVec));
      out[r][v] = _mm256_add_ps(out[r][v], _mm256_mul_ps(_mm256_cvtepi32_ps(exact), scale));
    }
  }
  store_tile(out, C, ldc, cols);
}

#else

template <int R, int P>
void bf16_tile(int K, const float* A, std::ptrdiff_t lda, const std::uint16_t* panels,
               std::size_t stride, float* C, std::ptrdiff_t ldc, int cols, bool accumulate) {
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      float acc[NR] = {};
      const int n = std::clamp(cols - p * NR, 0, NR);
      float* c = C + r * ldc + p * NR;
      if (accumulate) std::copy_n(c, n, acc);
      const std::uint16_t* panel = panels + p * stride;
      for (int k = 0; k < K; ++k) {
        const float a = A[r * lda + k];
        const std::uint16_t* row = panel + static_cast<std::size_t>(k) * NR;
        for (int j = 0; j < NR; ++j) acc[j] = acc[j] + a * from_bfloat16(row[bf16_slot(j)]);
      }
      std::copy_n(acc, n, c);
    }
  }
}

template <int R, int P>
void int8_tile(int depth, const CodeRows& q, const std::int8_t* panels, std::size_t stride,
               const float* scale_w, const std::int32_t* sums, float* C, std::ptrdiff_t ldc,
               int cols, bool accumulate) {
  for (int r = 0; r < R; ++r) {
    const std::uint8_t* u = q.codes + r * q.ld;
    for (int p = 0; p < P; ++p) {
      std::int32_t acc[NR] = {};
      const std::int8_t* panel = panels + p * stride;
      for (int k4 = 0; k4 < depth / 4; ++k4) {
        for (int j = 0; j < NR; ++j) {
          const std::int8_t* w = panel + (static_cast<std::size_t>(k4) * NR + j) * 4;
          for (int i = 0; i < 4; ++i) acc[j] += static_cast<std::int32_t>(u[4 * k4 + i]) * w[i];
        }
      }
      const int n = std::clamp(cols - p * NR, 0, NR);
      float* c = C + r * ldc + p * NR;
      for (int j = 0; j < n; ++j) {
        const int col = p * NR + j;
        const float exact = static_cast<float>(acc[j] - q.zero[r] * sums[col]);
        const float value = exact * (q.scale[r] * scale_w[col]);
        c[j] = accumulate ? c[j] + value : value;
      }
    }
  }
}

#endif

// Columns of C a tile at panel q0 spanning P panels stores.
inline int tile_cols(const ReducedMatrix& B, int q0, int P) {
  return std::min(P * NR, B.cols - q0 * NR);
}

template <int R, int P>
void run_tile(int K, const float* A, std::ptrdiff_t lda, const CodeRows& q, const ReducedMatrix& B,
              int q0, float* C, std::ptrdiff_t ldc, bool accumulate) {
  const int cols = tile_cols(B, q0, P);
  float* c = C + q0 * NR;
  if (B.precision == Precision::BFloat16) {
    const std::size_t stride = static_cast<std::size_t>(K) * NR;
    bf16_tile<R, P>(K, A, lda, B.bf16.data() + q0 * stride, stride, c, ldc, cols, accumulate);
  } else {
    const std::size_t stride = static_cast<std::size_t>(B.depth) * NR;
    int8_tile<R, P>(B.depth, q, B.int8.data() + q0 * stride, stride, B.scale.data() + q0 * NR,
                    B.sums.data() + q0 * NR, c, ldc, cols, accumulate);
  }
}

// Rows [0, R) against the panels [p0, p1), P at a time.
template <int R, int P>
void rows_across(int K, const float* A, std::ptrdiff_t lda, const CodeRows& q,
                 const ReducedMatrix& B, int p0, int p1, float* C, std::ptrdiff_t ldc,
                 bool accumulate, bool reverse) {
  for (int done = 0; done < p1 - p0;) {
    const int n = std::min(P, p1 - p0 - done);
    const int q0 = reverse ? p1 - done - n : p0 + done;
    done += n;
    switch (n) {
      case 4:
        if constexpr (P >= 4) run_tile<R, 4>(K, A, lda, q, B, q0, C, ldc, accumulate);
        break;
      case 3:
        if constexpr (P >= 3) run_tile<R, 3>(K, A, lda, q, B, q0, C, ldc, accumulate);
        break;
      case 2:
        if constexpr (P >= 2) run_tile<R, 2>(K, A, lda, q, B, q0, C, ldc, accumulate);
        break;
      default:
        run_tile<R, 1>(K, A, lda, q, B, q0, C, ldc, accumulate);
        break;
    }
  }
}

CodeRows rows_from(const CodeRows& q, int r) {
  return {q.codes + r * q.ld, q.ld, q.scale + r, q.zero + r};
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "float32") return Precision::Full;
  if (name == "bfloat16") return Precision::BFloat16;
  if (name == "int8") return Precision::Int8;
  throw std::invalid_argument("inference precision must be 'float32', 'bfloat16' or 'int8'; got '" +
                              name + "'");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::BFloat16:
      return "bfloat16";
    case Precision::Int8:
      return "int8";
    default:
      return "float32";
  }
}

float bfloat16_round(float value) { return from_bfloat16(to_bfloat16(value)); }

void reduced_resize(Precision precision, int K, int N, ReducedMatrix& out) {
  if (precision == Precision::Full)
    throw std::logic_error("reduced_resize needs a reduced precision");
  out.precision = precision;
  out.rows = K;
  out.cols = N;
  out.panels = (N + NR - 1) / NR;
  out.depth = precision == Precision::Int8 ? quantized_depth(K) : K;
  const std::size_t size = static_cast<std::size_t>(out.panels) * out.depth * NR;
  const std::size_t columns = static_cast<std::size_t>(out.panels) * NR;
  if (precision == Precision::BFloat16) {
    if (out.bf16.size() < size) out.bf16.resize(size);
  } else {
    if (out.int8.size() < size) out.int8.resize(size);
    if (out.scale.size() < columns) out.scale.resize(columns);
    if (out.sums.size() < columns) out.sums.resize(columns);
  }
}

void pack_reduced_panels(const float* const* rows, int p0, int p1, ReducedMatrix& out) {
  const int K = out.rows, N = out.cols, depth = out.depth;
  for (int p = p0; p < p1; ++p) {
    for (int c = 0; c < NR; ++c) {
      const int n = p * NR + c;
      const float* w = n < N ? rows[n] : nullptr;
      if (out.precision == Precision::BFloat16) {
        std::uint16_t* panel = out.bf16.data() + static_cast<std::size_t>(p) * K * NR;
        for (int k = 0; k < K; ++k) {
          panel[static_cast<std::size_t>(k) * NR + bf16_slot(c)] = w ? to_bfloat16(w[k]) : 0;
        }
        continue;
      }
      // Symmetric per column: the largest |w| maps to 127.
      float largest = 0.0f;
      bool finite = true;
      for (int k = 0; w && k < K; ++k) {
        largest = std::max(largest, std::fabs(w[k]));
        finite = finite && std::isfinite(w[k]);
      }
      const float inverse = largest > 0.0f ? static_cast<float>(kCodes) / largest : 0.0f;
      const bool codes = w && finite && std::isfinite(inverse);
      std::int8_t* panel = out.int8.data() + static_cast<std::size_t>(p) * depth * NR;
      std::int32_t sum = 0;
      for (int k = 0; k < depth; ++k) {
        int code = 0;
        if (codes && k < K)
          code = std::clamp(static_cast<int>(round_even(w[k] * inverse)), -kCodes, kCodes);
        panel[(static_cast<std::size_t>(k / 4) * NR + c) * 4 + k % 4] =
            static_cast<std::int8_t>(code);
        sum += code;
      }
      out.sums[n] = sum;
      out.scale[n] = !w        ? 0.0f
                     : !finite ? std::numeric_limits<float>::quiet_NaN()
                               : largest / static_cast<float>(kCodes);
    }
  }
}

void quantize_rows(int M, const float* A, std::ptrdiff_t lda, int K, const CodeRows& out) {
  for (int m = 0; m < M; ++m) {
    const RowCode rc = quantize_row(A + m * lda, K, out.codes + m * out.ld);
    out.scale[m] = rc.scale;
    out.zero[m] = rc.zero;
  }
}

void gemm_reduced_panels(int M, const float* A, std::ptrdiff_t lda, const ReducedMatrix& B, int p0,
                         int p1, float* C, std::ptrdiff_t ldc, bool accumulate, bool reverse,
                         const CodeRows& work) {
  if (M < 1 || p0 >= p1) return;
  const int K = B.rows;
  if (B.precision == Precision::Int8) quantize_rows(M, A, lda, K, work);
  // One or two rows: several panels at once, for independent chains.
  if (M == 1) {
    rows_across<1, 4>(K, A, lda, work, B, p0, p1, C, ldc, accumulate, reverse);
    return;
  }
  if (M == 2) {
    rows_across<2, 2>(K, A, lda, work, B, p0, p1, C, ldc, accumulate, reverse);
    return;
  }
  // Panel-major: a panel stays in L1 while the rows stream by, 4 at a time.
  for (int i = 0; i < p1 - p0; ++i) {
    const int p = reverse ? p1 - 1 - i : p0 + i;
    int r = 0;
    for (; r + 4 <= M; r += 4) {
      run_tile<4, 1>(K, A + r * lda, lda, rows_from(work, r), B, p, C + r * ldc, ldc, accumulate);
    }
    const CodeRows q = rows_from(work, r);
    switch (M - r) {
      case 3:
        run_tile<3, 1>(K, A + r * lda, lda, q, B, p, C + r * ldc, ldc, accumulate);
        break;
      case 2:
        run_tile<2, 1>(K, A + r * lda, lda, q, B, p, C + r * ldc, ldc, accumulate);
        break;
      case 1:
        run_tile<1, 1>(K, A + r * lda, lda, q, B, p, C + r * ldc, ldc, accumulate);
        break;
      default:
        break;
    }
  }
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
