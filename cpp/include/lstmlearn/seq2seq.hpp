// Encoder-decoder (sequence to sequence) model: an embedding or numeric input,
// a stacked encoder LSTM, a decoder LSTM, optional Luong attention of the
// decoder outputs over the encoder outputs, and a dense output layer with a
// softmax cross-entropy (tokens) or squared-error (numeric) loss.
//
// Size key: N = samples, B = mini-batch, Tk = input (encoder) steps,
// Tq = output (decoder) steps, F = numeric input features, E = embedding width,
// V = input vocabulary, H_i = hidden units of encoder layer i, H = hidden units
// of the top encoder layer and of the decoder, A = attention units,
// O = outputs (classes for tokens, features for numeric targets),
// W = H (no attention) or 2H ([context; decoder output]).
//
// Modes:
//   Repeat:         decoder input [B, Tq, H] = the top encoder layer's final
//                   hidden state repeated Tq times; decoder states start at 0.
//   TeacherForcing: decoder states start at the top encoder layer's final
//                   (h, c); the decoder input at step t is the target of step
//                   t-1 (embedded for tokens, the values for numeric targets),
//                   and the start symbol (token O) or zeros at t = 0. Inference
//                   feeds back the model's own greedy outputs instead.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "lstmlearn/lstm.hpp"
#include "lstmlearn/optimizer.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

enum class DecoderMode { Repeat, TeacherForcing };
enum class AttentionKind { None, Dot, Additive };

struct Seq2SeqSpec {
  int input_vocab = 0;          // V; 0: numeric input of `input_features` per step
  int input_features = 1;       // F (numeric input)
  int output_vocab = 0;         // O classes; 0: numeric output of `output_features`
  int output_features = 1;      // O (numeric output)
  int embedding_dim = 16;       // E, for token inputs and teacher-forced token outputs
  std::vector<int> hidden{64};  // encoder layers; the decoder has hidden.back() units
  DecoderMode mode = DecoderMode::TeacherForcing;
  AttentionKind attention = AttentionKind::None;
  int attention_units = 0;  // A (additive); 0: H

  void validate() const;
  bool tokens_in() const { return input_vocab > 0; }
  bool tokens_out() const { return output_vocab > 0; }
  int outputs() const { return tokens_out() ? output_vocab : output_features; }  // O
  int top_hidden() const { return hidden.back(); }                               // H
  int encoder_input_size() const { return tokens_in() ? embedding_dim : input_features; }
  int decoder_input_size() const;
  int feature_width() const {
    return attention == AttentionKind::None ? hidden.back() : 2 * hidden.back();
  }
};

// A data set. Inputs: `x_tokens` [N, Tk] or `x` [N, Tk, F]; `x_mask` [N, Tk]
// (null: all valid; each row needs one valid step). Targets (may both be
// null for prediction): `y_tokens` [N, Tq] in [0, O) or `y` [N, Tq, O];
// `y_mask` [N, Tq] (null: all valid) selects the steps that count in the loss.
template <typename T>
struct Seq2SeqData {
  int samples = 0;
  int in_steps = 0;   // Tk
  int out_steps = 0;  // Tq
  const std::int32_t* x_tokens = nullptr;
  const T* x = nullptr;
  const std::uint8_t* x_mask = nullptr;
  const std::int32_t* y_tokens = nullptr;
  const T* y = nullptr;
  const std::uint8_t* y_mask = nullptr;
};

struct Seq2SeqTrainOptions {
  int batch_size = 32;
  bool shuffle = true;
  double clipnorm = 0.0;  // > 0: clip each gradient tensor to this norm (Keras)
  OptimizerSpec optimizer;
  // > 0 and fewer than the input steps: truncated BPTT. The encoder reads
  // each mini-batch's inputs in chunks of this many steps, carrying the state
  // of every layer from one chunk into the next; the earlier chunks run
  // forward only (nothing kept for a backward), and gradients flow through
  // the last chunk and the decoder. Not with attention (it reads the output
  // of every input step).
  int tbptt_steps = 0;
};

struct Seq2SeqEpochResult {
  bool finite = true;        // false: stopped before an update with a non-finite loss or gradient
  bool interrupted = false;  // `interrupted()` returned true before a mini-batch
  double loss = 0.0;         // mean loss per counted target step over the completed batches
  int batches = 0;
  std::int64_t step = 0;  // optimizer updates made so far
};

template <typename T>
class Seq2Seq {
 public:
  explicit Seq2Seq(const Seq2SeqSpec& spec);

  const Seq2SeqSpec& spec() const { return spec_; }
  std::size_t parameter_count() const { return count_; }
  // Names: encoder.embedding [V, E], encoder.layer{i}.<LSTM names>,
  // decoder.embedding [O+1, E] (teacher-forced tokens; row O is the start
  // symbol), decoder.<LSTM names>, attention.{Wq, Wk [A, H], bias, v [A]}
  // (additive), dense.weight [O, W], dense.bias [O].
  const std::vector<TensorInfo>& layout() const { return layout_; }

  // Mean loss per counted target step (teacher forcing in that mode).
  double evaluate(const T* params, const Seq2SeqData<T>& data, int batch_size, int n_threads);

  // Greedy decoding of `steps` output steps. Token outputs: `tokens` [N, steps]
  // (argmax; once a row emits `end_token` (>= 0) the rest of it is
  // end_token). Numeric: `values` [N, steps, O]. `weights` [N, steps, Tk] may
  // be null; with attention it receives the attention weights. In Repeat mode
  // `steps` is the decoder length.
  void predict(const T* params, const Seq2SeqData<T>& data, int steps, int end_token,
               int batch_size, std::int32_t* tokens, T* values, T* weights, int n_threads);

  // One epoch of mini-batch training with teacher forcing (see network.hpp).
  // Throws std::invalid_argument for options.tbptt_steps with attention.
  Seq2SeqEpochResult train_epoch(T* params, T* m, T* v, std::int64_t step,
                                 const Seq2SeqData<T>& data, const Seq2SeqTrainOptions& options,
                                 std::uint64_t seed, const std::function<bool()>& interrupted,
                                 int n_threads);

 private:
  struct EncoderLayer {
    LstmSpec spec;
    std::size_t offset = 0;
    LstmCache<T> cache;
    LstmInference<T> inference;  // forward-only chunks (truncated BPTT)
    AlignedVector<T> h0, c0;     // [B, H_i] state carried into the next chunk
    AlignedVector<T> y;          // [B, Tk, H_i]
    AlignedVector<T> h_n, c_n;   // [B, H_i]
    AlignedVector<T> dy;         // [B, Tk, H_i]
    AlignedVector<T> dx;         // [B, Tk, F_i]
  };

  // Rows of `data` listed in `rows` become the current mini-batch: the
  // encoder steps [t0, t0 + n) of each (n < 0: all), and the targets when
  // `targets`.
  void gather(const Seq2SeqData<T>& data, const std::uint32_t* rows, int count, int t0 = 0,
              int n = -1, bool targets = true);
  // The encoder over the gathered steps, from each layer's carried h0, c0
  // when carry_ (else zeros). `training`: the caches keep what backward
  // needs; otherwise inference, keeping nothing.
  void encode(const T* params, int B, int n_threads, bool training = true);
  // Decoder input [B, Tq, F_dec] from the gathered targets (teacher forcing)
  // or the repeated encoder state.
  void decoder_inputs(const T* params, int B);
  // Attention and dense output over decoder outputs `dec_y` [B, Tq, H] into
  // out_ [B, Tq, O]; fills feat_ [B, Tq, W] and attw_ [B, Tq, Tk]. Runs in
  // fixed blocks of samples shared among the threads (the same bits for any
  // n_threads). key_projection: the additive attention's keys part
  // [B, Tk, A] (project_keys), or null to compute it.
  void head(const T* params, const T* dec_y, int B, int Tq, int n_threads,
            const T* key_projection = nullptr);
  // keys_proj_ [B, Tk, A] for the encoder's current output (additive attention).
  void project_keys(const T* params, int B, int n_threads);
  void forward(const T* params, int B, int n_threads);
  double loss(int B, bool gradient, std::size_t& items);
  void backward(const T* params, T* grads, int B, int n_threads);
  const T* aligned(const T* params);
  // Throws std::invalid_argument when a mini-batch has more encoder or
  // decoder rows (B*Tk, B*Tq) than an int counts.
  void check_batch(const Seq2SeqData<T>& data, int batch_size, int out_steps,
                   const char* what) const;

  Seq2SeqSpec spec_;
  std::vector<TensorInfo> layout_;
  std::size_t count_ = 0;
  std::size_t enc_embedding_ = 0, dec_embedding_ = 0, decoder_ = 0, attention_ = 0, dense_ = 0;
  LstmSpec dec_spec_;
  std::vector<EncoderLayer> encoder_;
  LstmCache<T> dec_cache_;

  // Current mini-batch.
  int in_steps_ = 0, out_steps_ = 0;
  bool carry_ = false;  // the encoder starts from each layer's h0, c0 (truncated BPTT)
  bool has_x_mask_ = false, has_y_mask_ = false;
  std::vector<std::int32_t> x_tokens_;    // [B, Tk]
  AlignedVector<T> x_;                    // [B, Tk, F] (numeric input)
  std::vector<std::uint8_t> x_mask_;      // [B, Tk]
  std::vector<std::int32_t> y_tokens_;    // [B, Tq]
  AlignedVector<T> y_;                    // [B, Tq, O]
  std::vector<std::uint8_t> y_mask_;      // [B, Tq]
  std::vector<std::int32_t> dec_tokens_;  // [B, Tq] teacher-forced token inputs

  AlignedVector<T> enc_in_;                  // [B, Tk, F_enc]
  AlignedVector<T> zeros_;                   // [B, H_max]
  AlignedVector<T> dec_in_;                  // [B, Tq, F_dec]
  AlignedVector<T> dec_y_;                   // [B, Tq, H]
  AlignedVector<T> dec_h_, dec_c_;           // [B, H]
  AlignedVector<T> context_;                 // [B, Tq, H]
  AlignedVector<T> attw_;                    // [B, Tq, Tk]
  AlignedVector<T> feat_;                    // [B, Tq, W]
  AlignedVector<T> out_;                     // [B, Tq, O]
  AlignedVector<T> work_;                    // attention workspace (backward)
  std::vector<AlignedVector<T>> head_work_;  // attention workspace of each block of samples
  AlignedVector<T> keys_proj_;               // [B, Tk, A] greedy decoding's key projection

  // Backward.
  AlignedVector<T> d_out_;          // [B, Tq, O]
  AlignedVector<T> d_feat_;         // [B, Tq, W]
  AlignedVector<T> d_context_;      // [B, Tq, H]
  AlignedVector<T> d_dec_y_;        // [B, Tq, H]
  AlignedVector<T> d_q_;            // [B, Tq, H]
  AlignedVector<T> d_keys_;         // [B, Tk, H]
  AlignedVector<T> d_dec_in_;       // [B, Tq, F_dec]
  AlignedVector<T> d_h0_, d_c0_;    // [B, H]
  AlignedVector<T> state_scratch_;  // [2, B, H_max] encoder dh0, dc0 (not needed)
  AlignedVector<T> grads_;          // [P]
  AlignedVector<T> params_copy_;    // [P]

  // Greedy decoding, one step at a time.
  AlignedVector<T> step_in_;               // [B, 1, F_dec]
  AlignedVector<T> step_y_;                // [B, 1, H]
  AlignedVector<T> step_h_, step_c_;       // [B, H] next states
  std::vector<std::int32_t> step_tokens_;  // [B]
  std::vector<std::uint8_t> ended_;        // [B]
};

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
