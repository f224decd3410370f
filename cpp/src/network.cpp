// Sequence network and its training epoch. See network.hpp for the size key.
#include "lstmlearn/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "layer_support.hpp"
#include "lstmlearn/limits.hpp"
#include "lstmlearn/random.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

using detail::ConstMatMap;
using detail::ConstStridedMap;
using detail::MatMap;
using detail::RowMatrix;
using detail::StridedMap;
template <typename T>
using Vec = detail::ArrayMap<T>;
template <typename T>
using ConstVec = detail::ConstArrayMap<T>;

constexpr std::size_t kHeadRows = 256;  // rows of the dense head and softmax per task
constexpr std::size_t kHeadCols = 64;   // columns of the head's weight gradient per task
// Multiply-adds of a streaming step from which its units are split among
// threads (see lstm_stream_step): medium's step (82k) took 2.8 us on two
// threads against 4.0 us on one on a quiet 2-core AVX2 VM (Zen 3), where an
// empty round trip between two threads takes 1.8 us. On a busy machine the
// team is the caller alone (run_team), which then runs every part.
constexpr double kStreamTeamWork = 1 << 16;
// The same for the steps of a sampling loop (see Network::stream_sample).
constexpr double kSampleTeamWork = 1 << 18;

template <typename T>
void grow(AlignedVector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

// Keep mask scaled by 1/(1-p): what inverted dropout multiplies by.
template <typename T>
void dropout_mask(T* mask, std::size_t n, double p, std::uint64_t& state) {
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  for (std::size_t k = 0; k < n; ++k) mask[k] = random_uniform(state) >= p ? scale : T(0);
}

// Merges the two directions: out [rows, W] from a, b [rows, H] with row strides.
template <typename T>
void merge_rows(Merge mode, const T* a, const T* b, std::size_t stride_ab, T* out,
                std::size_t stride_out, std::size_t rows, int H) {
  for (std::size_t r = 0; r < rows; ++r) {
    ConstVec<T> fa(a + r * stride_ab, H), fb(b + r * stride_ab, H);
    T* o = out + r * stride_out;
    switch (mode) {
      case Merge::Concat:
        Vec<T>(o, H) = fa;
        Vec<T>(o + H, H) = fb;
        break;
      case Merge::Sum:
        Vec<T>(o, H) = fa + fb;
        break;
      case Merge::Mul:
        Vec<T>(o, H) = fa * fb;
        break;
      case Merge::Ave:
        Vec<T>(o, H) = T(0.5) * (fa + fb);
        break;
    }
  }
}

// Backward of merge_rows: da, db from d_out and the forward inputs a, b.
template <typename T>
void unmerge_rows(Merge mode, const T* d_out, std::size_t stride_out, const T* a, const T* b, T* da,
                  T* db, std::size_t stride_ab, std::size_t rows, int H) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* d = d_out + r * stride_out;
    Vec<T> ga(da + r * stride_ab, H), gb(db + r * stride_ab, H);
    switch (mode) {
      case Merge::Concat:
        ga = ConstVec<T>(d, H);
        gb = ConstVec<T>(d + H, H);
        break;
      case Merge::Sum:
        ga = ConstVec<T>(d, H);
        gb = ConstVec<T>(d, H);
        break;
      case Merge::Mul:  // out = a * b
        ga = ConstVec<T>(d, H) * ConstVec<T>(b + r * stride_ab, H);
        gb = ConstVec<T>(d, H) * ConstVec<T>(a + r * stride_ab, H);
        break;
      case Merge::Ave:
        ga = T(0.5) * ConstVec<T>(d, H);
        gb = T(0.5) * ConstVec<T>(d, H);
        break;
    }
  }
}

// Sets a flag for a scope (and clears it however the scope ends).
struct CarryScope {
  explicit CarryScope(bool& flag) : flag_(flag) { flag_ = true; }
  ~CarryScope() { flag_ = false; }
  CarryScope(const CarryScope&) = delete;
  CarryScope& operator=(const CarryScope&) = delete;

 private:
  bool& flag_;
};

bool is_weight(const std::string& name) {
  return name.rfind("weight") != std::string::npos;  // not biases
}

}  // namespace

#ifndef LSTMLEARN_FLOAT64_PART  // what does not depend on the dtype is compiled with float32

void NetworkSpec::validate() const {
  if (input_size < 1) throw std::invalid_argument("input_size must be positive");
  if (hidden.empty()) throw std::invalid_argument("at least one LSTM layer is needed");
  for (int h : hidden) {
    if (h < 1) throw std::invalid_argument("hidden layer sizes must be positive");
  }
  if (output_size < 1) throw std::invalid_argument("output_size must be positive");
  if (!(dropout >= 0.0 && dropout < 1.0) ||
      !(recurrent_dropout >= 0.0 && recurrent_dropout < 1.0) ||
      !(head_dropout >= 0.0 && head_dropout < 1.0)) {
    throw std::invalid_argument("dropout rates must be in [0, 1)");
  }
  if (front_end != FrontEnd::None) {
    if (front_end == FrontEnd::Conv1d && frame_width != 1) {
      throw std::invalid_argument("a conv1d front end takes frames of width 1");
    }
    if (static_cast<long long>(frame_height) * frame_width * frame_channels != input_size) {
      throw std::invalid_argument("input_size must be the frame's height * width * channels");
    }
    if (front_end == FrontEnd::Conv1d) {
      conv1d_shape(1).validate();
    } else {
      conv2d_shape(1).validate();
    }
  }
  if (pooling != Pooling::Last && per_step) {
    throw std::invalid_argument("pooling over time needs a last-step head, not per_step");
  }
  if (pooling == Pooling::Attention && attention_units < 1) {
    throw std::invalid_argument("attention_units must be positive");
  }
  if (has_fcn()) {
    if (front_end != FrontEnd::None) {
      throw std::invalid_argument("the FCN branch cannot be combined with a conv front end");
    }
    if (per_step) throw std::invalid_argument("the FCN branch needs a last-step head");
    fcn_spec().validate();
  }
  if (dimension_shuffle) {
    if (front_end != FrontEnd::None) {
      throw std::invalid_argument("dimension_shuffle cannot be combined with a conv front end");
    }
    if (per_step) throw std::invalid_argument("dimension_shuffle needs a last-step head");
    if (sequence_length < 1) {
      throw std::invalid_argument("dimension_shuffle needs the sequence length");
    }
  }
  // In 64 bits (limits.hpp): every tensor fits, and so do the widths that
  // lstm_input_size() and merged_width() compute in int (the conv block's
  // output width was checked by its shape above).
  std::int64_t width = lstm_input_size(), total = 0;  // F_0, then W_i
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    const LstmSpec layer{static_cast<int>(width), hidden[i], 1, bidirectional};
    try {
      layer.validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("LSTM layer " + std::to_string(i) + ": " + e.what());
    }
    width = (bidirectional && merge == Merge::Concat ? 2 : 1) * std::int64_t{hidden[i]};
    total += static_cast<std::int64_t>(lstm_parameter_count(layer));
    if (total > kMaxParameters) {
      throw std::invalid_argument(std::to_string(i + 1) + " LSTM layers have " +
                                  std::to_string(total) + " parameters; the engine's limit is " +
                                  std::to_string(kMaxParameters));
    }
  }
  if (has_fcn()) width += fcn_filters.back();
  check_tensor("output_size", output_size, "dense.weight", {output_size, width});
  if (pooling == Pooling::Attention) {
    check_tensor("attention_units", attention_units, "pool.weight", {attention_units, width});
  }
}

int NetworkSpec::lstm_input_size() const {
  // The conv shape's validate() has checked that its width fits an int.
  switch (front_end) {
    case FrontEnd::Conv1d:
      return static_cast<int>(conv1d_shape(1).output_width());
    case FrontEnd::Conv2d:
      return static_cast<int>(conv2d_shape(1).output_width());
    case FrontEnd::None:
      break;
  }
  return dimension_shuffle ? sequence_length : input_size;
}

FcnSpec NetworkSpec::fcn_spec() const {
  FcnSpec fcn;
  fcn.channels = input_size;
  fcn.filters = fcn_filters;
  fcn.kernels = fcn_kernels;
  fcn.squeeze_excitation = fcn_squeeze_excitation;
  fcn.reduction = fcn_reduction;
  return fcn;
}

int NetworkSpec::head_width() const {
  // validate() has checked that the dense weight's width fits an int.
  return merged_width(static_cast<int>(hidden.size()) - 1) + (has_fcn() ? fcn_filters.back() : 0);
}

Conv1dShape NetworkSpec::conv1d_shape(int rows) const {
  return Conv1dShape{rows, frame_height, frame_channels, conv_filters, kernel_h, conv_pool};
}

Conv2dShape NetworkSpec::conv2d_shape(int rows) const {
  return Conv2dShape{rows,         frame_height, frame_width, frame_channels,
                     conv_filters, kernel_h,     kernel_w,    conv_pool};
}

int NetworkSpec::merged_width(int layer) const {
  const int h = hidden[layer];
  return bidirectional && merge == Merge::Concat ? 2 * h : h;
}

LstmSpec NetworkSpec::layer_spec(int layer) const {
  return LstmSpec{layer == 0 ? lstm_input_size() : merged_width(layer - 1), hidden[layer], 1,
                  bidirectional};
}

#endif  // LSTMLEARN_FLOAT64_PART

template <typename T>
Network<T>::Network(const NetworkSpec& spec) : spec_(spec) {
  spec_.validate();
  const int L = static_cast<int>(spec_.hidden.size());
  layers_.resize(L);
  for (int i = 0; i < L; ++i) {
    Layer& layer = layers_[i];
    layer.spec = spec_.layer_spec(i);
    layer.offset = count_;
    for (TensorInfo info : lstm_parameter_layout(layer.spec)) {
      info.name = "layer" + std::to_string(i) + "." + info.name;
      info.offset += count_;
      layout_.push_back(info);
    }
    count_ += lstm_parameter_count(layer.spec);
  }
  const std::size_t W = spec_.merged_width(L - 1), O = spec_.output_size;
  const std::size_t Wd = spec_.head_width();
  dense_offset_ = count_;
  layout_.push_back({"dense.weight", count_, {O, Wd}});
  layout_.push_back({"dense.bias", count_ + O * Wd, {O}});
  count_ += O * Wd + O;
  if (spec_.front_end != FrontEnd::None) {
    const std::size_t K = spec_.conv_filters, C = spec_.frame_channels;
    const std::size_t kh = spec_.kernel_h, kw = spec_.kernel_w;
    conv_offset_ = count_;
    if (spec_.front_end == FrontEnd::Conv1d) {
      layout_.push_back({"conv.weight", count_, {K, C, kh}});
    } else {
      layout_.push_back({"conv.weight", count_, {K, C, kh, kw}});
    }
    layout_.push_back({"conv.bias", count_ + K * C * kh * kw, {K}});
    count_ += K * C * kh * kw + K;
  }
  if (spec_.pooling == Pooling::Attention) {
    const std::size_t A = spec_.attention_units;
    pool_offset_ = count_;
    layout_.push_back({"pool.weight", count_, {A, W}});
    layout_.push_back({"pool.bias", count_ + A * W, {A}});
    layout_.push_back({"pool.v", count_ + A * W + A, {A}});
    count_ += A * W + 2 * A;
  }
  if (spec_.has_fcn()) {
    const FcnSpec fcn = spec_.fcn_spec();
    fcn_.init(fcn);
    fcn_offset_ = count_;
    for (TensorInfo info : fcn.layout()) {
      info.offset += count_;
      layout_.push_back(info);
    }
    count_ += fcn.parameter_count();
  }
}

template <typename T>
const T* Network<T>::layer_output(int i) const {
  const Layer& layer = layers_[i];
  const bool merged = spec_.bidirectional && spec_.merge != Merge::Concat;
  return merged ? layer.merged.data() : layer.y.data();
}

template <typename T>
void Network<T>::gather(const DataSet<T>& data, const std::uint32_t* rows, int count,
                        bool in_place) {
  gather_steps(data, rows, count, 0, data.steps, in_place);
}

template <typename T>
void Network<T>::gather_steps(const DataSet<T>& data, const std::uint32_t* rows, int count, int t0,
                              int n, bool in_place) {
  const std::size_t T_ = data.steps, n_ = n, F = spec_.input_size, O = spec_.output_size;
  // Rows in order without a front end: forward reads the inputs where they are.
  in_place = in_place && n == data.steps && spec_.front_end == FrontEnd::None;
  input_ = in_place ? data.x + rows[0] * T_ * F : nullptr;
  // Items per row: the source's, this call's, and where this call's start.
  const std::size_t source_items = spec_.per_step ? T_ : 1, items = spec_.per_step ? n_ : 1;
  const std::size_t item0 = spec_.per_step ? static_cast<std::size_t>(t0) : 0;
  steps_ = n;
  has_mask_ = data.mask != nullptr;
  has_weights_ = data.weights != nullptr;
  grow(x_, count * n_ * F);
  if (has_mask_ && mask_.size() < count * n_) mask_.resize(count * n_);
  if (data.targets) grow(targets_, count * items * O);
  if (data.labels && labels_.size() < count * items) labels_.resize(count * items);
  if (has_weights_) grow(weights_, count * items);
  for (int r = 0; r < count; ++r) {
    const std::size_t src = rows[r], first = src * T_ + t0;
    const std::size_t item = src * source_items + item0;
    if (!input_) std::memcpy(x_.data() + r * n_ * F, data.x + first * F, sizeof(T) * n_ * F);
    if (has_mask_) std::memcpy(mask_.data() + r * n_, data.mask + first, n_);
    if (data.targets) {
      std::memcpy(targets_.data() + r * items * O, data.targets + item * O, sizeof(T) * items * O);
    }
    if (data.labels) {
      std::memcpy(labels_.data() + r * items, data.labels + item, sizeof(std::int32_t) * items);
    }
    if (has_weights_) {
      std::memcpy(weights_.data() + r * items, data.weights + item, sizeof(T) * items);
    }
  }
}

template <typename T>
void Network<T>::zero_carry(int B) {
  const int D = spec_.bidirectional ? 2 : 1;
  for (Layer& layer : layers_) {
    const std::size_t n = static_cast<std::size_t>(D) * B * layer.spec.hidden_size;
    grow(layer.h0, n);
    grow(layer.c0, n);
    std::fill(layer.h0.begin(), layer.h0.begin() + n, T(0));
    std::fill(layer.c0.begin(), layer.c0.begin() + n, T(0));
  }
}

template <typename T>
void Network<T>::keep_carry(int B) {
  const int D = spec_.bidirectional ? 2 : 1;
  for (Layer& layer : layers_) {
    const std::size_t n = static_cast<std::size_t>(D) * B * layer.spec.hidden_size;
    std::copy(layer.h_n.begin(), layer.h_n.begin() + n, layer.h0.begin());
    std::copy(layer.c_n.begin(), layer.c_n.begin() + n, layer.c0.begin());
  }
}

template <typename T>
void Network<T>::forward(const T* params, int B, bool training, std::uint64_t& rng, int n_threads,
                         bool params_unchanged, Precision precision) {
  const int L = static_cast<int>(layers_.size()), D = spec_.bidirectional ? 2 : 1;
  const T* in = input_ ? input_ : x_.data();
  fcn_trained_ = training && spec_.has_fcn();
  if (spec_.has_fcn()) {
    // The FCN branch reads x as it is; its pooled output goes after the
    // LSTM's features in the head's input.
    const std::size_t Wd = spec_.head_width(), W = spec_.merged_width(L - 1);
    grow(head_, static_cast<std::size_t>(B) * Wd);
    fcn_.forward(params + fcn_offset_, in, has_mask_ ? mask_.data() : nullptr, B, steps_, training,
                 head_.data() + W, Wd, n_threads);
  }
  if (spec_.dimension_shuffle) {
    // The LSTM reads x [B, T, F] as [B, F, T]: F steps of T features.
    if (has_mask_) throw std::invalid_argument("dimension_shuffle cannot take a mask");
    if (steps_ != spec_.sequence_length) {
      throw std::invalid_argument("dimension_shuffle: the network was built for " +
                                  std::to_string(spec_.sequence_length) + " steps, got " +
                                  std::to_string(steps_));
    }
    const std::size_t Tn = steps_, F = spec_.input_size;
    grow(shuffled_, static_cast<std::size_t>(B) * F * Tn);
    for (int b = 0; b < B; ++b) {
      ConstMatMap<T> xb(in + b * Tn * F, Tn, F);
      MatMap<T>(shuffled_.data() + b * F * Tn, F, Tn) = xb.transpose();
    }
    in = shuffled_.data();
    steps_ = spec_.input_size;
  }
  const std::size_t T_ = steps_;
  const std::size_t BT = static_cast<std::size_t>(B) * T_;
  int max_h = *std::max_element(spec_.hidden.begin(), spec_.hidden.end());
  grow(zeros_, static_cast<std::size_t>(D) * B * max_h);
  std::fill(zeros_.begin(), zeros_.end(), T(0));

  if (spec_.front_end != FrontEnd::None) {
    // Time-distributed conv block: every (sample, step) frame is one row.
    const std::size_t F0 = spec_.lstm_input_size();
    grow(conv_y_, BT * F0);
    if (conv_argmax_.size() < BT * F0) conv_argmax_.resize(BT * F0);
    const T* weight = params + conv_offset_;
    const T* bias = weight + static_cast<std::size_t>(spec_.conv_filters) * spec_.frame_channels *
                                 spec_.kernel_h * spec_.kernel_w;
    if (spec_.front_end == FrontEnd::Conv1d) {
      conv1d_forward<T>(conv_y_.data(), conv_argmax_.data(), x_.data(), weight, bias,
                        spec_.conv1d_shape(static_cast<int>(BT)), conv_workspace_, n_threads);
    } else {
      conv2d_forward<T>(conv_y_.data(), conv_argmax_.data(), x_.data(), weight, bias,
                        spec_.conv2d_shape(static_cast<int>(BT)), conv_workspace_, n_threads);
    }
    in = conv_y_.data();
  }
  // Inference of one-direction layers: the stack may run them as a pipeline
  // (few rows), with the same results as one after the other.
  const bool as_stack = !training && D == 1 && !carry_;
  if (as_stack) {
    std::vector<InferenceStage<T>> stages(L);
    for (int i = 0; i < L; ++i) {
      Layer& layer = layers_[i];
      const std::size_t H = layer.spec.hidden_size;
      grow(layer.y, BT * H);
      grow(layer.h_n, B * H);
      grow(layer.c_n, B * H);
      stages[i] = {&layer.spec,      params + layer.offset, layer.y.data(),
                   layer.h_n.data(), layer.c_n.data(),      &layer.inference};
    }
    lstm_inference_stack<T>(stages.data(), L, B, steps_, in, zeros_.data(), zeros_.data(),
                            has_mask_ ? mask_.data() : nullptr, n_threads, params_unchanged,
                            precision);
    in = layer_output(L - 1);
  }
  for (int i = 0; i < L && !as_stack; ++i) {
    Layer& layer = layers_[i];
    const int F = layer.spec.input_size, H = layer.spec.hidden_size;
    if (training && spec_.dropout > 0.0) {
      grow(layer.input_mask, static_cast<std::size_t>(B) * F);
      grow(layer.input, BT * F);
      dropout_mask(layer.input_mask.data(), static_cast<std::size_t>(B) * F, spec_.dropout, rng);
      for (int b = 0; b < B; ++b) {
        ConstVec<T> keep(layer.input_mask.data() + static_cast<std::size_t>(b) * F, F);
        for (std::size_t t = 0; t < T_; ++t) {
          const std::size_t row = (b * T_ + t) * F;
          Vec<T>(layer.input.data() + row, F) = ConstVec<T>(in + row, F) * keep;
        }
      }
      in = layer.input.data();
    }
    const T* rmask = nullptr;
    if (training && spec_.recurrent_dropout > 0.0) {
      grow(layer.rec_mask, static_cast<std::size_t>(D) * B * H);
      dropout_mask(layer.rec_mask.data(), static_cast<std::size_t>(D) * B * H,
                   spec_.recurrent_dropout, rng);
      rmask = layer.rec_mask.data();
    }
    grow(layer.y, BT * D * H);
    grow(layer.h_n, static_cast<std::size_t>(D) * B * H);
    grow(layer.c_n, static_cast<std::size_t>(D) * B * H);
    const T* h0 = carry_ ? layer.h0.data() : zeros_.data();
    const T* c0 = carry_ ? layer.c0.data() : zeros_.data();
    if (training) {
      lstm_forward<T>(layer.spec, params + layer.offset, B, steps_, in, h0, c0,
                      has_mask_ ? mask_.data() : nullptr, rmask, layer.y.data(), layer.h_n.data(),
                      layer.c_n.data(), layer.cache, n_threads);
    } else {  // no backward follows: keep nothing
      lstm_inference<T>(layer.spec, params + layer.offset, B, steps_, in, h0, c0,
                        has_mask_ ? mask_.data() : nullptr, layer.y.data(), layer.h_n.data(),
                        layer.c_n.data(), layer.inference, n_threads, params_unchanged, precision);
    }
    if (spec_.bidirectional && spec_.merge != Merge::Concat) {
      grow(layer.merged, BT * H);
      merge_rows<T>(spec_.merge, layer.y.data(), layer.y.data() + H, 2 * H, layer.merged.data(), H,
                    BT, H);
    }
    in = layer_output(i);
  }

  // Dense output layer: out = features W^T + b.
  const Layer& top = layers_[L - 1];
  const int H = top.spec.hidden_size, W = spec_.merged_width(L - 1), O = spec_.output_size;
  const std::size_t rows = spec_.per_step ? BT : static_cast<std::size_t>(B);
  const T* features = in;
  const std::uint8_t* mask = has_mask_ ? mask_.data() : nullptr;
  if (!spec_.per_step && spec_.pooling == Pooling::Mean) {
    grow(features_, static_cast<std::size_t>(B) * W);
    mean_pool_forward<T>(features_.data(), in, mask, B, steps_, W);
    features = features_.data();
  } else if (!spec_.per_step && spec_.pooling == Pooling::Attention) {
    const int A = spec_.attention_units;
    const T* pool = params + pool_offset_;
    grow(features_, static_cast<std::size_t>(B) * W);
    grow(pool_weights_, BT);
    attention_pool_forward<T>(features_.data(), pool_weights_.data(), in, mask, pool,
                              pool + static_cast<std::size_t>(A) * W,
                              pool + static_cast<std::size_t>(A) * W + A, B, steps_, W, A,
                              pool_workspace_);
    features = features_.data();
  } else if (!spec_.per_step) {
    // The last step of each direction is its final state h_n.
    grow(features_, static_cast<std::size_t>(B) * W);
    if (D == 2) {
      merge_rows<T>(spec_.merge, top.h_n.data(), top.h_n.data() + static_cast<std::size_t>(B) * H,
                    H, features_.data(), W, B, H);
    } else {
      std::memcpy(features_.data(), top.h_n.data(), sizeof(T) * B * H);
    }
    features = features_.data();
  }
  // The head's input is dropped after pooling, so the mask is per row (a
  // sample, or a sample's step) and feature, drawn after every layer's masks.
  head_dropped_ = training && spec_.head_dropout > 0.0;
  if (head_dropped_) {
    const std::size_t n = rows * W;
    grow(head_mask_, n);
    grow(dropped_, n);
    dropout_mask(head_mask_.data(), n, spec_.head_dropout, rng);
    Vec<T>(dropped_.data(), n) = ConstVec<T>(features, n) * ConstVec<T>(head_mask_.data(), n);
    features = dropped_.data();
  }
  const int Wd = spec_.head_width();
  if (spec_.has_fcn()) {
    for (int b = 0; b < B; ++b) {
      std::memcpy(head_.data() + static_cast<std::size_t>(b) * Wd,
                  features + static_cast<std::size_t>(b) * W, sizeof(T) * W);
    }
    features = head_.data();
  }
  grow(out_, rows * O);
  const T* dense = params + dense_offset_;
  // The packed product computes every row alike, so an output does not
  // depend on how many rows are predicted together (Eigen would take another
  // summation order for one row).
  // Blocks of rows are tasks (a per-step head has B*T rows).
  if (!params_unchanged) pack_matrix(dense, Wd, O, Wd, true, dense_packed_);
  const ConstVec<T> bias(dense + static_cast<std::size_t>(O) * Wd, O);
  parallel_for((rows + kHeadRows - 1) / kHeadRows, n_threads, [&](std::size_t task) {
    const std::size_t r0 = task * kHeadRows, n = std::min(kHeadRows, rows - r0);
    gemm_packed(static_cast<int>(n), features + r0 * Wd, Wd, dense_packed_, out_.data() + r0 * O, O,
                false);
    for (std::size_t r = r0; r < r0 + n; ++r) Vec<T>(out_.data() + r * O, O) += bias;
  });
}

template <typename T>
double Network<T>::loss(int B, bool gradient, int n_threads) {
  // Returns the weighted sum of item losses; items are samples (last-step
  // output) or unmasked steps (per-step output). d_out_ gets the gradient of
  // the sum divided by the number of items.
  const std::size_t T_ = steps_, O = spec_.output_size;
  const std::size_t per_row = spec_.per_step ? T_ : 1;
  const std::size_t rows = static_cast<std::size_t>(B) * per_row;
  std::size_t items = 0;
  for (std::size_t k = 0; k < rows; ++k) {
    if (!spec_.per_step || !has_mask_ || mask_[k]) ++items;
  }
  last_items_ = items;
  if (gradient) {
    grow(d_out_, rows * O);
    std::fill(d_out_.begin(), d_out_.begin() + rows * O, T(0));
  }
  if (items == 0) return 0.0;
  const double inv_items = 1.0 / static_cast<double>(items);
  const double delta = spec_.huber_delta;
  // Fixed blocks of rows (a per-step head has B*T of them, each with its
  // exponentials), summed in block order: the same total for any threads.
  const std::size_t blocks = (rows + kHeadRows - 1) / kHeadRows;
  loss_blocks_.assign(blocks, 0.0);
  parallel_for(blocks, n_threads, [&](std::size_t block) {
    double total = 0.0;
    const std::size_t k1 = std::min(rows, (block + 1) * kHeadRows);
    for (std::size_t k = block * kHeadRows; k < k1; ++k) {
      if (spec_.per_step && has_mask_ && !mask_[k]) continue;
      const double w = has_weights_ ? static_cast<double>(weights_[k]) : 1.0;
      const T* z = out_.data() + k * O;
      T* dz = gradient ? d_out_.data() + k * O : nullptr;
      double item = 0.0;
      if (spec_.loss == Loss::CrossEntropy) {
        const int label = labels_[k];
        const double zmax = *std::max_element(z, z + O);
        double sum = 0.0;
        for (std::size_t o = 0; o < O; ++o) sum += std::exp(static_cast<double>(z[o]) - zmax);
        item = std::log(sum) - (static_cast<double>(z[label]) - zmax);
        if (dz) {
          for (std::size_t o = 0; o < O; ++o) {
            const double p = std::exp(static_cast<double>(z[o]) - zmax) / sum;
            dz[o] =
                static_cast<T>(w * inv_items * (p - (static_cast<int>(o) == label ? 1.0 : 0.0)));
          }
        }
      } else {
        const T* y = targets_.data() + k * O;
        for (std::size_t o = 0; o < O; ++o) {
          const double e = static_cast<double>(z[o]) - static_cast<double>(y[o]);
          double l = 0.0, g = 0.0;
          switch (spec_.loss) {
            case Loss::Squared:
              l = e * e;
              g = 2.0 * e;
              break;
            case Loss::Absolute:
              l = std::abs(e);
              g = (e > 0) - (e < 0);
              break;
            case Loss::Huber:
              l = std::abs(e) <= delta ? 0.5 * e * e : delta * (std::abs(e) - 0.5 * delta);
              g = std::clamp(e, -delta, delta);
              break;
            case Loss::CrossEntropy:
              break;
          }
          item += l / static_cast<double>(O);
          if (dz) dz[o] = static_cast<T>(w * inv_items * g / static_cast<double>(O));
        }
      }
      total += w * item;
    }
    loss_blocks_[block] = total;
  });
  double total = 0.0;
  for (const double part : loss_blocks_) total += part;
  return total;
}

template <typename T>
void Network<T>::backward(const T* params, T* grads, int B, int n_threads) {
  const int L = static_cast<int>(layers_.size()), D = spec_.bidirectional ? 2 : 1;
  const std::size_t T_ = steps_, BT = static_cast<std::size_t>(B) * T_;
  const Layer& top = layers_[L - 1];
  const int W = spec_.merged_width(L - 1), O = spec_.output_size;
  const std::size_t rows = spec_.per_step ? BT : static_cast<std::size_t>(B);
  const T* features = spec_.per_step ? layer_output(L - 1) : features_.data();
  if (head_dropped_) features = dropped_.data();
  const int Wd = spec_.head_width();  // W, or W + the FCN branch's width
  if (spec_.has_fcn()) features = head_.data();

  // out = features W^T + b  =>  dW = d_out^T features, db = sum d_out,
  // d_features = d_out W. The products are shared among threads on a fixed
  // partition (blocks of dW's columns, blocks of rows of d_features), so the
  // thread count changes no result; a per-step head has B*T rows.
  const T* dense = params + dense_offset_;
  T* d_dense = grads + dense_offset_;
  ConstMatMap<T> d_out(d_out_.data(), rows, O);
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(d_dense + static_cast<std::size_t>(O) * Wd, O) =
      d_out.colwise().sum();
  grow(d_features_, rows * Wd);
  pack_matrix(dense, O, Wd, Wd, false, dense_back_packed_);
  const std::size_t col_tasks = (Wd + kHeadCols - 1) / kHeadCols;
  const std::size_t row_tasks = (rows + kHeadRows - 1) / kHeadRows;
  parallel_for(col_tasks + row_tasks, n_threads, [&](std::size_t task) {
    if (task < col_tasks) {
      const int c0 = static_cast<int>(task * kHeadCols);
      const int nc = std::min(static_cast<int>(kHeadCols), Wd - c0);
      StridedMap<T>(d_dense + c0, O, nc, Eigen::OuterStride<>(Wd)).noalias() =
          d_out.transpose() * ConstStridedMap<T>(features + c0, rows, nc, Eigen::OuterStride<>(Wd));
      return;
    }
    const std::size_t r0 = (task - col_tasks) * kHeadRows, n = std::min(kHeadRows, rows - r0);
    gemm_packed(static_cast<int>(n), d_out_.data() + r0 * O, O, dense_back_packed_,
                d_features_.data() + r0 * Wd, Wd, false);
  });

  if (head_dropped_) {
    for (std::size_t r = 0; r < rows; ++r) {
      Vec<T>(d_features_.data() + r * Wd, W) *= ConstVec<T>(head_mask_.data() + r * W, W);
    }
  }

  int max_h = *std::max_element(spec_.hidden.begin(), spec_.hidden.end());
  grow(state_scratch_, static_cast<std::size_t>(D) * B * max_h);

  const T* d_merged = d_features_.data();  // gradient of the current layer's merged output
  if (spec_.has_fcn()) {
    // head = [features | fcn]: the branch takes its columns, the LSTM the rest.
    fcn_.backward(params + fcn_offset_, grads + fcn_offset_, d_features_.data() + W, Wd, n_threads);
    grow(d_lstm_, static_cast<std::size_t>(B) * W);
    for (int b = 0; b < B; ++b) {
      std::memcpy(d_lstm_.data() + static_cast<std::size_t>(b) * W,
                  d_features_.data() + static_cast<std::size_t>(b) * Wd, sizeof(T) * W);
    }
    d_merged = d_lstm_.data();
  }
  for (int i = L - 1; i >= 0; --i) {
    Layer& layer = layers_[i];
    const int F = layer.spec.input_size, H = layer.spec.hidden_size;
    grow(layer.dy, BT * D * H);
    grow(layer.dx, BT * F);
    const T* dh_n = nullptr;
    const bool head_layer = i == L - 1 && !spec_.per_step;
    if (head_layer && spec_.pooling != Pooling::Last) {
      // pooled = pool(top output): route d_pooled back to every step.
      const std::uint8_t* mask = has_mask_ ? mask_.data() : nullptr;
      grow(d_sequence_, BT * W);
      if (spec_.pooling == Pooling::Mean) {
        mean_pool_backward<T>(d_sequence_.data(), d_merged, mask, B, steps_, W);
      } else {
        const int A = spec_.attention_units;
        const T* pool = params + pool_offset_;
        T* d_pool = grads + pool_offset_;
        const std::size_t AW = static_cast<std::size_t>(A) * W;
        attention_pool_backward<T>(d_sequence_.data(), d_pool, d_pool + AW, d_pool + AW + A,
                                   d_merged, pool_weights_.data(), layer_output(L - 1), pool,
                                   pool + AW, pool + AW + A, B, steps_, W, A, pool_workspace_);
      }
      d_merged = d_sequence_.data();
    }
    const T* dy = layer.dy.data();
    if (head_layer && spec_.pooling == Pooling::Last) {
      // Only the final states feed the output: dy is zero.
      dy = nullptr;
      grow(layer.dh_n, static_cast<std::size_t>(D) * B * H);
      if (D == 2) {
        unmerge_rows<T>(spec_.merge, d_merged, W, top.h_n.data(),
                        top.h_n.data() + static_cast<std::size_t>(B) * H, layer.dh_n.data(),
                        layer.dh_n.data() + static_cast<std::size_t>(B) * H, H, B, H);
      } else {
        std::memcpy(layer.dh_n.data(), d_merged, sizeof(T) * B * H);
      }
      dh_n = layer.dh_n.data();
    } else if (D == 2) {
      unmerge_rows<T>(spec_.merge, d_merged, spec_.merged_width(i), layer.y.data(),
                      layer.y.data() + H, layer.dy.data(), layer.dy.data() + H, 2 * H, BT, H);
    } else {
      std::memcpy(layer.dy.data(), d_merged, sizeof(T) * BT * H);
    }
    // The first layer's input gradient is needed only by a front end.
    if (i == 0 && spec_.front_end == FrontEnd::None) {
      lstm_backward<T>(layer.spec, params + layer.offset, layer.cache, dy, dh_n, nullptr, nullptr,
                       state_scratch_.data(), state_scratch_.data(), grads + layer.offset,
                       n_threads);
      break;
    }
    lstm_backward<T>(layer.spec, params + layer.offset, layer.cache, dy, dh_n, nullptr,
                     layer.dx.data(), state_scratch_.data(), state_scratch_.data(),
                     grads + layer.offset, n_threads);
    if (spec_.dropout > 0.0) {
      for (int b = 0; b < B; ++b) {
        ConstVec<T> keep(layer.input_mask.data() + static_cast<std::size_t>(b) * F, F);
        for (std::size_t t = 0; t < T_; ++t) {
          Vec<T>(layer.dx.data() + (b * T_ + t) * F, F) *= keep;
        }
      }
    }
    d_merged = layer.dx.data();
  }

  if (spec_.front_end != FrontEnd::None) {
    // conv_y = conv block(x): weights only, the input needs no gradient.
    T* d_weight = grads + conv_offset_;
    T* d_bias = d_weight + static_cast<std::size_t>(spec_.conv_filters) * spec_.frame_channels *
                               spec_.kernel_h * spec_.kernel_w;
    const T* weight = params + conv_offset_;
    if (spec_.front_end == FrontEnd::Conv1d) {
      conv1d_backward<T>(nullptr, d_weight, d_bias, d_merged, conv_argmax_.data(), x_.data(),
                         weight, spec_.conv1d_shape(static_cast<int>(BT)), conv_workspace_);
    } else {
      conv2d_backward<T>(nullptr, d_weight, d_bias, d_merged, conv_argmax_.data(), x_.data(),
                         weight, spec_.conv2d_shape(static_cast<int>(BT)), conv_workspace_);
    }
  }
}

template <typename T>
void Network<T>::predict(const T* user_params, const DataSet<T>& data, int batch_size, T* out,
                         int n_threads, std::uint64_t params_version, Precision precision) {
  // The values behind `params` are those of the last complete call when the
  // caller says so: the same nonzero version, at the same address, and no
  // change since. The address alone would not do: NumPy may allocate another
  // array, of other values, where a freed one was. An unaligned `params` is
  // copied to the same aligned buffer every call, so that holds there too.
  check_batch(data, batch_size, "predict");
  const bool unchanged = params_version != 0 && params_version == predicted_version_ &&
                         user_params == predicted_from_ && predicted_generation_ == generation_;
  forget_packs();  // until this call completes: a call cut short leaves nothing to reuse
  const T* params = aligned_params(user_params);
  const int N = data.samples;
  const std::size_t O = spec_.output_size;
  const std::size_t per_row = spec_.per_step ? static_cast<std::size_t>(data.steps) : 1;
  std::vector<std::uint32_t> rows(N);
  std::iota(rows.begin(), rows.end(), 0u);
  DataSet<T> inputs{data.x, data.samples, data.steps, data.mask, nullptr, nullptr, nullptr};
  std::uint64_t unused = 0;
  for (int start = 0; start < N; start += batch_size) {
    const int count = std::min(batch_size, N - start);
    gather(inputs, rows.data() + start, count, true);
    // Within the call the parameters cannot change.
    forward(params, count, false, unused, n_threads, unchanged || start > 0, precision);
    const std::size_t n = count * per_row;
    softmax_rows(n, n_threads);
    std::memcpy(out + static_cast<std::size_t>(start) * per_row * O, out_.data(),
                sizeof(T) * n * O);
  }
  predicted_from_ = user_params;
  predicted_version_ = params_version;
  predicted_generation_ = generation_;
}

template <typename T>
void Network<T>::attention_weights(const T* user_params, const DataSet<T>& data, int batch_size,
                                   T* out, int n_threads) {
  forget_packs();  // the packed weights will be other ones
  if (spec_.pooling != Pooling::Attention || spec_.per_step) {
    throw std::invalid_argument("attention weights need pooling == Attention");
  }
  if (spec_.dimension_shuffle) {
    throw std::invalid_argument(
        "attention weights are over the input's steps: not with "
        "dimension_shuffle");
  }
  check_batch(data, batch_size, "attention_weights");
  const T* params = aligned_params(user_params);
  const int N = data.samples;
  const std::size_t T_ = data.steps;
  std::vector<std::uint32_t> rows(N);
  std::iota(rows.begin(), rows.end(), 0u);
  DataSet<T> inputs{data.x, data.samples, data.steps, data.mask, nullptr, nullptr, nullptr};
  std::uint64_t unused = 0;
  for (int start = 0; start < N; start += batch_size) {
    const int count = std::min(batch_size, N - start);
    gather(inputs, rows.data() + start, count, true);
    forward(params, count, false, unused, n_threads);
    std::memcpy(out + start * T_, pool_weights_.data(), sizeof(T) * count * T_);
  }
}

template <typename T>
double Network<T>::evaluate(const T* user_params, const DataSet<T>& data, int batch_size,
                            int n_threads) {
  forget_packs();  // the packed weights will be other ones
  check_batch(data, batch_size, "evaluate");
  const T* params = aligned_params(user_params);
  const int N = data.samples;
  std::vector<std::uint32_t> rows(N);
  std::iota(rows.begin(), rows.end(), 0u);
  std::uint64_t unused = 0;
  double total = 0.0;
  std::size_t items = 0;
  for (int start = 0; start < N; start += batch_size) {
    const int count = std::min(batch_size, N - start);
    gather(data, rows.data() + start, count, true);
    forward(params, count, false, unused, n_threads);
    total += loss(count, false, n_threads);
    items += last_items_;
  }
  return items ? total / static_cast<double>(items) : 0.0;
}

template <typename T>
EpochResult Network<T>::train_epoch(T* user_params, T* m, T* v, std::int64_t step,
                                    const DataSet<T>& data, const TrainOptions& options,
                                    std::uint64_t seed, const std::function<bool()>& interrupted,
                                    int n_threads) {
  // The parameters change: no packed weights survive.
  forget_packs();
  ++generation_;
  const int N = data.samples;
  if (options.batch_size < 1) throw std::invalid_argument("batch_size must be positive");
  check_batch(data, options.batch_size, "train_epoch");
  std::uint64_t rng = seed;
  const std::vector<std::uint32_t> order = epoch_order(N, options.shuffle, rng);
  grow(grads_, count_);
  T* params = aligned_or_copy(user_params, count_, params_copy_);
  EpochResult result;
  result.step = step;
  double total = 0.0;
  std::size_t total_items = 0;
  // Truncated BPTT: chunks of k steps (k = T: whole sequences, as without it).
  const int k = options.tbptt_steps > 0 ? std::min(options.tbptt_steps, data.steps) : data.steps;
  if (k < data.steps) check_carry("truncated BPTT");
  const bool dropout = spec_.dropout > 0.0 || spec_.recurrent_dropout > 0.0;
  for (int start = 0; start < N; start += options.batch_size) {
    if (interrupted && interrupted()) {
      result.status = EpochStatus::Interrupted;
      break;
    }
    const int count = std::min(options.batch_size, N - start);
    if (k == data.steps) {
      gather(data, order.data() + start, count);
      forward(params, count, true, rng, n_threads);
      if (!update(params, m, v, count, options, result, total, total_items, n_threads)) break;
      continue;
    }
    // The training workspace holds k steps: each chunk's forward starts
    // from the state the last one ended with, and its backward stops there.
    // Interrupts are polled before every chunk (a mini-batch of long
    // sequences may take seconds).
    zero_carry(count);
    const CarryScope carry(carry_);
    bool finite = true;
    for (int t0 = 0; t0 < data.steps && finite; t0 += k) {
      if (t0 > 0 && interrupted && interrupted()) {
        result.status = EpochStatus::Interrupted;
        break;
      }
      const int n = std::min(k, data.steps - t0);
      gather_steps(data, order.data() + start, count, t0, n);
      if (!spec_.per_step && t0 + n < data.steps) {
        // No loss before the last chunk: forward only, keeping nothing for
        // a backward (the training forward only to draw dropout masks).
        forward(params, count, dropout, rng, n_threads);
      } else {
        forward(params, count, true, rng, n_threads);
        finite = update(params, m, v, count, options, result, total, total_items, n_threads);
      }
      keep_carry(count);
    }
    if (!finite || result.status == EpochStatus::Interrupted) break;
  }
  result.loss = total_items ? total / static_cast<double>(total_items) : 0.0;
  if (params != user_params) std::copy(params, params + count_, user_params);
  return result;
}

template <typename T>
bool Network<T>::update(T* params, T* m, T* v, int count, const TrainOptions& options,
                        EpochResult& result, double& total, std::size_t& total_items,
                        int n_threads) {
  const double sum = loss(count, true, n_threads);
  const std::size_t items = last_items_;
  if (items == 0) return true;  // every step of this batch (or chunk) is masked
  double batch_loss = sum / static_cast<double>(items);
  backward(params, grads_.data(), count, n_threads);
  for (const TensorInfo& info : layout_) {
    std::size_t size = 1;
    for (std::size_t s : info.shape) size *= s;
    Vec<T> g(grads_.data() + info.offset, size);
    ConstVec<T> p(params + info.offset, size);
    if (options.alpha > 0.0 && is_weight(info.name)) {
      // scikit-learn's MLP: loss += alpha/2 ||W||^2 / batch.
      batch_loss += 0.5 * options.alpha * static_cast<double>(p.square().sum()) / count;
      g += static_cast<T>(options.alpha / count) * p;
    }
    if (options.clipnorm > 0.0) {
      const double norm = std::sqrt(static_cast<double>(g.square().sum()));
      if (norm > options.clipnorm) g *= static_cast<T>(options.clipnorm / norm);
    }
  }
  if (!std::isfinite(batch_loss) ||
      !Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(grads_.data(), count_).isFinite().all()) {
    result.status = EpochStatus::NonFinite;
    return false;
  }
  optimizer_step<T>(options.optimizer, count_, params, grads_.data(), m, v, result.step);
  // The running statistics get no gradient (the step left them as they
  // were); the batch's statistics update them now that the step is taken.
  if (fcn_trained_) fcn_.update_running(params + fcn_offset_);
  ++result.step;
  ++result.batches;
  total += batch_loss * static_cast<double>(items);
  total_items += items;
  return true;
}

template <typename T>
void Network<T>::softmax_rows(std::size_t n, int n_threads) {
  if (spec_.loss != Loss::CrossEntropy) return;
  const std::size_t O = spec_.output_size;
  // By fixed blocks of rows. Each row is copied to an aligned buffer first:
  // Eigen peels unaligned elements off a vectorised exp or sum, and runs them
  // through other code, so a row computed where it lies would depend on
  // where that is (row r of O values starts at r*O), and one step's
  // probabilities on the other rows predicted with it.
  parallel_for((n + kHeadRows - 1) / kHeadRows, n_threads, [&](std::size_t task) {
    const std::size_t r0 = task * kHeadRows, r1 = std::min(n, r0 + kHeadRows);
    AlignedVector<T> row(O);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::AlignedMax> p(row.data(), O);
    for (std::size_t r = r0; r < r1; ++r) {  // a row at a time: a vectorised exp
      T* out = out_.data() + r * O;
      std::copy(out, out + O, row.begin());
      p = (p - p.maxCoeff()).exp();
      p /= p.sum();
      std::copy(row.begin(), row.end(), out);
    }
  });
}

template <typename T>
void Network<T>::check_carry(const char* what) const {
  const std::string name(what);
  if (spec_.bidirectional) {
    throw std::invalid_argument(name +
                                " cannot run bidirectional layers: the reverse direction needs "
                                "the future steps");
  }
  if (!spec_.per_step && spec_.pooling != Pooling::Last) {
    throw std::invalid_argument(name +
                                " cannot pool over time (pooling mean or attention): the "
                                "pooling needs the output of every step");
  }
  if (spec_.has_fcn()) {
    throw std::invalid_argument(name +
                                " cannot run the FCN branch: its convolutions, batch statistics "
                                "and pooling need every step at once");
  }
  if (spec_.dimension_shuffle) {
    throw std::invalid_argument(name +
                                " cannot run dimension_shuffle: the LSTM's steps are the "
                                "features of the whole sequence");
  }
}

template <typename T>
void Network<T>::stream_resize(int streams) {
  check_carry("streaming");
  if (spec_.front_end != FrontEnd::None) {
    throw std::invalid_argument("streaming does not run a conv front end");
  }
  if (streams < 1) throw std::invalid_argument("the number of streams must be positive");
  lstm_stream_resize(stream_, streams);
  streams_ = streams;
}

template <typename T>
void Network<T>::stream_reset(int stream) {
  if (stream >= streams_) throw std::out_of_range("no such stream");
  lstm_stream_reset(stream_, stream);
}

template <typename T>
void Network<T>::stream_step(const T* params, const T* x, T* out, int n_threads,
                             bool params_changed, Precision precision) {
  if (streams_ < 1) throw std::invalid_argument("no streams: call stream_resize first");
  const int O = spec_.output_size;
  // Steps of little work run on one thread (a team's wake-up and barrier
  // would cost more than they save); others split each layer's units in as
  // many parts as threads. The bits are the same either way.
  double work = 0.0;
  for (const Layer& layer : layers_) {
    const double H = layer.spec.hidden_size;
    work += 4.0 * H * (layer.spec.input_size + H) * streams_;
  }
  const int parts = work < kStreamTeamWork ? 1 : resolve_threads(n_threads);
  if (params_changed || !stream_packed_ || parts != stream_.parts ||
      precision != stream_.precision) {
    pack_stream(params, parts, precision);  // once: a bound stream's parameters do not change
  }
  std::ptrdiff_t ld = 0;
  const T* h = lstm_stream_step(stream_, x, n_threads, &ld);
  const std::size_t n = streams_;
  stream_head(params, h, ld, streams_);
  softmax_rows(n, 1);
  std::memcpy(out, out_.data(), sizeof(T) * n * O);
}

template <typename T>
void Network<T>::pack_stream(const T* params, int parts, Precision precision) {
  const int L = static_cast<int>(layers_.size()), O = spec_.output_size;
  stream_packed_ = false;    // until packed
  sample_params_ = nullptr;  // stream_sample's token tables, if any, go with the old packs
  std::vector<LstmSpec> specs;
  std::vector<const T*> blocks;
  for (const Layer& layer : layers_) {
    specs.push_back(layer.spec);
    blocks.push_back(params + layer.offset);
  }
  lstm_stream_pack(specs.data(), blocks.data(), L, parts, stream_, precision);
  const int W = spec_.merged_width(L - 1);
  pack_matrix(params + dense_offset_, W, O, W, true, dense_packed_);
  stream_packed_ = true;
}

template <typename T>
void Network<T>::stream_head(const T* params, const T* h, std::ptrdiff_t ld, int n) {
  const int O = spec_.output_size;
  grow(out_, static_cast<std::size_t>(n) * O);
  gemm_packed(n, h, ld, dense_packed_, out_.data(), O, false);
  const ConstVec<T> bias(params + dense_offset_ + static_cast<std::size_t>(O) * dense_packed_.rows,
                         O);
  for (std::size_t r = 0; r < static_cast<std::size_t>(n); ++r) {
    Vec<T>(out_.data() + r * O, O) += bias;
  }
}

// Token k of n drawn from logits z (see Network::stream_sample): `weights`
// [n] is scratch.
template <typename T>
std::int64_t draw_token(const T* z, int n, double temperature, double u, double* weights) {
  int top = 0;
  bool finite = true;
  for (int k = 0; k < n; ++k) {
    finite = finite && std::isfinite(static_cast<double>(z[k]));
    top = z[k] > z[top] ? k : top;
  }
  if (!finite) {
    throw std::domain_error("sampling: the model's output is not finite (NaN or infinity)");
  }
  if (temperature == 0.0) return top;
  // Shifted by the top logit before the division, so that its weight is 1
  // for any temperature (a tiny one tends to greedy, not to inf / inf).
  Eigen::Map<Eigen::ArrayXd> w(weights, n);
  w = ((Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(z, n).template cast<double>() -
        static_cast<double>(z[top])) /
       temperature)
          .exp();
  double total = 0.0;
  for (int k = 0; k < n; ++k) total += weights[k];  // in order: the sums below meet it
  const double target = u * total;
  double sum = 0.0;
  int last = top;
  for (int k = 0; k < n; ++k) {
    if (weights[k] > 0.0) {
      sum += weights[k];
      last = k;
      if (sum > target) return k;
    }
  }
  return last;  // u * total rounded up to total: the last token of nonzero weight
}

template <typename T>
void Network<T>::stream_sample(const T* params, const std::int64_t* seed, int seed_len,
                               const double* uniforms, int length, double temperature,
                               std::int64_t* out, int n_threads, Precision precision) {
  const int F = spec_.input_size, O = spec_.output_size;
  if (!spec_.per_step || spec_.loss != Loss::CrossEntropy || F != O) {
    throw std::invalid_argument(
        "sampling needs a next-token model: a softmax at every step over as many tokens as its "
        "one-hot input has");
  }
  if (seed_len < 1) throw std::invalid_argument("sampling needs a seed of at least one token");
  if (length < 0) throw std::invalid_argument("sampling: length must be non-negative");
  if (!(temperature >= 0.0)) throw std::invalid_argument("sampling: temperature must be >= 0");
  for (int i = 0; i < seed_len; ++i) {
    if (seed[i] < 0 || seed[i] >= F) {
      throw std::out_of_range("sampling: seed token " + std::to_string(seed[i]) +
                              " is outside the vocabulary [0, " + std::to_string(F) + ")");
    }
  }
  for (int i = 0; i < length; ++i) {
    if (!(uniforms[i] >= 0.0 && uniforms[i] < 1.0)) {
      throw std::invalid_argument("sampling: uniforms must be in [0, 1)");
    }
  }
  if (length == 0) return;
  if (streams_ != 1) stream_resize(1);
  stream_reset(-1);
  // Parts as in stream_step, from a step's multiply-adds (layer 0's input
  // looked up), but a team only from kSampleTeamWork: the steps follow each
  // other with no pause, and waking a team for each cost more than it saved
  // for 128 units (65k: 230k tokens/s on one thread against 85k-160k on two,
  // 2-core VM at load 1.3; 256 units, 262k: 44k either way at load 1.3,
  // 42k against 25k at load 1.9: untuned on a quiet machine). The bits are
  // the same for any parts.
  double work = 0.0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const double H = layers_[l].spec.hidden_size;
    work += 4.0 * H * ((l == 0 ? 0 : layers_[l].spec.input_size) + H);
  }
  const int parts = work < kSampleTeamWork ? 1 : resolve_threads(n_threads);
  // Packed once for a bound stream, whose parameters do not change: at 400
  // tokens a call, packing 128 units' weights anew took about a tenth of it.
  if (!stream_packed_ || sample_params_ != params || parts != stream_.parts ||
      stream_.precision != precision) {
    pack_stream(params, parts, precision);
    sample_lookup_ = lstm_stream_pack_tokens(layers_[0].spec, params + layers_[0].offset, stream_);
    sample_params_ = params;
  }
  const bool lookup = sample_lookup_;
  grow(x_, F);  // the one-hot row when there is no lookup
  std::fill_n(x_.begin(), F, T(0));
  std::vector<double> weights(O);
  std::ptrdiff_t ld = 0;
  const T* h = nullptr;
  auto feed = [&](std::int64_t token) {
    if (lookup) {
      h = lstm_stream_step_tokens(stream_, &token, n_threads, &ld);
    } else {
      x_[token] = T(1);
      h = lstm_stream_step(stream_, static_cast<const T*>(x_.data()), n_threads, &ld);
      x_[token] = T(0);
    }
  };
  for (int i = 0; i < seed_len; ++i) feed(seed[i]);
  for (int i = 0; i < length; ++i) {
    if (i > 0) feed(out[i - 1]);
    stream_head(params, h, ld, 1);  // the logits as stream_step computes them: the same bits
    out[i] =
        draw_token(static_cast<const T*>(out_.data()), O, temperature, uniforms[i], weights.data());
  }
}

template <typename T>
void Network<T>::forget_packs() {
  predicted_from_ = nullptr;
  predicted_version_ = 0;
}

template <typename T>
void Network<T>::check_batch(const DataSet<T>& data, int batch_size, const char* what) const {
  // Mini-batches of B rows of T steps: B*T rows in int (limits.hpp).
  if (batch_size >= 1 && data.samples >= 1 && data.steps >= 1) {
    check_rows(what, std::min(batch_size, data.samples), data.steps);
  }
}

template <typename T>
const T* Network<T>::aligned_params(const T* params) {
  return aligned_or_copy(params, count_, params_copy_);
}

template class Network<LSTMLEARN_ENGINE_DTYPE>;

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
