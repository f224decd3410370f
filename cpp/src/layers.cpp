// Dense, dropout, embedding and RepeatVector. See layers.hpp for the size key.
//   N = rows, I = inputs, O = outputs, V = vocabulary, E = embedding width,
//   B = batch, R = repeats, D = width of a repeated vector.
#include "lstmlearn/layers.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "layer_support.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

using namespace detail;

namespace {

void check_tokens(const char* what, const std::int32_t* tokens, int N, int V) {
  for (int n = 0; n < N; ++n) {
    if (tokens[n] < 0 || tokens[n] >= V) {
      throw std::invalid_argument(
          std::string(what) + ": token " + std::to_string(tokens[n]) + " at position " +
          std::to_string(n) +
          " is outside the vocabulary: expected 0 <= token < V = " + std::to_string(V));
    }
  }
}

}  // namespace

template <typename T>
void dense_forward(T* y, const T* x, const T* W, const T* b, int N, int I, int O) {
  mat(y, N, O).noalias() = mat(x, N, I) * mat(W, O, I).transpose();
  if (b) add_to_rows(y, b, N, O);
}

template <typename T>
void dense_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int N, int I, int O) {
  const auto dY = mat(dy, N, O);  // [N, O]
  // y = x W^T + b  =>  dW = dy^T x, db = sum over rows of dy, dx = dy W.
  mat(dW, O, I).noalias() = dY.transpose() * mat(x, N, I);
  if (db) sum_rows(db, dy, N, O);
  if (dx) mat(dx, N, I).noalias() = dY * mat(W, O, I);
}

template <typename T>
void dropout_forward(T* y, const T* x, const T* keep, std::size_t n) {
  // One product per element: exact, so no workspace is needed for determinism.
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * keep[i];
}

template <typename T>
void dropout_backward(T* dx, const T* dy, const T* keep, std::size_t n) {
  // y = x * keep  =>  dx = dy * keep.
  for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * keep[i];
}

template <typename T>
void embedding_forward(T* y, const std::int32_t* tokens, const T* W, int N, int V, int E) {
  check_tokens("embedding_forward", tokens, N, V);
  const std::size_t row = sizeof(T) * static_cast<std::size_t>(E);
  for (int n = 0; n < N; ++n) {
    std::memcpy(y + static_cast<std::size_t>(n) * E, W + static_cast<std::size_t>(tokens[n]) * E,
                row);
  }
}

template <typename T>
void embedding_backward(T* dW, const T* dy, const std::int32_t* tokens, int N, int V, int E) {
  check_tokens("embedding_backward", tokens, N, V);
  // y[n] = W[tokens[n]]  =>  dW[v] = sum of dy[n] over the n with tokens[n] = v.
  mat(dW, V, E).setZero();
  for (int n = 0; n < N; ++n) {
    RowMap<T>(dW + static_cast<std::size_t>(tokens[n]) * E, E) +=
        ConstRowMap<T>(dy + static_cast<std::size_t>(n) * E, E);
  }
}

template <typename T>
void repeat_forward(T* y, const T* x, int B, int R, int D) {
  const std::size_t row = sizeof(T) * static_cast<std::size_t>(D);
  for (int b = 0; b < B; ++b) {
    for (int r = 0; r < R; ++r) {
      std::memcpy(y + (static_cast<std::size_t>(b) * R + r) * D,
                  x + static_cast<std::size_t>(b) * D, row);
    }
  }
}

template <typename T>
void repeat_backward(T* dx, const T* dy, int B, int R, int D) {
  // y[b, r] = x[b]  =>  dx[b] = sum over r of dy[b, r].
  for (int b = 0; b < B; ++b) {
    sum_rows(dx + static_cast<std::size_t>(b) * D, dy + static_cast<std::size_t>(b) * R * D, R, D);
  }
}

#define LSTMLEARN_INSTANTIATE(T)                                                            \
  template void dense_forward<T>(T*, const T*, const T*, const T*, int, int, int);          \
  template void dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int); \
  template void dropout_forward<T>(T*, const T*, const T*, std::size_t);                    \
  template void dropout_backward<T>(T*, const T*, const T*, std::size_t);                   \
  template void embedding_forward<T>(T*, const std::int32_t*, const T*, int, int, int);     \
  template void embedding_backward<T>(T*, const T*, const std::int32_t*, int, int, int);    \
  template void repeat_forward<T>(T*, const T*, int, int, int);                             \
  template void repeat_backward<T>(T*, const T*, int, int, int);
LSTMLEARN_INSTANTIATE(LSTMLEARN_ENGINE_DTYPE)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
