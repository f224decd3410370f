#include "lstmlearn/gemm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "unroll.hpp"

#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif !defined(_WIN32)
#include <unistd.h>
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

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

// One operand of a product: rows of A [M, K] (row stride lda) against a
// packed panel of K rows. A product may chain two of them (see gemm_packed2).
template <typename T>
struct Source {
  int K;
  const T* A;
  std::ptrdiff_t lda;
  const T* panel;  // [K, kPanel] of the panel in hand
};

// acc[r][v] += A[r, k] panel[k, v] for k = 0..K-1 (the FMA chains go on).
template <typename T, int ROWS, int NV>
inline void tile_products(const Source<T>& s, Packet<T> (&acc)[ROWS][NV]) {
  using P = Packet<T>;
  using namespace Eigen::internal;
  constexpr int V = kVector<T>;
  for (int k = 0; k < s.K; ++k) {
    P b[NV];
    const T* row = s.panel + static_cast<std::size_t>(k) * kPanel<T>;  // K * kPanel may pass 2^31
    LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) b[v] = pload<P>(row + v * V);
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      const P a = pset1<P>(s.A[r * s.lda + k]);
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = pmadd(a, b[v], acc[r][v]);
    }
  }
}

// One tile: C[ROWS, cols] = (C +) A[ROWS, K] panel[K, cols] (+ A2 panel2) for
// the first cols <= NV * V columns of a panel, NV vectors (the last may be
// partial): a partial last panel computes only the vectors it needs. Every
// output element is one sequential FMA chain, from 0 or from C's value
// (accumulate), over the k of `s`, then those of `s2`, whatever NV.
template <typename T, int ROWS, int NV>
void tile(const Source<T>& s, const Source<T>& s2, T* C, std::ptrdiff_t ldc, int cols,
          bool accumulate) {
  using P = Packet<T>;
  using namespace Eigen::internal;
  constexpr int V = kVector<T>;
  const int last = cols - (NV - 1) * V;  // columns of the last vector, 1..V
  // A partial last vector goes through a buffer (loaded and stored after the
  // whole vectors): no call and no per-vector test among the loads and
  // stores (with an out-of-line store call there, products at K 32-64 were
  // 8-12% slower).
  alignas(64) T part[ROWS][V];
  P acc[ROWS][NV];
  if (!accumulate) {
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = pset1<P>(T(0));
    }
  } else if (last == V) {
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) acc[r][v] = ploadu<P>(C + r * ldc + v * V);
    }
  } else {
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      const T* src = C + r * ldc + (NV - 1) * V;
      for (int c = 0; c < V; ++c) part[r][c] = c < last ? src[c] : T(0);
    }
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      LSTMLEARN_UNROLL for (int v = 0; v < NV - 1; ++v) acc[r][v] = ploadu<P>(C + r * ldc + v * V);
      acc[r][NV - 1] = pload<P>(part[r]);
    }
  }
  tile_products(s, acc);
  tile_products(s2, acc);
  if (last == V) {
    LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
      LSTMLEARN_UNROLL for (int v = 0; v < NV; ++v) pstoreu(C + r * ldc + v * V, acc[r][v]);
    }
    return;
  }
  LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
    LSTMLEARN_UNROLL for (int v = 0; v < NV - 1; ++v) pstoreu(C + r * ldc + v * V, acc[r][v]);
    pstore(part[r], acc[r][NV - 1]);
  }
  LSTMLEARN_UNROLL for (int r = 0; r < ROWS; ++r) {
    T* dst = C + r * ldc + (NV - 1) * V;
    for (int c = 0; c < last; ++c) dst[c] = part[r][c];
  }
}

// One row against PANELS consecutive panels at once: C[1, cols] = (C +)
// A[1, K] [panel p | ... | panel p+PANELS-1]. With one row, a single
// panel's kVectors FMA chains cannot cover the FMA latency; more panels give
// more independent chains. Each element is still one sequential FMA chain
// over k, from 0 or from C, as in tile(), so the result is the same bits.
// The last panel may be partial: only its first LAST vectors are read (the
// zero padding past them is not streamed), and only its first `last_cols`
// columns are stored.
template <typename T, int PANELS, int LAST>
void wide_row(int K, const T* A, const T* panels, std::size_t panel_stride, T* C, bool accumulate,
              int last_cols) {
  using P = Packet<T>;
  using namespace Eigen::internal;
  constexpr int V = kVector<T>;
  constexpr int W = (PANELS - 1) * kVectors;  // vectors before the last panel
  constexpr int N = W + LAST;
  // Columns of C at vector v of the last panel: V, or fewer when it is
  // partial.
  auto width = [&](int v) { return std::clamp(last_cols - v * V, 0, V); };
  T* const last = C + W * V;
  alignas(64) T buffer[V];  // a partial vector
  P acc[N];
  if (!accumulate) {
    LSTMLEARN_UNROLL for (int v = 0; v < N; ++v) acc[v] = pset1<P>(T(0));
  } else {
    LSTMLEARN_UNROLL for (int v = 0; v < W; ++v) acc[v] = ploadu<P>(C + v * V);
    LSTMLEARN_UNROLL for (int v = 0; v < LAST; ++v) {
      if (width(v) == V) {
        acc[W + v] = ploadu<P>(last + v * V);
      } else {
        for (int c = 0; c < V; ++c) buffer[c] = c < width(v) ? last[v * V + c] : T(0);
        acc[W + v] = pload<P>(buffer);
      }
    }
  }
  for (int k = 0; k < K; ++k) {
    const P a = pset1<P>(A[k]);
    LSTMLEARN_UNROLL for (int q = 0; q < PANELS - 1; ++q) {
      const T* b = panels + q * panel_stride + static_cast<std::size_t>(k) * kPanel<T>;
      LSTMLEARN_UNROLL for (int v = 0; v < kVectors; ++v) {
        acc[q * kVectors + v] = pmadd(a, pload<P>(b + v * V), acc[q * kVectors + v]);
      }
    }
    const T* b = panels + (PANELS - 1) * panel_stride + static_cast<std::size_t>(k) * kPanel<T>;
    LSTMLEARN_UNROLL for (int v = 0; v < LAST; ++v) {
      acc[W + v] = pmadd(a, pload<P>(b + v * V), acc[W + v]);
    }
  }
  LSTMLEARN_UNROLL for (int v = 0; v < W; ++v) pstoreu(C + v * V, acc[v]);
  LSTMLEARN_UNROLL for (int v = 0; v < LAST; ++v) {
    if (width(v) == V) {
      pstoreu(last + v * V, acc[W + v]);
    } else {
      pstore(buffer, acc[W + v]);
      for (int c = 0; c < width(v); ++c) last[v * V + c] = buffer[c];
    }
  }
}

template <typename T, int ROWS, int NV>
void rows_of_panel(int M, Source<T> s, Source<T> s2, T* C, std::ptrdiff_t ldc, int cols,
                   bool accumulate) {
  int r = 0;
  for (; r + ROWS <= M; r += ROWS) {
    tile<T, ROWS, NV>(s, s2, C, ldc, cols, accumulate);
    s.A += ROWS * s.lda;
    s2.A += ROWS * s2.lda;
    C += ROWS * ldc;
  }
  switch (M - r) {  // fewer than kRows rows remain
#define LSTMLEARN_TILE_CASE(n)                         \
  case n:                                              \
    if constexpr (n < ROWS) {                          \
      tile<T, n, NV>(s, s2, C, ldc, cols, accumulate); \
    }                                                  \
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
void rows_of_any_panel(int M, const Source<T>& s, const Source<T>& s2, T* C, std::ptrdiff_t ldc,
                       int cols, bool accumulate) {
  static_assert(kVectors == 2 || kVectors == 3, "one case per vector count");
  constexpr int V = kVector<T>;
  if (cols > 2 * V) {
    if constexpr (kVectors == 3) rows_of_panel<T, kRows, 3>(M, s, s2, C, ldc, cols, accumulate);
  } else if (cols > V) {
    rows_of_panel<T, kRows, 2>(M, s, s2, C, ldc, cols, accumulate);
  } else {
    rows_of_panel<T, kRows, 1>(M, s, s2, C, ldc, cols, accumulate);
  }
}

// wide_row<T, PANELS, LAST> for PANELS 1..6 and LAST 1..kVectors.
template <typename T>
using WideRow = void (*)(int, const T*, const T*, std::size_t, T*, bool, int);
template <typename T, int PANELS, int... LAST>
constexpr std::array<WideRow<T>, kVectors> wide_rows_of(std::integer_sequence<int, LAST...>) {
  return {wide_row<T, PANELS, LAST + 1>...};
}
template <typename T, int... PANELS>
constexpr std::array<std::array<WideRow<T>, kVectors>, sizeof...(PANELS)> wide_row_table(
    std::integer_sequence<int, PANELS...>) {
  return {wide_rows_of<T, PANELS + 1>(std::make_integer_sequence<int, kVectors>())...};
}
constexpr int kWide = 6;  // most panels per wide_row: 6 * kVectors accumulators
// Panels per wide_row when they are larger than L1 (see few_rows). On AVX2,
// three or four were no faster than kWide (on the same Zen 5 machine).
#if defined(__AVX512F__)
constexpr int kStreamWide = 2;
#else
constexpr int kStreamWide = kWide;
#endif
template <typename T>
constexpr auto kWideRows = wide_row_table<T>(std::make_integer_sequence<int, kWide>());

// Bytes of L1 data cache per core (32 KB when the system does not say).
std::size_t l1_data_bytes() {
  static const std::size_t bytes = [] {
    long n = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    n = sysconf(_SC_LEVEL1_DCACHE_SIZE);
#elif defined(__APPLE__)
    std::int64_t value = 0;
    std::size_t size = sizeof(value);
    if (sysctlbyname("hw.l1dcachesize", &value, &size, nullptr, 0) == 0)
      n = static_cast<long>(value);
#endif
    return n > 0 ? static_cast<std::size_t>(n) : std::size_t{32} << 10;
  }();
  return bytes;
}

// The panels [p0, p1) of C (+)= A B + A2 B2, for M <= 2 rows, a few panels
// at a time, row by row; a partial last panel goes with the others rather
// than through a one-row tile. A second operand continues the chains in a
// second pass (the same bits as one pass).
//
// Panels in L1: kWide at a time, for enough FMA chains to cover their
// latency. Larger than L1, on AVX-512: two at a time (six chains). The
// products then wait on L2 or beyond, and two concurrent streams ran faster
// there than six: on a Zen 5 machine (48 KB L1), one-row products over 54 KB
// to 144 KB of panels took 13-41% less time in a microbenchmark, over 2 MB
// 4%, and at 36 KB (in L1) 30-50% more. One-sample predict took 7% less time
// on the large workload, 11% on medium and 21% on stacked.
template <typename T>
void few_rows(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, int p0, int p1, T* C,
              std::ptrdiff_t ldc, bool accumulate, bool reverse) {
  constexpr int NR = kPanel<T>;
  constexpr int V = kVector<T>;
  const int K = B.rows;
  const std::size_t stride = static_cast<std::size_t>(K) * NR;
  const bool in_l1 = sizeof(T) * stride * static_cast<std::size_t>(p1 - p0) <= l1_data_bytes();
  const int wide = in_l1 ? kWide : kStreamWide;
  for (int done = 0; done < p1 - p0;) {
    const int n = std::min(wide, p1 - p0 - done);
    const int q0 = reverse ? p1 - done - n : p0 + done;
    done += n;
    const int last_cols = std::min(NR, B.cols - (q0 + n - 1) * NR);
    const WideRow<T> kernel = kWideRows<T>[n - 1][(last_cols + V - 1) / V - 1];
    for (int r = 0; r < M; ++r) {
      kernel(K, A + r * lda, B.data.data() + q0 * stride, stride, C + r * ldc + q0 * NR, accumulate,
             last_cols);
    }
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
  gemm_packed2_panels(M, A, lda, B, static_cast<const T*>(nullptr), 0,
                      static_cast<const PackedMatrix<T>*>(nullptr), p0, p1, C, ldc, accumulate,
                      reverse);
}

template <typename T>
void gemm_packed2(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B, const T* A2,
                  std::ptrdiff_t lda2, const PackedMatrix<T>& B2, T* C, std::ptrdiff_t ldc,
                  bool accumulate, bool reverse) {
  gemm_packed2_panels(M, A, lda, B, A2, lda2, &B2, 0, B.panels, C, ldc, accumulate, reverse);
}

template <typename T>
void gemm_packed2_panels(int M, const T* A, std::ptrdiff_t lda, const PackedMatrix<T>& B,
                         const T* A2, std::ptrdiff_t lda2, const PackedMatrix<T>* B2, int p0,
                         int p1, T* C, std::ptrdiff_t ldc, bool accumulate, bool reverse) {
  constexpr int NR = kPanel<T>;
  if (M <= 2) {
    few_rows(M, A, lda, B, p0, p1, C, ldc, accumulate, reverse);
    if (B2) few_rows(M, A2, lda2, *B2, p0, p1, C, ldc, true, reverse);
    return;
  }
  const int K = B.rows, K2 = B2 ? B2->rows : 0;
  // Panel-major: a panel (K x NR) stays in L1/L2 while all rows stream by.
  for (int i = 0; i < p1 - p0; ++i) {
    const int p = reverse ? p1 - 1 - i : p0 + i;
    const Source<T> s{K, A, lda, B.data.data() + static_cast<std::size_t>(p) * K * NR};
    const Source<T> s2{K2, A2, lda2,
                       B2 ? B2->data.data() + static_cast<std::size_t>(p) * K2 * NR : nullptr};
    const int c0 = p * NR, cols = std::min(NR, B.cols - c0);
    rows_of_any_panel<T>(M, s, s2, C + c0, ldc, cols, accumulate);
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
                                      int, T*, std::ptrdiff_t, bool, bool);                        \
  template void gemm_packed2<T>(int, const T*, std::ptrdiff_t, const PackedMatrix<T>&, const T*,   \
                                std::ptrdiff_t, const PackedMatrix<T>&, T*, std::ptrdiff_t, bool,  \
                                bool);                                                             \
  template void gemm_packed2_panels<T>(int, const T*, std::ptrdiff_t, const PackedMatrix<T>&,      \
                                       const T*, std::ptrdiff_t, const PackedMatrix<T>*, int, int, \
                                       T*, std::ptrdiff_t, bool, bool);
LSTMLEARN_INSTANTIATE(LSTMLEARN_ENGINE_DTYPE)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
