// Encoder-decoder model and its training epoch. See seq2seq.hpp for the size
// key and the two decoder modes.
#include "lstmlearn/seq2seq.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "lstmlearn/layers.hpp"
#include "lstmlearn/limits.hpp"
#include "lstmlearn/random.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

// Samples per block of the attention and dense head: fixed, so that the bits
// do not depend on the thread count.
constexpr int kHeadSamples = 32;

template <typename T>
void grow(AlignedVector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

template <typename Item>
void grow(std::vector<Item>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

std::size_t volume(const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  for (std::size_t s : shape) n *= s;
  return n;
}

// Index of the largest of z [n]; ties go to the first.
template <typename T>
int argmax(const T* z, int n) {
  return static_cast<int>(std::max_element(z, z + n) - z);
}

}  // namespace

#ifndef LSTMLEARN_FLOAT64_PART  // what does not depend on the dtype is compiled with float32

void Seq2SeqSpec::validate() const {
  if (input_vocab < 0 || output_vocab < 0) {
    throw std::invalid_argument("vocabulary sizes must not be negative");
  }
  if (input_features < 1 || output_features < 1 || embedding_dim < 1) {
    throw std::invalid_argument("feature counts and embedding_dim must be positive");
  }
  if (hidden.empty()) throw std::invalid_argument("at least one encoder layer is needed");
  for (int h : hidden) {
    if (h < 1) throw std::invalid_argument("hidden layer sizes must be positive");
  }
  if (attention_units < 0) throw std::invalid_argument("attention_units must not be negative");
  // In 64 bits (limits.hpp): every tensor fits, and so do the ints computed
  // from the sizes (O + 1 start symbol, W = 2H).
  const std::int64_t E = embedding_dim, O = outputs(), H = hidden.back();
  if (tokens_in()) check_tensor("input_vocab", input_vocab, "encoder.embedding", {input_vocab, E});
  if (mode == DecoderMode::TeacherForcing && tokens_out()) {
    // One row per output token and one for the start symbol.
    check_tensor("output_vocab", O, "decoder.embedding", {O + 1, E});
  }
  auto check_lstm = [](const std::string& name, const LstmSpec& lstm) {
    try {
      lstm.validate();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(name + ": " + e.what());
    }
  };
  std::int64_t total = 0;
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    const LstmSpec layer{i == 0 ? encoder_input_size() : hidden[i - 1], hidden[i], 1, false};
    check_lstm("encoder layer " + std::to_string(i), layer);
    total += static_cast<std::int64_t>(lstm_parameter_count(layer));
    if (total > kMaxParameters) {
      throw std::invalid_argument(std::to_string(i + 1) + " encoder layers have " +
                                  std::to_string(total) + " parameters; the engine's limit is " +
                                  std::to_string(kMaxParameters));
    }
  }
  check_lstm("decoder", LstmSpec{decoder_input_size(), hidden.back(), 1, false});
  const std::int64_t A = attention_units ? attention_units : H;
  if (attention == AttentionKind::Additive) {
    check_tensor("attention_units", A, "attention.Wq", {A, H});
  }
  const std::int64_t W = attention == AttentionKind::None ? H : 2 * H;
  check_tensor(tokens_out() ? "output_vocab" : "output_features", O, "dense.weight", {O, W});
}

int Seq2SeqSpec::decoder_input_size() const {
  if (mode == DecoderMode::Repeat) return top_hidden();
  return tokens_out() ? embedding_dim : output_features;
}

#endif  // LSTMLEARN_FLOAT64_PART

template <typename T>
Seq2Seq<T>::Seq2Seq(const Seq2SeqSpec& spec) : spec_(spec) {
  spec_.validate();
  auto add = [&](const std::string& name, std::vector<std::size_t> shape) {
    layout_.push_back({name, count_, shape});
    const std::size_t at = count_;
    count_ += volume(shape);
    return at;
  };
  auto add_lstm = [&](const std::string& prefix, const LstmSpec& lstm) {
    const std::size_t at = count_;
    for (TensorInfo info : lstm_parameter_layout(lstm)) {
      info.name = prefix + info.name;
      info.offset += at;
      layout_.push_back(info);
    }
    count_ += lstm_parameter_count(lstm);
    return at;
  };
  const std::size_t E = spec_.embedding_dim, O = spec_.outputs(), H = spec_.top_hidden();
  if (spec_.tokens_in()) {
    enc_embedding_ = add("encoder.embedding", {static_cast<std::size_t>(spec_.input_vocab), E});
  }
  const int L = static_cast<int>(spec_.hidden.size());
  encoder_.resize(L);
  for (int i = 0; i < L; ++i) {
    EncoderLayer& layer = encoder_[i];
    layer.spec = LstmSpec{i == 0 ? spec_.encoder_input_size() : spec_.hidden[i - 1],
                          spec_.hidden[i], 1, false};
    layer.offset = add_lstm("encoder.layer" + std::to_string(i) + ".", layer.spec);
  }
  if (spec_.mode == DecoderMode::TeacherForcing && spec_.tokens_out()) {
    dec_embedding_ = add("decoder.embedding", {O + 1, E});
  }
  dec_spec_ = LstmSpec{spec_.decoder_input_size(), spec_.top_hidden(), 1, false};
  decoder_ = add_lstm("decoder.", dec_spec_);
  if (spec_.attention == AttentionKind::Additive) {
    const std::size_t A = spec_.attention_units ? spec_.attention_units : H;
    attention_ = add("attention.Wq", {A, H});
    add("attention.Wk", {A, H});
    add("attention.bias", {A});
    add("attention.v", {A});
  }
  dense_ = add("dense.weight", {O, static_cast<std::size_t>(spec_.feature_width())});
  add("dense.bias", {O});
}

template <typename T>
void Seq2Seq<T>::check_batch(const Seq2SeqData<T>& data, int batch_size, int out_steps,
                             const char* what) const {
  // B*Tk encoder rows and B*Tq decoder rows, each in int (limits.hpp).
  const int B = std::min(batch_size, data.samples);
  if (B < 1) return;
  if (data.in_steps >= 1) check_rows(what, B, data.in_steps);
  if (out_steps >= 1) check_rows(what, B, out_steps);
}

template <typename T>
const T* Seq2Seq<T>::aligned(const T* params) {
  return aligned_or_copy(params, count_, params_copy_);
}

template <typename T>
void Seq2Seq<T>::gather(const Seq2SeqData<T>& data, const std::uint32_t* rows, int count, int t0,
                        int n, bool targets) {
  // The encoder steps [t0, t0 + Tk) of each row, Tk = n (or all).
  const std::size_t all = data.in_steps, Tk = n < 0 ? all : n, Tq = data.out_steps,
                    F = spec_.input_features, O = spec_.outputs(), first = t0;
  in_steps_ = static_cast<int>(Tk);
  has_x_mask_ = data.x_mask != nullptr;
  const std::size_t B = count;
  if (data.x_tokens) grow(x_tokens_, B * Tk);
  if (data.x) grow(x_, B * Tk * F);
  if (has_x_mask_) grow(x_mask_, B * Tk);
  for (std::size_t r = 0; r < B; ++r) {
    const std::size_t src = rows[r] * all + first;
    if (data.x_tokens) {
      std::memcpy(x_tokens_.data() + r * Tk, data.x_tokens + src, sizeof(std::int32_t) * Tk);
    }
    if (data.x) std::memcpy(x_.data() + r * Tk * F, data.x + src * F, sizeof(T) * Tk * F);
    if (has_x_mask_) std::memcpy(x_mask_.data() + r * Tk, data.x_mask + src, Tk);
  }
  if (!targets) return;
  out_steps_ = data.out_steps;
  has_y_mask_ = data.y_mask != nullptr;
  if (data.y_tokens) grow(y_tokens_, B * Tq);
  if (data.y) grow(y_, B * Tq * O);
  if (has_y_mask_) grow(y_mask_, B * Tq);
  for (std::size_t r = 0; r < B; ++r) {
    const std::size_t src = rows[r];
    if (data.y_tokens) {
      std::memcpy(y_tokens_.data() + r * Tq, data.y_tokens + src * Tq, sizeof(std::int32_t) * Tq);
    }
    if (data.y) std::memcpy(y_.data() + r * Tq * O, data.y + src * Tq * O, sizeof(T) * Tq * O);
    if (has_y_mask_) std::memcpy(y_mask_.data() + r * Tq, data.y_mask + src * Tq, Tq);
  }
}

template <typename T>
void Seq2Seq<T>::encode(const T* params, int B, int n_threads, bool training) {
  const std::size_t Tk = in_steps_, BT = static_cast<std::size_t>(B) * Tk;
  const int F = spec_.encoder_input_size();
  const T* in = x_.data();
  if (spec_.tokens_in()) {
    grow(enc_in_, BT * F);
    embedding_forward<T>(enc_in_.data(), x_tokens_.data(), params + enc_embedding_,
                         static_cast<int>(BT), spec_.input_vocab, F);
    in = enc_in_.data();
  }
  const int h_max = *std::max_element(spec_.hidden.begin(), spec_.hidden.end());
  grow(zeros_, static_cast<std::size_t>(B) * h_max);
  std::fill(zeros_.begin(), zeros_.end(), T(0));
  const std::uint8_t* mask = has_x_mask_ ? x_mask_.data() : nullptr;
  for (EncoderLayer& layer : encoder_) {
    const std::size_t H = layer.spec.hidden_size;
    grow(layer.y, BT * H);
    grow(layer.h_n, B * H);
    grow(layer.c_n, B * H);
    const T* h0 = carry_ ? layer.h0.data() : zeros_.data();
    const T* c0 = carry_ ? layer.c0.data() : zeros_.data();
    if (training) {
      lstm_forward<T>(layer.spec, params + layer.offset, B, in_steps_, in, h0, c0, mask, nullptr,
                      layer.y.data(), layer.h_n.data(), layer.c_n.data(), layer.cache, n_threads);
    } else {
      lstm_inference<T>(layer.spec, params + layer.offset, B, in_steps_, in, h0, c0, mask,
                        layer.y.data(), layer.h_n.data(), layer.c_n.data(), layer.inference,
                        n_threads);
    }
    in = layer.y.data();
  }
}

template <typename T>
void Seq2Seq<T>::decoder_inputs(const T* params, int B) {
  const std::size_t Tq = out_steps_, F = spec_.decoder_input_size(), O = spec_.outputs();
  const std::size_t BT = static_cast<std::size_t>(B) * Tq;
  grow(dec_in_, BT * F);
  if (spec_.mode == DecoderMode::Repeat) {
    repeat_forward<T>(dec_in_.data(), encoder_.back().h_n.data(), B, out_steps_,
                      static_cast<int>(F));
  } else if (spec_.tokens_out()) {
    // Input at step t: the target token of step t-1; the start symbol O at t = 0.
    grow(dec_tokens_, BT);
    for (std::size_t b = 0; b < static_cast<std::size_t>(B); ++b) {
      dec_tokens_[b * Tq] = static_cast<std::int32_t>(O);
      for (std::size_t t = 1; t < Tq; ++t) dec_tokens_[b * Tq + t] = y_tokens_[b * Tq + t - 1];
    }
    embedding_forward<T>(dec_in_.data(), dec_tokens_.data(), params + dec_embedding_,
                         static_cast<int>(BT), static_cast<int>(O) + 1, static_cast<int>(F));
  } else {
    // Input at step t: the target values of step t-1; zeros at t = 0.
    for (std::size_t b = 0; b < static_cast<std::size_t>(B); ++b) {
      std::fill_n(dec_in_.data() + b * Tq * F, F, T(0));
      if (Tq > 1) {
        std::memcpy(dec_in_.data() + (b * Tq + 1) * F, y_.data() + b * Tq * O,
                    sizeof(T) * (Tq - 1) * F);
      }
    }
  }
}

template <typename T>
void Seq2Seq<T>::head(const T* params, const T* dec_y, int B, int Tq, int n_threads,
                      const T* key_projection) {
  const int H = spec_.top_hidden(), O = spec_.outputs(), W = spec_.feature_width();
  const int Tk = in_steps_;
  const std::size_t BT = static_cast<std::size_t>(B) * Tq;
  const bool attention = spec_.attention != AttentionKind::None;
  const int A = spec_.attention_units ? spec_.attention_units : H;
  const std::size_t AH = static_cast<std::size_t>(A) * H;
  if (attention) {
    grow(context_, BT * H);
    grow(attw_, BT * Tk);
    grow(feat_, BT * W);
  }
  grow(out_, BT * O);
  const int blocks = (B + kHeadSamples - 1) / kHeadSamples;
  if (head_work_.size() < static_cast<std::size_t>(blocks)) head_work_.resize(blocks);
  const T* keys = encoder_.back().y.data();
  const std::uint8_t* mask = has_x_mask_ ? x_mask_.data() : nullptr;
  const T* a = params + attention_;
  parallel_for(blocks, n_threads, [&](std::size_t block) {
    const int b0 = static_cast<int>(block) * kHeadSamples, nb = std::min(kHeadSamples, B - b0);
    const std::size_t q0 = static_cast<std::size_t>(b0) * Tq,
                      k0 = static_cast<std::size_t>(b0) * Tk;
    const std::size_t rows = static_cast<std::size_t>(nb) * Tq;
    const T* features = dec_y + q0 * H;
    if (attention) {
      T* context = context_.data() + q0 * H;
      const std::uint8_t* block_mask = mask ? mask + k0 : nullptr;
      if (spec_.attention == AttentionKind::Dot) {
        dot_attention_forward<T>(context, attw_.data() + q0 * Tk, features, keys + k0 * H,
                                 block_mask, nb, Tq, Tk, H, head_work_[block]);
      } else {
        additive_attention_forward<T>(context, attw_.data() + q0 * Tk, features, keys + k0 * H,
                                      block_mask, a, a + AH, a + 2 * AH, a + 2 * AH + A, nb, Tq, Tk,
                                      H, A, head_work_[block],
                                      key_projection ? key_projection + k0 * A : nullptr);
      }
      // features = [context; decoder output]   [B, Tq, 2H]
      T* feat = feat_.data() + q0 * W;
      for (std::size_t r = 0; r < rows; ++r) {
        std::memcpy(feat + r * W, context + r * H, sizeof(T) * H);
        std::memcpy(feat + r * W + H, features + r * H, sizeof(T) * H);
      }
      features = feat;
    }
    dense_forward<T>(out_.data() + q0 * O, features, params + dense_, params + dense_ + O * W,
                     static_cast<int>(rows), W, O);
  });
}

template <typename T>
void Seq2Seq<T>::project_keys(const T* params, int B, int n_threads) {
  const int H = spec_.top_hidden(), Tk = in_steps_;
  const int A = spec_.attention_units ? spec_.attention_units : H;
  const std::size_t AH = static_cast<std::size_t>(A) * H;
  const T* a = params + attention_;
  const T* keys = encoder_.back().y.data();
  grow(keys_proj_, static_cast<std::size_t>(B) * Tk * A);
  const int blocks = (B + kHeadSamples - 1) / kHeadSamples;
  parallel_for(blocks, n_threads, [&](std::size_t block) {
    const std::size_t b0 = block * kHeadSamples;
    const std::size_t nb = std::min<std::size_t>(kHeadSamples, B - b0);
    additive_attention_keys<T>(keys_proj_.data() + b0 * Tk * A, keys + b0 * Tk * H, a + AH,
                               a + 2 * AH, nb * Tk, H, A);
  });
}

template <typename T>
void Seq2Seq<T>::forward(const T* params, int B, int n_threads) {
  const std::size_t H = spec_.top_hidden();
  encode(params, B, n_threads);
  decoder_inputs(params, B);
  const bool tf = spec_.mode == DecoderMode::TeacherForcing;
  const T* h0 = tf ? encoder_.back().h_n.data() : zeros_.data();
  const T* c0 = tf ? encoder_.back().c_n.data() : zeros_.data();
  grow(dec_y_, static_cast<std::size_t>(B) * out_steps_ * H);
  grow(dec_h_, B * H);
  grow(dec_c_, B * H);
  lstm_forward<T>(dec_spec_, params + decoder_, B, out_steps_, dec_in_.data(), h0, c0, nullptr,
                  nullptr, dec_y_.data(), dec_h_.data(), dec_c_.data(), dec_cache_, n_threads);
  head(params, dec_y_.data(), B, out_steps_, n_threads);
}

template <typename T>
double Seq2Seq<T>::loss(int B, bool gradient, std::size_t& items) {
  // Sum of the losses of the counted target steps; d_out_ gets the gradient
  // of that sum divided by the number of counted steps.
  const std::size_t rows = static_cast<std::size_t>(B) * out_steps_, O = spec_.outputs();
  items = 0;
  for (std::size_t k = 0; k < rows; ++k) items += !has_y_mask_ || y_mask_[k];
  if (gradient) {
    grow(d_out_, rows * O);
    std::fill(d_out_.begin(), d_out_.begin() + rows * O, T(0));
  }
  if (items == 0) return 0.0;
  const double scale = 1.0 / static_cast<double>(items);
  double total = 0.0;
  for (std::size_t k = 0; k < rows; ++k) {
    if (has_y_mask_ && !y_mask_[k]) continue;
    const T* z = out_.data() + k * O;
    T* dz = gradient ? d_out_.data() + k * O : nullptr;
    if (spec_.tokens_out()) {
      // -log softmax(z)[label]
      const int label = y_tokens_[k];
      const double zmax = static_cast<double>(z[argmax(z, static_cast<int>(O))]);
      double sum = 0.0;
      for (std::size_t o = 0; o < O; ++o) sum += std::exp(static_cast<double>(z[o]) - zmax);
      total += std::log(sum) - (static_cast<double>(z[label]) - zmax);
      if (dz) {
        for (std::size_t o = 0; o < O; ++o) {
          const double p = std::exp(static_cast<double>(z[o]) - zmax) / sum;
          dz[o] = static_cast<T>(scale * (p - (static_cast<int>(o) == label ? 1.0 : 0.0)));
        }
      }
    } else {
      // mean over outputs of (z - y)^2
      const T* y = y_.data() + k * O;
      for (std::size_t o = 0; o < O; ++o) {
        const double e = static_cast<double>(z[o]) - static_cast<double>(y[o]);
        total += e * e / static_cast<double>(O);
        if (dz) dz[o] = static_cast<T>(scale * 2.0 * e / static_cast<double>(O));
      }
    }
  }
  return total;
}

template <typename T>
void Seq2Seq<T>::backward(const T* params, T* grads, int B, int n_threads) {
  const int H = spec_.top_hidden(), O = spec_.outputs(), W = spec_.feature_width();
  const int Tq = out_steps_, Tk = in_steps_;
  const std::size_t BTq = static_cast<std::size_t>(B) * Tq, BTk = static_cast<std::size_t>(B) * Tk;
  const bool attention = spec_.attention != AttentionKind::None;
  EncoderLayer& top = encoder_.back();

  // out = features W^T + b
  grow(d_feat_, BTq * W);
  dense_backward<T>(d_feat_.data(), grads + dense_, grads + dense_ + O * W, d_out_.data(),
                    attention ? feat_.data() : dec_y_.data(), params + dense_,
                    static_cast<int>(BTq), W, O);

  grow(d_dec_y_, BTq * H);
  grow(top.dy, BTk * H);
  if (attention) {
    // features = [context; decoder output]
    grow(d_context_, BTq * H);
    grow(d_q_, BTq * H);
    grow(d_keys_, BTk * H);
    for (std::size_t r = 0; r < BTq; ++r) {
      std::memcpy(d_context_.data() + r * H, d_feat_.data() + r * W, sizeof(T) * H);
      std::memcpy(d_dec_y_.data() + r * H, d_feat_.data() + r * W + H, sizeof(T) * H);
    }
    const T* keys = top.y.data();
    if (spec_.attention == AttentionKind::Dot) {
      dot_attention_backward<T>(d_q_.data(), top.dy.data(), d_context_.data(), attw_.data(),
                                dec_y_.data(), keys, B, Tq, Tk, H, work_);
    } else {
      const T* a = params + attention_;
      T* da = grads + attention_;
      const int A = spec_.attention_units ? spec_.attention_units : H;
      const std::size_t AH = static_cast<std::size_t>(A) * H;
      additive_attention_backward<T>(d_q_.data(), top.dy.data(), da, da + AH, da + 2 * AH,
                                     da + 2 * AH + A, d_context_.data(), attw_.data(),
                                     dec_y_.data(), keys, a, a + AH, a + 2 * AH, a + 2 * AH + A, B,
                                     Tq, Tk, H, A, work_);
    }
    // The decoder outputs are both the queries and the second half of the features.
    for (std::size_t k = 0; k < BTq * H; ++k) d_dec_y_[k] += d_q_[k];
  } else {
    std::memcpy(d_dec_y_.data(), d_feat_.data(), sizeof(T) * BTq * H);
  }
  // Without attention only the final state feeds the decoder: the top
  // encoder layer's dy is zero.

  const std::size_t Fd = dec_spec_.input_size;
  grow(d_dec_in_, BTq * Fd);
  grow(d_h0_, static_cast<std::size_t>(B) * H);
  grow(d_c0_, static_cast<std::size_t>(B) * H);
  // The decoder's input gradient feeds the encoder (repeat) or the embedding.
  const bool need_dec_in = spec_.mode == DecoderMode::Repeat || spec_.tokens_out();
  lstm_backward<T>(dec_spec_, params + decoder_, dec_cache_, d_dec_y_.data(), nullptr, nullptr,
                   need_dec_in ? d_dec_in_.data() : nullptr, d_h0_.data(), d_c0_.data(),
                   grads + decoder_, n_threads);
  const T* dh_top = d_h0_.data();
  const T* dc_top = d_c0_.data();
  if (spec_.mode == DecoderMode::Repeat) {
    // dec_in[b, t] = h_n[b]  =>  dh_n[b] = sum over t of d_dec_in[b, t]; c_n is unused.
    repeat_backward<T>(d_h0_.data(), d_dec_in_.data(), B, Tq, H);
    dc_top = nullptr;
  } else if (spec_.tokens_out()) {
    embedding_backward<T>(grads + dec_embedding_, d_dec_in_.data(), dec_tokens_.data(),
                          static_cast<int>(BTq), O + 1, static_cast<int>(Fd));
  }

  const int L = static_cast<int>(encoder_.size());
  AlignedVector<T>& scratch = state_scratch_;  // dh0, dc0 of the encoder (zero states)
  const int h_max = *std::max_element(spec_.hidden.begin(), spec_.hidden.end());
  grow(scratch, 2 * static_cast<std::size_t>(B) * h_max);
  for (int i = L - 1; i >= 0; --i) {
    EncoderLayer& layer = encoder_[i];
    grow(layer.dx, BTk * layer.spec.input_size);
    if (i < L - 1) {
      grow(layer.dy, BTk * layer.spec.hidden_size);
      std::memcpy(layer.dy.data(), encoder_[i + 1].dx.data(),
                  sizeof(T) * BTk * layer.spec.hidden_size);
    }
    // The first layer's input gradient is needed only by the embedding.
    T* dx = i == 0 && !spec_.tokens_in() ? nullptr : layer.dx.data();
    const T* dy = i == L - 1 && spec_.attention == AttentionKind::None ? nullptr : layer.dy.data();
    lstm_backward<T>(layer.spec, params + layer.offset, layer.cache, dy,
                     i == L - 1 ? dh_top : nullptr, i == L - 1 ? dc_top : nullptr, dx,
                     scratch.data(), scratch.data() + static_cast<std::size_t>(B) * h_max,
                     grads + layer.offset, n_threads);
  }
  if (spec_.tokens_in()) {
    embedding_backward<T>(grads + enc_embedding_, encoder_[0].dx.data(), x_tokens_.data(),
                          static_cast<int>(BTk), spec_.input_vocab, spec_.embedding_dim);
  }
}

template <typename T>
double Seq2Seq<T>::evaluate(const T* user_params, const Seq2SeqData<T>& data, int batch_size,
                            int n_threads) {
  if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
  check_batch(data, batch_size, data.out_steps, "evaluate");
  const T* params = aligned(user_params);
  const int N = data.samples;
  std::vector<std::uint32_t> rows(N);
  std::iota(rows.begin(), rows.end(), 0u);
  double total = 0.0;
  std::size_t items = 0;
  for (int start = 0; start < N; start += batch_size) {
    const int count = std::min(batch_size, N - start);
    gather(data, rows.data() + start, count);
    forward(params, count, n_threads);
    std::size_t batch_items = 0;
    total += loss(count, false, batch_items);
    items += batch_items;
  }
  return items ? total / static_cast<double>(items) : 0.0;
}

template <typename T>
void Seq2Seq<T>::predict(const T* user_params, const Seq2SeqData<T>& data, int steps, int end_token,
                         int batch_size, std::int32_t* tokens, T* values, T* weights,
                         int n_threads) {
  if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
  if (steps < 1) throw std::invalid_argument("steps must be positive");
  check_batch(data, batch_size, steps, "predict");
  const T* params = aligned(user_params);
  const int N = data.samples, Tk = data.in_steps, O = spec_.outputs(), H = spec_.top_hidden();
  const bool attention = spec_.attention != AttentionKind::None;
  std::vector<std::uint32_t> rows(N);
  std::iota(rows.begin(), rows.end(), 0u);
  Seq2SeqData<T> inputs;
  inputs.samples = N;
  inputs.in_steps = Tk;
  inputs.x_tokens = data.x_tokens;
  inputs.x = data.x;
  inputs.x_mask = data.x_mask;
  for (int start = 0; start < N; start += batch_size) {
    const int B = std::min(batch_size, N - start);
    const std::size_t first = start;
    gather(inputs, rows.data() + start, B);
    // Writes the outputs of step t of every row from out_ (row stride
    // `stride` steps) and attw_.
    auto emit = [&](int t, const T* out, std::size_t stride, const T* attw) {
      for (int b = 0; b < B; ++b) {
        const T* z = out + static_cast<std::size_t>(b) * stride * O;
        const std::size_t at = (first + b) * steps + t;
        if (tokens) {
          tokens[at] = ended_[b] ? end_token : argmax(z, O);
          if (end_token >= 0 && tokens[at] == end_token) ended_[b] = 1;
        }
        if (values) std::memcpy(values + at * O, z, sizeof(T) * O);
        if (weights && attention) {
          std::memcpy(weights + at * Tk, attw + static_cast<std::size_t>(b) * stride * Tk,
                      sizeof(T) * Tk);
        }
      }
    };
    ended_.assign(B, 0);
    if (spec_.mode == DecoderMode::Repeat) {
      out_steps_ = steps;
      forward(params, B, n_threads);
      for (int t = 0; t < steps; ++t) {
        emit(t, out_.data() + static_cast<std::size_t>(t) * O, steps,
             attw_.data() + static_cast<std::size_t>(t) * Tk);
      }
      continue;
    }
    // Teacher forcing at inference: feed back the greedy output, one step at a time.
    encode(params, B, n_threads);
    // Every step attends over the same keys: their projection once.
    const bool additive = spec_.attention == AttentionKind::Additive;
    if (additive) project_keys(params, B, n_threads);
    const std::size_t Fd = dec_spec_.input_size;
    grow(dec_h_, static_cast<std::size_t>(B) * H);
    grow(dec_c_, static_cast<std::size_t>(B) * H);
    grow(step_h_, static_cast<std::size_t>(B) * H);
    grow(step_c_, static_cast<std::size_t>(B) * H);
    grow(step_y_, static_cast<std::size_t>(B) * H);
    grow(step_in_, static_cast<std::size_t>(B) * Fd);
    std::memcpy(dec_h_.data(), encoder_.back().h_n.data(), sizeof(T) * B * H);
    std::memcpy(dec_c_.data(), encoder_.back().c_n.data(), sizeof(T) * B * H);
    step_tokens_.assign(B, O);  // start symbol
    std::fill_n(step_in_.data(), static_cast<std::size_t>(B) * Fd, T(0));
    for (int t = 0; t < steps; ++t) {
      if (spec_.tokens_out()) {
        embedding_forward<T>(step_in_.data(), step_tokens_.data(), params + dec_embedding_, B,
                             O + 1, static_cast<int>(Fd));
      }
      lstm_forward<T>(dec_spec_, params + decoder_, B, 1, step_in_.data(), dec_h_.data(),
                      dec_c_.data(), nullptr, nullptr, step_y_.data(), step_h_.data(),
                      step_c_.data(), dec_cache_, n_threads);
      std::swap(dec_h_, step_h_);
      std::swap(dec_c_, step_c_);
      head(params, step_y_.data(), B, 1, n_threads, additive ? keys_proj_.data() : nullptr);
      emit(t, out_.data(), 1, attw_.data());
      for (int b = 0; b < B; ++b) {
        const T* z = out_.data() + static_cast<std::size_t>(b) * O;
        if (spec_.tokens_out()) {
          step_tokens_[b] = argmax(z, O);
        } else {
          std::memcpy(step_in_.data() + static_cast<std::size_t>(b) * Fd, z, sizeof(T) * Fd);
        }
      }
    }
  }
}

template <typename T>
Seq2SeqEpochResult Seq2Seq<T>::train_epoch(T* user_params, T* m, T* v, std::int64_t step,
                                           const Seq2SeqData<T>& data,
                                           const Seq2SeqTrainOptions& options, std::uint64_t seed,
                                           const std::function<bool()>& interrupted,
                                           int n_threads) {
  const int N = data.samples;
  if (options.batch_size < 1) throw std::invalid_argument("batch_size must be positive");
  check_batch(data, options.batch_size, data.out_steps, "train_epoch");
  std::uint64_t rng = seed;
  const std::vector<std::uint32_t> order = epoch_order(N, options.shuffle, rng);
  grow(grads_, count_);
  T* params = aligned_or_copy(user_params, count_, params_copy_);
  Seq2SeqEpochResult result;
  result.step = step;
  double total = 0.0;
  std::size_t total_items = 0;
  // Truncated BPTT: chunks of k input steps (k = Tk: whole sequences).
  const int Tk = data.in_steps;
  const int k = options.tbptt_steps > 0 ? std::min(options.tbptt_steps, Tk) : Tk;
  if (k < Tk && spec_.attention != AttentionKind::None) {
    throw std::invalid_argument(
        "truncated BPTT cannot run with attention: the attention reads the encoder's output at "
        "every input step");
  }
  for (int start = 0; start < N && !result.interrupted; start += options.batch_size) {
    if (interrupted && interrupted()) {
      result.interrupted = true;
      break;
    }
    const int count = std::min(options.batch_size, N - start);
    const std::uint32_t* rows = order.data() + start;
    if (k == Tk) {
      gather(data, rows, count);
      forward(params, count, n_threads);
    } else {
      // Each chunk starts from the state the one before ended with; the
      // chunks before the last run forward only, so the workspace holds k
      // steps, and the backward stops at the last chunk's start. Interrupts
      // are polled before every chunk (long sequences may take seconds).
      for (EncoderLayer& layer : encoder_) {
        const std::size_t n = static_cast<std::size_t>(count) * layer.spec.hidden_size;
        grow(layer.h0, n);
        grow(layer.c0, n);
        std::fill_n(layer.h0.begin(), n, T(0));
        std::fill_n(layer.c0.begin(), n, T(0));
      }
      struct Carry {  // carry_ only for this mini-batch, even if it throws
        bool& flag;
        explicit Carry(bool& f) : flag(f) { flag = true; }
        ~Carry() { flag = false; }
      } carry(carry_);
      int t0 = 0;
      for (; t0 + k < Tk; t0 += k) {
        if (t0 > 0 && interrupted && interrupted()) {
          result.interrupted = true;
          break;
        }
        gather(data, rows, count, t0, k, false);
        encode(params, count, n_threads, false);
        for (EncoderLayer& layer : encoder_) {
          const std::size_t n = static_cast<std::size_t>(count) * layer.spec.hidden_size;
          std::copy_n(layer.h_n.begin(), n, layer.h0.begin());
          std::copy_n(layer.c_n.begin(), n, layer.c0.begin());
        }
      }
      if (result.interrupted || (interrupted && interrupted())) {
        result.interrupted = true;
        break;
      }
      gather(data, rows, count, t0, Tk - t0);
      forward(params, count, n_threads);
    }
    std::size_t items = 0;
    const double sum = loss(count, true, items);
    if (items == 0) continue;  // no counted target step in this batch
    backward(params, grads_.data(), count, n_threads);
    if (options.clipnorm > 0.0) {
      for (const TensorInfo& info : layout_) {
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> g(grads_.data() + info.offset,
                                                         volume(info.shape));
        const double norm = std::sqrt(static_cast<double>(g.square().sum()));
        if (norm > options.clipnorm) g *= static_cast<T>(options.clipnorm / norm);
      }
    }
    const double batch_loss = sum / static_cast<double>(items);
    if (!std::isfinite(batch_loss) ||
        !Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(grads_.data(), count_).isFinite().all()) {
      result.finite = false;
      break;
    }
    optimizer_step<T>(options.optimizer, count_, params, grads_.data(), m, v, result.step);
    ++result.step;
    ++result.batches;
    total += sum;
    total_items += items;
  }
  result.loss = total_items ? total / static_cast<double>(total_items) : 0.0;
  if (params != user_params) std::copy(params, params + count_, user_params);
  return result;
}

template class Seq2Seq<LSTMLEARN_ENGINE_DTYPE>;

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
