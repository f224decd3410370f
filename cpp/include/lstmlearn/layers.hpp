// Layers around the LSTM for the LSTM family: CNN-LSTM, encoder-decoder,
// attention, generative models. Stateless forward/backward pairs over raw
// row-major buffers: outputs first, then inputs, then sizes; gradients are
// `d`-prefixed and overwritten, never accumulated. Backward recomputes what it
// needs from the forward inputs (plus the few forward outputs it takes), so a
// model keeps no per-layer cache beyond those buffers.
//
// Size key used in every shape comment:
//   N = rows (samples; for a time-distributed layer samples x time steps, the
//       caller flattening [B, T, ...] into [B*T, ...]),
//   I = input features, O = output features (dense),
//   V = vocabulary, E = embedding width,
//   B = batch, T = time steps, R = repeats, D = width of a repeated vector,
//   Tq = query steps (decoder), Tk = key steps (encoder), H = width of the
//       queries, keys and pooled steps, A = attention units,
//   conv: S = input length, Y x X = input height x width, C = input channels,
//       K = filters, k / kh x kw = kernel, p = pool size and stride,
//       L = S - k + 1 (conv length), P = floor(L / p) (pooled length),
//       Py x Px = floor((Y - kh + 1) / p) x floor((X - kw + 1) / p).
//
// Masks are uint8 (non-zero = valid) and may be null (all valid).
//
// Threads and determinism: every function runs single-threaded on the calling
// thread (Eigen's GEMM puts packing buffers of up to
// EIGEN_STACK_ALLOCATION_LIMIT on the stack, so call them from a thread with a
// large stack, as the compute pool's). Reductions run in a fixed order and
// every rounding-sensitive element-wise step (exp, tanh, sums) runs on the
// aligned workspace, so results depend only on the inputs' values and sizes,
// never on where the caller's buffers happen to sit.
//
// Workspaces: functions that need scratch take an `AlignedVector<T>&` that only
// grows, so repeated calls at one size allocate nothing; its contents need not
// survive between calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lstmlearn/isa.hpp"
#include "lstmlearn/lstm.hpp"  // AlignedVector

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// ---------------------------------------------------------------------------
// Dense: y = x W^T + b (PyTorch nn.Linear layout).
//   y [N, O]   x [N, I]   W [O, I]   b [O] (null: no bias)
template <typename T>
void dense_forward(T* y, const T* x, const T* W, const T* b, int N, int I, int O);

// dx [N, I] (null: not needed), dW [O, I], db [O] (null: no bias); dy [N, O].
template <typename T>
void dense_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int N, int I, int O);

// ---------------------------------------------------------------------------
// Inverted dropout (Keras): y = x * keep, where `keep` is the keep mask already
// scaled by 1/(1-p) (0 or 1/(1-p)). y, x, keep [n]; y may alias x.
template <typename T>
void dropout_forward(T* y, const T* x, const T* keep, std::size_t n);

// dx = dy * keep. dx, dy, keep [n]; dx may alias dy.
template <typename T>
void dropout_backward(T* dx, const T* dy, const T* keep, std::size_t n);

// ---------------------------------------------------------------------------
// Embedding: y[n] = W[tokens[n]].
//   y [N, E]   tokens [N] in [0, V)   W [V, E]
// Throws std::invalid_argument naming the first token outside [0, V), before
// writing anything.
template <typename T>
void embedding_forward(T* y, const std::int32_t* tokens, const T* W, int N, int V, int E);

// dW [V, E] (overwritten): rows of dy [N, E] summed into their tokens' rows in
// input order. Throws like embedding_forward.
template <typename T>
void embedding_backward(T* dW, const T* dy, const std::int32_t* tokens, int N, int V, int E);

// ---------------------------------------------------------------------------
// RepeatVector (Keras): y[b, r] = x[b].   y [B, R, D]   x [B, D]
template <typename T>
void repeat_forward(T* y, const T* x, int B, int R, int D);

// dx[b] = sum over r of dy[b, r].   dx [B, D]   dy [B, R, D]
template <typename T>
void repeat_backward(T* dx, const T* dy, int B, int R, int D);

// ---------------------------------------------------------------------------
// Convolution blocks for CNN-LSTM, applied to each row of N independently:
// convolution (valid padding, stride 1) + bias, ReLU, max pooling (size p,
// stride p, floor), flattened channels-last. Input is channels-last (Keras),
// weights are in PyTorch's Conv1d / Conv2d layout. One im2col and one GEMM.
//
// Conv outputs past the last whole pooling window are never computed.
// `argmax` (same size as y) records, for each output, the position of the
// maximum in the full conv output grid (s for 1-D, oy*(X-kw+1) + ox for 2-D,
// as PyTorch's max-pool indices), or -1 when the maximum was <= 0 so that ReLU
// passed no gradient. Ties go to the first position in row-major window order.
// Backward routes dy through it and checks every entry lies in its own window
// (std::invalid_argument otherwise).
struct Conv1dShape {
  int samples = 1;   // N
  int length = 1;    // S
  int channels = 1;  // C
  int filters = 1;   // K
  int kernel = 1;    // k
  int pool = 1;      // p

  int conv_length() const { return length - kernel + 1; }     // L
  int pooled_length() const { return conv_length() / pool; }  // P
  // P*K, in 64 bits: validate() checks that it fits an int.
  std::int64_t output_width() const { return static_cast<std::int64_t>(pooled_length()) * filters; }
  // Throws std::invalid_argument when a size is not positive, the kernel and
  // pool do not fit in the input (P < 1), or the weights or a row of the
  // output have more elements than an int counts (see limits.hpp).
  void validate() const;
};

//   y [N, P*K] (index q*K + f)   argmax [N, P*K]   x [N, S, C]   W [K, C, k]   b [K]
// The rows go in fixed chunks to up to `n_threads` threads (resolve_threads):
// the same bits for any count.
template <typename T>
void conv1d_forward(T* y, std::int32_t* argmax, const T* x, const T* W, const T* b,
                    const Conv1dShape& shape, AlignedVector<T>& workspace, int n_threads = 1);

// dx [N, S, C] (null: not needed), dW [K, C, k], db [K]; dy, argmax [N, P*K].
template <typename T>
void conv1d_backward(T* dx, T* dW, T* db, const T* dy, const std::int32_t* argmax, const T* x,
                     const T* W, const Conv1dShape& shape, AlignedVector<T>& workspace);

struct Conv2dShape {
  int samples = 1;   // N
  int height = 1;    // Y
  int width = 1;     // X
  int channels = 1;  // C
  int filters = 1;   // K
  int kernel_h = 1;  // kh
  int kernel_w = 1;  // kw
  int pool = 1;      // p (a p x p window)

  int conv_height() const { return height - kernel_h + 1; }
  int conv_width() const { return width - kernel_w + 1; }
  int pooled_height() const { return conv_height() / pool; }  // Py
  int pooled_width() const { return conv_width() / pool; }    // Px
  std::int64_t output_width() const {  // Py*Px*K, in 64 bits as Conv1dShape's
    return static_cast<std::int64_t>(pooled_height()) * pooled_width() * filters;
  }
  void validate() const;  // as Conv1dShape::validate
};

//   y [N, Py*Px*K] (index (qy*Px + qx)*K + f)   argmax [N, Py*Px*K]
//   x [N, Y, X, C]   W [K, C, kh, kw]   b [K]
// As conv1d_forward, in chunks of rows among up to `n_threads` threads.
template <typename T>
void conv2d_forward(T* y, std::int32_t* argmax, const T* x, const T* W, const T* b,
                    const Conv2dShape& shape, AlignedVector<T>& workspace, int n_threads = 1);

// dx [N, Y, X, C] (null: not needed), dW [K, C, kh, kw], db [K]; dy, argmax [N, Py*Px*K].
template <typename T>
void conv2d_backward(T* dx, T* dW, T* db, const T* dy, const std::int32_t* argmax, const T* x,
                     const T* W, const Conv2dShape& shape, AlignedVector<T>& workspace);

// ---------------------------------------------------------------------------
// Attention of decoder outputs over encoder outputs (Luong style: queries are
// the decoder LSTM's outputs; the keys are also the values).
//   context [B, Tq, H]   weights [B, Tq, Tk]   q [B, Tq, H]   k [B, Tk, H]
//   mask [B, Tk]: masked keys get weight exactly 0; each batch row must keep
//   at least one valid key (std::invalid_argument otherwise).
// Scores go through a max-subtracted softmax over the keys;
// context[b, i] = sum over j of weights[b, i, j] * k[b, j].
//
// Dot (Luong): score[b, i, j] = q[b, i] . k[b, j].
template <typename T>
void dot_attention_forward(T* context, T* weights, const T* q, const T* k, const std::uint8_t* mask,
                           int B, int Tq, int Tk, int H, AlignedVector<T>& workspace);

// dq [B, Tq, H], dk [B, Tk, H] (as keys and as values); dcontext [B, Tq, H];
// weights [B, Tq, Tk] from the forward pass (they carry the mask).
template <typename T>
void dot_attention_backward(T* dq, T* dk, const T* dcontext, const T* weights, const T* q,
                            const T* k, int B, int Tq, int Tk, int H, AlignedVector<T>& workspace);

// Additive (Bahdanau): score[b, i, j] = v . tanh(Wq q[b, i] + Wk k[b, j] + bias).
//   Wq [A, H]   Wk [A, H]   bias [A]   v [A]
// key_projection [B, Tk, A]: Wk k + bias from additive_attention_keys, for a
// caller that attends over the same keys several times (greedy decoding);
// null: computed here.
template <typename T>
void additive_attention_forward(T* context, T* weights, const T* q, const T* k,
                                const std::uint8_t* mask, const T* Wq, const T* Wk, const T* bias,
                                const T* v, int B, int Tq, int Tk, int H, int A,
                                AlignedVector<T>& workspace, const T* key_projection = nullptr);

// kp [rows, A] = k [rows, H] Wk^T + bias: the keys' part of the additive score.
template <typename T>
void additive_attention_keys(T* kp, const T* k, const T* Wk, const T* bias, std::size_t rows, int H,
                             int A);

// dq [B, Tq, H], dk [B, Tk, H], dWq [A, H], dWk [A, H], dbias [A], dv [A].
template <typename T>
void additive_attention_backward(T* dq, T* dk, T* dWq, T* dWk, T* dbias, T* dv, const T* dcontext,
                                 const T* weights, const T* q, const T* k, const T* Wq, const T* Wk,
                                 const T* bias, const T* v, int B, int Tq, int Tk, int H, int A,
                                 AlignedVector<T>& workspace);

// ---------------------------------------------------------------------------
// Pooling over time for a sequence classifier or regressor.
//   pooled [B, H]   h [B, T, H]   mask [B, T]
//
// Mean over the valid steps (a row with none gives 0 and passes no gradient).
template <typename T>
void mean_pool_forward(T* pooled, const T* h, const std::uint8_t* mask, int B, int steps, int H);

// dh [B, T, H] (0 at masked steps); dpooled [B, H].
template <typename T>
void mean_pool_backward(T* dh, const T* dpooled, const std::uint8_t* mask, int B, int steps, int H);

// Attention pooling: score[b, t] = v . tanh(W h[b, t] + bias), softmax over
// the valid steps into weights [B, T] (masked steps get exactly 0; each row
// must keep one valid step), pooled[b] = sum over t of weights[b, t] h[b, t].
//   W [A, H]   bias [A]   v [A]
template <typename T>
void attention_pool_forward(T* pooled, T* weights, const T* h, const std::uint8_t* mask, const T* W,
                            const T* bias, const T* v, int B, int steps, int H, int A,
                            AlignedVector<T>& workspace);

// dh [B, T, H], dW [A, H], dbias [A], dv [A]; dpooled [B, H]; weights [B, T]
// from the forward pass.
template <typename T>
void attention_pool_backward(T* dh, T* dW, T* dbias, T* dv, const T* dpooled, const T* weights,
                             const T* h, const T* W, const T* bias, const T* v, int B, int steps,
                             int H, int A, AlignedVector<T>& workspace);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
