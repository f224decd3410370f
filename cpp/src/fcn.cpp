// The fully convolutional branch of LSTM-FCN. See fcn.hpp for the size key.
//
// Block i, row r = (b, t) of the batch, padding left pl = (k-1)/2 ('same',
// PyTorch's and Keras's split for an even kernel):
//   z[r] = bias + sum over taps j of in[b, t + j - pl] W_j^T   (zeros outside [0, T))
//   xhat = (z - mean) / sqrt(var + eps)                          (batch or running stats)
//   a = relu(gamma xhat + beta)                                  (0 at masked steps)
//   o = a * e[b], e = sigmoid(W2 relu(W1 s[b])), s[b] = mean over valid t of a[b, t]
// and after the last block pooled[b] = mean over valid t of o[b, t].
#include "lstmlearn/fcn.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "layer_support.hpp"
#include "lstmlearn/limits.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

using namespace detail;

namespace {

constexpr int kChannelBlock = 16;  // channels per task of a reduction over the batch
constexpr int kFilterBlock = 64;   // filters per task of a convolution's weight gradient

template <typename T>
void grow(AlignedVector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

// Row width padded to 64 bytes.
template <typename T>
std::size_t padded(int n) {
  constexpr std::size_t step = 64 / sizeof(T);
  return (static_cast<std::size_t>(n) + step - 1) / step * step;
}

template <typename T>
using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;

void parallel(std::size_t tasks, int n_threads, const std::function<void(std::size_t)>& fn) {
  ThreadPool::instance().parallel_for(tasks, n_threads, fn);
}

}  // namespace

#ifndef LSTMLEARN_FLOAT64_PART  // what does not depend on the dtype is compiled with float32

int FcnSpec::se_units(int i) const { return std::max(1, filters[i] / reduction); }

void FcnSpec::validate() const {
  if (filters.empty()) throw std::invalid_argument("the FCN branch needs at least one block");
  if (kernels.size() != filters.size()) {
    throw std::invalid_argument("the FCN branch needs one kernel size per block of filters");
  }
  for (std::size_t i = 0; i < filters.size(); ++i) {
    if (filters[i] < 1 || kernels[i] < 1) {
      throw std::invalid_argument("FCN filters and kernel sizes must be positive");
    }
    check_tensor("fcn filters", filters[i], "fcn conv weight",
                 {filters[i], in_channels(static_cast<int>(i)), kernels[i]});
  }
  if (channels < 1) throw std::invalid_argument("the FCN branch needs input channels");
  if (reduction < 1) throw std::invalid_argument("the squeeze-excitation reduction must be >= 1");
  if (!(momentum >= 0.0 && momentum <= 1.0) || !(epsilon > 0.0)) {
    throw std::invalid_argument("batch normalisation needs momentum in [0, 1] and eps > 0");
  }
}

std::vector<TensorInfo> FcnSpec::layout() const {
  std::vector<TensorInfo> out;
  std::size_t at = 0;
  auto add = [&](const std::string& name, std::vector<std::size_t> shape) {
    std::size_t n = 1;
    for (std::size_t s : shape) n *= s;
    out.push_back({name, at, std::move(shape)});
    at += n;
  };
  for (int i = 0; i < blocks(); ++i) {
    const std::size_t K = filters[i], C = in_channels(i), k = kernels[i];
    const std::string p = "fcn.", n = std::to_string(i);
    add(p + "conv" + n + ".weight", {K, C, k});
    add(p + "conv" + n + ".bias", {K});
    add(p + "bn" + n + ".gamma", {K});
    add(p + "bn" + n + ".beta", {K});
    add(p + "bn" + n + ".running_mean", {K});
    add(p + "bn" + n + ".running_var", {K});
    if (has_se(i)) {
      const std::size_t R = se_units(i);
      add(p + "se" + n + ".weight1", {R, K});
      add(p + "se" + n + ".weight2", {K, R});
    }
  }
  return out;
}

std::size_t FcnSpec::parameter_count() const {
  const auto l = layout();
  std::size_t n = 1;
  for (std::size_t s : l.back().shape) n *= s;
  return l.back().offset + n;
}

#endif  // LSTMLEARN_FLOAT64_PART

template <typename T>
void FcnBranch<T>::init(const FcnSpec& spec) {
  spec.validate();
  spec_ = spec;
  blocks_.assign(spec.blocks(), Block{});
  std::size_t at = 0;
  for (int i = 0; i < spec.blocks(); ++i) {
    Block& blk = blocks_[i];
    blk.offset = at;
    blk.C = spec.in_channels(i);
    blk.K = spec.filters[i];
    blk.k = spec.kernels[i];
    blk.R = spec.has_se(i) ? spec.se_units(i) : 0;
    blk.Kp = padded<T>(blk.K);
    blk.Rp = padded<T>(std::max(blk.R, 1));
    blk.taps.resize(blk.k);
    blk.taps_back.resize(blk.k);
    const std::size_t K = blk.K, C = blk.C, k = blk.k, R = blk.R;
    at += K * C * k + 5 * K + 2 * R * K;
  }
}

// tensor: 0 conv.weight, 1 conv.bias, 2 gamma, 3 beta, 4 running_mean,
// 5 running_var, 6 se.weight1, 7 se.weight2.
template <typename T>
std::size_t FcnBranch<T>::offset_of(int i, int tensor) const {
  const Block& blk = blocks_[i];
  const std::size_t K = blk.K, W = K * blk.C * blk.k, R = blk.R;
  if (tensor == 0) return blk.offset;
  if (tensor <= 6) return blk.offset + W + (tensor - 1) * K;
  return blk.offset + W + 5 * K + R * K;
}

template <typename T>
void FcnBranch<T>::forward(const T* params, const T* x, const std::uint8_t* mask, int B, int steps,
                           bool training, T* pooled, std::size_t ld, int n_threads) {
  const std::size_t T_ = steps, C0 = spec_.channels;
  B_ = B;
  steps_ = steps;
  mask_ = mask;
  lengths_.assign(B, steps);
  valid_ = static_cast<std::size_t>(B) * T_;
  x_ = x;
  x_ld_ = C0;
  if (mask) {
    // Masked steps enter the first convolution as zeros.
    grow(x0_, B * T_ * C0);
    valid_ = 0;
    for (int b = 0; b < B; ++b) {
      int n = 0;
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        if (mask[r]) {
          std::memcpy(x0_.data() + r * C0, x + r * C0, sizeof(T) * C0);
          ++n;
        } else {
          std::fill(x0_.data() + r * C0, x0_.data() + (r + 1) * C0, T(0));
        }
      }
      lengths_[b] = n;
      valid_ += n;
    }
    x_ = x0_.data();
  }
  const T* in = x_;
  std::size_t in_ld = x_ld_;
  for (int i = 0; i < spec_.blocks(); ++i) {
    Block& blk = blocks_[i];
    const int K = blk.K, C = blk.C, k = blk.k, pl = (k - 1) / 2;
    const std::size_t Kp = blk.Kp, rows = B * T_;
    const T* W = params + offset_of(i, 0);
    const T* bias = params + offset_of(i, 1);
    const T* gamma = params + offset_of(i, 2);
    const T* beta = params + offset_of(i, 3);
    grow(blk.z, rows * Kp);
    grow(blk.a, rows * Kp);
    if (training) grow(blk.xhat, rows * Kp);
    // W_j [K, C] per tap, packed as B = W_j^T for the forward product.
    grow(blk.wtap, static_cast<std::size_t>(k) * K * C);
    for (int j = 0; j < k; ++j) {
      for (int f = 0; f < K; ++f) {
        for (int c = 0; c < C; ++c) {
          blk.wtap[(static_cast<std::size_t>(j) * K + f) * C + c] =
              W[(static_cast<std::size_t>(f) * C + c) * k + j];
        }
      }
      pack_matrix(blk.wtap.data() + static_cast<std::size_t>(j) * K * C, C, K, C, true,
                  blk.taps[j]);
    }
    // z = bias + sum over taps: one accumulating product per tap and sample.
    parallel(B, n_threads, [&](std::size_t b) {
      T* zb = blk.z.data() + b * T_ * Kp;
      const T* xb = in + b * T_ * in_ld;
      for (std::size_t t = 0; t < T_; ++t) {
        T* row = zb + t * Kp;
        std::copy(bias, bias + K, row);
        std::fill(row + K, row + Kp, T(0));
      }
      for (int j = 0; j < k; ++j) {
        const int shift = j - pl;
        const int t0 = std::max(0, -shift), t1 = std::min(steps, steps - shift);
        if (t1 <= t0) continue;
        gemm_packed(t1 - t0, xb + (t0 + shift) * in_ld, static_cast<std::ptrdiff_t>(in_ld),
                    blk.taps[j], zb + t0 * Kp, static_cast<std::ptrdiff_t>(Kp), true);
      }
    });
    // Statistics: the batch's over the valid rows (two passes, in double,
    // rows in order per block of channels), or the running ones.
    grow(blk.scale, K);
    grow(blk.shift, K);
    grow(blk.invstd, K);
    const double eps = spec_.epsilon;
    if (training) {
      blk.mean.assign(K, 0.0);
      blk.var.assign(K, 0.0);
      const std::size_t tasks = (K + kChannelBlock - 1) / kChannelBlock;
      parallel(tasks, n_threads, [&](std::size_t task) {
        const int f0 = static_cast<int>(task) * kChannelBlock;
        const int nf = std::min(kChannelBlock, K - f0);
        Eigen::Array<double, Eigen::Dynamic, 1> sum =
            Eigen::Array<double, Eigen::Dynamic, 1>::Zero(nf);
        for (std::size_t r = 0; r < rows; ++r) {
          if (mask && !mask[r]) continue;
          sum += ConstArrayMap<T>(blk.z.data() + r * Kp + f0, nf).template cast<double>();
        }
        const double n = std::max<double>(1.0, static_cast<double>(valid_));
        const Eigen::Array<double, Eigen::Dynamic, 1> mean = sum / n;
        sum.setZero();
        for (std::size_t r = 0; r < rows; ++r) {
          if (mask && !mask[r]) continue;
          sum += (ConstArrayMap<T>(blk.z.data() + r * Kp + f0, nf).template cast<double>() - mean)
                     .square();
        }
        for (int f = 0; f < nf; ++f) {
          blk.mean[f0 + f] = mean[f];
          blk.var[f0 + f] = sum[f] / n;
          blk.invstd[f0 + f] = static_cast<T>(1.0 / std::sqrt(sum[f] / n + eps));
        }
      });
    } else {
      const T* rmean = params + offset_of(i, 4);
      const T* rvar = params + offset_of(i, 5);
      for (int f = 0; f < K; ++f) {
        const T scale = gamma[f] / std::sqrt(rvar[f] + static_cast<T>(eps));
        blk.scale[f] = scale;
        blk.shift[f] = beta[f] - rmean[f] * scale;
      }
    }
    // Normalise, ReLU, squeeze-excitation: one task per sample.
    const int R = blk.R;
    if (R > 0) {
      grow(blk.o, rows * Kp);
      grow(blk.s, B * Kp);
      grow(blk.e, B * Kp);
      grow(blk.u, B * blk.Rp);
    }
    const T* W1 = R > 0 ? params + offset_of(i, 6) : nullptr;
    const T* W2 = R > 0 ? params + offset_of(i, 7) : nullptr;
    parallel(B, n_threads, [&](std::size_t b) {
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        ArrayMap<T> a(blk.a.data() + r * Kp, K);
        if (mask && !mask[r]) {
          a.setZero();
          if (training) ArrayMap<T>(blk.xhat.data() + r * Kp, K).setZero();
          continue;
        }
        const ConstArrayMap<T> z(blk.z.data() + r * Kp, K);
        if (training) {
          ArrayMap<T> xh(blk.xhat.data() + r * Kp, K);
          for (int f = 0; f < K; ++f) {
            xh[f] = static_cast<T>((static_cast<double>(z[f]) - blk.mean[f])) * blk.invstd[f];
          }
          a = (xh * ConstArrayMap<T>(gamma, K) + ConstArrayMap<T>(beta, K)).max(T(0));
        } else {
          a = (z * ConstArrayMap<T>(blk.scale.data(), K) + ConstArrayMap<T>(blk.shift.data(), K))
                  .max(T(0));
        }
      }
      if (R == 0) return;
      // s = mean of a over the valid steps (masked rows are 0).
      ArrayMap<T> s(blk.s.data() + b * Kp, K);
      s.setZero();
      for (std::size_t t = 0; t < T_; ++t)
        s += ConstArrayMap<T>(blk.a.data() + (b * T_ + t) * Kp, K);
      const int n = lengths_[b];
      if (n > 0) s /= static_cast<T>(n);
      // u = relu(W1 s), e = sigmoid(W2 u).
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> u(blk.u.data() + b * blk.Rp, R);
      u.noalias() =
          mat(W1, R, K) * Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(s.data(), K);
      u = u.cwiseMax(T(0));
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> e(blk.e.data() + b * Kp, K);
      e.noalias() = mat(W2, K, R) * u;
      ArrayMap<T> ea(blk.e.data() + b * Kp, K);
      ea = T(1) / (T(1) + (-ea).exp());
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        ArrayMap<T>(blk.o.data() + r * Kp, K) = ConstArrayMap<T>(blk.a.data() + r * Kp, K) * ea;
      }
    });
    in = blk.output();
    in_ld = Kp;
  }
  // pooled[b] = mean over the valid steps of the last block's output.
  const Block& last = blocks_.back();
  const int K = last.K;
  parallel(B, n_threads, [&](std::size_t b) {
    ArrayMap<T> p(pooled + b * ld, K);
    p.setZero();
    for (std::size_t t = 0; t < T_; ++t) p += ConstArrayMap<T>(in + (b * T_ + t) * in_ld, K);
    if (lengths_[b] > 0) p /= static_cast<T>(lengths_[b]);
  });
}

template <typename T>
void FcnBranch<T>::backward(const T* params, T* grads, const T* d_pooled, std::size_t ld,
                            int n_threads) {
  const int B = B_, steps = steps_;
  const std::size_t T_ = steps, rows = static_cast<std::size_t>(B) * T_;
  const std::uint8_t* mask = mask_;
  std::memset(grads, 0, sizeof(T) * spec_.parameter_count());
  // pooled = mean over valid t of o  =>  do[b, t] = d_pooled[b] / n_b at valid t.
  {
    Block& last = blocks_.back();
    const int K = last.K;
    const std::size_t Kp = last.Kp;
    grow(last.da, rows * Kp);
    parallel(B, n_threads, [&](std::size_t b) {
      const int n = lengths_[b];
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        ArrayMap<T> d(last.da.data() + r * Kp, K);
        if ((mask && !mask[r]) || n == 0) {
          d.setZero();
        } else {
          d = ConstArrayMap<T>(d_pooled + b * ld, K) / static_cast<T>(n);
        }
      }
    });
  }
  for (int i = spec_.blocks() - 1; i >= 0; --i) {
    Block& blk = blocks_[i];
    const int K = blk.K, C = blk.C, k = blk.k, R = blk.R, pl = (k - 1) / 2;
    const std::size_t Kp = blk.Kp, Rp = blk.Rp;
    const T* gamma = params + offset_of(i, 2);
    if (R > 0) {
      // o = a * e  =>  da = do * e, de = sum over t of do * a; then back
      // through e = sigmoid(W2 u), u = relu(W1 s), s = mean of a.
      const T* W1 = params + offset_of(i, 6);
      const T* W2 = params + offset_of(i, 7);
      grow(blk.dv, B * Kp);
      grow(blk.du, B * Rp);
      parallel(B, n_threads, [&](std::size_t b) {
        ArrayMap<T> dv(blk.dv.data() + b * Kp, K);
        const ConstArrayMap<T> e(blk.e.data() + b * Kp, K);
        dv.setZero();
        for (std::size_t t = 0; t < T_; ++t) {
          const std::size_t r = b * T_ + t;
          ArrayMap<T> d(blk.da.data() + r * Kp, K);
          dv += d * ConstArrayMap<T>(blk.a.data() + r * Kp, K);  // de
          d *= e;
        }
        dv *= e * (T(1) - e);  // e = sigmoid(v)  =>  dv = de e (1 - e)
        Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> du(blk.du.data() + b * Rp, R);
        // v = W2 u  =>  du = W2^T dv; u = relu(W1 s)  =>  zero where u <= 0.
        du.noalias() =
            mat(W2, K, R).transpose() *
            Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(blk.dv.data() + b * Kp, K);
        const ConstArrayMap<T> u(blk.u.data() + b * Rp, R);
        for (int q = 0; q < R; ++q) {
          if (!(u[q] > T(0))) du[q] = T(0);
        }
        // s = W1^T du, spread over the valid steps: da += ds / n.
        const int n = lengths_[b];
        if (n == 0) return;
        Arr<T> ds = (mat(W1, R, K).transpose() * du).array() / static_cast<T>(n);
        for (std::size_t t = 0; t < T_; ++t) {
          const std::size_t r = b * T_ + t;
          if (mask && !mask[r]) continue;
          ArrayMap<T>(blk.da.data() + r * Kp, K) += ds;
        }
      });
      // dW2 = dv^T u [K, R], dW1 = du^T s [R, K]: sums over the batch, on
      // this thread.
      T* dW1 = grads + offset_of(i, 6);
      T* dW2 = grads + offset_of(i, 7);
      mat(dW2, K, R).noalias() =
          ConstStridedMap<T>(blk.dv.data(), B, K, Eigen::OuterStride<>(Kp)).transpose() *
          ConstStridedMap<T>(blk.u.data(), B, R, Eigen::OuterStride<>(Rp));
      mat(dW1, R, K).noalias() =
          ConstStridedMap<T>(blk.du.data(), B, R, Eigen::OuterStride<>(Rp)).transpose() *
          ConstStridedMap<T>(blk.s.data(), B, K, Eigen::OuterStride<>(Kp));
    }
    // a = relu(y): dy = da where a > 0, and 0 at masked steps (da holds dy now).
    parallel(B, n_threads, [&](std::size_t b) {
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        ArrayMap<T> d(blk.da.data() + r * Kp, K);
        if (mask && !mask[r]) {
          d.setZero();
          continue;
        }
        d = (ConstArrayMap<T>(blk.a.data() + r * Kp, K) > T(0)).select(d, T(0));
      }
    });
    // y = gamma xhat + beta with batch statistics:
    //   dgamma = sum dy xhat, dbeta = sum dy,
    //   dz = gamma invstd (dy - dbeta / N - xhat dgamma / N) at valid rows.
    T* d_bias = grads + offset_of(i, 1);
    T* d_gamma = grads + offset_of(i, 2);
    T* d_beta = grads + offset_of(i, 3);
    blk.sum_dy.assign(K, 0.0);
    blk.sum_dyx.assign(K, 0.0);
    const std::size_t tasks = (K + kChannelBlock - 1) / kChannelBlock;
    parallel(tasks, n_threads, [&](std::size_t task) {
      const int f0 = static_cast<int>(task) * kChannelBlock;
      const int nf = std::min(kChannelBlock, K - f0);
      Eigen::Array<double, Eigen::Dynamic, 1> sd =
                                                  Eigen::Array<double, Eigen::Dynamic, 1>::Zero(nf),
                                              sx =
                                                  Eigen::Array<double, Eigen::Dynamic, 1>::Zero(nf);
      for (std::size_t r = 0; r < rows; ++r) {
        if (mask && !mask[r]) continue;
        const auto d = ConstArrayMap<T>(blk.da.data() + r * Kp + f0, nf).template cast<double>();
        sd += d;
        sx += d * ConstArrayMap<T>(blk.xhat.data() + r * Kp + f0, nf).template cast<double>();
      }
      for (int f = 0; f < nf; ++f) {
        blk.sum_dy[f0 + f] = sd[f];
        blk.sum_dyx[f0 + f] = sx[f];
        d_beta[f0 + f] = static_cast<T>(sd[f]);
        d_gamma[f0 + f] = static_cast<T>(sx[f]);
      }
    });
    const double n_valid = std::max<double>(1.0, static_cast<double>(valid_));
    Arr<T> mean_dy(K), mean_dyx(K), g(K);
    for (int f = 0; f < K; ++f) {
      mean_dy[f] = static_cast<T>(blk.sum_dy[f] / n_valid);
      mean_dyx[f] = static_cast<T>(blk.sum_dyx[f] / n_valid);
      g[f] = gamma[f] * blk.invstd[f];
    }
    // dz into z's buffer (z is no longer needed).
    parallel(B, n_threads, [&](std::size_t b) {
      for (std::size_t t = 0; t < T_; ++t) {
        const std::size_t r = b * T_ + t;
        ArrayMap<T> dz(blk.z.data() + r * Kp, K);
        if (mask && !mask[r]) {
          dz.setZero();
          continue;
        }
        dz = g * (ConstArrayMap<T>(blk.da.data() + r * Kp, K) - mean_dy -
                  ConstArrayMap<T>(blk.xhat.data() + r * Kp, K) * mean_dyx);
      }
    });
    // z = bias + ...  =>  dbias = sum over rows of dz (per block of channels).
    parallel(tasks, n_threads, [&](std::size_t task) {
      const int f0 = static_cast<int>(task) * kChannelBlock;
      const int nf = std::min(kChannelBlock, K - f0);
      ArrayMap<T> db(d_bias + f0, nf);
      db.setZero();
      for (std::size_t r = 0; r < rows; ++r) db += ConstArrayMap<T>(blk.z.data() + r * Kp + f0, nf);
    });
    // z[b, t] += in[b, t + j - pl] W_j^T  =>  dW_j += dz[b, t]^T in[b, t + j - pl]
    // (one task per tap and block of kFilterBlock filters, samples in order)
    // and, below block 0, d_in[b, t + j - pl] += dz[b, t] W_j (one task per
    // sample), all in one job.
    const T* in = i == 0 ? x_ : blocks_[i - 1].output();
    const std::size_t in_ld = i == 0 ? x_ld_ : blocks_[i - 1].Kp;
    grow(blk.dwtap, static_cast<std::size_t>(k) * K * C);
    Block* prev = i > 0 ? &blocks_[i - 1] : nullptr;
    const std::size_t Cp = prev ? prev->Kp : 0;
    if (prev) {
      grow(prev->da, rows * Cp);
      for (int j = 0; j < k; ++j) {
        pack_matrix(blk.wtap.data() + static_cast<std::size_t>(j) * K * C, K, C, C, false,
                    blk.taps_back[j]);
      }
    }
    const std::size_t filter_blocks = (K + kFilterBlock - 1) / kFilterBlock;
    const std::size_t dw_tasks = static_cast<std::size_t>(k) * filter_blocks;
    parallel(dw_tasks + (prev ? B : 0), n_threads, [&](std::size_t task) {
      if (task < dw_tasks) {
        const int j = static_cast<int>(task / filter_blocks), shift = j - pl;
        const int f0 = static_cast<int>(task % filter_blocks) * kFilterBlock;
        const int nf = std::min(kFilterBlock, K - f0);
        const int t0 = std::max(0, -shift), t1 = std::min(steps, steps - shift);
        auto dW = mat(blk.dwtap.data() + (static_cast<std::size_t>(j) * K + f0) * C, nf, C);
        dW.setZero();
        if (t1 <= t0) return;
        for (int b = 0; b < B; ++b) {
          const std::size_t base = static_cast<std::size_t>(b) * T_;
          dW.noalias() += ConstStridedMap<T>(blk.z.data() + (base + t0) * Kp + f0, t1 - t0, nf,
                                             Eigen::OuterStride<>(Kp))
                              .transpose() *
                          ConstStridedMap<T>(in + (base + t0 + shift) * in_ld, t1 - t0, C,
                                             Eigen::OuterStride<>(in_ld));
        }
        return;
      }
      const std::size_t b = task - dw_tasks;
      T* dxb = prev->da.data() + b * T_ * Cp;
      std::fill(dxb, dxb + T_ * Cp, T(0));
      const T* dzb = blk.z.data() + b * T_ * Kp;
      for (int j = 0; j < k; ++j) {
        const int shift = j - pl;
        const int t0 = std::max(0, -shift), t1 = std::min(steps, steps - shift);
        if (t1 <= t0) continue;
        gemm_packed(t1 - t0, dzb + t0 * Kp, static_cast<std::ptrdiff_t>(Kp), blk.taps_back[j],
                    dxb + (t0 + shift) * Cp, static_cast<std::ptrdiff_t>(Cp), true);
      }
    });
    T* dW = grads + offset_of(i, 0);
    for (int j = 0; j < k; ++j) {
      for (int f = 0; f < K; ++f) {
        for (int c = 0; c < C; ++c) {
          dW[(static_cast<std::size_t>(f) * C + c) * k + j] =
              blk.dwtap[(static_cast<std::size_t>(j) * K + f) * C + c];
        }
      }
    }
  }
}

template <typename T>
void FcnBranch<T>::update_running(T* params) const {
  const double m = spec_.momentum, n = static_cast<double>(valid_);
  const double unbias = n > 1.0 ? n / (n - 1.0) : 1.0;
  for (int i = 0; i < spec_.blocks(); ++i) {
    const Block& blk = blocks_[i];
    if (static_cast<int>(blk.mean.size()) != blk.K) continue;  // no training forward yet
    T* rmean = params + offset_of(i, 4);
    T* rvar = params + offset_of(i, 5);
    for (int f = 0; f < blk.K; ++f) {
      rmean[f] = static_cast<T>((1.0 - m) * static_cast<double>(rmean[f]) + m * blk.mean[f]);
      rvar[f] = static_cast<T>((1.0 - m) * static_cast<double>(rvar[f]) + m * blk.var[f] * unbias);
    }
  }
}

template class FcnBranch<LSTMLEARN_ENGINE_DTYPE>;

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
