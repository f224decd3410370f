// Binds the sequence network: prediction, evaluation and the training epoch.
// The Python estimators own parameters and optimizer state as NumPy arrays and
// pass them in; this file converts, checks sizes and releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "bindings.hpp"
#include "lstmlearn/network.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace py = pybind11;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

Merge parse_merge(const std::string& name) {
  if (name == "concat") return Merge::Concat;
  if (name == "sum") return Merge::Sum;
  if (name == "mul") return Merge::Mul;
  if (name == "ave") return Merge::Ave;
  throw std::invalid_argument("unknown merge mode: " + name);
}

Loss parse_loss(const std::string& name) {
  if (name == "squared_error") return Loss::Squared;
  if (name == "absolute_error") return Loss::Absolute;
  if (name == "huber") return Loss::Huber;
  if (name == "log_loss") return Loss::CrossEntropy;
  throw std::invalid_argument("unknown loss: " + name);
}

Pooling parse_pooling(const std::string& name) {
  if (name == "last") return Pooling::Last;
  if (name == "mean") return Pooling::Mean;
  if (name == "attention") return Pooling::Attention;
  throw std::invalid_argument("unknown pooling: " + name);
}

// front_end "conv1d": frame [S, C], kernel [k]; "conv2d": frame [Y, X, C],
// kernel [kh, kw]; "none": both empty.
void set_front_end(NetworkSpec& spec, const std::string& front_end, const std::vector<int>& frame,
                   int filters, const std::vector<int>& kernel, int pool) {
  if (front_end == "none") {
    if (!frame.empty() || !kernel.empty()) {
      throw std::invalid_argument("frame and kernel are only for a conv front end");
    }
    return;
  }
  if (front_end == "conv1d") {
    if (frame.size() != 2 || kernel.size() != 1) {
      throw std::invalid_argument("conv1d takes frame [S, C] and kernel [k]");
    }
    spec.front_end = FrontEnd::Conv1d;
    spec.frame_height = frame[0];
    spec.frame_channels = frame[1];
    spec.kernel_h = kernel[0];
  } else if (front_end == "conv2d") {
    if (frame.size() != 3 || kernel.size() != 2) {
      throw std::invalid_argument("conv2d takes frame [Y, X, C] and kernel [kh, kw]");
    }
    spec.front_end = FrontEnd::Conv2d;
    spec.frame_height = frame[0];
    spec.frame_width = frame[1];
    spec.frame_channels = frame[2];
    spec.kernel_h = kernel[0];
    spec.kernel_w = kernel[1];
  } else {
    throw std::invalid_argument("unknown front end: " + front_end);
  }
  spec.conv_filters = filters;
  spec.conv_pool = pool;
}

void expect_size(py::ssize_t got, std::size_t want, const char* what) {
  if (static_cast<std::size_t>(got) != want) {
    throw std::invalid_argument(std::string(what) + " has " + std::to_string(got) +
                                " elements, expected " + std::to_string(want));
  }
}

// Keeps the arrays of a data set alive while the engine reads raw pointers.
template <typename T>
struct BoundData {
  CArray<T> x, targets, weights;
  py::array_t<std::uint8_t, py::array::c_style> mask;
  py::array_t<std::int32_t, py::array::c_style> labels;
  DataSet<T> view;

  BoundData(const NetworkSpec& spec, const CArray<T>& x_, const py::object& mask_,
            const py::object& targets_, const py::object& labels_, const py::object& weights_)
      : x(x_) {
    if (x.ndim() != 3 || x.shape(2) != spec.input_size) {
      throw std::invalid_argument("x must be [N, T, input_size]");
    }
    view.x = x.data();
    view.samples = narrow("samples (x.shape[0])", PyInt{static_cast<long long>(x.shape(0))});
    view.steps = narrow("steps (x.shape[1])", PyInt{static_cast<long long>(x.shape(1))});
    const std::size_t N = view.samples, NT = N * view.steps;
    const std::size_t items = spec.per_step ? NT : N;
    if (!mask_.is_none()) {
      mask = mask_.cast<decltype(mask)>();
      expect_size(mask.size(), NT, "mask");
      view.mask = mask.data();
    }
    if (!targets_.is_none()) {
      targets = targets_.cast<CArray<T>>();
      expect_size(targets.size(), items * spec.output_size, "targets");
      view.targets = targets.data();
    }
    if (!labels_.is_none()) {
      labels = labels_.cast<decltype(labels)>();
      expect_size(labels.size(), items, "labels");
      for (py::ssize_t k = 0; k < labels.size(); ++k) {
        if (labels.data()[k] < 0 || labels.data()[k] >= spec.output_size) {
          throw std::invalid_argument("label out of range");
        }
      }
      view.labels = labels.data();
    }
    if (!weights_.is_none()) {
      weights = weights_.cast<CArray<T>>();
      expect_size(weights.size(), items, "weights");
      view.weights = weights.data();
    }
    const bool classifier = spec.loss == Loss::CrossEntropy;
    if (classifier && !view.labels && !targets_.is_none()) {
      throw std::invalid_argument("a log-loss network takes labels, not targets");
    }
    if (!classifier && view.labels)
      throw std::invalid_argument("a regression network takes targets");
  }
};

template <typename T>
using BoundNetwork = SharedEngine<Network<T>, NetworkSpec>;

template <typename T>
T* params_of(BoundNetwork<T>& self, CArray<T>& params) {
  expect_size(params.size(), self.parameter_count, "params");
  return params.mutable_data();
}

template <typename T>
const T* const_params_of(BoundNetwork<T>& self, const CArray<T>& params) {
  expect_size(params.size(), self.parameter_count, "params");
  return params.data();  // may be read-only (a memory-mapped model)
}

// Streaming inference: a network of its own (its own workspace and carried
// state, see Network::stream_step) over its own aligned copy of the
// parameters, so that its packed weights stay valid from step to step.
template <typename T>
struct BoundStream {
  Network<T> net;
  AlignedVector<T> params;
  AlignedVector<T> out;  // [S, O] of the last step
  // The public step (see "public_step"): threads, and what converts other
  // input: the model's _stream_input (it holds no reference to the stream,
  // so there is no cycle that the garbage collector cannot see).
  int n_threads = 1;
  py::object convert;
  Precision precision = Precision::Full;
  BoundStream(const NetworkSpec& spec, const T* p, int n_streams, Precision precision)
      : net(spec), precision(precision) {
    params.assign(p, p + net.parameter_count());
    net.stream_resize(n_streams);
  }

  // Outputs [S, O] (float64, as predict's reach the user) of one step x.
  py::array_t<double> step(const py::object& x_arg, int threads) {
    const NetworkSpec& spec = net.spec();
    const std::size_t S = net.streams();
    // An array of T already in C order is used as it is, checked directly:
    // pybind11's caster calls PyArray_FromAny even then, a good part of a
    // step's time. Anything else goes through it.
    const CArray<T> x = py::isinstance<CArray<T>>(x_arg) ? py::reinterpret_borrow<CArray<T>>(x_arg)
                                                         : x_arg.cast<CArray<T>>();
    expect_size(x.size(), S * spec.input_size, "x");
    const std::size_t O = spec.output_size;
    if (out.size() < S * O) out.resize(S * O);
    net.stream_step(params.data(), x.data(), out.data(), threads, false, precision);
    py::array_t<double> result({static_cast<py::ssize_t>(S), static_cast<py::ssize_t>(O)});
    std::copy(out.begin(), out.begin() + S * O, result.mutable_data());
    return result;
  }
};

template <typename T>
void bind_stream(py::module_& m, const char* name) {
  using Self = BoundStream<T>;
  // The calls keep the GIL: a step takes microseconds (releasing the GIL
  // would cost a good part of that), and holding it serialises the calls
  // that share the stream's state.
  py::class_<Self>(m, name, py::module_local())
      .def_property_readonly("n_streams", [](const Self& self) { return self.net.streams(); })
      .def(
          "step",
          [](Self& self, const py::object& x, PyInt n_threads) {
            return self.step(x, narrow("n_threads", n_threads));
          },
          py::arg("x"), py::arg("n_threads"),
          "Outputs [S, O] (float64) of one step x [S, F] of every stream.")
      .def(
          "set_public",
          [](Self& self, py::object convert, PyInt n_threads) {
            self.convert = std::move(convert);
            self.n_threads = narrow("n_threads", n_threads);
          },
          py::arg("convert"), py::arg("n_threads"),
          "Set up public_step: convert(x, n_streams) -> (x [S, F], single) for other input.")
      // Stream.step in C++ for models whose outputs keep their last axis:
      // a Python frame per call cost about a tenth of a medium step. x of
      // dtype T shaped [S, F] (or one stream's [F], F > 1) is taken as it
      // is; anything else goes through `convert`.
      .def("public_step",
           [](Self& self, const py::object& x) -> py::object {
             const std::size_t S = self.net.streams(), F = self.net.spec().input_size;
             bool single = false;
             py::object batch = x;
             bool fast = false;
             if (py::isinstance<py::array>(x)) {
               const auto array = py::reinterpret_borrow<py::array>(x);
               const auto dim = [&](int k) { return static_cast<std::size_t>(array.shape(k)); };
               fast = array.dtype().is(py::dtype::of<T>()) &&
                      ((array.ndim() == 2 && dim(0) == S && dim(1) == F) ||
                       (array.ndim() == 1 && S == 1 && F > 1 && dim(0) == F));
               single = fast && array.ndim() == 1;
             }
             if (!fast) {
               if (!self.convert) throw std::logic_error("public_step before set_public");
               const py::tuple converted = self.convert(x, S);
               batch = converted[0];
               single = converted[1].cast<bool>();
             }
             py::array_t<double> out = self.step(batch, self.n_threads);
             if (!single) return std::move(out);
             const std::size_t O = self.net.spec().output_size;
             py::array_t<double> row(static_cast<py::ssize_t>(O));
             std::copy(out.data(), out.data() + O, row.mutable_data());
             return std::move(row);
           })
      .def(
          "sample",
          [](Self& self, const CArray<std::int64_t>& seed, const CArray<double>& uniforms,
             double temperature, PyInt n_threads) {
            // Holds the GIL, as a step does (the calls on a stream are atomic).
            const int length = narrow("length", PyInt{static_cast<long long>(uniforms.size())});
            const int seed_len = narrow("seed length", PyInt{static_cast<long long>(seed.size())});
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(length));
            self.net.stream_sample(self.params.data(), seed.data(), seed_len, uniforms.data(),
                                   length, temperature, out.mutable_data(),
                                   narrow("n_threads", n_threads), self.precision);
            return out;
          },
          py::arg("seed"), py::arg("uniforms"), py::arg("temperature"), py::arg("n_threads"),
          "Tokens [len(uniforms)] sampled after `seed` (int64), carrying the state from token "
          "to token at the stream's precision (see Network::stream_sample); stream 0 starts "
          "from zero, streams become 1.")
      .def(
          "reset",
          [](Self& self, PyInt stream) { self.net.stream_reset(narrow("stream", stream)); },
          py::arg("stream") = PyInt{-1}, "Zero the state of one stream (all when negative).")
      .def(
          "resize", [](Self& self, PyInt n) { self.net.stream_resize(narrow("n_streams", n)); },
          py::arg("n_streams"),
          "Keep the first min(old, new) streams' state; new ones start at 0.");
}

template <typename T>
void bind_network(py::module_& m, const char* name) {
  using Self = BoundNetwork<T>;
  py::class_<Self>(m, name, py::module_local())
      .def(
          py::init([](PyInt input_size, const std::vector<PyInt>& hidden, bool bidirectional,
                      const std::string& merge, double dropout, double recurrent_dropout,
                      PyInt output_size, bool per_step, const std::string& loss, double huber_delta,
                      const std::string& front_end, const std::vector<PyInt>& frame,
                      PyInt conv_filters, const std::vector<PyInt>& kernel, PyInt pool_size,
                      const std::string& pooling, PyInt attention_units,
                      const std::vector<PyInt>& fcn_filters, const std::vector<PyInt>& fcn_kernels,
                      bool fcn_squeeze_excitation, PyInt fcn_reduction, bool dimension_shuffle,
                      PyInt sequence_length, double head_dropout) {
            // Sizes arrive in 64 bits: one that does not fit an int is named
            // here; the spec's validate() checks the tensors they make.
            NetworkSpec spec;
            spec.input_size = narrow("input_size", input_size);
            spec.hidden = narrow("hidden layer size", hidden);
            spec.bidirectional = bidirectional;
            spec.merge = parse_merge(merge);
            spec.dropout = dropout;
            spec.recurrent_dropout = recurrent_dropout;
            spec.head_dropout = head_dropout;
            spec.output_size = narrow("output_size", output_size);
            spec.per_step = per_step;
            spec.loss = parse_loss(loss);
            spec.huber_delta = huber_delta;
            set_front_end(spec, front_end, narrow("frame size", frame),
                          narrow("conv_filters", conv_filters), narrow("kernel size", kernel),
                          narrow("pool_size", pool_size));
            spec.pooling = parse_pooling(pooling);
            spec.attention_units = narrow("attention_units", attention_units);
            spec.fcn_filters = narrow("fcn filters", fcn_filters);
            spec.fcn_kernels = narrow("fcn kernel size", fcn_kernels);
            spec.fcn_squeeze_excitation = fcn_squeeze_excitation;
            spec.fcn_reduction = narrow("fcn_reduction", fcn_reduction);
            spec.dimension_shuffle = dimension_shuffle;
            spec.sequence_length = narrow("sequence_length", sequence_length);
            return new Self(spec);
          }),
          py::arg("input_size"), py::arg("hidden"), py::arg("bidirectional"), py::arg("merge"),
          py::arg("dropout"), py::arg("recurrent_dropout"), py::arg("output_size"),
          py::arg("per_step"), py::arg("loss"), py::arg("huber_delta"),
          py::arg("front_end") = "none", py::arg("frame") = std::vector<PyInt>{},
          py::arg("conv_filters") = PyInt{1}, py::arg("kernel") = std::vector<PyInt>{},
          py::arg("pool_size") = PyInt{1}, py::arg("pooling") = "last",
          py::arg("attention_units") = PyInt{16}, py::arg("fcn_filters") = std::vector<PyInt>{},
          py::arg("fcn_kernels") = std::vector<PyInt>{}, py::arg("fcn_squeeze_excitation") = false,
          py::arg("fcn_reduction") = PyInt{16}, py::arg("dimension_shuffle") = false,
          py::arg("sequence_length") = PyInt{0}, py::arg("head_dropout") = 0.0)
      .def_property_readonly("parameter_count",
                             [](const Self& self) { return self.parameter_count; })
      .def("layout", [](const Self& self) { return layout_to_python(self.layout); })
      .def(
          "predict",
          [](Self& self, const CArray<T>& params, const CArray<T>& x, py::object mask,
             CArray<T>& out, PyInt batch_size_arg, PyInt n_threads_arg,
             std::uint64_t params_version, const std::string& precision_arg) {
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            const Precision precision = parse_precision(precision_arg);
            BoundData<T> data(self.spec, x, mask, py::none(), py::none(), py::none());
            const auto& spec = self.spec;
            const std::size_t per_row = spec.per_step ? data.view.steps : 1;
            expect_size(out.size(), data.view.samples * per_row * spec.output_size, "out");
            if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
            const T* p = const_params_of(self, params);
            T* o = out.mutable_data();
            py::gil_scoped_release release;  // arrays are held by this call's arguments
            auto lock = self.hold();
            self.engine->predict(p, data.view, batch_size, o, n_threads, params_version, precision);
          },
          py::arg("params"), py::arg("x"), py::arg("mask"), py::arg("out"), py::arg("batch_size"),
          py::arg("n_threads"), py::arg("params_version") = 0, py::arg("precision") = "float32",
          "Outputs for x into `out`. Weights packed by the last complete predict are reused "
          "only when both calls pass the same nonzero `params_version` for the same `params` "
          "array; the caller promises that a version never names two different sets of values. "
          "0 (the default): unknown, pack again. `precision` 'bfloat16' or 'int8' (float32 "
          "networks) runs the LSTM layers' recurrent products on a reduced copy of W_hh.")
      .def(
          "params_changed",
          [](Self& self) {
            py::gil_scoped_release release;
            auto lock = self.hold();
            self.engine->params_changed();
          },
          "Say that the parameter values changed outside train_epoch (packed weights are stale).")
      .def(
          "attention_weights",
          [](Self& self, const CArray<T>& params, const CArray<T>& x, py::object mask,
             CArray<T>& out, PyInt batch_size_arg, PyInt n_threads_arg) {
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            BoundData<T> data(self.spec, x, mask, py::none(), py::none(), py::none());
            expect_size(out.size(), static_cast<std::size_t>(data.view.samples) * data.view.steps,
                        "out");
            if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
            const T* p = const_params_of(self, params);
            T* o = out.mutable_data();
            py::gil_scoped_release release;  // as in predict
            auto lock = self.hold();
            self.engine->attention_weights(p, data.view, batch_size, o, n_threads);
          },
          py::arg("params"), py::arg("x"), py::arg("mask"), py::arg("out"), py::arg("batch_size"),
          py::arg("n_threads"))
      .def(
          "evaluate",
          [](Self& self, const CArray<T>& params, const CArray<T>& x, py::object mask,
             py::object targets, py::object labels, py::object weights, PyInt batch_size_arg,
             PyInt n_threads_arg) {
            const int batch_size = narrow("batch_size", batch_size_arg);
            const int n_threads = narrow("n_threads", n_threads_arg);
            BoundData<T> data(self.spec, x, mask, targets, labels, weights);
            if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
            const T* p = const_params_of(self, params);
            py::gil_scoped_release release;  // as in predict
            auto lock = self.hold();
            return self.engine->evaluate(p, data.view, batch_size, n_threads);
          },
          py::arg("params"), py::arg("x"), py::arg("mask"), py::arg("targets"), py::arg("labels"),
          py::arg("weights"), py::arg("batch_size"), py::arg("n_threads"))
      .def(
          "train_epoch",
          [](Self& self, CArray<T>& params, CArray<T>& m, CArray<T>& v, std::int64_t step,
             const CArray<T>& x, py::object mask, py::object targets, py::object labels,
             py::object weights, PyInt batch_size_arg, bool shuffle, double alpha, double clipnorm,
             const std::string& optimizer, double learning_rate, double beta_1, double beta_2,
             double epsilon, double momentum, bool nesterov, double rho, std::uint64_t seed,
             PyInt n_threads_arg, PyInt tbptt_steps) {
            const int n_threads = narrow("n_threads", n_threads_arg);
            BoundData<T> data(self.spec, x, mask, targets, labels, weights);
            TrainOptions options;
            options.batch_size = narrow("batch_size", batch_size_arg);
            options.shuffle = shuffle;
            options.alpha = alpha;
            options.clipnorm = clipnorm;
            options.tbptt_steps = narrow("tbptt_steps", tbptt_steps);
            if (options.tbptt_steps < 0) throw std::invalid_argument("tbptt_steps must be >= 0");
            options.optimizer = optimizer_spec(optimizer, learning_rate, beta_1, beta_2, epsilon,
                                               momentum, nesterov, rho);
            T* p = params_of(self, params);
            expect_size(m.size(), self.parameter_count, "m");
            expect_size(v.size(), self.parameter_count, "v");
            T* mp = m.mutable_data();
            T* vp = v.mutable_data();
            EpochResult result;
            {
              py::gil_scoped_release release;  // arrays are held by this call's arguments
              auto lock = self.hold();
              result = self.engine->train_epoch(p, mp, vp, step, data.view, options, seed,
                                                python_interrupted, n_threads);
            }
            if (result.status == EpochStatus::Interrupted) throw py::error_already_set();
            const char* status = result.status == EpochStatus::NonFinite ? "non_finite" : "ok";
            return py::make_tuple(status, result.loss, result.batches, result.step);
          },
          py::arg("params"), py::arg("m"), py::arg("v"), py::arg("step"), py::arg("x"),
          py::arg("mask"), py::arg("targets"), py::arg("labels"), py::arg("weights"),
          py::arg("batch_size"), py::arg("shuffle"), py::arg("alpha"), py::arg("clipnorm"),
          py::arg("optimizer"), py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"),
          py::arg("epsilon"), py::arg("momentum"), py::arg("nesterov"), py::arg("rho"),
          py::arg("seed"), py::arg("n_threads"), py::arg("tbptt_steps") = PyInt{0},
          "One epoch of training; tbptt_steps > 0 truncates backpropagation through time to "
          "chunks of that many steps (0: whole sequences).")
      .def(
          "stream",
          [](Self& self, const CArray<T>& params, PyInt n_streams, const std::string& precision) {
            const T* p = const_params_of(self, params);
            const Precision reduced = parse_precision(precision);
            if (reduced != Precision::Full && !std::is_same_v<T, float>) {
              throw std::invalid_argument("inference precision '" + precision +
                                          "' needs a float32 network");
            }
            return std::make_unique<BoundStream<T>>(self.spec, p, narrow("n_streams", n_streams),
                                                    reduced);
          },
          py::arg("params"), py::arg("n_streams"), py::arg("precision") = "float32",
          "A stream of one-step inference over a copy of `params`, with its own state, in "
          "`precision` ('float32', or 'bfloat16' / 'int8' for float32 networks).");
}

}  // namespace

void register_network(py::module_& m) {
  bind_stream<float>(m, "StreamF32");
  bind_stream<double>(m, "StreamF64");
  bind_network<float>(m, "NetworkF32");
  bind_network<double>(m, "NetworkF64");
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
