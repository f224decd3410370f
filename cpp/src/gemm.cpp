#include "lstmlearn/gemm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

// Fully unrolls the short loops over a register tile's rows and vectors:
// without it GCC keeps the accumulator array on the stack around the k loop
// (a store and reload of every accumulator per tile, which at K 1-64 costs
// as much as the products: tiny and chargen inference ran 14% faster with it
// on a Zen 5 machine).
#if defined(__clang__)
#define LSTMLEARN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define LSTMLEARN_UNROLL _Pragma("GCC unroll 16")
#else
#define LSTMLEARN_UNROLL
#endif

template <typename T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
template <typename T>
constexpr int kVector = Eigen::internal::unpacket_traits<Packet<T>>::size;

// Register tile: MR rows x NV vectors. AVX-512 has 32 vector registers,
// SSE and AVX2 have 16: MR * NV accumulators + NV loads + 1 broadcast fit.
#if defined(__AVX512F__)
constexpr int kRows = 8;
constexpr int kVectors = 3;
#else
constexpr int kRows = 6;
constexpr int kVectors = 2;
#endif

template <typename T>
constexpr int kPanel = kVectors * kVector<T>;

// One tile: C[ROWS, cols] (+)= A[ROWS, K] Bpanel[K, cols] for the first
// cols <= NV * V columns of a panel, NV vectors (the last may be partial):
// a partial last panel computes only the vectors it needs. Every output
// element is a sequential FMA chain over k = 0..K-1, whatever NV.
template <typename T, int ROWS, int NV>
void tile(int K, const T* A, std::ptrdiff_t lda, const T* panel, T* C, std::ptrdiff_t ldc, int cols,
          bool accumulate) {
  using P = Packet<T>;
  using namespace Eigen::internal;
  constexpr int V = kVector<T>;
  P acc[ROWS][NV];
  LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = pset1<P>(T(0));
  }
  for (int k = 0; k < K; ++k) {
    P b[NV];
    LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) b[v] = pload<P>(panel + k * kPanel<T> + v * V);
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      const P a = pset1<P>(A[r * lda + k]);
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = pmadd(a, b[v], acc[r][v]);
    }
  }
  const int last = cols - (NV - 1) * V;  // columns of the last vector, 1..V
  auto store = [&](int r, int v) {
    T* dst = C + r * ldc + v * V;
    pstoreu(dst, accumulate ? padd(ploadu<P>(dst), acc[r][v]) : acc[r][v]);
  };
  if (last == V) {
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) store(r, v);
    }
    return;
  }
  // A partial last vector goes through a buffer, written out after all the
  // whole vectors: no call and no per-vector test among the stores (with an
  // out-of-line store call there, products at K 32-64 were 8-12% slower).
  alignas(64) T part[ROWS][V];
  LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < NV - 1; ++v) store(r, v);
    pstore(part[r], acc[r][NV - 1]);
  }
  LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
    T* dst = C + r * ldc + (NV - 1) * V;
    for (int c = 0; c < last; ++c) dst[c] = accumulate ? dst[c] + part[r][c] : part[r][c];
  }
}

// One row against PANELS consecutive full panels at once: C[1, PANELS*NR]
// (+)= A[1, K] [panel p | ... | panel p+PANELS-1]. With one row, a single
// panel's kVectors FMA chains cannot cover the FMA latency; more panels give
// more independent chains. Each element is still one sequential FMA chain
// over k, as in tile(), so the result is the same bits.
// The last panel may be partial: only its first `last_cols` columns are
// stored (the packed padding is zero, so the others are computed and dropped).
template <typename T, int PANELS>
void wide_row(int K, const T* A, const T* panels, std::size_t panel_stride, T* C, bool accumulate,
              int last_cols) {
  using P = Packet<T>;
  using namespace Eigen::internal;
  constexpr int V = kVector<T>;
  constexpr int N = PANELS * kVectors;
  P acc[N];
  LSTMLEARN_UNROLL for (int v = 0; v < N; ++v) acc[v] = pset1<P>(T(0));
  for (int k = 0; k < K; ++k) {
    const P a = pset1<P>(A[k]);
    LSTMLEARN_UNROLL for (int q = 0; q < PANELS; ++q) {
      const T* b = panels + q * panel_stride + static_cast<std::size_t>(k) * kPanel<T>;
      LSTMLEARN_UNROLL for (int v = 0; v < kVectors; ++v) {
        acc[q * kVectors + v] = pmadd(a, pload<P>(b + v * V), acc[q * kVectors + v]);
      }
    }
  }
  const int full = last_cols == kPanel<T> ? PANELS : PANELS - 1;
  LSTMLEARN_UNROLL for (int q = 0; q < full; ++q) {
    LSTMLEARN_UNROLL for (int v = 0; v < kVectors; ++v) {
      T* dst = C + q * kPanel<T> + v * V;
      const P x = acc[q * kVectors + v];
      pstoreu(dst, accumulate ? padd(ploadu<P>(dst), x) : x);
    }
  }
  if (full == PANELS) return;
  alignas(64) T buffer[kPanel<T>];
  LSTMLEARN_UNROLL for (int v = 0; v < kVectors; ++v)
      pstore(buffer + v * V, acc[(PANELS - 1) * kVectors + v]);
  T* dst = C + (PANELS - 1) * kPanel<T>;
  for (int c = 0; c < last_cols; ++c) dst[c] = accumulate ? dst[c] + buffer[c] : buffer[c];
}

template <typename T, int ROWS, int NV>
void rows_of_panel(int M, int K, const T* A, std::ptrdiff_t lda, const T* panel, T* C,
                   std::ptrdiff_t ldc, int cols, bool accumulate) {
  int r = 0;
  for (; r + ROWS <= M; r += ROWS) {
    tile<T, ROWS, NV>(K, A + r * lda, lda, panel, C + r * ldc, ldc, cols, accumulate);
  }
  const int rest = M - r;
  A += r * lda;
  C += r * ldc;
  switch (rest) {  // fewer than kRows rows remain
#define LSTMLEARN_TILE_CASE(n)                                    \
  case n:                                                         \
    if constexpr (n < ROWS) {                                     \
      tile<T, n, NV>(K, A, lda, panel, C, ldc, cols, accumulate); \
    }                                                             \
    break;
    LSTMLEARN_TILE_CASE(1)
    LSTMLEARN_TILE_CASE(2)
    LSTMLEARN_TILE_CASE(3)
    LSTMLEARN_TILE_CASE(4)
    LSTMLEARN_TILE_CASE(5)
    LSTMLEARN_TILE_CASE(6)
    LSTMLEARN_TILE_CASE(7)
#undef LSTMLEARN_TILE_CASE
    default:
      break;
  }
}

// rows_of_panel with as many vectors as the panel's cols need.
template <typename T>
void rows_of_any_panel(int M, int K, const T* A, std::ptrdiff_t lda, const T* panel, T* C,
                       std::ptrdiff_t ldc, int cols, bool accumulate) {
  static_assert(kVectors == 2 || kVectors == 3, "one case per vector count");
  constexpr int V = kVector<T>;
  if (cols > 2 * V) {
    if constexpr (kVectors == 3)
      rows_of_panel<T, kRows, 3>(M, K, A, lda, panel, C, ldc, cols, accumulate);
  } else if (cols > V) {
    rows_of_panel<T, kRows, 2>(M, K, A, lda, panel, C, ldc, cols, accumulate);
  } else {
    rows_of_panel<T, kRows, 1>(M, K, A, lda, panel, C, ldc, cols, accumulate);
  }
}

}  // namespace

template <typename T>
int packed_panel_width() {
  return kPanel<T>;
}

template <typename T>
void pack_matrix(const T* W, int K, int N, std::ptrdiff_t ldw, bool transposed,
                 PackedMatrix<T>& out) {
  pack_matrix_resize(K, N, out);
  pack_matrix_panels(W, ldw, transposed, 0, out.panels, out);
}

template <typename T>
void pack_matrix_resize(int K, int N, PackedMatrix<T>& out) {
  constexpr int NR = kPanel<T>;
  out.rows = K;
  out.cols = N;
  out.panels = (N + NR - 1) / NR;
  const std::size_t size = static_cast<std::size_t>(out.panels) * K * NR;
  if (out.data.size() < size) out.data.resize(size);
}

template <typename T>
void pack_matrix_panels(const T* W, std::ptrdiff_t ldw, bool transposed, int p0, int p1,
                        PackedMatrix<T>& out) {
  constexpr int NR = kPanel<T>;
  const int K = out.rows, N = out.cols;
  for (int p = p0; p < p1; ++p) {
    T* panel = out.data.data() + static_cast<std::size_t>(p) * K * NR;
    const int c0 = p * NR, cols = std::min(NR, N - c0);
    if (transposed) {  // read W's rows contiguously
      for (int c = 0; c < cols; ++c) {
        const T* row = W + static_cast<std::ptrdiff_t>(c0 + c) * ldw;
        for (int k = 0; k < K; ++k) panel[static_cast<std::size_t>(k) * NR + c] = row[k];
      }
    } else {
      for (int k = 0; k < K; ++k) {
        std::memcpy(panel + static_cast<std::size_t>(k) * NR, W + k * ldw + c0, sizeof(T) * cols);
      }
    }
    for (int k = 0; k < K; ++k) {
      std::fill(panel + static_cast<std::size_t>(k) * NR + cols,
                panel + static_cast<std::size_t>(k + 1) * NR, T(0));
    }
  }
}

template <typename T>
void pack_matrix_rows(const T* const* rows, int K, int N, PackedMatrix<T>& out) {
  constexpr int NR = kPanel<T>;
  pack_matrix_resize(K, N, out);
  for (int p = 0; p < out.panels; ++p) {
    T* panel = out.data.data() + static_cast<std::size_t>(p) * K * NR;
    const int c0 = p * NR, cols = std::min(NR, N - c0);
    for (int c = 0; c < cols; ++c) {
      const T* row = rows[c0 + c];
      for (int k = 0; k < K; ++k) panel[static_cast<std::size_t>(k) * NR + c] = row[k];
    }
    for (int k = 0; k < K; ++k) {
      std::fill(panel + static_cast<std::size_t>(k) * NR + cols,
                panel + static_cast<std::size_t>(k + 1) * NR, T(0));
    }
  }
}

template <typename T>
void gemm_packed(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, T* C,
                 std::ptrdiff_t ldc, bool accumulate, bool reverse) {
  gemm_packed_panels(M, A, lda, B, 0, B.panels, C, ldc, accumulate, reverse);
}

template <typename T>
void gemm_packed_panels(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, int p0,
                        int p1, T* C, std::ptrdiff_t ldc, bool accumulate, bool reverse) {
  constexpr int NR = kPanel<T>;
  constexpr int kWide = 6;  // panels per wide_row: 6 * kVectors accumulators
  const int K = B.rows;
  const std::size_t stride = static_cast<std::size_t>(K) * NR;
  if (M <= 2) {
    // Few rows: up to kWide panels at a time, row by row; a partial last
    // panel goes with the others rather than through a one-row tile.
    for (int done = 0; done < p1 - p0;) {
      const int n = std::min(kWide, p1 - p0 - done);
      const int q0 = reverse ? p1 - done - n : p0 + done;
      done += n;
      const int last_cols = std::min(NR, B.cols - (q0 + n - 1) * NR);
      // wide_row for 1 to kWide panels.
      static_assert(kWide == 6, "kWideRows lists wide_row<T, 1> to wide_row<T, 6>");
      using WideRow = void (*)(int, const T*, const T*, std::size_t, T*, bool, int);
      static constexpr WideRow kWideRows[kWide] = {wide_row<T, 1>, wide_row<T, 2>, wide_row<T, 3>,
                                                   wide_row<T, 4>, wide_row<T, 5>, wide_row<T, 6>};
      for (int r = 0; r < M; ++r) {
        kWideRows[n - 1](K, A + r * lda, B.data.data() + q0 * stride, stride, C + r * ldc + q0 * NR,
                         accumulate, last_cols);
      }
    }
    return;
  }
  // Panel-major: a panel (K x NR) stays in L1/L2 while all rows stream by.
  for (int i = 0; i < p1 - p0; ++i) {
    const int p = reverse ? p1 - 1 - i : p0 + i;
    const T* panel = B.data.data() + static_cast<std::size_t>(p) * K * NR;
    const int c0 = p * NR, cols = std::min(NR, B.cols - c0);
    rows_of_any_panel<T>(M, K, A, lda, panel, C + c0, ldc, cols, accumulate);
  }
}

#define LSTMLEARN_INSTANTIATE(T)                                                                   \
  template int packed_panel_width<T>();                                                            \
  template void pack_matrix<T>(const T*, int, int, std::ptrdiff_t, bool, PackedMatrix<T>&);        \
  template void pack_matrix_resize<T>(int, int, PackedMatrix<T>&);                                 \
  template void pack_matrix_panels<T>(const T*, std::ptrdiff_t, bool, int, int, PackedMatrix<T>&); \
  template void pack_matrix_rows<T>(const T* const*, int, int, PackedMatrix<T>&);                  \
  template void gemm_packed<T>(int, const T*, std::ptrdiff_t, const PackedMatrix<T>&, T*,          \
                               std::ptrdiff_t, bool, bool);                                        \
  template void gemm_packed_panels<T>(int, const T*, std::ptrdiff_t, const PackedMatrix<T>&, int,  \
                                      int, T*, std::ptrdiff_t, bool, bool);
LSTMLEARN_INSTANTIATE(float)
LSTMLEARN_INSTANTIATE(double)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
