// Attention over encoder outputs (dot and additive) and pooling over time
// (mean and attention). See layers.hpp for the API.
//
// Size key: B = batch, Tq = query steps, Tk = key steps, T = steps of a pooled
// sequence, H = width of queries, keys and steps, A = attention units.
//
// Softmax runs on a workspace row (max-subtracted, masked entries set to
// exactly 0) and is then copied out to the caller's weights; backward copies
// the weights back into the workspace. Additive scores need tanh over
// [Tq, Tk, A] per batch row; it is computed one query at a time into a [Tk, A]
// workspace block, and recomputed in backward rather than stored.
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "layer_support.hpp"
#include "lstmlearn/layers.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

using namespace detail;

namespace {

// x = tanh(x), vectorised (a flat map, no broadcast: see add_to_rows).   x [n]
template <typename T>
void tanh_in_place(T* x, Index n) {
  ArrayMap<T> a(x, n);
  a = a.tanh();
}

template <typename T>
void copy(T* dst, const T* src, Index n) {
  std::memcpy(dst, src, sizeof(T) * static_cast<std::size_t>(n));
}

[[noreturn]] void throw_all_masked(const char* what, Index b, const char* items) {
  throw std::invalid_argument(std::string(what) + ": every " + items + " of batch row " +
                              std::to_string(b) + " is masked; at least one must be valid");
}

// Softmax of the workspace row s [n] over its valid entries (mask null: all),
// in place; masked entries become exactly 0. Returns false if none is valid.
template <typename T>
bool masked_softmax(T* s, const std::uint8_t* mask, Index n) {
  T top = -std::numeric_limits<T>::infinity();
  bool any = false;
  for (Index j = 0; j < n; ++j) {
    if (!mask || mask[j]) {
      top = any ? std::max(top, s[j]) : s[j];
      any = true;
    }
  }
  if (!any) return false;
  ArrayMap<T> row(s, n);
  row = (row - top).exp();
  T sum = T(0);
  for (Index j = 0; j < n; ++j) {
    if (mask && !mask[j]) s[j] = T(0);
    sum += s[j];
  }
  row /= sum;
  return true;
}

// Backward of softmax for one row, in place on the workspace: g [n] holds the
// gradient of the weights w [n] and becomes the gradient of the scores,
//   w = softmax(s)  =>  ds = w * (dw - sum_j w_j dw_j).
// Masked entries have w = 0, so their score gradient is 0.
template <typename T>
void softmax_backward(T* g, const T* w, Index n) {
  T dot = T(0);
  for (Index j = 0; j < n; ++j) dot += w[j] * g[j];
  ArrayMap<T> gr(g, n);
  gr = ConstArrayMap<T>(w, n) * (gr - dot);
}

// e = tanh(kp + qp_row), one row per key.   e, kp [Tk, A]   qp_row [A]
template <typename T>
void additive_energy(T* e, const T* kp, const T* qp_row, Index Tk, Index A) {
  const ConstArrayMap<T> qp(qp_row, A);
  for (Index j = 0; j < Tk; ++j) ArrayMap<T>(e + j * A, A) = ConstArrayMap<T>(kp + j * A, A) + qp;
  tanh_in_place(e, Tk * A);
}

// e = tanh(e) becomes de_pre = (1 - e^2) * (ds (x) v), the gradient of the
// tanh's argument for scores s = e v.   e [n, A]   ds [n]   v [A]
template <typename T>
void tanh_score_backward(T* e, const T* ds, const T* v, Index n, Index A) {
  const ConstArrayMap<T> va(v, A);
  for (Index j = 0; j < n; ++j) {
    ArrayMap<T> row(e + j * A, A);
    row = (T(1) - row.square()) * (ds[j] * va);
  }
}

}  // namespace

template <typename T>
void dot_attention_forward(T* context, T* weights, const T* q, const T* k, const std::uint8_t* mask,
                           int B, int Tq, int Tk, int H, AlignedVector<T>& workspace) {
  auto [s] = carve<T, 1>(workspace, {static_cast<std::size_t>(Tq) * Tk});  // s [Tq, Tk]
  for (Index b = 0; b < B; ++b) {
    const auto Q = mat(q + b * Tq * H, Tq, H);  // [Tq, H]
    const auto K = mat(k + b * Tk * H, Tk, H);  // [Tk, H]
    const std::uint8_t* m = mask ? mask + b * Tk : nullptr;
    // s = q k^T, then weights = softmax(s) over the keys.
    mat(s, Tq, Tk).noalias() = Q * K.transpose();
    for (Index i = 0; i < Tq; ++i) {
      if (!masked_softmax(s + i * Tk, m, Tk)) throw_all_masked("dot_attention", b, "key");
    }
    copy(weights + b * Tq * Tk, s, Index(Tq) * Tk);
    // context = weights k.
    mat(context + b * Tq * H, Tq, H).noalias() = mat(s, Tq, Tk) * K;
  }
}

template <typename T>
void dot_attention_backward(T* dq, T* dk, const T* dcontext, const T* weights, const T* q,
                            const T* k, int B, int Tq, int Tk, int H, AlignedVector<T>& workspace) {
  const std::size_t n = static_cast<std::size_t>(Tq) * Tk;
  auto [w, g] = carve<T, 2>(workspace, {n, n});  // w, g [Tq, Tk]
  for (Index b = 0; b < B; ++b) {
    const auto Q = mat(q + b * Tq * H, Tq, H);          // [Tq, H]
    const auto K = mat(k + b * Tk * H, Tk, H);          // [Tk, H]
    const auto dC = mat(dcontext + b * Tq * H, Tq, H);  // [Tq, H]
    auto dQ = mat(dq + b * Tq * H, Tq, H);
    auto dK = mat(dk + b * Tk * H, Tk, H);
    copy(w, weights + b * Tq * Tk, Index(Tq) * Tk);
    const auto Wt = mat(w, Tq, Tk);
    // context = weights k  =>  dweights = dcontext k^T, dk = weights^T dcontext.
    mat(g, Tq, Tk).noalias() = dC * K.transpose();
    dK.noalias() = Wt.transpose() * dC;
    // weights = softmax(s)  =>  ds = weights * (dweights - rowsum(weights * dweights)).
    for (Index i = 0; i < Tq; ++i) softmax_backward(g + i * Tk, w + i * Tk, Tk);
    // s = q k^T  =>  dq = ds k, dk += ds^T q.
    const auto dS = mat(g, Tq, Tk);
    dQ.noalias() = dS * K;
    dK.noalias() += dS.transpose() * Q;
  }
}

template <typename T>
void additive_attention_forward(T* context, T* weights, const T* q, const T* k,
                                const std::uint8_t* mask, const T* Wq, const T* Wk, const T* bias,
                                const T* v, int B, int Tq, int Tk, int H, int A,
                                AlignedVector<T>& workspace, const T* key_projection) {
  const std::size_t BTq = static_cast<std::size_t>(B) * Tq, BTk = static_cast<std::size_t>(B) * Tk;
  auto [qp, kp_own, e, s] =
      carve<T, 4>(workspace, {BTq * A, key_projection ? 0 : BTk * A,
                              static_cast<std::size_t>(Tk) * A, static_cast<std::size_t>(Tq) * Tk});
  // qp [B*Tq, A]   kp [B*Tk, A]   e [Tk, A]   s [Tq, Tk]
  // Projections of all queries and all keys: one GEMM each.
  mat(qp, BTq, A).noalias() = mat(q, BTq, H) * mat(Wq, A, H).transpose();
  const T* kp = key_projection;
  if (!kp) {
    additive_attention_keys(kp_own, k, Wk, bias, BTk, H, A);
    kp = kp_own;
  }
  const ConstColMap<T> V(v, A);
  for (Index b = 0; b < B; ++b) {
    const auto K = mat(k + b * Tk * H, Tk, H);  // [Tk, H]
    const std::uint8_t* m = mask ? mask + b * Tk : nullptr;
    for (Index i = 0; i < Tq; ++i) {
      // s[i, j] = v . tanh(Wq q_i + Wk k_j + bias), for all j at once.
      additive_energy(e, kp + b * Tk * A, qp + (b * Tq + i) * A, Tk, A);
      ColMap<T>(s + i * Tk, Tk).noalias() = mat(e, Tk, A) * V;
      if (!masked_softmax(s + i * Tk, m, Tk)) throw_all_masked("additive_attention", b, "key");
    }
    copy(weights + b * Tq * Tk, s, Index(Tq) * Tk);
    // context = weights k.
    mat(context + b * Tq * H, Tq, H).noalias() = mat(s, Tq, Tk) * K;
  }
}

template <typename T>
void additive_attention_keys(T* kp, const T* k, const T* Wk, const T* bias, std::size_t rows, int H,
                             int A) {
  mat(kp, rows, A).noalias() = mat(k, rows, H) * mat(Wk, A, H).transpose();
  add_to_rows(kp, bias, rows, A);
}

template <typename T>
void additive_attention_backward(T* dq, T* dk, T* dWq, T* dWk, T* dbias, T* dv, const T* dcontext,
                                 const T* weights, const T* q, const T* k, const T* Wq, const T* Wk,
                                 const T* bias, const T* v, int B, int Tq, int Tk, int H, int A,
                                 AlignedVector<T>& workspace) {
  const std::size_t BTq = static_cast<std::size_t>(B) * Tq, BTk = static_cast<std::size_t>(B) * Tk;
  const std::size_t TqTk = static_cast<std::size_t>(Tq) * Tk;
  auto [qp, kp, dqp, dkp, e, w, g, dv_acc] =
      carve<T, 8>(workspace, {BTq * A, BTk * A, BTq * A, BTk * A, static_cast<std::size_t>(Tk) * A,
                              TqTk, TqTk, static_cast<std::size_t>(A)});
  // qp, dqp [B*Tq, A]   kp, dkp [B*Tk, A]   e [Tk, A]   w, g [Tq, Tk]   dv_acc [A]
  mat(qp, BTq, A).noalias() = mat(q, BTq, H) * mat(Wq, A, H).transpose();
  mat(kp, BTk, A).noalias() = mat(k, BTk, H) * mat(Wk, A, H).transpose();
  add_to_rows(kp, bias, BTk, A);
  mat(dkp, BTk, A).setZero();
  ColMap<T> dV(dv_acc, A);
  dV.setZero();
  for (Index b = 0; b < B; ++b) {
    const auto K = mat(k + b * Tk * H, Tk, H);          // [Tk, H]
    const auto dC = mat(dcontext + b * Tq * H, Tq, H);  // [Tq, H]
    copy(w, weights + b * Tq * Tk, Index(Tq) * Tk);
    // context = weights k  =>  dweights = dcontext k^T, dk = weights^T dcontext.
    mat(g, Tq, Tk).noalias() = dC * K.transpose();
    mat(dk + b * Tk * H, Tk, H).noalias() = mat(w, Tq, Tk).transpose() * dC;
    for (Index i = 0; i < Tq; ++i) {
      T* ds = g + i * Tk;  // [Tk]
      // weights = softmax(s)  =>  ds = weights * (dweights - rowsum(weights * dweights)).
      softmax_backward(ds, w + i * Tk, Tk);
      // s_j = v . e_j  =>  dv += e^T ds, de_j = ds_j v.
      additive_energy(e, kp + b * Tk * A, qp + (b * Tq + i) * A, Tk, A);
      dV.noalias() += mat(e, Tk, A).transpose() * ConstColMap<T>(ds, Tk);
      // e_j = tanh(qp_i + kp_j)  =>  dqp_i = sum_j de_j (1 - e_j^2), dkp_j += de_j (1 - e_j^2).
      tanh_score_backward(e, ds, v, Tk, A);  // e now holds the gradient of qp_i + kp_j
      sum_rows(dqp + (b * Tq + i) * A, e, Tk, A);
      mat(dkp + b * Tk * A, Tk, A) += mat(e, Tk, A);
    }
  }
  // qp = q Wq^T  =>  dq = dqp Wq, dWq = dqp^T q.
  const auto dQP = mat(dqp, BTq, A);
  mat(dq, BTq, H).noalias() = dQP * mat(Wq, A, H);
  mat(dWq, A, H).noalias() = dQP.transpose() * mat(q, BTq, H);
  // kp = k Wk^T + bias  =>  dk += dkp Wk, dWk = dkp^T k, dbias = sum of dkp rows.
  const auto dKP = mat(dkp, BTk, A);
  mat(dk, BTk, H).noalias() += dKP * mat(Wk, A, H);
  mat(dWk, A, H).noalias() = dKP.transpose() * mat(k, BTk, H);
  sum_rows(dbias, dkp, BTk, A);
  copy(dv, dv_acc, A);
}

template <typename T>
void mean_pool_forward(T* pooled, const T* h, const std::uint8_t* mask, int B, int steps, int H) {
  for (Index b = 0; b < B; ++b) {
    RowMap<T> out(pooled + b * H, H);
    out.setZero();
    Index valid = 0;
    for (Index t = 0; t < steps; ++t) {
      if (mask && !mask[b * steps + t]) continue;
      out += ConstRowMap<T>(h + (b * steps + t) * H, H);
      ++valid;
    }
    if (valid > 0) out /= static_cast<T>(valid);
  }
}

template <typename T>
void mean_pool_backward(T* dh, const T* dpooled, const std::uint8_t* mask, int B, int steps,
                        int H) {
  for (Index b = 0; b < B; ++b) {
    Index valid = 0;
    for (Index t = 0; t < steps; ++t) valid += !mask || mask[b * steps + t];
    const ConstRowMap<T> dp(dpooled + b * H, H);
    // pooled = sum over valid t of h_t / valid  =>  dh_t = dpooled / valid.
    for (Index t = 0; t < steps; ++t) {
      RowMap<T> d(dh + (b * steps + t) * H, H);
      if (mask && !mask[b * steps + t]) {
        d.setZero();
      } else {
        d = dp / static_cast<T>(valid);
      }
    }
  }
}

template <typename T>
void attention_pool_forward(T* pooled, T* weights, const T* h, const std::uint8_t* mask, const T* W,
                            const T* bias, const T* v, int B, int steps, int H, int A,
                            AlignedVector<T>& workspace) {
  const std::size_t BT = static_cast<std::size_t>(B) * steps;
  auto [e, s] = carve<T, 2>(workspace, {BT * A, BT});  // e [B*T, A]   s [B*T]
  // e = tanh(h W^T + bias), s = e v: one GEMM and one GEMV for all steps.
  mat(e, BT, A).noalias() = mat(h, BT, H) * mat(W, A, H).transpose();
  add_to_rows(e, bias, BT, A);
  tanh_in_place(e, BT * A);
  ColMap<T>(s, BT).noalias() = mat(e, BT, A) * ConstColMap<T>(v, A);
  for (Index b = 0; b < B; ++b) {
    T* sb = s + b * steps;  // [T]
    if (!masked_softmax(sb, mask ? mask + b * steps : nullptr, steps)) {
      throw_all_masked("attention_pool", b, "step");
    }
    copy(weights + b * steps, sb, steps);
    // pooled = h^T weights.
    ColMap<T>(pooled + b * H, H).noalias() =
        mat(h + b * steps * H, steps, H).transpose() * ConstColMap<T>(sb, steps);
  }
}

template <typename T>
void attention_pool_backward(T* dh, T* dW, T* dbias, T* dv, const T* dpooled, const T* weights,
                             const T* h, const T* W, const T* bias, const T* v, int B, int steps,
                             int H, int A, AlignedVector<T>& workspace) {
  const std::size_t BT = static_cast<std::size_t>(B) * steps;
  auto [e, w, g, dv_acc] = carve<T, 4>(workspace, {BT * A, BT, BT, static_cast<std::size_t>(A)});
  // e [B*T, A]   w, g [B*T]   dv_acc [A]
  mat(e, BT, A).noalias() = mat(h, BT, H) * mat(W, A, H).transpose();
  add_to_rows(e, bias, BT, A);
  tanh_in_place(e, BT * A);
  copy(w, weights, static_cast<Index>(BT));
  for (Index b = 0; b < B; ++b) {
    const auto Hb = mat(h + b * steps * H, steps, H);  // [T, H]
    const ConstColMap<T> dp(dpooled + b * H, H);
    // pooled = h^T weights  =>  dweights = h dpooled, dh = weights dpooled^T.
    ColMap<T>(g + b * steps, steps).noalias() = Hb * dp;
    mat(dh + b * steps * H, steps, H).noalias() =
        ConstColMap<T>(w + b * steps, steps) * dp.transpose();
    // weights = softmax(s)  =>  ds = weights * (dweights - sum(weights * dweights)).
    softmax_backward(g + b * steps, w + b * steps, steps);
  }
  // s = e v  =>  dv = e^T ds; e = tanh(p)  =>  dp = (1 - e^2) * (ds (x) v).
  ColMap<T>(dv_acc, A).noalias() = mat(e, BT, A).transpose() * ConstColMap<T>(g, BT);
  tanh_score_backward(e, g, v, BT, A);  // e now holds dp
  // p = h W^T + bias  =>  dh += dp W, dW = dp^T h, dbias = sum of dp rows.
  const auto dP = mat(e, BT, A);
  mat(dh, BT, H).noalias() += dP * mat(W, A, H);
  mat(dW, A, H).noalias() = dP.transpose() * mat(h, BT, H);
  sum_rows(dbias, e, BT, A);
  copy(dv, dv_acc, A);
}

#define LSTMLEARN_INSTANTIATE(T)                                                                   \
  template void dot_attention_forward<T>(T*, T*, const T*, const T*, const std::uint8_t*, int,     \
                                         int, int, int, AlignedVector<T>&);                        \
  template void dot_attention_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int,     \
                                          int, int, int, AlignedVector<T>&);                       \
  template void additive_attention_forward<T>(T*, T*, const T*, const T*, const std::uint8_t*,     \
                                              const T*, const T*, const T*, const T*, int, int,    \
                                              int, int, int, AlignedVector<T>&, const T*);         \
  template void additive_attention_keys<T>(T*, const T*, const T*, const T*, std::size_t, int,     \
                                           int);                                                   \
  template void additive_attention_backward<T>(                                                    \
      T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,          \
      const T*, const T*, int, int, int, int, int, AlignedVector<T>&);                             \
  template void mean_pool_forward<T>(T*, const T*, const std::uint8_t*, int, int, int);            \
  template void mean_pool_backward<T>(T*, const T*, const std::uint8_t*, int, int, int);           \
  template void attention_pool_forward<T>(T*, T*, const T*, const std::uint8_t*, const T*,         \
                                          const T*, const T*, int, int, int, int,                  \
                                          AlignedVector<T>&);                                      \
  template void attention_pool_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                           const T*, const T*, int, int, int, int,                 \
                                           AlignedVector<T>&);
LSTMLEARN_INSTANTIATE(LSTMLEARN_ENGINE_DTYPE)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
