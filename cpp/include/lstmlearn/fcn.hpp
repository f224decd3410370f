// The fully convolutional branch of LSTM-FCN and MLSTM-FCN (Karim et al.
// 2017, 2019): blocks of Conv1D over time ('same' padding, stride 1), batch
// normalisation and ReLU, squeeze-and-excitation after every block but the
// last (the multivariate variant), then global average pooling over time. The
// network runs it beside the LSTM layers and concatenates its output to
// theirs before the dense head.
//
// Size key: B = batch, T = time steps, C_i = channels into block i (C_0 = F,
// the input features), K_i = filters of block i, k_i = its kernel, R_i =
// squeeze-and-excitation units (max(1, K_i / reduction)), N = valid rows of
// the batch (B*T without a mask). Activations are stored [B, T, Kp_i], rows
// padded to 64 bytes (Kp_i >= K_i), so every row starts aligned and an
// element-wise step rounds alike at every row.
//
// Parameters of block i, in this order (PyTorch layouts):
//   fcn.conv{i}.weight [K, C, k]   fcn.conv{i}.bias [K]
//   fcn.bn{i}.gamma [K]   fcn.bn{i}.beta [K]
//   fcn.bn{i}.running_mean [K]   fcn.bn{i}.running_var [K]
//   with squeeze-and-excitation: fcn.se{i}.weight1 [R, K], fcn.se{i}.weight2 [K, R]
//   (no biases, as the papers' code).
// The running statistics are model state, not trained: their gradient is
// always 0 (so no optimizer moves them), and a training step updates them
// as PyTorch's BatchNorm1d does (momentum 0.1, unbiased variance).
//
// Masks: masked steps enter the convolutions as zeros, their activations are
// zero, and they count in neither the batch statistics nor the pooling. For
// sequences padded at the end this is the branch on each sequence alone
// (with the batch statistics of the real steps).
//
// Threads: per-sample work is one task per sample; reductions over the batch
// run per block of channels (or per kernel tap and block of filters) over the
// rows in order. The partition never depends on the thread count, so results
// are bitwise the same for any n_threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "lstmlearn/gemm.hpp"
#include "lstmlearn/lstm.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

struct FcnSpec {
  int channels = 1;          // C_0
  std::vector<int> filters;  // K_i
  std::vector<int> kernels;  // k_i
  bool squeeze_excitation = false;
  int reduction = 16;
  double momentum = 0.1;  // running statistics
  double epsilon = 1e-5;

  int blocks() const { return static_cast<int>(filters.size()); }
  int in_channels(int i) const { return i == 0 ? channels : filters[i - 1]; }
  int out_width() const { return filters.back(); }
  bool has_se(int i) const { return squeeze_excitation && i + 1 < blocks(); }
  int se_units(int i) const;
  void validate() const;
  // Names (prefixed "fcn."), offsets from the branch's first parameter, shapes.
  std::vector<TensorInfo> layout() const;
  std::size_t parameter_count() const;
};

template <typename T>
class FcnBranch {
 public:
  void init(const FcnSpec& spec);
  const FcnSpec& spec() const { return spec_; }

  // pooled [B, K_last] with row stride ld; x [B, T, C_0]; mask [B, T] or
  // null. `training`: batch statistics (kept for backward and
  // update_running), else the running statistics.
  void forward(const T* params, const T* x, const std::uint8_t* mask, int B, int steps,
               bool training, T* pooled, std::size_t ld, int n_threads);

  // grads of the branch's parameters (overwritten; 0 for the running
  // statistics) from d_pooled [B, K_last] (row stride ld), after a training
  // forward.
  void backward(const T* params, T* grads, const T* d_pooled, std::size_t ld, int n_threads);

  // running = (1 - momentum) running + momentum batch, with the statistics of
  // the last training forward (the variance unbiased, N / (N - 1)).
  void update_running(T* params) const;

 private:
  struct Block {
    std::size_t offset = 0;  // of conv.weight in the branch's parameters
    int C = 1, K = 1, k = 1, R = 0;
    std::size_t Kp = 1, Rp = 1;              // padded row widths
    std::vector<PackedMatrix<T>> taps;       // W_j^T [C, K] per tap j (forward)
    std::vector<PackedMatrix<T>> taps_back;  // W_j [K, C] per tap j (input gradient)
    AlignedVector<T> wtap;                   // [k, K, C] the weight by tap
    AlignedVector<T> z;                      // [B, T, Kp] conv output; backward: dz
    AlignedVector<T> xhat;                   // [B, T, Kp] normalised (training)
    AlignedVector<T> a;                      // [B, T, Kp] ReLU output
    AlignedVector<T> o;                      // [B, T, Kp] a * e (squeeze-excitation)
    AlignedVector<T> da;                     // [B, T, Kp] gradient of the output
    AlignedVector<T> s, e, dv;               // [B, Kp] squeeze, excitation, d pre-sigmoid
    AlignedVector<T> u, du;                  // [B, Rp] SE hidden units
    std::vector<double> mean, var;           // [K] batch statistics (var biased)
    AlignedVector<T> scale, shift, invstd;   // [K]
    std::vector<double> sum_dy, sum_dyx;     // [K]
    AlignedVector<T> dwtap;                  // [k, K, C]
    const T* output() const { return R > 0 ? o.data() : a.data(); }
  };
  std::size_t offset_of(int i, int tensor) const;

  FcnSpec spec_;
  std::vector<Block> blocks_;
  int B_ = 0, steps_ = 0;
  std::size_t valid_ = 0;  // N
  const std::uint8_t* mask_ = nullptr;
  std::vector<int> lengths_;  // [B] valid steps per sample
  AlignedVector<T> x0_;       // [B, T, C_0] masked input
  const T* x_ = nullptr;      // block 0's input (x or x0_)
  std::size_t x_ld_ = 0;
};

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
