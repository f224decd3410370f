// LSTM layer stack: forward pass and backpropagation through time.
//
// Size key used in every shape comment:
//   B = batch, T = time steps, F = input features of a layer, H = hidden units,
//   D = directions (1, or 2 when bidirectional), L = stacked layers,
//   G = 4H gate rows in PyTorch order i, f, g, o.
//
// Arrays at the boundary are row-major and batch-first: x [B, T, F],
// y [B, T, D*H], states [L*D, B, H] (index l*D + d, as in PyTorch).
//
// Equations at one step (sigma = logistic):
//   a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          a [G]
//   i = sigma(a_i)  f = sigma(a_f)  g = tanh(a_g)  o = sigma(a_o)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(c_t)
// A masked step carries the state and repeats the previous output:
//   c_t = c_{t-1}, h_t = h_{t-1}.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lstmlearn/aligned.hpp"
#include "lstmlearn/gemm.hpp"
#include "lstmlearn/isa.hpp"
#include "lstmlearn/reduced.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

struct LstmSpec {
  int input_size = 1;
  int hidden_size = 1;
  int num_layers = 1;
  bool bidirectional = false;

  int directions() const { return bidirectional ? 2 : 1; }
  int layer_input_size(int layer) const {
    return layer == 0 ? input_size : directions() * hidden_size;
  }
  // Throws std::invalid_argument when a size is not positive.
  void validate() const;
};

// A named tensor inside the flat parameter buffer (PyTorch's names).
struct TensorInfo {
  std::string name;
  std::size_t offset;
  std::vector<std::size_t> shape;
};

// Parameters of layer l, direction d, stored contiguously in this order:
//   weight_ih [G, F]   weight_hh [G, H]   bias_ih [G]   bias_hh [G]
std::vector<TensorInfo> lstm_parameter_layout(const LstmSpec& spec);
std::size_t lstm_parameter_count(const LstmSpec& spec);
// Offset of the block of layer l, direction d.
std::size_t lstm_block_offset(const LstmSpec& spec, int layer, int direction);

// Everything the backward pass needs from the forward pass, plus reusable
// scratch memory. Buffers only grow, so repeated calls at one size allocate
// nothing.
template <typename T>
struct LstmCache {
  int batch = 0;
  int steps = 0;
  bool has_mask = false;
  bool has_recurrent_mask = false;
  bool ready = false;  // a forward pass has filled the cache

  AlignedVector<T> h0, c0;                     // [L*D, B, H]
  std::vector<std::uint8_t> mask;              // [B, T]
  AlignedVector<T> recurrent_mask;             // [L*D, B, H] dropout on h_{t-1}
  std::vector<AlignedVector<T>> outputs;       // per layer below the top: [B, T, D*H]
  std::vector<AlignedVector<T>> gates;         // per (l, d): [B, T, G] activations i, f, g, o
  std::vector<AlignedVector<T>> cells;         // per (l, d): [B, T, H] c_t
  std::vector<AlignedVector<T>> prev_hidden;   // per (l, d): [B, T, F + H] x_t, h_{t-1}
  std::vector<PackedMatrix<T>> packed_w_ih;    // per (l, d): W_ih^T [F, G], packed
  std::vector<PackedMatrix<T>> packed_w_hh;    // per (l, d): W_hh^T [H, G], packed
  std::vector<PackedMatrix<T>> packed_w_hh_t;  // per (l, d): W_hh [G, H], packed (backward)
  std::vector<AlignedVector<T>> bias_sum;      // per (l, d): [G] b_ih + b_hh
  std::vector<AlignedVector<T>> onehot;        // per d of layer 0: x W_ih^T of one-hot x

  // Backward scratch.
  std::vector<AlignedVector<T>> dgates;           // per d: [B, T, G] gradient of a
  AlignedVector<T> dinput_a, dinput_b;            // [B, T, D*H] ping-pong gradient of layer inputs
  std::vector<AlignedVector<T>> dh, dh_next, dc;  // per d: [B, H]
  std::vector<AlignedVector<T>> weight_scratch;   // per weight task: [rows, F + H] column-major
};

// Packed weights and scratch of the inference pass. Buffers only grow.
template <typename T>
struct LstmInference {
  std::vector<PackedMatrix<T>> w_ih;       // per (l, d, gate q): W_ih[q]^T [F, H], packed
  std::vector<PackedMatrix<T>> w_hh;       // per (l, d, gate q): W_hh[q]^T [H, H], packed
  std::vector<AlignedVector<T>> bias_sum;  // per (l, d): [G] b_ih + b_hh
  std::vector<AlignedVector<T>> outputs;   // per layer below the top: [B, T, D*H]
  AlignedVector<T> gates;                  // [B, G] pre-activations of the current step
  AlignedVector<T> xproj;                  // [B, T, G] input projections (small batches)
  AlignedVector<T> cells;                  // [B, H] c_t of the current direction
  // Layer 0's products x W_ih^T for the one-hot x (see lstm_inference): per
  // (direction, member), [F + 1, 4 * units] (the last row for x = 0), or
  // empty when W_ih is not finite there. Ready: built from the packed params.
  std::vector<AlignedVector<T>> onehot;
  bool onehot_ready = false;
  // Reduced precision (float models only): W_hh^T in bfloat16 or int8,
  // packed as w_hh is (which then stays empty); the input projection stays
  // in T.
  std::vector<ReducedMatrix> r_hh;
  // int8: codes of h_{t-1}, per team member (one when split by rows, whose
  // rows are disjoint): [members, B, depth], with a scale and zero per row.
  AlignedVector<std::uint8_t> codes;
  AlignedVector<float> code_scale;
  AlignedVector<std::int32_t> code_zero;
  // What the packed weights hold: packed from these parameters, for this
  // split (by units or not), team size and precision.
  const T* packed_params = nullptr;
  bool packed_split = false;
  int packed_team = 0;
  Precision packed_precision = Precision::Full;
};

// Forward pass for inference: keeps nothing for backward. Same arguments as
// lstm_forward without the recurrent mask. Each step's input projection,
// recurrent product, activations and cell update run together on a block of
// rows while it is in cache. Threads split the batch, or, when there are too
// few rows, each step's hidden units (a barrier per step). Every element is
// computed by the same instructions whatever the split, so results are
// bitwise identical for any n_threads and batch size (though not to
// lstm_forward's, whose projection and activations run through other code).
// `params_unchanged` promises that the values at `params` are those of the
// last call with this workspace: its packed weights are then reused when
// packed from the same address for the same split. Rows of x that are one-hot
// (a single 1, else 0; or all 0), as character models feed, take their
// projection from a table of W_ih^T's rows instead of a product: the same
// bits, since in the product's FMA chain only the 1 meets a nonzero.
// `precision` other than Full (float only) multiplies h_{t-1} by a bfloat16
// or int8 copy of W_hh (reduced.hpp), packed once and reused as the fp32
// packs are; x's projection stays fp32. Results then still do not depend on
// the threads or the batch size.
template <typename T>
void lstm_inference(const LstmSpec& spec, const T* params, int batch, int steps, const T* x,
                    const T* h0, const T* c0, const std::uint8_t* mask, T* y, T* h_n, T* c_n,
                    LstmInference<T>& ws, int n_threads, bool params_unchanged = false,
                    Precision precision = Precision::Full);

// One stage of lstm_inference_stack: a one-layer, one-direction LSTM whose
// input is the previous stage's y (the first stage's, x). y [B, T, H], h_n and
// c_n [B, H] are written; `ws` is the stage's own.
template <typename T>
struct InferenceStage {
  const LstmSpec* spec;
  const T* params;
  T* y;
  T* h_n;
  T* c_n;
  LstmInference<T>* ws;
};

// lstm_inference of stacked stages, the same bits as calling it stage after
// stage. When every stage would run on one thread (few rows, little work a
// step), there are more threads and more than a few steps, the stages run as
// a pipeline instead, on different threads, each step as soon as the stage
// below has written its input. h0 and c0 [B, max H] are every stage's
// initial state.
template <typename T>
void lstm_inference_stack(const InferenceStage<T>* stages, int count, int batch, int steps,
                          const T* x, const T* h0, const T* c0, const std::uint8_t* mask,
                          int n_threads, bool params_unchanged = false,
                          Precision precision = Precision::Full);

// Streaming inference: a stack of one-direction layers fed one step at a
// time for S streams, each stream's state (h, c of every layer) carried from
// call to call. Each layer's [W_ih | W_hh] is packed once, in `parts` parts
// of whole groups of hidden units (the four gates of each part's units), so
// that a step reads the weights once, in one pass over contiguous memory:
// a = [x_t | h_{t-1}] [W_ih | W_hh]^T, each element one FMA chain over x_t
// then h_{t-1}, from 0, as lstm_inference computes it (and the activations
// and the cell update by the same instructions): the outputs are bitwise
// those of lstm_inference on the whole sequences, for any parts and threads.
// In reduced precision a part packs W_ih alone and a reduced copy of W_hh,
// and a step runs x_t's product then h_{t-1}'s, as lstm_inference does in
// that precision (the same bits again). Nothing is allocated by a step.
template <typename T>
struct LstmStream {
  struct Layer {
    int F = 0, H = 0;
    std::vector<int> units;  // [parts + 1] first unit of each part, then H
    // Per part: [W_ih | W_hh]^T of its gates [F + H, 4 * units]; in reduced
    // precision W_ih^T [F, 4 * units] only, and W_hh^T in `r`.
    std::vector<PackedMatrix<T>> w;
    std::vector<ReducedMatrix> r;
    AlignedVector<std::uint8_t> codes;  // int8: [parts, S, depth] codes of h_{t-1} per part
    AlignedVector<float> code_scale;    // [parts, S]
    AlignedVector<std::int32_t> code_zero;
    AlignedVector<T> bias;   // [G] b_ih + b_hh
    AlignedVector<T> xh[2];  // [S, F + H] ping-pong: x_t, then h_{t-1} (the h state)
    AlignedVector<T> c;      // [S, H] the c state
    AlignedVector<T> gates;  // [S, G] by part: [i | f | g | o] of its units
    // Token input (lstm_stream_pack_tokens; layer 0 only), per part: W_hh^T
    // of its gates [H, 4 * units] (full precision only; reduced precision
    // reads `r`), and the lookup table e_k W_ih^T [F + 1, 4 * units] of the
    // one-hot x_t.
    std::vector<PackedMatrix<T>> w_hh;
    std::vector<AlignedVector<T>> onehot;
  };
  std::vector<Layer> layers;
  int streams = 0;
  int parts = 0;                          // as packed: up to this many parts a layer
  int current = 0;                        // xh[current] holds the h state of every layer
  Precision precision = Precision::Full;  // as packed
};

// Packs the weights of `count` one-layer, one-direction specs (specs[i]'s
// parameters at params[i]; layer i reads layer i-1's h) into `stream`, each
// layer in up to `parts` parts, in `precision` (reduced: float only),
// keeping the streams and their state (zero for a layer of a new shape).
template <typename T>
void lstm_stream_pack(const LstmSpec* specs, const T* const* params, int count, int parts,
                      LstmStream<T>& stream, Precision precision = Precision::Full);
// S streams: keeps the state of the first min(old, S); new ones start at 0.
template <typename T>
void lstm_stream_resize(LstmStream<T>& stream, int streams);
// Zeroes the state of stream i, or of all when i < 0.
template <typename T>
void lstm_stream_reset(LstmStream<T>& stream, int i);
// One step of every stream: x [S, F_0]. Returns the top layer's h_t [S, H]
// with row stride *ld. With more than one part, the parts are shared among
// up to n_threads threads (a barrier between layers).
template <typename T>
const T* lstm_stream_step(LstmStream<T>& stream, const T* x, int n_threads, std::ptrdiff_t* ld);

// Token input: lstm_stream_step on one-hot rows x_t = e_{tokens[r]}, without
// the product over x_t. After lstm_stream_pack, lstm_stream_pack_tokens
// builds, for layer 0 (spec and params as packed), each part's lookup table
// of x_t W_ih^T and its W_hh^T alone; it returns false, building nothing,
// when W_ih is not finite (the lookup would not give the product's bits:
// feed one-hot rows to lstm_stream_step then). lstm_stream_step_tokens then
// starts each gate's FMA chain from the table's row (the bits of the
// product's chain over e_k) and continues it over h_{t-1} (from W_hh's
// reduced copy at the stream's reduced precision): the outputs are bitwise
// those of lstm_stream_step on the one-hot rows. tokens [S] in
// [0, F_0), unchecked. Nothing is allocated by a step.
template <typename T>
bool lstm_stream_pack_tokens(const LstmSpec& spec, const T* params, LstmStream<T>& stream);
template <typename T>
const T* lstm_stream_step_tokens(LstmStream<T>& stream, const std::int64_t* tokens, int n_threads,
                                 std::ptrdiff_t* ld);

// Forward pass over whole sequences. `mask` [B, T] may be null (all steps
// valid). `recurrent_mask` [L*D, B, H] may be null; otherwise the recurrent
// GEMM reads h_{t-1} * recurrent_mask (Keras's recurrent dropout: the mask,
// already scaled by 1/(1-p), is fixed across time). `y`, `h_n`, `c_n` are
// written. The cache keeps what backward needs. One-hot rows of x take their
// projection from a table, as in lstm_inference (the same bits).
template <typename T>
void lstm_forward(const LstmSpec& spec, const T* params, int batch, int steps, const T* x,
                  const T* h0, const T* c0, const std::uint8_t* mask, const T* recurrent_mask, T* y,
                  T* h_n, T* c_n, LstmCache<T>& cache, int n_threads);

// Backpropagation through time for the last forward pass held in `cache`.
// `dy` [B, T, D*H], `dh_n`, `dc_n` [L*D, B, H] may each be null (zero).
// Writes dx [B, T, F], dh0, dc0 [L*D, B, H] and every parameter gradient
// into `dparams` (same layout as `params`; overwritten, not accumulated).
// `dx` may be null when the input needs no gradient: it is then not computed.
template <typename T>
void lstm_backward(const LstmSpec& spec, const T* params, LstmCache<T>& cache, const T* dy,
                   const T* dh_n, const T* dc_n, T* dx, T* dh0, T* dc0, T* dparams, int n_threads);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
