// Binds the encoder-decoder model: prediction (greedy decoding), evaluation
// and the training epoch. Parameters and optimizer state are NumPy arrays
// owned by lstmlearn.LSTMSeq2Seq; this file converts, checks sizes and ranges,
// and releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "lstmlearn/limits.hpp"
#include "lstmlearn/seq2seq.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace py = pybind11;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;
using TokenArray = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;
using MaskArray = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>;

void check_shape(const py::array& a, std::vector<py::ssize_t> want, const char* what) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  for (std::size_t k = 0; ok && k < want.size(); ++k) ok = a.shape(k) == want[k];
  if (!ok) {
    std::string text = std::string(what) + " must have shape (";
    for (std::size_t k = 0; k < want.size(); ++k) text += (k ? ", " : "") + std::to_string(want[k]);
    throw std::invalid_argument(text + ")");
  }
}

void check_range(const TokenArray& a, int size, const char* what) {
  for (py::ssize_t k = 0; k < a.size(); ++k) {
    const std::int32_t token = a.data()[k];
    if (token < 0 || token >= size) {
      throw std::invalid_argument(std::string(what) + " token " + std::to_string(token) +
                                  " at flat index " + std::to_string(k) + " is outside [0, " +
                                  std::to_string(size) + ")");
    }
  }
}

// Keeps the arrays of a data set alive while the engine reads raw pointers.
template <typename T>
struct BoundData {
  TokenArray x_tokens, y_tokens;
  CArray<T> x, y;
  MaskArray x_mask, y_mask;
  Seq2SeqData<T> view;

  BoundData(const Seq2SeqSpec& spec, const py::object& x_, const py::object& x_mask_,
            const py::object& y_, const py::object& y_mask_) {
    if (spec.tokens_in()) {
      x_tokens = x_.cast<TokenArray>();
      if (x_tokens.ndim() != 2) throw std::invalid_argument("x must be [N, T] tokens");
      check_range(x_tokens, spec.input_vocab, "input");
      view.x_tokens = x_tokens.data();
    } else {
      x = x_.cast<CArray<T>>();
      if (x.ndim() != 3 || x.shape(2) != spec.input_features) {
        throw std::invalid_argument("x must be [N, T, input_features]");
      }
      view.x = x.data();
    }
    const py::array& xa = spec.tokens_in() ? static_cast<const py::array&>(x_tokens)
                                           : static_cast<const py::array&>(x);
    view.samples = narrow("samples (x.shape[0])", PyInt{static_cast<long long>(xa.shape(0))});
    view.in_steps = narrow("steps (x.shape[1])", PyInt{static_cast<long long>(xa.shape(1))});
    if (view.in_steps < 1) throw std::invalid_argument("x needs at least one step");
    if (!x_mask_.is_none()) {
      x_mask = x_mask_.cast<MaskArray>();
      check_shape(x_mask, {view.samples, view.in_steps}, "x_mask");
      for (int n = 0; n < view.samples; ++n) {
        const std::uint8_t* row = x_mask.data() + static_cast<std::size_t>(n) * view.in_steps;
        if (std::none_of(row, row + view.in_steps, [](std::uint8_t m) { return m != 0; })) {
          throw std::invalid_argument("x_mask row " + std::to_string(n) + " has no valid step");
        }
      }
      view.x_mask = x_mask.data();
    }
    if (y_.is_none()) return;
    if (spec.tokens_out()) {
      y_tokens = y_.cast<TokenArray>();
      if (y_tokens.ndim() != 2 || y_tokens.shape(0) != view.samples) {
        throw std::invalid_argument("y must be [N, T_out] tokens");
      }
      check_range(y_tokens, spec.output_vocab, "output");
      view.y_tokens = y_tokens.data();
      view.out_steps = narrow("y steps", PyInt{static_cast<long long>(y_tokens.shape(1))});
    } else {
      y = y_.cast<CArray<T>>();
      if (y.ndim() != 3 || y.shape(0) != view.samples || y.shape(2) != spec.output_features) {
        throw std::invalid_argument("y must be [N, T_out, output_features]");
      }
      view.y = y.data();
      view.out_steps = narrow("y steps", PyInt{static_cast<long long>(y.shape(1))});
    }
    if (view.out_steps < 1) throw std::invalid_argument("y needs at least one step");
    if (!y_mask_.is_none()) {
      y_mask = y_mask_.cast<MaskArray>();
      check_shape(y_mask, {view.samples, view.out_steps}, "y_mask");
      view.y_mask = y_mask.data();
    }
  }
};

template <typename T>
using BoundSeq2Seq = SharedEngine<Seq2Seq<T>, Seq2SeqSpec>;

template <typename T>
void expect_count(const BoundSeq2Seq<T>& self, const py::array& a, const char* what) {
  if (static_cast<std::size_t>(a.size()) != self.parameter_count) {
    throw std::invalid_argument(std::string(what) + " has " + std::to_string(a.size()) +
                                " elements, expected " + std::to_string(self.parameter_count));
  }
}

template <typename T>
void bind_seq2seq(py::module_& m, const char* name) {
  using Self = BoundSeq2Seq<T>;
  using Writable = py::array_t<T, py::array::c_style>;
  py::class_<Self>(m, name, py::module_local())
      .def(py::init([](PyInt input_vocab, PyInt input_features, PyInt output_vocab,
                       PyInt output_features, PyInt embedding_dim, const std::vector<PyInt>& hidden,
                       const std::string& mode, const std::string& attention,
                       PyInt attention_units) {
             // Sizes arrive in 64 bits: one that does not fit an int is named
             // here; the spec's validate() checks the tensors they make.
             Seq2SeqSpec spec;
             spec.input_vocab = narrow("input_vocab", input_vocab);
             spec.input_features = narrow("input_features", input_features);
             spec.output_vocab = narrow("output_vocab", output_vocab);
             spec.output_features = narrow("output_features", output_features);
             spec.embedding_dim = narrow("embedding_dim", embedding_dim);
             spec.hidden = narrow("hidden layer size", hidden);
             if (mode == "repeat") {
               spec.mode = DecoderMode::Repeat;
             } else if (mode == "teacher_forcing") {
               spec.mode = DecoderMode::TeacherForcing;
             } else {
               throw std::invalid_argument("unknown mode: " + mode);
             }
             if (attention == "none") {
               spec.attention = AttentionKind::None;
             } else if (attention == "dot") {
               spec.attention = AttentionKind::Dot;
             } else if (attention == "additive") {
               spec.attention = AttentionKind::Additive;
             } else {
               throw std::invalid_argument("unknown attention: " + attention);
             }
             spec.attention_units = narrow("attention_units", attention_units);
             return new Self(spec);
           }),
           py::arg("input_vocab"), py::arg("input_features"), py::arg("output_vocab"),
           py::arg("output_features"), py::arg("embedding_dim"), py::arg("hidden"), py::arg("mode"),
           py::arg("attention"), py::arg("attention_units"))
      .def_property_readonly("parameter_count",
                             [](const Self& self) { return self.parameter_count; })
      .def("layout", [](const Self& self) { return layout_to_python(self.layout); })
      .def(
          "predict",
          [](Self& self, const CArray<T>& params, py::object x, py::object x_mask, PyInt steps_arg,
             PyInt end_token_arg, bool with_weights, PyInt batch_size_arg, PyInt n_threads_arg) {
            const int steps = narrow("steps", steps_arg);
            const int end_token = narrow("end_token", end_token_arg);
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            const Seq2SeqSpec& spec = self.spec;
            BoundData<T> data(spec, x, x_mask, py::none(), py::none());
            expect_count(self, params, "params");
            if (steps < 1) throw std::invalid_argument("steps must be positive");
            if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
            // Before the outputs are allocated (the engine checks it again).
            if (data.view.samples > 0) {
              check_rows("predict", std::min(batch_size, data.view.samples), steps);
            }
            const py::ssize_t N = data.view.samples, Tk = data.view.in_steps;
            py::array out;
            std::int32_t* tokens = nullptr;
            T* values = nullptr;
            if (spec.tokens_out()) {
              py::array_t<std::int32_t> t({N, static_cast<py::ssize_t>(steps)});
              tokens = t.mutable_data();
              out = t;
            } else {
              Writable v({N, static_cast<py::ssize_t>(steps),
                          static_cast<py::ssize_t>(spec.output_features)});
              values = v.mutable_data();
              out = v;
            }
            py::object weights_out = py::none();
            T* weights = nullptr;
            if (with_weights && spec.attention != AttentionKind::None) {
              Writable w({N, static_cast<py::ssize_t>(steps), Tk});
              weights = w.mutable_data();
              weights_out = w;
            }
            const T* p = params.data();
            {
              py::gil_scoped_release release;  // every array is held by this frame
              auto lock = self.hold();
              self.engine->predict(p, data.view, steps, end_token, batch_size, tokens, values,
                                   weights, n_threads);
            }
            return py::make_tuple(out, weights_out);
          },
          py::arg("params"), py::arg("x"), py::arg("x_mask"), py::arg("steps"),
          py::arg("end_token"), py::arg("with_weights"), py::arg("batch_size"),
          py::arg("n_threads"))
      .def(
          "evaluate",
          [](Self& self, const CArray<T>& params, py::object x, py::object x_mask, py::object y,
             py::object y_mask, PyInt batch_size_arg, PyInt n_threads_arg) {
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            BoundData<T> data(self.spec, x, x_mask, y, y_mask);
            if (y.is_none()) throw std::invalid_argument("evaluate needs y");
            expect_count(self, params, "params");
            if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
            const T* p = params.data();
            py::gil_scoped_release release;  // as in predict
            auto lock = self.hold();
            return self.engine->evaluate(p, data.view, batch_size, n_threads);
          },
          py::arg("params"), py::arg("x"), py::arg("x_mask"), py::arg("y"), py::arg("y_mask"),
          py::arg("batch_size"), py::arg("n_threads"))
      .def(
          "train_epoch",
          [](Self& self, Writable& params, Writable& m, Writable& v, std::int64_t step,
             py::object x, py::object x_mask, py::object y, py::object y_mask, PyInt batch_size_arg,
             bool shuffle, double clipnorm, const std::string& optimizer, double learning_rate,
             double beta_1, double beta_2, double epsilon, double momentum, bool nesterov,
             double rho, std::uint64_t seed, PyInt n_threads_arg, PyInt tbptt_steps) {
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            BoundData<T> data(self.spec, x, x_mask, y, y_mask);
            if (y.is_none()) throw std::invalid_argument("train_epoch needs y");
            expect_count(self, params, "params");
            expect_count(self, m, "m");
            expect_count(self, v, "v");
            Seq2SeqTrainOptions options;
            options.batch_size = batch_size;
            options.shuffle = shuffle;
            options.clipnorm = clipnorm;
            options.tbptt_steps = narrow("tbptt_steps", tbptt_steps);
            if (options.tbptt_steps < 0) throw std::invalid_argument("tbptt_steps must be >= 0");
            options.optimizer = optimizer_spec(optimizer, learning_rate, beta_1, beta_2, epsilon,
                                               momentum, nesterov, rho);
            T* p = params.mutable_data();
            T* mp = m.mutable_data();
            T* vp = v.mutable_data();
            Seq2SeqEpochResult result;
            {
              py::gil_scoped_release release;  // every array is held by this frame
              auto lock = self.hold();
              result = self.engine->train_epoch(p, mp, vp, step, data.view, options, seed,
                                                python_interrupted, n_threads);
            }
            if (result.interrupted) throw py::error_already_set();
            return py::make_tuple(result.finite ? "ok" : "non_finite", result.loss, result.batches,
                                  result.step);
          },
          py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("x"),
          py::arg("x_mask"), py::arg("y"), py::arg("y_mask"), py::arg("batch_size"),
          py::arg("shuffle"), py::arg("clipnorm"), py::arg("optimizer"), py::arg("learning_rate"),
          py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("momentum"),
          py::arg("nesterov"), py::arg("rho"), py::arg("seed"), py::arg("n_threads"),
          py::arg("tbptt_steps") = PyInt{0},
          "One epoch of training; tbptt_steps > 0 reads the encoder's input in chunks of that "
          "many steps, backpropagating through the last chunk only (0: whole sequences).");
}

}  // namespace

void register_seq2seq(py::module_& m) {
  bind_seq2seq<float>(m, "Seq2SeqF32");
  bind_seq2seq<double>(m, "Seq2SeqF64");
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
