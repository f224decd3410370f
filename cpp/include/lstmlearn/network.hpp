// A sequence network: stacked (optionally bidirectional) LSTM layers, a dense
// output layer at the last step or at every step, a loss, and the training
// epoch (shuffle, mini-batches, forward, loss, backward, L2, clipping,
// optimizer step) in one call.
//
// Optional stages: a time-distributed convolution block (conv1d over
// sub-sequences or conv2d over frames, see layers.hpp) before the first LSTM
// layer, and a pooling over time (mean or attention) for last-step heads.
//
// Size key: N = samples, B = mini-batch, T = time steps, F = input features
// (with a conv front end: the flattened frame, S*C or Y*X*C), F_0 = features
// into the first LSTM layer (the conv output width, else F), H_i = hidden
// units of layer i, D = directions, W_i = merged width of layer i (D*H_i for
// concat, H_i otherwise), O = outputs (classes for a classifier), A =
// attention units of the pooling.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lstmlearn/fcn.hpp"
#include "lstmlearn/layers.hpp"
#include "lstmlearn/lstm.hpp"
#include "lstmlearn/optimizer.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

enum class Merge { Concat, Sum, Mul, Ave };
enum class Loss { Squared, Absolute, Huber, CrossEntropy };
enum class FrontEnd { None, Conv1d, Conv2d };
enum class Pooling { Last, Mean, Attention };

struct NetworkSpec {
  int input_size = 1;
  std::vector<int> hidden{64};
  bool bidirectional = false;
  Merge merge = Merge::Concat;
  double dropout = 0.0;            // on each layer's inputs, per sample and feature
  double recurrent_dropout = 0.0;  // on h_{t-1}, per sample and unit
  // On the LSTM's features entering the dense head, per row and feature:
  // Keras's Dropout between LSTM and Dense (LSTM-FCN's Dropout(0.8)).
  double head_dropout = 0.0;
  int output_size = 1;
  bool per_step = false;  // dense output at every step, else at the last
  Loss loss = Loss::Squared;
  double huber_delta = 1.0;

  // Conv front end. Each time step of x holds one frame: conv1d reads it as
  // [S, C] = [frame_height, frame_channels] (frame_width 1), conv2d as
  // [Y, X, C]; input_size must be their product.
  FrontEnd front_end = FrontEnd::None;
  int frame_height = 1;
  int frame_width = 1;
  int frame_channels = 1;
  int conv_filters = 1;  // K
  int kernel_h = 1;      // k (conv1d) or kh
  int kernel_w = 1;      // kw (conv2d)
  int conv_pool = 1;     // p

  // How a last-step head sees the top layer: its final states (Last), the
  // mean over valid steps, or attention pooling with A units.
  Pooling pooling = Pooling::Last;
  int attention_units = 16;

  // LSTM-FCN: a fully convolutional branch over x (fcn.hpp) beside the LSTM
  // layers, its pooled output concatenated after theirs into the dense head
  // (a last-step head; no front end). Empty fcn_filters: no branch.
  std::vector<int> fcn_filters;
  std::vector<int> fcn_kernels;
  bool fcn_squeeze_excitation = false;
  int fcn_reduction = 16;
  // The LSTM reads x transposed, [B, F, T]: F steps of `sequence_length`
  // (= T) features ("dimension shuffle"). Needs every sequence of that
  // length and no mask.
  bool dimension_shuffle = false;
  int sequence_length = 0;

  void validate() const;
  bool has_fcn() const { return !fcn_filters.empty(); }
  FcnSpec fcn_spec() const;
  int head_width() const;       // Wd = W of the top layer (+ the branch's K_last)
  int lstm_input_size() const;  // F_0
  Conv1dShape conv1d_shape(int rows) const;
  Conv2dShape conv2d_shape(int rows) const;
  int merged_width(int layer) const;
  LstmSpec layer_spec(int layer) const;
};

// Targets and weights of a data set. Exactly one of `targets` (regression:
// [N, O] or [N, T, O]) and `labels` (class indices: [N] or [N, T]) is set.
// `weights` ([N] or [N, T]) may be null; `mask` [N, T] may be null.
template <typename T>
struct DataSet {
  const T* x = nullptr;  // [N, T, F]
  int samples = 0;
  int steps = 0;
  const std::uint8_t* mask = nullptr;
  const T* targets = nullptr;
  const std::int32_t* labels = nullptr;
  const T* weights = nullptr;
};

struct TrainOptions {
  int batch_size = 32;
  bool shuffle = true;
  double alpha = 0.0;     // L2 penalty on weights (not biases), as scikit-learn's MLP
  double clipnorm = 0.0;  // > 0: clip each gradient tensor to this norm (Keras)
  // Truncated BPTT: > 0 cuts each mini-batch's sequences into chunks of this
  // many steps, carries the state of every layer from one chunk into the
  // next and stops gradients at chunk borders. Per-step heads take one
  // optimizer step per chunk (TBPTT(k, k)); a last-step head runs the earlier
  // chunks forward only and backpropagates through the last. 0, or at least
  // T: whole sequences (the same computation as without it).
  int tbptt_steps = 0;
  OptimizerSpec optimizer;
};

enum class EpochStatus { Completed, NonFinite, Interrupted };

struct EpochResult {
  EpochStatus status = EpochStatus::Completed;
  double loss = 0.0;      // mean training loss over the epoch's mini-batches (weighted by size)
  int batches = 0;        // mini-batches completed
  std::int64_t step = 0;  // optimizer updates made so far (in and before this epoch)
};

template <typename T>
class Network {
 public:
  explicit Network(const NetworkSpec& spec);

  const NetworkSpec& spec() const { return spec_; }
  std::size_t parameter_count() const { return count_; }
  // Names: layer{i}.weight_ih_l0[_reverse], ..., dense.weight [O, W], dense.bias [O],
  // then with a conv front end conv.weight [K, C, k] or [K, C, kh, kw] and
  // conv.bias [K], then with attention pooling pool.weight [A, W],
  // pool.bias [A] and pool.v [A], then the FCN branch's fcn.* (fcn.hpp).
  // With the branch, dense.weight is [O, Wd].
  const std::vector<TensorInfo>& layout() const { return layout_; }

  // Outputs for `data` in mini-batches of `batch_size`: [N, O] or [N, T, O];
  // probabilities (softmax) for cross-entropy, linear values otherwise.
  // The weights packed for one call are reused by the next when both pass
  // the same nonzero `params_version` and `params` address, the first call
  // completed, and nothing changed them in between (train_epoch,
  // params_changed(), evaluate, attention_weights). The caller promises that
  // one version never names two different sets of values; 0 means unknown
  // (never reused). `precision` other than Full (float only) runs the LSTM
  // layers' recurrent products on a bfloat16 or int8 copy of W_hh, made
  // from `params` and reused under the same rule (a change of precision
  // makes it anew); everything else stays in T.
  void predict(const T* params, const DataSet<T>& data, int batch_size, T* out, int n_threads,
               std::uint64_t params_version = 0, Precision precision = Precision::Full);

  // Says that the values of the parameters changed outside train_epoch.
  void params_changed() { ++generation_; }

  // Attention-pooling weights [N, T] for `data` (masked steps get 0).
  // Requires pooling == Attention and a last-step head.
  void attention_weights(const T* params, const DataSet<T>& data, int batch_size, T* out,
                         int n_threads);

  // Mean loss over `data` (weighted, no regularisation), without training.
  double evaluate(const T* params, const DataSet<T>& data, int batch_size, int n_threads);

  // One epoch of mini-batch training. `m`, `v` [P] hold the optimizer state
  // and `step` the number of updates made so far. `interrupted` is polled
  // before every mini-batch. On a non-finite loss the epoch stops before the
  // update that would have used it.
  EpochResult train_epoch(T* params, T* m, T* v, std::int64_t step, const DataSet<T>& data,
                          const TrainOptions& options, std::uint64_t seed,
                          const std::function<bool()>& interrupted, int n_threads);

  // Throws std::invalid_argument when the state cannot be carried from one
  // stretch of steps to the next (truncated BPTT, streaming): bidirectional
  // layers (the reverse direction needs the future) or pooling over time
  // (it needs every step's output). `what` names the feature.
  void check_carry(const char* what) const;

  // Streaming inference: S streams, each with its own state (h, c of every
  // layer), fed one step at a time. The outputs are bitwise those of predict
  // on the whole sequences: the same inference arithmetic, whose results do
  // not depend on the number of rows or steps of a call. A conv front end is
  // refused too (check_carry, then this).
  void stream_resize(int streams);  // keeps the state of the first min(old, new) streams
  void stream_reset(int stream);    // zero the state of one stream, or of all when < 0
  int streams() const { return streams_; }
  // x [S, F] -> out [S, O] (probabilities for cross-entropy, as predict).
  // `params` must hold the same values at the same address from one call to
  // the next unless `params_changed` says otherwise: packed weights are
  // reused (a change of `precision` packs again). In reduced precision the
  // outputs are bitwise predict's in that precision.
  void stream_step(const T* params, const T* x, T* out, int n_threads, bool params_changed,
                   Precision precision = Precision::Full);
  // Sampling from a next-token model (a per-step softmax over as many
  // classes as one-hot inputs, as LSTMGenerator's): one stream (resized to
  // one), from the zero state, reads the seed_len tokens of `seed`, then
  // draws `length` tokens into `out`, each read back as the next input, one
  // stream step per token (token input: lstm_stream_step_tokens). Token i
  // comes from the logits z of the head: temperature 0 takes the first
  // largest; otherwise weights w_k = exp((z_k - max z) / temperature) (in
  // double), and the first k whose running sum of w exceeds uniforms[i] *
  // sum(w) (uniforms in [0, 1)). The same bits for any n_threads. `params`
  // and `precision` as for stream_step (the recurrent weights in bfloat16 or
  // int8: the steps are stream_step's at that precision); the carried state
  // is left as the last step made it.
  void stream_sample(const T* params, const std::int64_t* seed, int seed_len,
                     const double* uniforms, int length, double temperature, std::int64_t* out,
                     int n_threads, Precision precision = Precision::Full);

 private:
  struct Layer {
    LstmSpec spec;
    std::size_t offset = 0;
    LstmCache<T> cache;           // training forward, for backward
    LstmInference<T> inference;   // predict and evaluate
    AlignedVector<T> input;       // [B, T, F_i] dropped-out input (when dropout)
    AlignedVector<T> input_mask;  // [B, F_i] scaled keep mask
    AlignedVector<T> rec_mask;    // [D, B, H_i] scaled keep mask
    AlignedVector<T> y;           // [B, T, D*H_i]
    AlignedVector<T> merged;      // [B, T, W_i] (not used for concat)
    AlignedVector<T> h_n, c_n;    // [D, B, H_i]
    AlignedVector<T> dy;          // [B, T, D*H_i]
    AlignedVector<T> dx;          // [B, T, F_i]
    AlignedVector<T> dh_n;        // [D, B, H_i]
    AlignedVector<T> h0, c0;      // [D, B, H_i] carried state (truncated BPTT, streaming)
  };

  // Rows of `data` listed in `rows` become the current mini-batch.
  // `in_place`: the rows are consecutive, and the inputs may be read where
  // they are rather than copied.
  void gather(const DataSet<T>& data, const std::uint32_t* rows, int count, bool in_place = false);
  // As gather, steps [t0, t0 + n) of each row only (in place only when that
  // is every step).
  void gather_steps(const DataSet<T>& data, const std::uint32_t* rows, int count, int t0, int n,
                    bool in_place = false);
  // Zeroes the carried state of B rows; keep_carry() copies the last
  // forward's final states into it.
  void zero_carry(int B);
  void keep_carry(int B);
  // Loss, backward, L2, clipping and one optimizer step on the current
  // mini-batch after a training forward. Returns false on a non-finite loss
  // or gradient (nothing updated).
  bool update(T* params, T* m, T* v, int count, const TrainOptions& options, EpochResult& result,
              double& total, std::size_t& total_items, int n_threads);
  // Softmax of the n rows of out_ (cross-entropy), in fixed blocks of rows.
  void softmax_rows(std::size_t n, int n_threads);
  // `params_unchanged`: the packed weights of the last forward pass still hold
  // these parameters (see predict), so inference may reuse them.
  void forward(const T* params, int batch, bool training, std::uint64_t& rng, int n_threads,
               bool params_unchanged = false, Precision precision = Precision::Full);
  // Loss of the current batch; fills d_out_ when `gradient`.
  double loss(int batch, bool gradient, int n_threads);
  void backward(const T* params, T* grads, int batch, int n_threads);
  const T* layer_output(int layer) const;  // merged output [B, T, W_i]
  // `params`, or a copy at Eigen's alignment if it is not aligned.
  const T* aligned_params(const T* params);
  // No packed weights are reused by the next predict.
  void forget_packs();
  // Packs the layers' [W_ih | W_hh] in `parts` parts and the head for
  // streaming steps.
  void pack_stream(const T* params, int parts, Precision precision);
  // The head's logits for `n` streams' h_t (rows `ld` apart) into out_, as
  // forward() computes them for any row: the same bits.
  void stream_head(const T* params, const T* h, std::ptrdiff_t ld, int n);
  // Throws std::invalid_argument when a mini-batch has more rows (B*T) than
  // an int counts.
  void check_batch(const DataSet<T>& data, int batch_size, const char* what) const;

  NetworkSpec spec_;
  std::vector<TensorInfo> layout_;
  std::size_t count_ = 0;
  std::size_t dense_offset_ = 0;
  std::size_t conv_offset_ = 0;  // conv.weight, then conv.bias
  std::size_t pool_offset_ = 0;  // pool.weight, pool.bias, pool.v
  std::size_t fcn_offset_ = 0;   // the FCN branch's parameters
  std::vector<Layer> layers_;
  FcnBranch<T> fcn_;
  bool fcn_trained_ = false;    // the last forward was a training one (update_running)
  AlignedVector<T> shuffled_;   // [B, F, T] the LSTM's input with dimension_shuffle
  AlignedVector<T> head_;       // [B, Wd] features of the dense head with the branch
  AlignedVector<T> d_lstm_;     // [B, W] the LSTM part of d_features_
  bool head_dropped_ = false;   // the last forward dropped the head's LSTM features
  AlignedVector<T> head_mask_;  // [rows, W] its keep mask, scaled
  AlignedVector<T> dropped_;    // [rows, W] the features it kept

  // Current mini-batch.
  int steps_ = 0;
  bool carry_ = false;          // the forward starts from each layer's h0, c0, not zeros
  int streams_ = 0;             // rows of the carried state kept for streaming
  bool stream_packed_ = false;  // stream_ and dense_packed_ hold the stream's params
  // stream_ holds stream_sample's packs of these params: its layers at
  // stream_.precision and, if `sample_lookup_`, layer 0's token tables.
  const T* sample_params_ = nullptr;
  bool sample_lookup_ = false;
  LstmStream<T> stream_;             // streaming state and packed weights
  std::size_t last_items_ = 0;       // items counted by the last loss()
  std::vector<double> loss_blocks_;  // loss() per block of rows
  bool has_mask_ = false;
  AlignedVector<T> x_;                // [B, T, F]
  const T* input_ = nullptr;          // the batch's inputs when not copied to x_
  std::vector<std::uint8_t> mask_;    // [B, T]
  AlignedVector<T> targets_;          // [B, (T,) O]
  std::vector<std::int32_t> labels_;  // [B, (T)]
  AlignedVector<T> weights_;          // [B, (T)]
  bool has_weights_ = false;
  AlignedVector<T> zeros_;                 // [D, B, H] initial states
  AlignedVector<T> state_scratch_;         // [D, B, H] dh0 / dc0 we do not need
  AlignedVector<T> conv_y_;                // [B*T, F_0] conv block output
  std::vector<std::int32_t> conv_argmax_;  // [B*T, F_0]
  AlignedVector<T> conv_workspace_;
  AlignedVector<T> pool_weights_;      // [B, T] attention pooling weights
  AlignedVector<T> pool_workspace_;    //
  AlignedVector<T> d_sequence_;        // [B, T, W] gradient of the pooled top layer
  AlignedVector<T> features_;          // [B, W] last-step features (per_step: unused)
  AlignedVector<T> out_;               // [B, (T,) O]
  PackedMatrix<T> dense_packed_;       // dense.weight^T [W, O], packed
  PackedMatrix<T> dense_back_packed_;  // dense.weight [O, W], packed for d_features
  AlignedVector<T> d_out_;             // [B, (T,) O]
  AlignedVector<T> d_features_;        // [B, (T,) W]
  AlignedVector<T> grads_;             // [P]
  AlignedVector<T> params_copy_;       // [P] aligned copy of unaligned parameters

  // Reuse of packed weights across predict calls (see predict).
  std::uint64_t generation_ = 0;         // bumped whenever the parameters change
  const T* predicted_from_ = nullptr;    // params of the last complete predict
  std::uint64_t predicted_version_ = 0;  // its params_version (0: reuse nothing)
  std::uint64_t predicted_generation_ = 0;
};

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
