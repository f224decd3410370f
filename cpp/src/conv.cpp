// Convolution blocks (conv + bias, ReLU, max pool, flatten) for CNN-LSTM.
// See layers.hpp for the API.
//
// Size key: N = rows, Y x X = input height x width (1 x S for 1-D), C = input
// channels, K = filters, kh x kw = kernel, ph x pw = pool window (1 x p for
// 1-D, p x p for 2-D), Oy x Ox = full conv output, Py x Px = pooled output,
// Uy x Ux = Py*ph x Px*pw, the part of the conv output the pooling reads (the
// rest is never computed), Q = kh*kw*C (one patch), M = N*Uy*Ux (patches).
//
// A 1-D block is the 2-D block with Y = 1, kh = 1 and a 1 x p pool: its input
// [N, S, C] and weights [K, C, k] have the same memory layout as [N, 1, S, C]
// and [K, C, 1, k].
//
// Patches are laid out (i, j, c), kernel row, kernel column, channel, so that
// im2col copies runs of kw*C contiguous inputs; the weights are permuted once
// per call to the same order, Wp [K, Q], from PyTorch's (c, i, j).
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "layer_support.hpp"
#include "lstmlearn/layers.hpp"
#include "lstmlearn/limits.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

using namespace detail;

namespace {

struct Geometry {
  Index N, Y, X, C, K, kh, kw, ph, pw;
  Index Oy, Ox, Py, Px, Uy, Ux;

  Geometry(Index N_, Index Y_, Index X_, Index C_, Index K_, Index kh_, Index kw_, Index ph_,
           Index pw_)
      : N(N_), Y(Y_), X(X_), C(C_), K(K_), kh(kh_), kw(kw_), ph(ph_), pw(pw_) {
    Oy = Y - kh + 1;
    Ox = X - kw + 1;
    Py = Oy / ph;
    Px = Ox / pw;
    Uy = Py * ph;
    Ux = Px * pw;
  }
  Index patch() const { return kh * kw * C; }    // Q
  Index rows() const { return N * Uy * Ux; }     // M
  Index outputs() const { return Py * Px * K; }  // per row of N
  std::size_t size(Index n) const { return static_cast<std::size_t>(n); }
};

Geometry geometry(const Conv1dShape& s) {
  return Geometry(s.samples, 1, s.length, s.channels, s.filters, 1, s.kernel, 1, s.pool);
}

Geometry geometry(const Conv2dShape& s) {
  return Geometry(s.samples, s.height, s.width, s.channels, s.filters, s.kernel_h, s.kernel_w,
                  s.pool, s.pool);
}

#ifndef LSTMLEARN_FLOAT64_PART  // used by the shapes' validate(), compiled with float32
void require_positive(const char* what, const char* name, int value) {
  if (value < 1) {
    throw std::invalid_argument(std::string(what) + ": " + name + " must be positive, got " +
                                std::to_string(value));
  }
}

// The weights [K, C, kh, kw] and a row of the output [Py*Px*K] must fit an
// int (limits.hpp): the network feeds the output to the LSTM as F_0.
void require_int_sizes(const char* what, const Geometry& g, std::int64_t output_width) {
  const bool is_1d = std::strcmp(what, "conv1d") == 0;
  if (is_1d) {
    check_tensor("conv1d: filters", g.K, "weight", {g.K, g.C, g.kw});  // [K, C, k]
  } else {
    check_tensor("conv2d: filters", g.K, "weight", {g.K, g.C, g.kh, g.kw});
  }
  check_index(is_1d ? "conv1d: the output width (pooled length x filters)"
                    : "conv2d: the output width (pooled height x width x filters)",
              output_width);
}

void require_int32_positions(const char* what, const Geometry& g) {
  if (g.Oy * g.Ox > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument(std::string(what) +
                                ": the conv output is too large for int32 argmax positions");
  }
}
#endif

// Wp[f, (i*kw + j)*C + c] = W[f, c, i, j].   Wp [K, Q]   W [K, C, kh, kw]
template <typename T>
void permute_weight(T* wp, const T* W, const Geometry& g) {
  for (Index f = 0; f < g.K; ++f) {
    for (Index c = 0; c < g.C; ++c) {
      for (Index i = 0; i < g.kh; ++i) {
        for (Index j = 0; j < g.kw; ++j) {
          wp[f * g.patch() + (i * g.kw + j) * g.C + c] = W[((f * g.C + c) * g.kh + i) * g.kw + j];
        }
      }
    }
  }
}

// The inverse: dW[f, c, i, j] = dWp[f, (i*kw + j)*C + c].
template <typename T>
void unpermute_weight(T* dW, const T* dwp, const Geometry& g) {
  for (Index f = 0; f < g.K; ++f) {
    for (Index c = 0; c < g.C; ++c) {
      for (Index i = 0; i < g.kh; ++i) {
        for (Index j = 0; j < g.kw; ++j) {
          dW[((f * g.C + c) * g.kh + i) * g.kw + j] = dwp[f * g.patch() + (i * g.kw + j) * g.C + c];
        }
      }
    }
  }
}

// cols[(n*Uy + oy)*Ux + ox, (i*kw + j)*C + c] = x[n, oy + i, ox + j, c].
//   cols [M, Q]   x [N, Y, X, C]
template <typename T>
void im2col(T* cols, const T* x, const Geometry& g) {
  const Index run = g.kw * g.C;  // x[n, oy + i, ox : ox + kw, :] is contiguous
  T* dst = cols;
  for (Index n = 0; n < g.N; ++n) {
    for (Index oy = 0; oy < g.Uy; ++oy) {
      for (Index ox = 0; ox < g.Ux; ++ox) {
        for (Index i = 0; i < g.kh; ++i) {
          std::memcpy(dst, x + ((n * g.Y + oy + i) * g.X + ox) * g.C, sizeof(T) * g.size(run));
          dst += run;
        }
      }
    }
  }
}

// Backward of im2col: dx = 0, then every patch gradient is added back where
// its inputs came from, in patch order.   dx [N, Y, X, C]   dcols [M, Q]
template <typename T>
void col2im(T* dx, const T* dcols, const Geometry& g) {
  const Index run = g.kw * g.C;
  std::memset(dx, 0, sizeof(T) * g.size(g.N * g.Y * g.X * g.C));
  const T* src = dcols;
  for (Index n = 0; n < g.N; ++n) {
    for (Index oy = 0; oy < g.Uy; ++oy) {
      for (Index ox = 0; ox < g.Ux; ++ox) {
        for (Index i = 0; i < g.kh; ++i) {
          RowMap<T>(dx + ((n * g.Y + oy + i) * g.X + ox) * g.C, run) += ConstRowMap<T>(src, run);
          src += run;
        }
      }
    }
  }
}

// Max pool of z, then ReLU. PyTorch's order of comparison: the first maximum
// in row-major window order wins, and a NaN always takes over.
//   y, argmax [N, Py*Px*K]   z [M, K]
template <typename T>
void pool_relu_forward(T* y, std::int32_t* argmax, const T* z, const Geometry& g) {
  const Index K = g.K;
  for (Index n = 0; n < g.N; ++n) {
    for (Index qy = 0; qy < g.Py; ++qy) {
      for (Index qx = 0; qx < g.Px; ++qx) {
        const Index o = n * g.outputs() + (qy * g.Px + qx) * K;
        T* best = y + o;
        std::int32_t* at = argmax + o;
        for (Index a = 0; a < g.ph; ++a) {
          for (Index c = 0; c < g.pw; ++c) {
            const Index oy = qy * g.ph + a, ox = qx * g.pw + c;
            const T* zr = z + ((n * g.Uy + oy) * g.Ux + ox) * K;
            const auto pos = static_cast<std::int32_t>(oy * g.Ox + ox);
            if (a == 0 && c == 0) {
              for (Index f = 0; f < K; ++f) {
                best[f] = zr[f];
                at[f] = pos;
              }
              continue;
            }
            for (Index f = 0; f < K; ++f) {
              if (zr[f] > best[f] || std::isnan(zr[f])) {
                best[f] = zr[f];
                at[f] = pos;
              }
            }
          }
        }
        // y = relu(max): a maximum <= 0 (or NaN) passes no gradient.
        for (Index f = 0; f < K; ++f) {
          if (!(best[f] > T(0))) {
            at[f] = -1;
            if (!std::isnan(best[f])) best[f] = T(0);
          }
        }
      }
    }
  }
}

// Backward of pool_relu_forward and of the bias: dz = 0 except at each routed
// maximum, db = sum of the routed dy.   dz [M, K]   db [K]   dy, argmax [N, Py*Px*K]
template <typename T>
void pool_relu_backward(T* dz, T* db, const T* dy, const std::int32_t* argmax, const Geometry& g,
                        const char* what) {
  const Index K = g.K;
  std::memset(dz, 0, sizeof(T) * g.size(g.rows() * K));
  std::memset(db, 0, sizeof(T) * g.size(K));
  for (Index n = 0; n < g.N; ++n) {
    for (Index qy = 0; qy < g.Py; ++qy) {
      for (Index qx = 0; qx < g.Px; ++qx) {
        const Index o = n * g.outputs() + (qy * g.Px + qx) * K;
        for (Index f = 0; f < K; ++f) {
          const std::int32_t pos = argmax[o + f];
          if (pos < 0) continue;
          const Index oy = pos / g.Ox, ox = pos % g.Ox;
          if (oy < qy * g.ph || oy >= (qy + 1) * g.ph || ox < qx * g.pw || ox >= (qx + 1) * g.pw) {
            throw std::invalid_argument(std::string(what) + ": argmax entry " +
                                        std::to_string(o + f) + " = " + std::to_string(pos) +
                                        " is not in its pooling window; pass the argmax of the "
                                        "forward pass with the same shapes");
          }
          // y = relu(z[argmax] + b)  =>  dz[argmax] = dy, db += dy.
          dz[((n * g.Uy + oy) * g.Ux + ox) * K + f] = dy[o + f];
          db[f] += dy[o + f];
        }
      }
    }
  }
}

// Rows (frames) of a forward task: a fixed count, so that the chunks, and
// with them every product, are the same for any number of threads. The
// time-distributed front end of the CNN-LSTM benchmark (1,536 frames of 8 x 8,
// 4 filters of 3 x 3) ran in one product on one thread: 85% of a batch-256
// predict.
constexpr Index kConvRows = 64;

template <typename T>
void conv_forward(T* y, std::int32_t* argmax, const T* x, const T* W, const T* b, const Geometry& g,
                  AlignedVector<T>& workspace, int n_threads) {
  const Index Q = g.patch(), M = g.rows(), K = g.K;
  auto [wp, cols, z] = carve<T, 3>(workspace, {g.size(K * Q), g.size(M * Q), g.size(M * K)});
  // wp [K, Q]   cols [M, Q]   z [M, K]
  permute_weight(wp, W, g);
  const Index per_row = g.Uy * g.Ux, in_row = g.Y * g.X * g.C, out_row = g.outputs();
  const Index chunks = (g.N + kConvRows - 1) / kConvRows;
  ThreadPool::instance().parallel_for(
      static_cast<std::size_t>(chunks), n_threads, [&](std::size_t task) {
        const Index n0 = static_cast<Index>(task) * kConvRows;
        Geometry part = g;
        part.N = std::min(kConvRows, g.N - n0);
        const Index m0 = n0 * per_row, m = part.rows();
        T* cols_part = cols + m0 * Q;
        T* z_part = z + m0 * K;
        im2col(cols_part, x + n0 * in_row, part);
        // z = cols Wp^T + b: every conv output the pooling reads.
        mat(z_part, m, K).noalias() = mat(cols_part, m, Q) * mat(wp, K, Q).transpose();
        add_to_rows(z_part, b, m, K);
        pool_relu_forward(y + n0 * out_row, argmax + n0 * out_row, z_part, part);
      });
}

template <typename T>
void conv_backward(T* dx, T* dW, T* db, const T* dy, const std::int32_t* argmax, const T* x,
                   const T* W, const Geometry& g, AlignedVector<T>& workspace, const char* what) {
  const Index Q = g.patch(), M = g.rows(), K = g.K;
  auto [wp, cols, dz, dwp] =
      carve<T, 4>(workspace, {g.size(K * Q), g.size(M * Q), g.size(M * K), g.size(K * Q)});
  // wp, dwp [K, Q]   cols [M, Q]   dz [M, K]
  pool_relu_backward(dz, db, dy, argmax, g, what);
  im2col(cols, x, g);
  const auto dZ = mat(dz, M, K);
  // z = cols Wp^T + b  =>  dWp = dz^T cols, dcols = dz Wp.
  mat(dwp, K, Q).noalias() = dZ.transpose() * mat(cols, M, Q);
  unpermute_weight(dW, dwp, g);
  if (dx) {
    permute_weight(wp, W, g);
    mat(cols, M, Q).noalias() = dZ * mat(wp, K, Q);  // dcols
    col2im(dx, cols, g);
  }
}

}  // namespace

#ifndef LSTMLEARN_FLOAT64_PART  // what does not depend on the dtype is compiled with float32

void Conv1dShape::validate() const {
  const char* what = "conv1d";
  require_positive(what, "samples", samples);
  require_positive(what, "length", length);
  require_positive(what, "channels", channels);
  require_positive(what, "filters", filters);
  require_positive(what, "kernel", kernel);
  require_positive(what, "pool", pool);
  if (kernel > length) {
    throw std::invalid_argument("conv1d: kernel size " + std::to_string(kernel) +
                                " is larger than the input length " + std::to_string(length));
  }
  if (pool > conv_length()) {
    throw std::invalid_argument(
        "conv1d: pool size " + std::to_string(pool) + " is larger than the conv output length " +
        std::to_string(conv_length()) + " (input length " + std::to_string(length) +
        " - kernel size " + std::to_string(kernel) + " + 1)");
  }
  require_int_sizes(what, geometry(*this), output_width());
  require_int32_positions(what, geometry(*this));
}

void Conv2dShape::validate() const {
  const char* what = "conv2d";
  require_positive(what, "samples", samples);
  require_positive(what, "height", height);
  require_positive(what, "width", width);
  require_positive(what, "channels", channels);
  require_positive(what, "filters", filters);
  require_positive(what, "kernel_h", kernel_h);
  require_positive(what, "kernel_w", kernel_w);
  require_positive(what, "pool", pool);
  if (kernel_h > height || kernel_w > width) {
    throw std::invalid_argument("conv2d: kernel " + std::to_string(kernel_h) + " x " +
                                std::to_string(kernel_w) + " is larger than the input " +
                                std::to_string(height) + " x " + std::to_string(width));
  }
  if (pool > conv_height() || pool > conv_width()) {
    throw std::invalid_argument("conv2d: pool " + std::to_string(pool) + " x " +
                                std::to_string(pool) + " is larger than the conv output " +
                                std::to_string(conv_height()) + " x " +
                                std::to_string(conv_width()) + " (input - kernel + 1)");
  }
  require_int_sizes(what, geometry(*this), output_width());
  require_int32_positions(what, geometry(*this));
}

#endif  // LSTMLEARN_FLOAT64_PART

template <typename T>
void conv1d_forward(T* y, std::int32_t* argmax, const T* x, const T* W, const T* b,
                    const Conv1dShape& shape, AlignedVector<T>& workspace, int n_threads) {
  shape.validate();
  conv_forward(y, argmax, x, W, b, geometry(shape), workspace, n_threads);
}

template <typename T>
void conv1d_backward(T* dx, T* dW, T* db, const T* dy, const std::int32_t* argmax, const T* x,
                     const T* W, const Conv1dShape& shape, AlignedVector<T>& workspace) {
  shape.validate();
  conv_backward(dx, dW, db, dy, argmax, x, W, geometry(shape), workspace, "conv1d_backward");
}

template <typename T>
void conv2d_forward(T* y, std::int32_t* argmax, const T* x, const T* W, const T* b,
                    const Conv2dShape& shape, AlignedVector<T>& workspace, int n_threads) {
  shape.validate();
  conv_forward(y, argmax, x, W, b, geometry(shape), workspace, n_threads);
}

template <typename T>
void conv2d_backward(T* dx, T* dW, T* db, const T* dy, const std::int32_t* argmax, const T* x,
                     const T* W, const Conv2dShape& shape, AlignedVector<T>& workspace) {
  shape.validate();
  conv_backward(dx, dW, db, dy, argmax, x, W, geometry(shape), workspace, "conv2d_backward");
}

#define LSTMLEARN_INSTANTIATE(T)                                                                  \
  template void conv1d_forward<T>(T*, std::int32_t*, const T*, const T*, const T*,                \
                                  const Conv1dShape&, AlignedVector<T>&, int);                    \
  template void conv1d_backward<T>(T*, T*, T*, const T*, const std::int32_t*, const T*, const T*, \
                                   const Conv1dShape&, AlignedVector<T>&);                        \
  template void conv2d_forward<T>(T*, std::int32_t*, const T*, const T*, const T*,                \
                                  const Conv2dShape&, AlignedVector<T>&, int);                    \
  template void conv2d_backward<T>(T*, T*, T*, const T*, const std::int32_t*, const T*, const T*, \
                                   const Conv2dShape&, AlignedVector<T>&);
LSTMLEARN_INSTANTIATE(LSTMLEARN_ENGINE_DTYPE)
#undef LSTMLEARN_INSTANTIATE

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
