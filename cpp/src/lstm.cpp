// LSTM forward and backward. See lstm.hpp for the size key and equations.
//
// Work partition (fixed, independent of the thread count, so results are
// bitwise identical for any number of threads):
//   forward, per layer:  one task per (direction, batch chunk); a task
//                        projects its rows' inputs with one GEMM, then runs
//                        all T steps (no barrier per step).
//   backward, per layer: one task per (direction, batch chunk) for the time
//                        loop, then one task per batch chunk for the input
//                        gradient and one per (direction, block of G rows)
//                        for the weight gradients, each a single GEMM over
//                        all B*T rows (no reduction split across tasks).
#include "lstmlearn/lstm.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "lstmlearn/limits.hpp"
#include "lstmlearn/thread_pool.hpp"

// A prefetch into L2 (locality 2: GCC and Clang's hint for L2 and beyond).
#if defined(__GNUC__) || defined(__clang__)
#define LSTMLEARN_PREFETCH_L2(address) __builtin_prefetch(address, 0, 2)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define LSTMLEARN_PREFETCH_L2(address) _mm_prefetch(address, _MM_HINT_T1)
#endif

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

constexpr int kBatchChunk = 16;  // rows of the batch per task
constexpr int kGroupRows = 64;   // rows per recurrent product of a group

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstMatMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

template <typename T>
MatMap<T> mat(T* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index stride) {
  return MatMap<T>(data, rows, cols, Eigen::OuterStride<>(stride));
}
template <typename T>
ConstMatMap<T> mat(const T* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index stride) {
  return ConstMatMap<T>(data, rows, cols, Eigen::OuterStride<>(stride));
}

template <typename T>
void grow(AlignedVector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

int chunk_count(int batch) { return (batch + kBatchChunk - 1) / kBatchChunk; }

// pack_matrix with the panels shared among threads (large weights are
// megabytes; one thread packing them would leave the others idle).
template <typename T>
void pack_parallel(const T* W, int K, int N, std::ptrdiff_t ldw, bool transposed,
                   PackedMatrix<T>& out, int n_threads) {
  constexpr int kPanelsPerTask = 8;
  pack_matrix_resize(K, N, out);
  const int tasks = (out.panels + kPanelsPerTask - 1) / kPanelsPerTask;
  parallel_for(tasks, n_threads, [&](std::size_t task) {
    const int p0 = static_cast<int>(task) * kPanelsPerTask;
    pack_matrix_panels(W, ldw, transposed, p0, std::min(out.panels, p0 + kPanelsPerTask), out);
  });
}

// Rows [lo, hi) of group k when `chunks` batch chunks are dealt to `groups`
// tasks. A group runs the recurrent product over all its rows at once, so
// each step streams the packed W_hh once per group rather than per chunk;
// the product's elements do not depend on how many rows it has, so the
// grouping (which follows the thread count) does not change any result.
struct RowRange {
  int lo, hi;
};
RowRange group_rows(int batch, int chunks, int groups, int k) {
  const int c0 = chunks * k / groups, c1 = chunks * (k + 1) / groups;
  return {std::min(batch, c0 * kBatchChunk), std::min(batch, c1 * kBatchChunk)};
}
// Gate rows per weight-gradient task: half of G, from 64 to 512. Each task
// packs all of x and h_{t-1} again, so small blocks repeat that work (a
// quarter of G made the stacked workload's training 8% slower on 2 cores);
// too few leave threads idle (on many cores, the input-gradient tasks run
// alongside). It depends on the shape alone, so the gradients do not depend
// on the thread count.
int gate_block(int G) { return std::clamp((G / 2 + 15) / 16 * 16, 64, 512); }

// Task `task` of D*groups: direction d and rows [b0, b0 + nb).
struct GroupTask {
  int d, b0, nb;
};
GroupTask group_task(std::size_t task, int groups, int batch, int chunks) {
  const RowRange rows = group_rows(batch, chunks, groups, static_cast<int>(task) % groups);
  return {static_cast<int>(task) / groups, rows.lo, rows.hi - rows.lo};
}

int group_count(int chunks, int directions, int n_threads) {
  const int per_direction = std::max(1, resolve_threads(n_threads) / directions);
  return std::min(chunks, per_direction);
}

// Pointers to the parameters of one (layer, direction).
template <typename T>
struct Block {
  T* w_ih;  // [G, F]
  T* w_hh;  // [G, H]
  T* b_ih;  // [G]
  T* b_hh;  // [G]
};

template <typename T>
Block<T> block(const LstmSpec& spec, T* params, int layer, int direction) {
  const std::size_t g = 4 * static_cast<std::size_t>(spec.hidden_size);
  const std::size_t f = spec.layer_input_size(layer);
  const std::size_t h = spec.hidden_size;
  T* p = params + lstm_block_offset(spec, layer, direction);
  return {p, p + g * f, p + g * f + g * h, p + g * f + g * h + g};
}

// The cell's element-wise work runs on fixed blocks of kUnits units (fully
// unrolled, no alignment peeling), then on the remaining H % kUnits.
constexpr int kUnits = 16;

template <typename T, int N>
using UnitArray = Eigen::Array<T, N, 1>;
template <typename T, int N>
using UnitMap = Eigen::Map<UnitArray<T, N>, Eigen::Unaligned>;
template <typename T, int N>
using ConstUnitMap = Eigen::Map<const UnitArray<T, N>, Eigen::Unaligned>;

// cell_forward on n units (n = N, or any n with N = Dynamic); gate q of unit
// 0 is at a + q*H.
template <typename T, int N>
inline void cell_forward_units(T* a, const T* bias, const T* c_prev, T* c, T* h, int H, int n) {
  UnitMap<T, N> i(a, n), f(a + H, n), g(a + 2 * H, n), o(a + 3 * H, n);
  i = (i + ConstUnitMap<T, N>(bias, n)).logistic();
  f = (f + ConstUnitMap<T, N>(bias + H, n)).logistic();
  g = (g + ConstUnitMap<T, N>(bias + 2 * H, n)).tanh();
  o = (o + ConstUnitMap<T, N>(bias + 3 * H, n)).logistic();
  UnitMap<T, N> cv(c, n);
  cv = f * ConstUnitMap<T, N>(c_prev, n) + i * g;
  UnitMap<T, N>(h, n) = o * cv.tanh();
}

// One step of one row: a [G] pre-activations (bias not yet added) become the
// activations i, f, g, o in place; writes c_t and h_t.
template <typename T>
inline void cell_forward(T* a, const T* bias, const T* c_prev, T* c, T* h, int H) {
  int u = 0;
  for (; u + kUnits <= H; u += kUnits) {
    cell_forward_units<T, kUnits>(a + u, bias + u, c_prev + u, c + u, h + u, H, kUnits);
  }
  if (u < H) {
    cell_forward_units<T, Eigen::Dynamic>(a + u, bias + u, c_prev + u, c + u, h + u, H, H - u);
  }
}

// cell_backward on n units, as cell_forward_units.
template <typename T, int N>
inline void cell_backward_units(const T* act, const T* c, const T* c_prev, const T* dh, T* dc,
                                T* da, int H, int n) {
  ConstUnitMap<T, N> i(act, n), f(act + H, n), g(act + 2 * H, n), o(act + 3 * H, n);
  ConstUnitMap<T, N> dhv(dh, n);
  UnitMap<T, N> dcv(dc, n);
  const UnitArray<T, N> tc = ConstUnitMap<T, N>(c, n).tanh();
  // h_t = o * tanh(c_t)
  UnitMap<T, N>(da + 3 * H, n) = dhv * tc * o * (T(1) - o);
  dcv += dhv * o * (T(1) - tc * tc);
  // c_t = f * c_{t-1} + i * g
  UnitMap<T, N>(da, n) = dcv * g * i * (T(1) - i);
  UnitMap<T, N>(da + H, n) = dcv * ConstUnitMap<T, N>(c_prev, n) * f * (T(1) - f);
  UnitMap<T, N>(da + 2 * H, n) = dcv * i * (T(1) - g * g);
  dcv *= f;
}

// Backward of cell_forward for one row. Given dh (total gradient of h_t) and
// dc (gradient of c_t from step t+1), writes da [G] and replaces dc with the
// gradient of c_{t-1}.
template <typename T>
inline void cell_backward(const T* act, const T* c, const T* c_prev, const T* dh, T* dc, T* da,
                          int H) {
  int u = 0;
  for (; u + kUnits <= H; u += kUnits) {
    cell_backward_units<T, kUnits>(act + u, c + u, c_prev + u, dh + u, dc + u, da + u, H, kUnits);
  }
  if (u < H) {
    cell_backward_units<T, Eigen::Dynamic>(act + u, c + u, c_prev + u, dh + u, dc + u, da + u, H,
                                           H - u);
  }
}

template <typename T>
void copy_row(T* dst, const T* src, std::size_t n) {
  std::memcpy(dst, src, sizeof(T) * n);
}

// Asks for n values from p to be brought into L2. The time loops visit each
// row of the batch once per step, rows a whole sequence apart: the hardware
// prefetchers do not follow that, and the cell work then waits on L3.
template <typename T>
inline void prefetch_l2(const T* p, int n) {
#ifdef LSTMLEARN_PREFETCH_L2
  const char* c = reinterpret_cast<const char*>(p);
  const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < bytes; i += 64) LSTMLEARN_PREFETCH_L2(c + i);
#else
  (void)p;
  (void)n;
#endif
}

// Whether a time loop fetches each row's next step one step ahead: only when
// that (rows x values per row) fits well inside L2, so that it does not evict the
// step being worked on (256 KB: a quarter of L2 on Zen 4).
template <typename T>
bool prefetch_step_ahead(int rows, int values) {
  return static_cast<std::size_t>(rows) * values * sizeof(T) <= (std::size_t{256} << 10);
}

// Where the 1 of the one-hot row x[0, F) is: k if x[k] == 1 and every other
// value is 0, F if all are 0, -1 if x is not one-hot. No early exit: the loop
// vectorises, and a row costs a few instructions either way.
template <typename T>
int onehot_index(const T* x, int F) {
  int ones = 0, others = 0, k = F;
  for (int j = 0; j < F; ++j) {
    const bool one = x[j] == T(1);
    ones += one;
    others += !one && x[j] != T(0);
    k = one ? j : k;
  }
  return others > 0 || ones > 1 ? -1 : k;
}

// Fewest input features for which layer 0 looks one-hot rows up: with fewer,
// the product it replaces costs about as much as the lookup.
constexpr int kOneHotMinFeatures = 8;

// The lookup table of layer 0's input projection, for the units [u_lo, u_hi)
// of every gate ([i | f | g | o] of those units, as packed): row k = e_k
// W_ih^T, row F = 0 W_ih^T. The product's FMA chain for e_k starts from +0
// and adds +-0 at every k but one, where it adds W_ih[j][k]: so the element
// is W_ih[j][k] + 0 (+0 for -0), to the bit. A non-finite weight would make
// the chain NaN (0 * inf): the table is then left empty and not used.
template <typename T>
void build_onehot(const T* w_ih, int F, int H, int u_lo, int u_hi, AlignedVector<T>& table) {
  const int n = u_hi - u_lo, cols = 4 * n;
  for (int q = 0; q < 4; ++q) {
    const T* w = w_ih + (static_cast<std::size_t>(q) * H + u_lo) * F;
    if (!ConstVec<T>(w, static_cast<Eigen::Index>(n) * F).isFinite().all()) {
      table.clear();
      return;
    }
  }
  grow(table, static_cast<std::size_t>(F + 1) * cols);
  for (int q = 0; q < 4; ++q) {
    for (int u = 0; u < n; ++u) {
      const T* w = w_ih + (static_cast<std::size_t>(q) * H + u_lo + u) * F;
      T* col = table.data() + q * n + u;
      for (int k = 0; k < F; ++k) col[static_cast<std::size_t>(k) * cols] = w[k] + T(0);
    }
  }
  std::fill_n(table.data() + static_cast<std::size_t>(F) * cols, cols, T(0));
}

// Whether layer 0 may look up one-hot rows of x (see build_onehot): enough
// features, and the first row one-hot. Others are checked as they come.
template <typename T>
bool onehot_candidate(const LstmSpec& spec, const T* x) {
  return spec.input_size >= kOneHotMinFeatures && onehot_index(x, spec.input_size) >= 0;
}

// Most rows lookup_onehot takes at once.
constexpr int kLookupRows = 128;

// out[r] = x[r] W_ih^T for the n <= kLookupRows rows of x (stride ldx) from
// the table (cols columns) when every row is one-hot; returns false, writing
// nothing, when one is not.
template <typename T>
bool lookup_onehot(int n, const T* x, std::ptrdiff_t ldx, int F, const T* table, int cols, T* out,
                   std::ptrdiff_t ldo) {
  int index[kLookupRows];
  for (int r = 0; r < n; ++r) {
    index[r] = onehot_index(x + r * ldx, F);
    if (index[r] < 0) return false;
  }
  for (int r = 0; r < n; ++r) {
    copy_row(out + r * ldo, table + static_cast<std::size_t>(index[r]) * cols, cols);
  }
  return true;
}

// out[r] = x[r] W_ih^T for the M rows of x: blocks of one-hot rows looked up
// in `table` (cols columns; null: none), the others multiplied by the packed
// W_ih. The same bits either way.
template <typename T>
void project_inputs(int M, const T* x, std::ptrdiff_t ldx, int F, const PackedMatrix<T>& w_ih,
                    const T* table, int cols, T* out, std::ptrdiff_t ldo) {
  if (!table) {
    gemm_packed(M, x, ldx, w_ih, out, ldo, false);
    return;
  }
  for (int r0 = 0; r0 < M; r0 += kLookupRows) {
    const int m = std::min(kLookupRows, M - r0);
    const T* x_r = x + r0 * ldx;
    T* out_r = out + r0 * ldo;
    if (!lookup_onehot(m, x_r, ldx, F, table, cols, out_r, ldo)) {
      gemm_packed(m, x_r, ldx, w_ih, out_r, ldo, false);
    }
  }
}

}  // namespace

#ifndef LSTMLEARN_FLOAT64_PART  // what does not depend on the dtype is compiled with float32

void LstmSpec::validate() const {
  if (input_size < 1 || hidden_size < 1 || num_layers < 1) {
    throw std::invalid_argument(
        "LSTM sizes must be positive: input_size=" + std::to_string(input_size) + ", hidden_size=" +
        std::to_string(hidden_size) + ", num_layers=" + std::to_string(num_layers));
  }
  // In 64 bits: the ints derived below (G = 4H, D*H, F + H, L*D) and every
  // tensor's element count must fit an int (see limits.hpp). W_hh [G, H]
  // bounds H to 23170, so D*H and F + H fit once W_ih [G, F] does.
  const std::int64_t F = input_size, H = hidden_size, L = num_layers, D = directions(), G = 4 * H;
  check_tensor("hidden_size", H, "weight_hh_l0", {G, H});
  check_tensor("input_size", F, "weight_ih_l0", {G, F});
  if (L > 1) check_tensor("hidden_size", H, "weight_ih_l1", {G, D * H});
  check_index("num_layers x directions", L * D);
  // Each block holds W_ih, W_hh and two biases: at most 2^33 values.
  const std::int64_t first = D * G * (F + H + 2), upper = D * G * (D * H + H + 2);
  if (L > 1 && upper > (kMaxParameters - first) / (L - 1)) {
    throw std::invalid_argument("num_layers " + std::to_string(L) + " of " + std::to_string(upper) +
                                " parameters each is too many; the engine's limit is " +
                                std::to_string(kMaxParameters) + " parameters");
  }
}

std::size_t lstm_block_offset(const LstmSpec& spec, int layer, int direction) {
  const std::size_t g = 4 * static_cast<std::size_t>(spec.hidden_size);
  const std::size_t h = spec.hidden_size;
  std::size_t offset = 0;
  for (int l = 0; l < layer; ++l) {
    offset += spec.directions() * g * (spec.layer_input_size(l) + h + 2);
  }
  return offset + direction * g * (spec.layer_input_size(layer) + h + 2);
}

std::size_t lstm_parameter_count(const LstmSpec& spec) {
  return lstm_block_offset(spec, spec.num_layers, 0);
}

std::vector<TensorInfo> lstm_parameter_layout(const LstmSpec& spec) {
  std::vector<TensorInfo> out;
  const std::size_t g = 4 * static_cast<std::size_t>(spec.hidden_size);
  const std::size_t h = spec.hidden_size;
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < spec.directions(); ++d) {
      const std::string suffix = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      const std::size_t f = spec.layer_input_size(l);
      std::size_t at = lstm_block_offset(spec, l, d);
      out.push_back({"weight_ih" + suffix, at, {g, f}});
      at += g * f;
      out.push_back({"weight_hh" + suffix, at, {g, h}});
      at += g * h;
      out.push_back({"bias_ih" + suffix, at, {g}});
      at += g;
      out.push_back({"bias_hh" + suffix, at, {g}});
    }
  }
  return out;
}

#endif  // LSTMLEARN_FLOAT64_PART

template <typename T>
void lstm_forward(const LstmSpec& spec, const T* params, int B, int steps, const T* x, const T* h0,
                  const T* c0, const std::uint8_t* mask, const T* recurrent_mask, T* y, T* h_n,
                  T* c_n, LstmCache<T>& cache, int n_threads) {
  spec.validate();
  if (B < 1 || steps < 1) throw std::invalid_argument("LSTM forward needs B >= 1 and T >= 1");
  check_rows("LSTM forward", B, steps);
  const int L = spec.num_layers, D = spec.directions(), H = spec.hidden_size, G = 4 * H;
  const std::size_t BT = static_cast<std::size_t>(B) * steps;
  const std::size_t states = static_cast<std::size_t>(L) * D * B * H;

  // Keep copies of the inputs: backward must not see later changes to them
  // (x itself is copied into the first layer's [x_t | h_{t-1}] rows).
  cache.ready = false;
  cache.batch = B;
  cache.steps = steps;
  cache.has_mask = mask != nullptr;
  cache.h0.assign(h0, h0 + states);
  cache.c0.assign(c0, c0 + states);
  if (mask) cache.mask.assign(mask, mask + BT);
  cache.has_recurrent_mask = recurrent_mask != nullptr;
  if (recurrent_mask) cache.recurrent_mask.assign(recurrent_mask, recurrent_mask + states);
  cache.outputs.resize(L > 1 ? L - 1 : 0);
  for (auto& o : cache.outputs) grow(o, BT * D * H);
  cache.gates.resize(L * D);
  cache.cells.resize(L * D);
  cache.prev_hidden.resize(L * D);
  cache.bias_sum.resize(L * D);
  cache.packed_w_ih.resize(L * D);
  cache.packed_w_hh.resize(L * D);
  for (int k = 0; k < L * D; ++k) {
    grow(cache.gates[k], BT * G);
    grow(cache.cells[k], BT * H);
    grow(cache.prev_hidden[k], BT * (spec.layer_input_size(k / D) + H));
    grow(cache.bias_sum[k], static_cast<std::size_t>(G));
  }
  const std::uint8_t* m = mask ? cache.mask.data() : nullptr;
  const T* rmask = recurrent_mask ? cache.recurrent_mask.data() : nullptr;
  const int chunks = chunk_count(B);
  const int groups = group_count(chunks, D, n_threads);
  T* params_mut = const_cast<T*>(params);  // Block<T> views are read-only here

  for (int l = 0; l < L; ++l) {
    const int F = spec.layer_input_size(l);
    const T* in = l == 0 ? x : cache.outputs[l - 1].data();  // [B, T, F]
    T* out = l == L - 1 ? y : cache.outputs[l].data();       // [B, T, D*H]
    for (int d = 0; d < D; ++d) {
      const Block<T> p = block(spec, params_mut, l, d);
      Vec<T>(cache.bias_sum[l * D + d].data(), G) = ConstVec<T>(p.b_ih, G) + ConstVec<T>(p.b_hh, G);
      // W_hh^T [H, G] and W_ih^T [F, G], packed once for all steps and rows.
      pack_parallel(static_cast<const T*>(p.w_hh), H, G, H, true, cache.packed_w_hh[l * D + d],
                    n_threads);
      pack_parallel(static_cast<const T*>(p.w_ih), F, G, F, true, cache.packed_w_ih[l * D + d],
                    n_threads);
    }
    // One-hot rows of x: projections looked up (lstm_inference's tables).
    const bool lookup = l == 0 && onehot_candidate(spec, x);
    cache.onehot.resize(D);
    for (int d = 0; d < D && lookup; ++d) {
      build_onehot(block(spec, params_mut, 0, d).w_ih, F, H, 0, H, cache.onehot[d]);
    }
    parallel_for(static_cast<std::size_t>(D) * groups, n_threads, [&](std::size_t task) {
      const GroupTask g = group_task(task, groups, B, chunks);
      const int d = g.d, b0 = g.b0, nb = g.nb;
      if (nb <= 0) return;
      const int ld = l * D + d;
      T* gates = cache.gates[ld].data();  // [B, T, G]
      T* cells = cache.cells[ld].data();  // [B, T, H]
      // [B, T, F + H]: x_t, then the recurrent product's input (below).
      T* xh = cache.prev_hidden[ld].data();
      const std::size_t FH = static_cast<std::size_t>(F) + H;
      T* hprev = xh + F;  // rows FH apart
      const T* bias = cache.bias_sum[ld].data();
      const std::size_t row0 = static_cast<std::size_t>(b0) * steps;
      for (std::size_t bt = row0; bt < row0 + static_cast<std::size_t>(nb) * steps; ++bt) {
        copy_row(xh + bt * FH, in + bt * F, F);
      }

      // Input projection of all steps: [nb*T, F] x [F, G], with the packed
      // kernel (each element one FMA chain, whatever the rows), or looked up
      // a block of one-hot rows at a time (the same bits).
      const T* table = lookup && !cache.onehot[d].empty() ? cache.onehot[d].data() : nullptr;
      project_inputs(nb * steps, in + row0 * F, F, F, cache.packed_w_ih[ld], table, G,
                     gates + row0 * G, G);

      const int first = d == 0 ? 0 : steps - 1;
      const int dir = d == 0 ? 1 : -1;
      // hprev holds the recurrent GEMM's input: h_{t-1}, times the recurrent
      // dropout mask when there is one.
      const T* r_ld = rmask ? rmask + static_cast<std::size_t>(ld) * B * H : nullptr;
      auto store_prev = [&](T* dst, const T* h, int b) {
        if (r_ld) {
          Vec<T>(dst, H) =
              ConstVec<T>(h, H) * ConstVec<T>(r_ld + static_cast<std::size_t>(b) * H, H);
        } else {
          copy_row(dst, h, H);
        }
      };
      for (int r = 0; r < nb; ++r) {
        store_prev(hprev + ((b0 + r) * static_cast<std::size_t>(steps) + first) * FH,
                   h0 + (static_cast<std::size_t>(ld) * B + b0 + r) * H, b0 + r);
      }
      const PackedMatrix<T>& W_hh_t = cache.packed_w_hh[ld];
      const bool prefetch = prefetch_step_ahead<T>(nb, G);
      for (int s = 0; s < steps; ++s) {
        const int t = first + dir * s;
        // a_t += h_{t-1} W_hh^T for the nb rows: [nb, H] x [H, G].
        for (int r0 = 0; r0 < nb; r0 += kGroupRows) {
          const std::size_t at = row0 + static_cast<std::size_t>(r0) * steps + t;
          gemm_packed(std::min(kGroupRows, nb - r0), hprev + at * FH,
                      static_cast<std::ptrdiff_t>(steps * FH), W_hh_t, gates + at * G,
                      static_cast<std::ptrdiff_t>(steps) * G, true, s % 2 == 1);
        }
        for (int r = 0; r < nb; ++r) {
          const int b = b0 + r;
          const std::size_t bt = static_cast<std::size_t>(b) * steps + t;
          const T* c_prev =
              s == 0 ? c0 + (static_cast<std::size_t>(ld) * B + b) * H : cells + (bt - dir) * H;
          T* h = out + bt * D * H + d * H;
          if (m && !m[bt]) {
            const T* h_prev = s == 0 ? h0 + (static_cast<std::size_t>(ld) * B + b) * H
                                     : out + (bt - dir) * D * H + d * H;
            copy_row(cells + bt * H, c_prev, H);
            copy_row(h, h_prev, H);
          } else {
            cell_forward(gates + bt * G, bias, c_prev, cells + bt * H, h, H);
          }
          if (s + 1 < steps) {
            store_prev(hprev + (bt + dir) * FH, h, b);
            if (prefetch) prefetch_l2(gates + (bt + dir) * G, G);
          }
        }
      }
      const int last = first + dir * (steps - 1);
      for (int r = 0; r < nb; ++r) {
        const std::size_t bt = static_cast<std::size_t>(b0 + r) * steps + last;
        const std::size_t state = (static_cast<std::size_t>(ld) * B + b0 + r) * H;
        copy_row(h_n + state, static_cast<const T*>(out + bt * D * H + d * H), H);
        copy_row(c_n + state, static_cast<const T*>(cells + bt * H), H);
      }
    });
  }
  cache.ready = true;
}

namespace {

constexpr int kCellBlock = 16;  // hidden units of a cell block
constexpr int kCellGroup = 4;   // cell blocks computed together
// Most batch rows per pass over a thread's weights (each pass streams W_hh
// from L2 or beyond), which large batches on few threads reach.
constexpr int kRowBlock = 128;
static_assert(kRowBlock <= kLookupRows, "lookup_onehot takes a row block at once");
constexpr int kUnitGroup = 16;  // hidden units split across threads in groups of this many
// Split by batch rows, threads take tasks of rows as they go rather than a
// fixed share each, so that a thread whose core is slower at the time (a
// busy or shared machine) takes fewer rows instead of holding up the call:
// kTasksPerMember tasks each, of kBatchChunk to kRowBlock rows. Tiny's
// batch-256 inference on 2 threads of a Zen 5 VM, a fixed half each: one
// thread waited for the other 11-26% of its time (perf, six runs); with
// 16-row tasks, 3%. Passes of 16 or 32 rows over the weights rather than 128
// were no slower on one thread (tiny, stacked, medium, chargen, large).
constexpr int kTasksPerMember = 8;
// Multiply-adds of one step below which threads do not split hidden units
// (a barrier per step). On a 2-core AVX2 machine (Zen 3, 512 KB L2) splitting
// batch-1 steps of 18k and 33k multiply-adds (stacked) was 19-27% faster and
// one of 4k (tiny) 21% slower. On a 2-core AVX-512 machine (Zen 5, 1 MB L2)
// splitting the 18k and 33k steps was 40% slower and the 82k step of medium
// 20-37% faster. The baseline build, not measured, takes the AVX2 figure.
#if defined(__AVX512F__)
constexpr double kUnitSplitWork = 50000;
#else
constexpr double kUnitSplitWork = 10000;
#endif

template <typename T>
using CellArray = Eigen::Array<T, kCellBlock, 1>;
template <typename T>
using CellMap = Eigen::Map<const CellArray<T>, Eigen::Unaligned>;
template <typename T, int Blocks>
using GroupArray = Eigen::Array<T, Blocks * kCellBlock, 1>;
template <typename T, int Blocks>
using GroupMap = Eigen::Map<const GroupArray<T, Blocks>, Eigen::Aligned64>;

// Gate activations and cell updates of inference, kCellGroup blocks of up to
// kCellBlock units at a time, from any rows. add() queues a block; flush()
// gathers the queued blocks into aligned locals (a partial block padded with
// zeros) and runs each activation over all of them back to back: one block's
// activations are long serial chains of polynomial steps, and blocks computed
// one by one left the core waiting on them (tiny inference 8% slower on a
// Zen 5 machine). Every unit of every split goes through the same packet
// instructions (whole packets of fixed-size arrays, however many blocks are
// queued), so its result does not depend on its slot, its neighbours or
// where its block starts.
template <typename T>
class CellGroup {
 public:
  // Gate q of a block's first unit is q * gate_stride after its `a`, and
  // q * bias_stride after its `bias`.
  CellGroup(std::ptrdiff_t gate_stride, std::ptrdiff_t bias_stride)
      : sa_(gate_stride), sb_(bias_stride) {}

  // Queues n <= kCellBlock units: a [4 gates] pre-activations (bias not yet
  // added), c_prev, and where c_t and h_t go (c may be c_prev). Nothing is
  // read or written before flush().
  void add(const T* a, const T* bias, const T* c_prev, T* c, T* h, int n) {
    slots_[count_] = {a, bias, c_prev, c, h, n};
    if (++count_ == kCellGroup) flush();
  }

  void flush() {
    // Only the blocks in use are computed (one row of H 32 fills two of four).
    if (count_ > 0) kCompute[count_ - 1](slots_, sa_, sb_);
    count_ = 0;
  }

 private:
  struct Slot {
    const T* a;
    const T* bias;
    const T* c_prev;
    T* c;
    T* h;
    int n;
  };

  // Each activation runs over the first `Blocks` slots in whole packets: a
  // unit's instructions are the same whatever `Blocks` is.
  template <int Blocks>
  static EIGEN_DONT_INLINE void compute(const Slot* slots, std::ptrdiff_t sa, std::ptrdiff_t sb) {
    constexpr int N = Blocks * kCellBlock;
    alignas(64) T gates[4][N];  // [i | f | g | o] of every slot, bias added
    alignas(64) T c_prev[N];
    for (int k = 0; k < Blocks; ++k) {
      const Slot& s = slots[k];
      T* dst_c = c_prev + k * kCellBlock;
      if (s.n == kCellBlock) {
        for (int q = 0; q < 4; ++q) {
          Eigen::Map<CellArray<T>, Eigen::Aligned64>(gates[q] + k * kCellBlock) =
              CellMap<T>(s.a + q * sa) + CellMap<T>(s.bias + q * sb);
        }
        Eigen::Map<CellArray<T>, Eigen::Aligned64> c_block(dst_c);
        c_block = CellMap<T>(s.c_prev);
        continue;
      }
      for (int q = 0; q < 4; ++q) {
        T* dst = gates[q] + k * kCellBlock;
        for (int u = 0; u < kCellBlock; ++u) dst[u] = u < s.n ? s.a[q * sa + u] : T(0);
        // The bias is added as a block, as for whole blocks.
        alignas(64) T bias[kCellBlock];
        for (int u = 0; u < kCellBlock; ++u) bias[u] = u < s.n ? s.bias[q * sb + u] : T(0);
        Eigen::Map<CellArray<T>, Eigen::Aligned64> block(dst);
        block += Eigen::Map<const CellArray<T>, Eigen::Aligned64>(bias);
      }
      for (int u = 0; u < kCellBlock; ++u) dst_c[u] = u < s.n ? s.c_prev[u] : T(0);
    }
    using Group = GroupArray<T, Blocks>;
    using Map = GroupMap<T, Blocks>;
    const Group i = Map(gates[0]).logistic();
    const Group f = Map(gates[1]).logistic();
    const Group g = Map(gates[2]).tanh();
    const Group o = Map(gates[3]).logistic();
    const Group cv = f * Map(c_prev) + i * g;
    const Group hv = o * cv.tanh();
    for (int k = 0; k < Blocks; ++k) {
      const Slot& s = slots[k];
      if (s.n == kCellBlock) {  // whole blocks store straight (no copy call)
        Eigen::Map<CellArray<T>, Eigen::Unaligned> c_out(s.c), h_out(s.h);
        c_out = cv.template segment<kCellBlock>(k * kCellBlock);
        h_out = hv.template segment<kCellBlock>(k * kCellBlock);
      } else {
        std::copy(cv.data() + k * kCellBlock, cv.data() + k * kCellBlock + s.n, s.c);
        std::copy(hv.data() + k * kCellBlock, hv.data() + k * kCellBlock + s.n, s.h);
      }
    }
  }

  using Compute = void (*)(const Slot*, std::ptrdiff_t, std::ptrdiff_t);
  static_assert(kCellGroup == 4, "kCompute lists compute<1> to compute<4>");
  static constexpr Compute kCompute[kCellGroup] = {compute<1>, compute<2>, compute<3>, compute<4>};

  std::ptrdiff_t sa_, sb_;
  int count_ = 0;
  Slot slots_[kCellGroup];
};

// One (layer, direction) of inference on one team member: rows [b_lo, b_hi)
// and units [u_lo, u_hi) through all steps. Pointers are at this (layer,
// direction)'s blocks.
template <typename T>
struct DirectionRun {
  int steps, F, H, D, d;
  int b_lo, b_hi, u_lo, u_hi;
  const T* in;                  // [B, T, F]
  T* out;                       // [B, T, D*H]
  const T* h0;                  // [B, H]
  const T* c0;                  // [B, H]
  T* h_n;                       // [B, H]
  T* c_n;                       // [B, H]
  const std::uint8_t* mask;     // [B, T] or null
  const T* bias;                // [G] b_ih + b_hh
  const PackedMatrix<T>* w_ih;  // ours when split by units
  const PackedMatrix<T>* w_hh;
  const T* onehot;  // [F + 1, 4 * units] x W_ih^T of one-hot x (build_onehot), or null
  T* xproj;         // [B, T, G] when the inputs are projected ahead, else null
  int ahead;        // steps projected at a time (all, or chunks that follow the input)
  T* gates;         // [B, G]
  T* cells;         // [B, H]
  // Reduced precision: W_hh in place of w_hh (null: w_hh), and where int8
  // codes of row b of h_{t-1} go (row b of `codes`).
  const ReducedMatrix* r_hh;
  CodeRows codes;
};

// C (+)= h W_hh^T with the reduced W_hh: float only (lstm_inference refuses
// reduced precision for other types).
template <typename T>
void reduced_product(int M, const T* h, std::ptrdiff_t ld_h, const ReducedMatrix& w, T* C,
                     std::ptrdiff_t ldc, bool reverse, const CodeRows& codes) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_reduced(M, h, ld_h, w, C, ldc, true, reverse, codes);
  } else {
    throw std::logic_error("reduced precision needs float parameters");
  }
}

// need_input(n) runs before the first n steps of the input (in the order of
// this direction) are read; step_done(s) once step s's h_t of our rows and
// units is written.
template <typename T, typename NeedInput, typename StepDone>
void run_direction(const DirectionRun<T>& r, NeedInput need_input, StepDone step_done) {
  const int steps = r.steps, F = r.F, H = r.H, G = 4 * H, u_lo = r.u_lo, u_hi = r.u_hi;
  const std::size_t out_row = static_cast<std::size_t>(r.D) * H;
  for (int b = r.b_lo; b < r.b_hi; ++b) {
    const std::size_t at = static_cast<std::size_t>(b) * H;
    std::copy(r.c0 + at + u_lo, r.c0 + at + u_hi, r.cells + at + u_lo);
  }
  const int first = r.d == 0 ? 0 : steps - 1;
  const int dir = r.d == 0 ? 1 : -1;
  // A row's gates are [i | f | g | o] of our units (all H when not split);
  // the bias has all H units of each gate.
  CellGroup<T> cells_of_step(u_hi - u_lo, H);
  for (int s = 0; s < steps; ++s) {
    const int t = first + dir * s;
    if (r.xproj && s % r.ahead == 0) {
      // Few rows: project r.ahead steps (of our units) at once, reading W_ih
      // once for them rather than once a step: xproj[b] = x[b] W_ih^T. Our
      // columns of xproj's rows are [i | f | g | o] of our units, at 4*u_lo
      // (all units when not split).
      const int n = std::min(r.ahead, steps - s);
      need_input(s + n);
      const std::size_t t_lo = r.d == 0 ? s : steps - s - n;
      for (int b = r.b_lo; b < r.b_hi; ++b) {
        const std::size_t row = static_cast<std::size_t>(b) * steps + t_lo;
        project_inputs(n, r.in + row * F, F, F, *r.w_ih, r.onehot, 4 * (u_hi - u_lo),
                       r.xproj + row * G + 4 * u_lo, G);
      }
    } else if (!r.xproj) {
      need_input(s + 1);
    }
    for (int r0 = r.b_lo; r0 < r.b_hi; r0 += kRowBlock) {
      const int nb = std::min(kRowBlock, r.b_hi - r0);
      const T* h_prev;
      std::ptrdiff_t ld_h;
      if (s == 0) {
        h_prev = r.h0 + static_cast<std::size_t>(r0) * H;
        ld_h = H;
      } else {
        h_prev = r.out + (static_cast<std::size_t>(r0) * steps + t - dir) * out_row + r.d * H;
        ld_h = static_cast<std::ptrdiff_t>(steps) * out_row;
      }
      const T* x_t = r.in + (static_cast<std::size_t>(r0) * steps + t) * F;
      // a [nb, G] with row stride lda_a: this step's rows of xproj or gates.
      T* a = r.xproj ? r.xproj + (static_cast<std::size_t>(r0) * steps + t) * G + 4 * u_lo
                     : r.gates + static_cast<std::size_t>(r0) * G;
      const std::ptrdiff_t lda_a = r.xproj ? static_cast<std::ptrdiff_t>(steps) * G : G;
      // a = x_t W_ih^T + h_{t-1} W_hh^T: [nb, G], each element one FMA chain
      // over x_t then h_{t-1}, whether x_t's part was projected ahead (the
      // chain goes on from it) or not (one pass over both). Every other step
      // visits the weights backwards, so that a step starts on those the
      // last one left in cache (it matters when they are larger than the
      // cache: large H, few rows).
      const bool back = s % 2 == 1;
      const std::ptrdiff_t ld_x = static_cast<std::ptrdiff_t>(steps) * F;
      if (r.r_hh) {
        // Reduced W_hh: x_t's part in fp32 (unless projected ahead or looked
        // up), then the recurrent product adds on.
        if (!r.xproj && !(r.onehot && lookup_onehot(nb, x_t, ld_x, F, r.onehot, G, a, lda_a))) {
          gemm_packed(nb, x_t, ld_x, *r.w_ih, a, lda_a, false, back);
        }
        const CodeRows codes{r.codes.codes + static_cast<std::ptrdiff_t>(r0) * r.codes.ld,
                             r.codes.ld, r.codes.scale + r0, r.codes.zero + r0};
        reduced_product(nb, h_prev, ld_h, *r.r_hh, a, lda_a, back, codes);
      } else if (r.xproj || (r.onehot && lookup_onehot(nb, x_t, ld_x, F, r.onehot, G, a, lda_a))) {
        gemm_packed(nb, h_prev, ld_h, *r.w_hh, a, lda_a, true, back);
      } else {  // never when split by units
        gemm_packed2(nb, x_t, ld_x, *r.w_ih, h_prev, ld_h, *r.w_hh, a, lda_a, false, back);
      }
      for (int i = 0; i < nb; ++i) {
        const int b = r0 + i;
        const std::size_t bt = static_cast<std::size_t>(b) * steps + t;
        T* h = r.out + bt * out_row + r.d * H;
        T* c = r.cells + static_cast<std::size_t>(b) * H;
        if (r.mask && !r.mask[bt]) {  // carry the state: c unchanged, h repeated
          const T* hp = h_prev + i * ld_h;
          std::copy(hp + u_lo, hp + u_hi, h + u_lo);
          continue;
        }
        const T* a_row = a + i * lda_a;
        for (int u = u_lo; u < u_hi; u += kCellBlock) {
          cells_of_step.add(a_row + (u - u_lo), r.bias + u, c + u, c + u, h + u,
                            std::min(kCellBlock, u_hi - u));
        }
      }
    }
    cells_of_step.flush();
    step_done(s);
  }
  const int last = first + dir * (steps - 1);
  for (int b = r.b_lo; b < r.b_hi; ++b) {
    const std::size_t bt = static_cast<std::size_t>(b) * steps + last;
    const std::size_t at = static_cast<std::size_t>(b) * H;
    const T* h = r.out + bt * out_row + r.d * H;
    std::copy(h + u_lo, h + u_hi, r.h_n + at + u_lo);
    std::copy(r.cells + at + u_lo, r.cells + at + u_hi, r.c_n + at + u_lo);
  }
}

// Steps of its input a pipelined stage projects at once (one row tile of the
// packed kernel on AVX-512). Projecting step by step reads W_ih at every step
// as well as W_hh: the stacked workload's one-sample engine call took a
// median 107-116 us that way against 89-110 us in alternating runs on a Zen 4
// machine. Waiting for all of the input would not be a pipeline.
constexpr int kPipelineAhead = 8;

// How lstm_inference divides a call among threads: the batch in chunks when
// there are enough, else the hidden units (in groups of kUnitGroup, every
// gate); the split only decides who computes what.
struct InferenceSplit {
  int chunks;       // batch chunks
  int unit_groups;  // groups of kUnitGroup hidden units
  bool split_units;
  int team_max;  // members that have work
};
InferenceSplit inference_split(const LstmSpec& spec, int B, int n_threads) {
  const int H = spec.hidden_size;
  const int chunks = chunk_count(B);
  const int unit_groups = (H + kUnitGroup - 1) / kUnitGroup;
  // Splitting units costs a barrier per step: only worth it when a step has
  // enough work (large H), else the few rows run on fewer threads.
  const double step_work = 4.0 * H * (spec.layer_input_size(0) + H) * B;
  const bool split_units =
      chunks < resolve_threads(n_threads) && unit_groups > 1 && step_work >= kUnitSplitWork;
  return {chunks, unit_groups, split_units, split_units ? unit_groups : chunks};
}

// Sizes `ws` for a call with `mats` packed matrices per (layer, direction)
// (one with all G columns unless split by units) and sums the biases: all
// that may allocate, before any team starts.
template <typename T>
void prepare_inference(const LstmSpec& spec, T* params, int B, int steps, bool split_units,
                       int mats, bool project_ahead, LstmInference<T>& ws, Precision precision) {
  const int L = spec.num_layers, D = spec.directions(), H = spec.hidden_size, G = 4 * H;
  const std::size_t BT = static_cast<std::size_t>(B) * steps;
  const bool reduced = precision != Precision::Full;
  ws.w_ih.resize(static_cast<std::size_t>(L) * D * mats);
  ws.w_hh.resize(static_cast<std::size_t>(L) * D * mats);
  ws.r_hh.resize(reduced ? static_cast<std::size_t>(L) * D * mats : 0);
  if (precision == Precision::Int8) {
    // Codes of h_{t-1}: rows [members, B], each member its own.
    const std::size_t rows = static_cast<std::size_t>(mats) * B;
    grow(ws.codes, rows * quantized_depth(H));
    grow(ws.code_scale, rows);
    grow(ws.code_zero, rows);
  }
  ws.bias_sum.resize(static_cast<std::size_t>(L) * D);
  ws.outputs.resize(L > 1 ? L - 1 : 0);
  for (auto& o : ws.outputs) grow(o, BT * D * H);
  grow(ws.gates, static_cast<std::size_t>(B) * G);
  grow(ws.cells, static_cast<std::size_t>(B) * H);
  if (project_ahead) grow(ws.xproj, BT * G);
  ws.onehot.resize(static_cast<std::size_t>(D) * mats);
  for (int l = 0; l < L; ++l) {
    for (int d = 0; d < D; ++d) {
      const int ld = l * D + d;
      const Block<T> p = block(spec, params, l, d);
      grow(ws.bias_sum[ld], static_cast<std::size_t>(G));
      Vec<T>(ws.bias_sum[ld].data(), G) = ConstVec<T>(p.b_ih, G) + ConstVec<T>(p.b_hh, G);
      if (!split_units) {
        pack_matrix_resize(spec.layer_input_size(l), G, ws.w_ih[ld]);
        if (reduced) {
          reduced_resize(precision, H, G, ws.r_hh[ld]);
        } else {
          pack_matrix_resize(H, G, ws.w_hh[ld]);
        }
      }
    }
  }
}

// Whether the packs of `ws` hold `params` for this split and team size.
template <typename T>
bool packs_hold(const LstmInference<T>& ws, const T* params, bool split_units, int team,
                bool params_unchanged, Precision precision) {
  return params_unchanged && ws.packed_params == params && ws.packed_split == split_units &&
         ws.packed_team == team && ws.packed_precision == precision;
}

// Whether the one-hot tables hold the packed parameters: built in this call,
// or built before with the packs that this call reuses.
template <typename T>
bool onehot_tables_ready(const LstmInference<T>& ws, bool packs_reused, bool onehot_built) {
  return onehot_built || (packs_reused && ws.onehot_ready);
}

// Records what the packs hold, and whether the one-hot tables do; returns
// the latter.
template <typename T>
bool record_packs(LstmInference<T>& ws, const T* params, bool split_units, int team,
                  bool packs_reused, bool onehot_built, Precision precision) {
  ws.packed_params = params;
  ws.packed_split = split_units;
  ws.packed_team = team;
  ws.packed_precision = precision;
  return ws.onehot_ready = onehot_tables_ready(ws, packs_reused, onehot_built);
}

// Whether this call builds the one-hot tables: when they may be used and are
// not ready. Call before record_packs(); every member of a team decides alike.
template <typename T>
bool onehot_to_build(const LstmInference<T>& ws, bool candidate, bool packs_reused) {
  return candidate && !onehot_tables_ready(ws, packs_reused, false);
}

// Table `mat` of layer 0 when `lookup` (tables ready and x a candidate) and
// its weights are finite, else null.
template <typename T>
const T* onehot_table(const LstmInference<T>& ws, bool lookup, std::size_t mat) {
  return lookup && !ws.onehot[mat].empty() ? ws.onehot[mat].data() : nullptr;
}

// The reduced copy of rows [0, 4 * units) of W_hh [rows, H] read through
// `rows` (one pointer per gate row; float only).
template <typename T>
void pack_reduced(const T* const* rows, int H, int n, Precision precision, ReducedMatrix& out,
                  bool resize, int rank, int size) {
  if constexpr (std::is_same_v<T, float>) {
    if (resize) reduced_resize(precision, H, n, out);
    const int lo = out.panels * rank / size, hi = out.panels * (rank + 1) / size;
    pack_reduced_panels(rows, lo, hi, out);
  } else {
    (void)rows, (void)H, (void)n, (void)precision, (void)out, (void)resize, (void)rank, (void)size;
    throw std::logic_error("reduced precision needs float parameters");
  }
}

// Member `rank` of `size` packs its share of the panels of every (layer,
// direction)'s W_ih and W_hh, all G columns together (not split by units).
template <typename T>
void pack_panel_share(const LstmSpec& spec, T* params, LstmInference<T>& ws, int rank, int size,
                      Precision precision) {
  const int D = spec.directions(), H = spec.hidden_size;
  const int panels = (4 * H + packed_panel_width<T>() - 1) / packed_panel_width<T>();
  const int lo = panels * rank / size, hi = panels * (rank + 1) / size;
  std::vector<const T*> rows(precision != Precision::Full ? 4 * H : 0);
  for (int l = 0; l < spec.num_layers; ++l) {
    for (int d = 0; d < D; ++d) {
      const Block<T> p = block(spec, params, l, d);
      const int ld = l * D + d;
      pack_matrix_panels(static_cast<const T*>(p.w_ih), spec.layer_input_size(l), true, lo, hi,
                         ws.w_ih[ld]);
      if (precision == Precision::Full) {
        pack_matrix_panels(static_cast<const T*>(p.w_hh), H, true, lo, hi, ws.w_hh[ld]);
        continue;
      }
      for (int j = 0; j < 4 * H; ++j) rows[j] = p.w_hh + static_cast<std::size_t>(j) * H;
      pack_reduced(rows.data(), H, 4 * H, precision, ws.r_hh[ld], false, rank, size);
    }
  }
}

// Refuses a reduced precision for parameters other than float.
template <typename T>
void check_precision(Precision precision) {
  if (precision != Precision::Full && !std::is_same_v<T, float>) {
    throw std::invalid_argument(std::string("inference precision '") + precision_name(precision) +
                                "' needs float32 parameters");
  }
}

// Where member `member` keeps the int8 codes of h_{t-1} (row b at b).
template <typename T>
CodeRows member_codes(LstmInference<T>& ws, Precision precision, int B, int H, int member) {
  if (precision != Precision::Int8) return {nullptr, 0, nullptr, nullptr};
  const std::ptrdiff_t depth = quantized_depth(H), rows = static_cast<std::ptrdiff_t>(member) * B;
  return {ws.codes.data() + rows * depth, depth, ws.code_scale.data() + rows,
          ws.code_zero.data() + rows};
}

}  // namespace

template <typename T>
void lstm_inference(const LstmSpec& spec, const T* params, int B, int steps, const T* x,
                    const T* h0, const T* c0, const std::uint8_t* mask, T* y, T* h_n, T* c_n,
                    LstmInference<T>& ws, int n_threads, bool params_unchanged,
                    Precision precision) {
  spec.validate();
  if (B < 1 || steps < 1) throw std::invalid_argument("LSTM forward needs B >= 1 and T >= 1");
  check_rows("LSTM forward", B, steps);
  check_precision<T>(precision);
  const bool reduced = precision != Precision::Full;
  const int L = spec.num_layers, D = spec.directions(), H = spec.hidden_size;
  T* params_mut = const_cast<T*>(params);  // Block<T> views are read-only here

  const InferenceSplit split = inference_split(spec, B, n_threads);
  const int unit_groups = split.unit_groups;
  const bool split_units = split.split_units;
  const int team_max = split.team_max;
  // The team has at most this many.
  const int team_cap = std::min(team_max, resolve_threads(n_threads));
  // Split by units, each member packs the rows of its own units of all four
  // gates into one matrix, [i | f | g | o] of its units (as many columns for
  // every member, whatever H); else all G columns are packed together,
  // shared by all. Either way every element is the same FMA chain, so the
  // same bits.
  const int mats = split_units ? team_cap : 1;  // packed matrices per (layer, direction)
  // With one or two rows a step's input projection is a matrix-vector
  // product; projecting all steps up front runs it as one product instead.
  const bool project_ahead = split_units || B <= 2;
  prepare_inference(spec, params_mut, B, steps, split_units, mats, project_ahead, ws, precision);
  const bool onehot = onehot_candidate(spec, x);

  // Rows [r_lo, r_hi) and units [u_lo, u_hi) through every layer, with the
  // packs of member `member` (0 when shared); step_done() after each step.
  // `lookup`: one-hot rows of x may be looked up.
  auto run_rows = [&](int r_lo, int r_hi, int u_lo, int u_hi, int member, bool lookup,
                      auto step_done) {
    for (int l = 0; l < L; ++l) {
      for (int d = 0; d < D; ++d) {
        const int ld = l * D + d;
        const std::size_t state = static_cast<std::size_t>(ld) * B * H;
        const std::size_t mat = static_cast<std::size_t>(ld) * mats + member;
        const DirectionRun<T> run{steps,
                                  spec.layer_input_size(l),
                                  H,
                                  D,
                                  d,
                                  r_lo,
                                  r_hi,
                                  u_lo,
                                  u_hi,
                                  l == 0 ? x : ws.outputs[l - 1].data(),
                                  l == L - 1 ? y : ws.outputs[l].data(),
                                  h0 + state,
                                  c0 + state,
                                  h_n + state,
                                  c_n + state,
                                  mask,
                                  ws.bias_sum[ld].data(),
                                  &ws.w_ih[mat],
                                  &ws.w_hh[mat],
                                  onehot_table(ws, lookup && l == 0, mat),
                                  project_ahead ? ws.xproj.data() : nullptr,
                                  steps,
                                  ws.gates.data(),
                                  ws.cells.data(),
                                  reduced ? &ws.r_hh[mat] : nullptr,
                                  member_codes(ws, precision, B, H, member)};
        run_direction(run, [](int) {}, step_done);
      }
    }
  };

  if (!split_units) {
    // Shared packs (as lstm_inference_stack records them), then the rows in
    // tasks that threads take as they go.
    const bool reused = packs_hold(ws, params, false, 1, params_unchanged, precision);
    if (!reused) {
      parallel_for(team_cap, n_threads, [&](std::size_t k) {
        pack_panel_share(spec, params_mut, ws, static_cast<int>(k), team_cap, precision);
      });
    }
    const bool build = onehot_to_build(ws, onehot, reused);
    for (int d = 0; d < D && build; ++d) {
      build_onehot(block(spec, params_mut, 0, d).w_ih, spec.input_size, H, 0, H, ws.onehot[d]);
    }
    const bool lookup = record_packs(ws, params, false, 1, reused, build, precision) && onehot;
    const int task_rows = std::clamp(B / (kTasksPerMember * team_cap) / kBatchChunk * kBatchChunk,
                                     kBatchChunk, kRowBlock);
    parallel_for((B + task_rows - 1) / task_rows, n_threads, [&](std::size_t task) {
      const int r_lo = static_cast<int>(task) * task_rows;
      run_rows(r_lo, std::min(B, r_lo + task_rows), 0, H, 0, lookup, [](int) {});
    });
    return;
  }

  ThreadPool::instance().run_team(
      team_max, n_threads, [&](int rank, int size, SpinBarrier& barrier) {
        const int u_lo = std::min(H, unit_groups * rank / size * kUnitGroup);
        const int u_hi = std::min(H, unit_groups * (rank + 1) / size * kUnitGroup);
        const int u_n = u_hi - u_lo;
        // Every member decides alike, before the barrier after which rank 0
        // records what the packs now hold. Each member packs its units' rows
        // of all four gates, [i | f | g | o].
        const bool reuse = packs_hold(ws, params, true, size, params_unchanged, precision);
        const bool build = onehot_to_build(ws, onehot, reuse);
        const bool lookup = onehot && onehot_tables_ready(ws, reuse, build);
        std::vector<const T*> rows(reuse ? 0 : 4 * u_n);
        auto gather_ours = [&](const T* w, int K) {
          for (int q = 0; q < 4; ++q) {
            for (int u = 0; u < u_n; ++u) {
              rows[q * u_n + u] = w + (static_cast<std::size_t>(q) * H + u_lo + u) * K;
            }
          }
          return rows.data();
        };
        for (int l = 0; l < L && !reuse && u_n > 0; ++l) {
          for (int d = 0; d < D; ++d) {
            const Block<T> p = block(spec, params_mut, l, d);
            const std::size_t mat = static_cast<std::size_t>(l * D + d) * mats + rank;
            const int F = spec.layer_input_size(l);
            pack_matrix_rows(gather_ours(p.w_ih, F), F, 4 * u_n, ws.w_ih[mat]);
            if (reduced) {
              pack_reduced(gather_ours(p.w_hh, H), H, 4 * u_n, precision, ws.r_hh[mat], true, 0, 1);
            } else {
              pack_matrix_rows(gather_ours(p.w_hh, H), H, 4 * u_n, ws.w_hh[mat]);
            }
          }
        }
        for (int d = 0; d < D && build && u_n > 0; ++d) {
          build_onehot(block(spec, params_mut, 0, d).w_ih, spec.input_size, H, u_lo, u_hi,
                       ws.onehot[static_cast<std::size_t>(d) * mats + rank]);
        }
        if (size > 1) barrier.wait();
        if (rank == 0) record_packs(ws, params, true, size, reuse, build, precision);
        if (u_n <= 0) return;  // no units of ours (never with a barrier below)
        // The next step reads all units of h_t.
        run_rows(0, B, u_lo, u_hi, rank, lookup, [&](int) {
          if (size > 1) barrier.wait();
        });
      });
}

template <typename T>
void lstm_inference_stack(const InferenceStage<T>* stages, int count, int B, int steps, const T* x,
                          const T* h0, const T* c0, const std::uint8_t* mask, int n_threads,
                          bool params_unchanged, Precision precision) {
  if (B < 1 || steps < 1) throw std::invalid_argument("LSTM forward needs B >= 1 and T >= 1");
  check_rows("LSTM forward", B, steps);
  check_precision<T>(precision);
  // A pipeline only when every stage would run on one thread anyway, a
  // second thread is free and the sequences are long enough for the stages
  // to overlap; otherwise each stage runs on its own, using all threads.
  bool pipeline = count > 1 && resolve_threads(n_threads) > 1 && steps > kPipelineAhead;
  for (int i = 0; i < count; ++i) {
    const LstmSpec& spec = *stages[i].spec;
    spec.validate();
    if (spec.num_layers != 1 || spec.directions() != 1) {
      throw std::invalid_argument("LSTM stack: every stage must be one layer in one direction");
    }
    if (i > 0 && spec.input_size != stages[i - 1].spec->hidden_size) {
      throw std::invalid_argument(
          "LSTM stack: stage " + std::to_string(i) + " reads " + std::to_string(spec.input_size) +
          " features, the stage below gives " + std::to_string(stages[i - 1].spec->hidden_size));
    }
    pipeline = pipeline && inference_split(spec, B, n_threads).team_max == 1;
  }
  if (!pipeline) {
    for (int i = 0; i < count; ++i) {
      const InferenceStage<T>& st = stages[i];
      lstm_inference<T>(*st.spec, st.params, B, steps, i == 0 ? x : stages[i - 1].y, h0, c0, mask,
                        st.y, st.h_n, st.c_n, *st.ws, n_threads, params_unchanged, precision);
    }
    return;
  }
  // The stages are dealt round the members from the top one down, and each
  // member runs its stages in order, a stage's step s once the stage below
  // has published its step s: the lowest unfinished stage never waits, so
  // the pipeline cannot deadlock. Every element is computed as lstm_inference
  // computes it on one thread (the projection chain of x goes on into W_hh's
  // whether x was projected ahead, in chunks or not at all), so the results
  // are the same bits.
  for (int i = 0; i < count; ++i) {  // as lstm_inference on one thread, upper stages in chunks
    prepare_inference(*stages[i].spec, const_cast<T*>(stages[i].params), B, steps, false, 1, B <= 2,
                      *stages[i].ws, precision);
  }
  struct alignas(64) StageProgress {
    Progress steps;  // steps of the stage whose output is written
  };
  std::vector<StageProgress> progress(static_cast<std::size_t>(count));
  // The caller takes the top stage, which finishes last: were it to finish
  // first, it would wait for the team's end long enough to fall asleep, and
  // waking a sleeping thread costs more than the whole call (in a 2-core VM,
  // 44% of the stacked workload's one-sample engine calls took over 200 us,
  // up to 400; medians of 86-90 us once the caller took the top stage).
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> next_slot{1};
  ThreadPool::instance().run_team(count, n_threads, [&](int, int size, SpinBarrier& barrier) {
    // Once all have arrived, each member is a thread of its own (a member
    // that did not wait could finish and take a second member's place).
    if (size > 1) barrier.wait();
    const int slot = std::this_thread::get_id() == caller ? 0 : next_slot.fetch_add(1);
    for (int i = 0; i < count; ++i) {
      if ((count - 1 - i) % size != slot) continue;
      const InferenceStage<T>& st = stages[i];
      const LstmSpec& spec = *st.spec;
      LstmInference<T>& ws = *st.ws;
      // Packed and recorded as lstm_inference does on one thread.
      const bool reused = packs_hold(ws, st.params, false, 1, params_unchanged, precision);
      if (!reused) pack_panel_share(spec, const_cast<T*>(st.params), ws, 0, 1, precision);
      // The first stage looks up one-hot rows of x as lstm_inference does.
      const bool onehot = i == 0 && onehot_candidate(spec, x);
      const bool build = onehot_to_build(ws, onehot, reused);
      if (build) {
        build_onehot(block(spec, const_cast<T*>(st.params), 0, 0).w_ih, spec.input_size,
                     spec.hidden_size, 0, spec.hidden_size, ws.onehot[0]);
      }
      const bool lookup = record_packs(ws, st.params, false, 1, reused, build, precision) && onehot;
      const DirectionRun<T> run{steps,
                                spec.input_size,
                                spec.hidden_size,
                                1,
                                0,
                                0,
                                B,
                                0,
                                spec.hidden_size,
                                i == 0 ? x : stages[i - 1].y,
                                st.y,
                                h0,
                                c0,
                                st.h_n,
                                st.c_n,
                                mask,
                                ws.bias_sum[0].data(),
                                &ws.w_ih[0],
                                &ws.w_hh[0],
                                onehot_table(ws, lookup, 0),
                                B <= 2 ? ws.xproj.data() : nullptr,
                                i == 0 ? steps : kPipelineAhead,
                                ws.gates.data(),
                                ws.cells.data(),
                                precision != Precision::Full ? &ws.r_hh[0] : nullptr,
                                member_codes(ws, precision, B, spec.hidden_size, 0)};
      run_direction(
          run,
          [&](int n) {
            if (i > 0) progress[i - 1].steps.wait_at_least(n);
          },
          [&](int s) { progress[i].steps.publish(s + 1); });
    }
  });
}

template <typename T>
void lstm_backward(const LstmSpec& spec, const T* params, LstmCache<T>& cache, const T* dy,
                   const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dparams, int n_threads) {
  if (!cache.ready) throw std::logic_error("LSTM backward called before forward");
  const int L = spec.num_layers, D = spec.directions(), H = spec.hidden_size, G = 4 * H;
  const int B = cache.batch, steps = cache.steps;
  const std::size_t BT = static_cast<std::size_t>(B) * steps;
  const int chunks = chunk_count(B);
  const int groups = group_count(chunks, D, n_threads);
  const int gate_rows = gate_block(G);
  const int gate_blocks = (G + gate_rows - 1) / gate_rows;
  const std::uint8_t* m = cache.has_mask ? cache.mask.data() : nullptr;
  const T* rmask = cache.has_recurrent_mask ? cache.recurrent_mask.data() : nullptr;
  T* params_mut = const_cast<T*>(params);

  cache.dgates.resize(D);
  cache.packed_w_hh_t.resize(L * D);
  cache.dh.resize(D);
  cache.dh_next.resize(D);
  cache.dc.resize(D);
  for (int d = 0; d < D; ++d) {
    grow(cache.dgates[d], BT * G);
    grow(cache.dh[d], static_cast<std::size_t>(B) * H);
    grow(cache.dh_next[d], static_cast<std::size_t>(B) * H);
    grow(cache.dc[d], static_cast<std::size_t>(B) * H);
  }
  if (L > 1) {
    grow(cache.dinput_a, BT * D * H);
    grow(cache.dinput_b, BT * D * H);
  }

  const T* dout = dy;  // gradient of this layer's output [B, T, D*H]
  for (int l = L - 1; l >= 0; --l) {
    const int F = spec.layer_input_size(l);
    T* din = l == 0 ? dx : ((L - 1 - l) % 2 == 0 ? cache.dinput_a : cache.dinput_b).data();

    for (int d = 0; d < D; ++d) {
      // B = W_hh [G, H] for dh_{t-1} = da_t W_hh, packed once for all steps.
      const Block<T> p = block(spec, params_mut, l, d);
      pack_parallel(static_cast<const T*>(p.w_hh), G, H, H, false, cache.packed_w_hh_t[l * D + d],
                    n_threads);
    }

    // Time loop, backwards: fills dgates and the state gradients.
    parallel_for(static_cast<std::size_t>(D) * groups, n_threads, [&](std::size_t task) {
      const GroupTask g = group_task(task, groups, B, chunks);
      const int d = g.d, b0 = g.b0, nb = g.nb;
      if (nb <= 0) return;
      const int ld = l * D + d;
      const T* act = cache.gates[ld].data();                          // [B, T, G]
      const T* cells = cache.cells[ld].data();                        // [B, T, H]
      T* da = cache.dgates[d].data();                                 // [B, T, G]
      T* dh = cache.dh[d].data() + static_cast<std::size_t>(b0) * H;  // [nb, H]
      T* dh_next = cache.dh_next[d].data() + static_cast<std::size_t>(b0) * H;
      T* dc = cache.dc[d].data() + static_cast<std::size_t>(b0) * H;  // [nb, H]
      const std::size_t state0 = (static_cast<std::size_t>(ld) * B + b0) * H;
      const std::size_t n_state = static_cast<std::size_t>(nb) * H;
      if (dh_n)
        copy_row(dh, dh_n + state0, n_state);
      else
        std::fill(dh, dh + n_state, T(0));
      if (dc_n)
        copy_row(dc, dc_n + state0, n_state);
      else
        std::fill(dc, dc + n_state, T(0));

      const std::size_t row0 = static_cast<std::size_t>(b0) * steps;
      const int first = d == 0 ? 0 : steps - 1;
      const int dir = d == 0 ? 1 : -1;
      const PackedMatrix<T>& W_hh = cache.packed_w_hh_t[ld];
      const bool prefetch = prefetch_step_ahead<T>(nb, 2 * G + 2 * H);
      for (int s = steps - 1; s >= 0; --s) {
        const int t = first + dir * s;
        for (int r = 0; r < nb; ++r) {
          const std::size_t bt = (row0 + static_cast<std::size_t>(r) * steps) + t;
          T* dh_r = dh + static_cast<std::size_t>(r) * H;
          if (prefetch && s > 0) {
            // This row's next step (t - dir), a whole step from now.
            const std::size_t bn = bt - dir;
            prefetch_l2(act + bn * G, G);
            prefetch_l2(da + bn * G, G);
            if (s > 1) prefetch_l2(cells + (bn - dir) * H, H);
            if (dout) prefetch_l2(dout + bn * D * H + d * H, H);
          }
          // h_t feeds the output y_t as well as step t+1.
          if (dout) Vec<T>(dh_r, H) += ConstVec<T>(dout + bt * D * H + d * H, H);
          if (m && !m[bt]) {
            std::fill(da + bt * G, da + (bt + 1) * G, T(0));
          } else {
            const T* c_prev = s == 0 ? cache.c0.data() + state0 + static_cast<std::size_t>(r) * H
                                     : cells + (bt - dir) * H;
            cell_backward(act + bt * G, cells + bt * H, c_prev, dh_r,
                          dc + static_cast<std::size_t>(r) * H, da + bt * G, H);
          }
        }
        // a_t = ... + W_hh h_{t-1}  =>  dh_{t-1} = da_t W_hh: [nb, G] x [G, H].
        for (int r0 = 0; r0 < nb; r0 += kGroupRows) {
          const std::size_t at = row0 + static_cast<std::size_t>(r0) * steps + t;
          gemm_packed(std::min(kGroupRows, nb - r0), static_cast<const T*>(da + at * G),
                      static_cast<std::ptrdiff_t>(steps) * G, W_hh,
                      dh_next + static_cast<std::size_t>(r0) * H, H, false, s % 2 == 1);
        }
        for (int r = 0; r < nb; ++r) {
          const std::size_t bt = (row0 + static_cast<std::size_t>(r) * steps) + t;
          T* dst = dh_next + r * H;
          if (m && !m[bt]) {
            // A masked step carried h_{t-1} through unchanged.
            copy_row(dst, static_cast<const T*>(dh + r * H), H);
          } else if (rmask) {
            // The GEMM read h_{t-1} * recurrent dropout mask.
            Vec<T>(dst, H) *= ConstVec<T>(rmask + state0 + static_cast<std::size_t>(r) * H, H);
          }
        }
        std::swap(dh, dh_next);
      }
      copy_row(dh0 + state0, static_cast<const T*>(dh), n_state);
      copy_row(dc0 + state0, static_cast<const T*>(dc), n_state);
    });

    // Input gradient per batch chunk, weight gradients per block of gate rows.
    const std::size_t weight_tasks = static_cast<std::size_t>(D) * gate_blocks;
    cache.weight_scratch.resize(std::max(cache.weight_scratch.size(), weight_tasks));
    for (std::size_t k = 0; k < weight_tasks; ++k) {
      grow(cache.weight_scratch[k], static_cast<std::size_t>(gate_rows) * (F + H));
    }
    // No input gradient when the caller needs none (dx null, first layer).
    const int dx_tasks = din ? chunks : 0;
    parallel_for(dx_tasks + weight_tasks, n_threads, [&](std::size_t task) {
      if (task < static_cast<std::size_t>(dx_tasks)) {
        const int b0 = static_cast<int>(task) * kBatchChunk;
        const int nb = std::min(kBatchChunk, B - b0);
        const std::size_t row0 = static_cast<std::size_t>(b0) * steps;
        auto dX = mat(din + row0 * F, nb * steps, F, F);
        for (int d = 0; d < D; ++d) {
          // a = W_ih x + ...  =>  dx = da W_ih: [nb*T, G] x [G, F].
          const Block<T> p = block(spec, params_mut, l, d);
          const auto dA =
              mat(static_cast<const T*>(cache.dgates[d].data() + row0 * G), nb * steps, G, G);
          const auto W_ih = mat(static_cast<const T*>(p.w_ih), G, F, F);
          if (d == 0)
            dX.noalias() = dA * W_ih;
          else
            dX.noalias() += dA * W_ih;
        }
        return;
      }
      const std::size_t k = task - dx_tasks;
      const int d = static_cast<int>(k) / gate_blocks;
      const int g0 = (static_cast<int>(k) % gate_blocks) * gate_rows;
      const int ng = std::min(gate_rows, G - g0);
      const int ld = l * D + d;
      const Block<T> grad = block(spec, dparams, l, d);
      const auto dA = mat(static_cast<const T*>(cache.dgates[d].data()), BT, G, G)
                          .middleCols(g0, ng);  // [B*T, ng]
      // [dW_ih | dW_hh] = da^T [x | h_{t-1}] in one product (dA packed once),
      // db = sum of da over B*T. Column-major: Eigen then packs the large dA
      // along its contiguous gate axis, and only [x | h_{t-1}] across rows.
      const int FH = F + H;
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>> tmp(
          cache.weight_scratch[k].data(), ng, FH);
      tmp.noalias() =
          dA.transpose() * mat(static_cast<const T*>(cache.prev_hidden[ld].data()), BT, FH, FH);
      mat(grad.w_ih + static_cast<std::size_t>(g0) * F, ng, F, F) = tmp.leftCols(F);
      mat(grad.w_hh + static_cast<std::size_t>(g0) * H, ng, H, H) = tmp.rightCols(H);
      // db: the rows of dA summed in order (a column at a time would read
      // them strided).
      Vec<T> db(grad.b_ih + g0, ng);
      db.setZero();
      const T* da_rows = cache.dgates[d].data() + g0;
      for (std::size_t r = 0; r < BT; ++r) db += ConstVec<T>(da_rows + r * G, ng);
      copy_row(grad.b_hh + g0, static_cast<const T*>(grad.b_ih + g0), ng);
    });
    dout = din;
  }
}

namespace {

// Sizes the int8 codes of each part's h_{t-1} rows for S streams.
template <typename T>
void size_stream_codes(typename LstmStream<T>::Layer& layer, Precision precision, int S) {
  if (precision != Precision::Int8) return;
  const std::size_t rows = layer.w.size() * static_cast<std::size_t>(S);
  grow(layer.codes, rows * quantized_depth(layer.H));
  grow(layer.code_scale, rows);
  grow(layer.code_zero, rows);
}

}  // namespace

template <typename T>
void lstm_stream_pack(const LstmSpec* specs, const T* const* params, int count, int parts,
                      LstmStream<T>& stream, Precision precision) {
  check_precision<T>(precision);
  const bool reduced = precision != Precision::Full;
  stream.layers.resize(count);
  stream.parts = std::max(1, parts);
  stream.precision = precision;
  for (int l = 0; l < count; ++l) {
    const LstmSpec& spec = specs[l];
    spec.validate();
    if (spec.num_layers != 1 || spec.directions() != 1) {
      throw std::invalid_argument("LSTM stream: every layer must be one layer in one direction");
    }
    if (l > 0 && spec.input_size != specs[l - 1].hidden_size) {
      throw std::invalid_argument("LSTM stream: layer " + std::to_string(l) +
                                  " does not read the layer below's output");
    }
    typename LstmStream<T>::Layer& layer = stream.layers[l];
    const int F = spec.input_size, H = spec.hidden_size, G = 4 * H, K = F + H;
    if (layer.F != F || layer.H != H) {  // a new shape: its state starts at zero
      layer.F = F;
      layer.H = H;
      const std::size_t S = stream.streams;
      for (AlignedVector<T>& xh : layer.xh) xh.assign(S * K, T(0));
      layer.c.assign(S * H, T(0));
    }
    const Block<T> p = block(spec, const_cast<T*>(params[l]), 0, 0);
    layer.bias.resize(G);
    Vec<T>(layer.bias.data(), G) = ConstVec<T>(p.b_ih, G) + ConstVec<T>(p.b_hh, G);
    // Part k: whole groups of kUnitGroup units; its gate rows [i | f | g | o]
    // of its units, each row [W_ih | W_hh].
    const int groups = (H + kUnitGroup - 1) / kUnitGroup;
    const int n_parts = std::min(stream.parts, groups);
    layer.units.resize(n_parts + 1);
    layer.w.resize(n_parts);
    layer.r.resize(reduced ? n_parts : 0);
    for (int k = 0; k <= n_parts; ++k) {
      layer.units[k] = std::min(H, groups * k / n_parts * kUnitGroup);
    }
    AlignedVector<T> rows;
    std::vector<const T*> hh_rows;
    for (int k = 0; k < n_parts; ++k) {
      const int u0 = layer.units[k], n = layer.units[k + 1] - u0;
      if (reduced) {
        // x_t's rows in T as before, h_{t-1}'s reduced.
        rows.resize(static_cast<std::size_t>(4) * n * F);
        hh_rows.resize(static_cast<std::size_t>(4) * n);
        for (int q = 0; q < 4; ++q) {
          for (int u = 0; u < n; ++u) {
            const std::size_t j = static_cast<std::size_t>(q) * H + u0 + u;
            std::copy_n(p.w_ih + j * F, F, rows.data() + static_cast<std::size_t>(q * n + u) * F);
            hh_rows[q * n + u] = p.w_hh + j * H;
          }
        }
        pack_matrix(static_cast<const T*>(rows.data()), F, 4 * n, F, true, layer.w[k]);
        pack_reduced(hh_rows.data(), H, 4 * n, precision, layer.r[k], true, 0, 1);
        continue;
      }
      rows.resize(static_cast<std::size_t>(4) * n * K);
      for (int q = 0; q < 4; ++q) {
        for (int u = 0; u < n; ++u) {
          const std::size_t j = static_cast<std::size_t>(q) * H + u0 + u;
          T* row = rows.data() + static_cast<std::size_t>(q * n + u) * K;
          std::copy_n(p.w_ih + j * F, F, row);
          std::copy_n(p.w_hh + j * H, H, row + F);
        }
      }
      pack_matrix(static_cast<const T*>(rows.data()), K, 4 * n, K, true, layer.w[k]);
    }
    layer.gates.resize(static_cast<std::size_t>(stream.streams) * G);
    size_stream_codes<T>(layer, precision, stream.streams);
  }
}

template <typename T>
void lstm_stream_resize(LstmStream<T>& stream, int streams) {
  if (streams < 1) throw std::invalid_argument("the number of streams must be positive");
  const std::size_t kept = std::min(streams, stream.streams), S = streams;
  for (typename LstmStream<T>::Layer& layer : stream.layers) {
    const std::size_t K = static_cast<std::size_t>(layer.F) + layer.H, H = layer.H;
    for (AlignedVector<T>& xh : layer.xh) {
      AlignedVector<T> next(S * K, T(0));
      std::copy_n(xh.begin(), kept * K, next.begin());
      xh = std::move(next);
    }
    AlignedVector<T> c(S * H, T(0));
    std::copy_n(layer.c.begin(), kept * H, c.begin());
    layer.c = std::move(c);
    layer.gates.resize(S * 4 * H);
    size_stream_codes<T>(layer, stream.precision, streams);
  }
  stream.streams = streams;
}

template <typename T>
void lstm_stream_reset(LstmStream<T>& stream, int i) {
  if (i >= stream.streams) throw std::out_of_range("no such stream");
  const std::size_t lo = i < 0 ? 0 : i, hi = i < 0 ? stream.streams : lo + 1;
  for (typename LstmStream<T>::Layer& layer : stream.layers) {
    const std::size_t K = static_cast<std::size_t>(layer.F) + layer.H, H = layer.H;
    for (std::size_t r = lo; r < hi; ++r) {
      std::fill_n(layer.xh[stream.current].begin() + r * K + layer.F, H, T(0));
      std::fill_n(layer.c.begin() + r * H, H, T(0));
    }
  }
}

namespace {

// One step of every layer of `stream`. Member `rank` of `size` takes a share
// of each layer's parts: `gates(layer, l, k, xh, a)` writes part k's
// pre-activations into `a` ([S, 4n], row stride 4H) from the rows
// [x_t | h_{t-1}] at `xh`; then the part's cells write h_t into the other
// buffer (a partner may still read h_{t-1}) and into the x_t of the layer
// above. Returns h_t of the top layer, rows `*ld` apart.
template <typename T, typename Gates>
const T* step_stream_layers(LstmStream<T>& stream, int n_threads, std::ptrdiff_t* ld,
                            const Gates& gates) {
  const int S = stream.streams, L = static_cast<int>(stream.layers.size());
  const int now = stream.current, next = 1 - now;
  auto run = [&](int rank, int size, SpinBarrier& barrier) {
    for (int l = 0; l < L; ++l) {
      auto& layer = stream.layers[l];
      const int F = layer.F, H = layer.H, G = 4 * H, K = F + H;
      const int n_parts = static_cast<int>(layer.w.size());
      const int k_lo = n_parts * rank / size, k_hi = n_parts * (rank + 1) / size;
      const T* xh = layer.xh[now].data();
      T* h_out = layer.xh[next].data() + F;
      for (int k = k_lo; k < k_hi; ++k) {
        const int u0 = layer.units[k], n = layer.units[k + 1] - u0;
        T* a = layer.gates.data() + 4 * u0;
        gates(layer, l, k, xh, a);
        CellGroup<T> cells(n, H);
        for (int r = 0; r < S; ++r) {
          const std::size_t row = static_cast<std::size_t>(r);
          T* c = layer.c.data() + row * H;
          T* h = h_out + row * K;
          const T* a_row = a + row * G;
          for (int u = u0; u < u0 + n; u += kCellBlock) {
            cells.add(a_row + (u - u0), layer.bias.data() + u, c + u, c + u, h + u,
                      std::min(kCellBlock, u0 + n - u));
          }
        }
        cells.flush();
      }
      if (l + 1 < L) {
        auto& above = stream.layers[l + 1];
        const int u_lo = layer.units[k_lo], u_hi = layer.units[k_hi];
        const std::size_t K_above = static_cast<std::size_t>(above.F) + above.H;
        for (int r = 0; r < S; ++r) {
          copy_row(above.xh[now].data() + r * K_above + u_lo,
                   static_cast<const T*>(h_out + static_cast<std::size_t>(r) * K + u_lo),
                   static_cast<std::size_t>(u_hi - u_lo));
        }
        if (size > 1) barrier.wait();  // the layer above reads all of h_t
      }
    }
  };
  ThreadPool::instance().run_team(stream.parts, n_threads, run);
  stream.current = next;
  const auto& top = stream.layers.back();
  *ld = top.F + top.H;
  return top.xh[next].data() + top.F;
}

// With reduced precision, adds part k's h_{t-1} W_hh^T from W_hh's reduced
// copy to the pre-activations `a` (the packed product covered x_t only).
template <typename T>
void add_reduced_recurrent(const LstmStream<T>& stream, typename LstmStream<T>::Layer& layer, int k,
                           const T* xh, T* a) {
  const int S = stream.streams, F = layer.F, H = layer.H;
  CodeRows codes{nullptr, 0, nullptr, nullptr};
  if (stream.precision == Precision::Int8) {
    const std::ptrdiff_t depth = quantized_depth(H), row = static_cast<std::ptrdiff_t>(k) * S;
    codes = {layer.codes.data() + row * depth, depth, layer.code_scale.data() + row,
             layer.code_zero.data() + row};
  }
  reduced_product(S, xh + F, F + H, layer.r[k], a, 4 * H, false, codes);
}

}  // namespace

template <typename T>
const T* lstm_stream_step(LstmStream<T>& stream, const T* x, int n_threads, std::ptrdiff_t* ld) {
  const int S = stream.streams, L = static_cast<int>(stream.layers.size());
  if (S < 1 || L < 1) throw std::invalid_argument("LSTM stream: no streams or no layers");
  {
    // x_t into layer 0's [x_t | h_{t-1}] rows.
    auto& first = stream.layers[0];
    const std::size_t K = static_cast<std::size_t>(first.F) + first.H;
    for (int r = 0; r < S; ++r) {
      copy_row(first.xh[stream.current].data() + r * K, x + static_cast<std::size_t>(r) * first.F,
               static_cast<std::size_t>(first.F));
    }
  }
  // Each part's gates by one product over [x_t | h_{t-1}]; with reduced
  // precision that product covers x_t only and W_hh's reduced copy adds h_{t-1}'s.
  return step_stream_layers(
      stream, n_threads, ld,
      [&](typename LstmStream<T>::Layer& layer, int, int k, const T* xh, T* a) {
        gemm_packed(S, xh, layer.F + layer.H, layer.w[k], a, 4 * layer.H, false);
        if (stream.precision != Precision::Full) add_reduced_recurrent(stream, layer, k, xh, a);
      });
}

template <typename T>
bool lstm_stream_pack_tokens(const LstmSpec& spec, const T* params, LstmStream<T>& stream) {
  if (stream.layers.empty()) throw std::invalid_argument("LSTM stream: pack the layers first");
  typename LstmStream<T>::Layer& layer = stream.layers[0];
  const int F = layer.F, H = layer.H;
  if (spec.input_size != F || spec.hidden_size != H) {
    throw std::invalid_argument("LSTM stream: the token tables' layer is not layer 0 as packed");
  }
  const Block<T> p = block(spec, const_cast<T*>(params), 0, 0);
  const int n_parts = static_cast<int>(layer.w.size());
  layer.onehot.resize(n_parts);
  layer.w_hh.resize(n_parts);
  std::vector<const T*> rows;
  for (int k = 0; k < n_parts; ++k) {
    const int u0 = layer.units[k], u1 = layer.units[k + 1], n = u1 - u0;
    build_onehot(static_cast<const T*>(p.w_ih), F, H, u0, u1, layer.onehot[k]);
    if (layer.onehot[k].empty()) {  // a non-finite weight: no lookup
      layer.onehot.clear();
      layer.w_hh.clear();
      return false;
    }
    if (stream.precision != Precision::Full) continue;  // W_hh's reduced copy serves
    rows.resize(static_cast<std::size_t>(4) * n);
    for (int q = 0; q < 4; ++q) {
      for (int u = 0; u < n; ++u) {
        rows[q * n + u] = p.w_hh + (static_cast<std::size_t>(q) * H + u0 + u) * H;
      }
    }
    pack_matrix_rows(rows.data(), H, 4 * n, layer.w_hh[k]);
  }
  return true;
}

template <typename T>
const T* lstm_stream_step_tokens(LstmStream<T>& stream, const std::int64_t* tokens, int n_threads,
                                 std::ptrdiff_t* ld) {
  const int S = stream.streams, L = static_cast<int>(stream.layers.size());
  if (S < 1 || L < 1) throw std::invalid_argument("LSTM stream: no streams or no layers");
  if (stream.layers[0].onehot.size() != stream.layers[0].w.size()) {
    throw std::invalid_argument("LSTM stream: token step without lstm_stream_pack_tokens");
  }
  // As lstm_stream_step, but layer 0's gates start from their table's row
  // for the stream's token, then add h_{t-1} W_hh^T (from its reduced copy
  // with reduced precision).
  const bool reduced = stream.precision != Precision::Full;
  return step_stream_layers(
      stream, n_threads, ld,
      [&](typename LstmStream<T>::Layer& layer, int l, int k, const T* xh, T* a) {
        const int n = layer.units[k + 1] - layer.units[k], G = 4 * layer.H, K = layer.F + layer.H;
        if (l == 0) {
          const T* table = layer.onehot[k].data();
          for (int r = 0; r < S; ++r) {
            copy_row(a + static_cast<std::size_t>(r) * G,
                     table + static_cast<std::size_t>(tokens[r]) * (4 * n),
                     static_cast<std::size_t>(4 * n));
          }
          if (!reduced) gemm_packed(S, xh + layer.F, K, layer.w_hh[k], a, G, true);
        } else {
          gemm_packed(S, xh, K, layer.w[k], a, G, false);
        }
        if (reduced) add_reduced_recurrent(stream, layer, k, xh, a);
      });
}

#define LSTMLEARN_INSTANTIATE(T)                                                                   \
  template void lstm_forward<T>(const LstmSpec&, const T*, int, int, const T*, const T*, const T*, \
                                const std::uint8_t*, const T*, T*, T*, T*, LstmCache<T>&, int);    \
  template void lstm_backward<T>(const LstmSpec&, const T*, LstmCache<T>&, const T*, const T*,     \
                                 const T*, T*, T*, T*, T*, int);                                   \
  template void lstm_inference<T>(const LstmSpec&, const T*, int, int, const T*, const T*,         \
                                  const T*, const std::uint8_t*, T*, T*, T*, LstmInference<T>&,    \
                                  int, bool, Precision);                                           \
  template void lstm_inference_stack<T>(const InferenceStage<T>*, int, int, int, const T*,         \
                                        const T*, const T*, const std::uint8_t*, int, bool,        \
                                        Precision);                                                \
  template void lstm_stream_pack<T>(const LstmSpec*, const T* const*, int, int, LstmStream<T>&,    \
                                    Precision);                                                    \
  template void lstm_stream_resize<T>(LstmStream<T>&, int);                                        \
  template void lstm_stream_reset<T>(LstmStream<T>&, int);                                         \
  template const T* lstm_stream_step<T>(LstmStream<T>&, const T*, int, std::ptrdiff_t*);           \
  template bool lstm_stream_pack_tokens<T>(const LstmSpec&, const T*, LstmStream<T>&);             \
  template const T* lstm_stream_step_tokens<T>(LstmStream<T>&, const std::int64_t*, int,           \
                                               std::ptrdiff_t*);
LSTMLEARN_INSTANTIATE(LSTMLEARN_ENGINE_DTYPE)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
