// Binds the layer functions of layers.hpp as module-level functions on NumPy
// arrays: `_core.dense_forward(x, W, b) -> y` and so on. Conversion, shape
// checks and GIL handling only: the maths is in the engine.
//
// The dtype (float32 or float64) is taken from the first floating-point
// argument; every other floating-point argument must have the same dtype
// (TypeError, never a silent cast). Arrays that are not C-contiguous are
// copied. Outputs are allocated here and returned. Shapes that do not fit
// raise ValueError naming the function, the argument and the expected shape.
//
// Grouped by area (dense/dropout/embedding/repeat, conv, attention, pooling),
// one bind_* function each, so an area can move to its own register_*.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings.hpp"
#include "lstmlearn/layers.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;
using Tokens = py::array_t<std::int32_t, py::array::c_style>;
using Mask = py::array_t<std::uint8_t, py::array::c_style>;
using Shape = std::vector<py::ssize_t>;
constexpr py::ssize_t kAny = -1;

std::string format_shape(const Shape& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out += i ? ", " : "";
    out += shape[i] == kAny ? "?" : std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

[[noreturn]] void fail(const char* fn, const std::string& message) {
  throw std::invalid_argument(std::string(fn) + ": " + message);
}

// Checks that `a` has exactly the shape `want` (kAny: any size) and no empty axis.
void expect_shape(const char* fn, const char* name, const py::array& a, const Shape& want,
                  const char* layout) {
  const Shape got = shape_of(a);
  bool ok = got.size() == want.size();
  for (std::size_t i = 0; ok && i < got.size(); ++i) ok = want[i] == kAny || got[i] == want[i];
  if (!ok) {
    fail(fn, std::string(name) + " must be " + layout + " = " + format_shape(want) +
                 "; got shape " + format_shape(got));
  }
  for (py::ssize_t n : got) {
    if (n == 0) fail(fn, std::string(name) + " must not be empty; got shape " + format_shape(got));
  }
}

// For an array [..., trailing axes]: checks it has at least one leading axis
// and no empty axis; returns the product of the leading axes.
py::ssize_t leading_rows(const char* fn, const char* name, const py::array& a, int trailing,
                         const char* layout) {
  if (a.ndim() < trailing + 1) {
    fail(fn, std::string(name) + " must be " + layout + " with at least " +
                 std::to_string(trailing + 1) + " axes; got shape " + format_shape(shape_of(a)));
  }
  py::ssize_t rows = 1;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) == 0) {
      fail(fn, std::string(name) + " must not be empty; got shape " + format_shape(shape_of(a)));
    }
    if (i < a.ndim() - trailing) rows *= a.shape(i);
  }
  return rows;
}

// The leading axes of `a` followed by `tail`.
Shape leading_then(const py::array& a, int trailing, const Shape& tail) {
  Shape out(a.shape(), a.shape() + a.ndim() - trailing);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

void expect_positive(const char* fn, const char* name, long long value) {
  if (value < 1) fail(fn, std::string(name) + " must be positive, got " + std::to_string(value));
}

int as_int(const char* fn, const char* name, py::ssize_t value) {
  if (value > INT32_MAX) {
    fail(fn, std::string(name) + " " + std::to_string(value) +
                 " is too large; the engine's limit is " + std::to_string(INT32_MAX));
  }
  return static_cast<int>(value);
}

// A size argument: positive and within the engine's int, checked before any
// output is allocated from it.
int size_arg(const char* fn, const char* name, const PyInt& value) {
  expect_positive(fn, name, value.value);
  return as_int(fn, name, static_cast<py::ssize_t>(value.value));
}

// `a` as a C-contiguous array of T: refused (TypeError) if its dtype is not
// exactly T, copied only if it is not C-contiguous.
template <typename T>
CArray<T> input(const char* fn, const char* name, const py::array& a) {
  if (!py::isinstance<py::array_t<T>>(a)) {
    throw py::type_error(std::string(fn) + ": " + name + " has dtype " +
                         py::str(a.dtype()).cast<std::string>() + ", expected " +
                         py::str(py::dtype::of<T>()).cast<std::string>() +
                         " like the other floating-point arguments");
  }
  return CArray<T>::ensure(a);
}

Tokens token_input(const char* fn, const char* name, const py::array& a) {
  if (!py::isinstance<py::array_t<std::int32_t>>(a)) {
    throw py::type_error(std::string(fn) + ": " + name + " has dtype " +
                         py::str(a.dtype()).cast<std::string>() + ", expected int32");
  }
  return Tokens::ensure(a);
}

// An optional argument: `data` is null when it was None.
template <typename A, typename E>
struct Optional {
  A array;
  const E* data = nullptr;
};
using OptionalMask = Optional<Mask, std::uint8_t>;

// A mask: None (all valid), or a bool or uint8 array of shape `want`.
OptionalMask mask_input(const char* fn, const char* name, const py::object& obj, const Shape& want,
                        const char* layout) {
  OptionalMask out;
  if (obj.is_none()) return out;
  if (!py::isinstance<py::array_t<std::uint8_t>>(obj) && !py::isinstance<py::array_t<bool>>(obj)) {
    throw py::type_error(std::string(fn) + ": " + name + " must be None or a bool or uint8 array");
  }
  out.array = Mask::ensure(obj);  // bool -> uint8 is a safe cast
  expect_shape(fn, name, out.array, want, layout);
  out.data = out.array.data();
  return out;
}

// Calls body(T{}) with T the dtype of `first` (float or double).
template <typename Body>
py::object by_dtype(const char* fn, const char* name, const py::array& first, Body&& body) {
  if (py::isinstance<py::array_t<float>>(first)) return body(float{});
  if (py::isinstance<py::array_t<double>>(first)) return body(double{});
  throw py::type_error(std::string(fn) + ": " + name + " has dtype " +
                       py::str(first.dtype()).cast<std::string>() +
                       ", expected float32 or float64");
}

// Runs `compute` without the GIL on a compute thread (large stack for Eigen's
// GEMM buffers, denormals flushed), as every engine call runs. Safe without
// the GIL: `compute` touches only the buffers of arrays the calling frame
// holds, and no Python object. Engine exceptions are rethrown here.
template <typename F>
void run(F&& compute) {
  py::gil_scoped_release release;
  parallel_for(1, 1, [&](std::size_t) { compute(); });
}

// --- dense, dropout, embedding, repeat --------------------------------------

void bind_basic(py::module_& m) {
  m.def(
      "dense_forward",
      [](const py::array& x_, const py::array& W_, const py::object& b_) {
        const char* fn = "dense_forward";
        return by_dtype(fn, "x", x_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto x = input<T>(fn, "x", x_);
          auto W = input<T>(fn, "W", W_);
          const py::ssize_t N = leading_rows(fn, "x", x, 1, "[..., I]");
          const py::ssize_t I = x.shape(x.ndim() - 1);
          expect_shape(fn, "W", W, {kAny, I}, "[O, I]");
          const py::ssize_t O = W.shape(0);
          Optional<CArray<T>, T> b;
          if (!b_.is_none()) {
            if (!py::isinstance<py::array>(b_)) {
              throw py::type_error(std::string(fn) + ": b must be None or a NumPy array");
            }
            b.array = input<T>(fn, "b", py::reinterpret_borrow<py::array>(b_));
            expect_shape(fn, "b", b.array, {O}, "[O]");
            b.data = b.array.data();
          }
          CArray<T> y(leading_then(x, 1, {O}));
          const T* bp = b.data;
          T* yp = y.mutable_data();
          run([&] {
            dense_forward<T>(yp, x.data(), W.data(), bp, as_int(fn, "N", N), as_int(fn, "I", I),
                             as_int(fn, "O", O));
          });
          return std::move(y);
        });
      },
      "x"_a, "W"_a, "b"_a = py::none(),
      "y = x W^T + b. x [..., I], W [O, I], b [O] or None -> y [..., O].");

  m.def(
      "dense_backward",
      [](const py::array& dy_, const py::array& x_, const py::array& W_, bool compute_dx) {
        const char* fn = "dense_backward";
        return by_dtype(fn, "dy", dy_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dy = input<T>(fn, "dy", dy_);
          auto x = input<T>(fn, "x", x_);
          auto W = input<T>(fn, "W", W_);
          const py::ssize_t N = leading_rows(fn, "x", x, 1, "[..., I]");
          const py::ssize_t I = x.shape(x.ndim() - 1);
          expect_shape(fn, "W", W, {kAny, I}, "[O, I]");
          const py::ssize_t O = W.shape(0);
          expect_shape(fn, "dy", dy, leading_then(x, 1, {O}), "[..., O] like x's leading axes");
          CArray<T> dx = compute_dx ? CArray<T>(shape_of(x)) : CArray<T>();
          CArray<T> dW({O, I}), db({O});
          T* dxp = compute_dx ? dx.mutable_data() : nullptr;
          T *dWp = dW.mutable_data(), *dbp = db.mutable_data();
          run([&] {
            dense_backward<T>(dxp, dWp, dbp, dy.data(), x.data(), W.data(), as_int(fn, "N", N),
                              as_int(fn, "I", I), as_int(fn, "O", O));
          });
          return py::make_tuple(compute_dx ? py::object(dx) : py::none(), dW, db);
        });
      },
      "dy"_a, "x"_a, "W"_a, "compute_dx"_a = true,
      "Gradients of dense_forward: (dx or None, dW [O, I], db [O]).");

  m.def(
      "dropout_forward",
      [](const py::array& x_, const py::array& keep_) {
        const char* fn = "dropout_forward";
        return by_dtype(fn, "x", x_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto x = input<T>(fn, "x", x_);
          auto keep = input<T>(fn, "keep", keep_);
          expect_shape(fn, "keep", keep, shape_of(x), "x's shape");
          CArray<T> y(shape_of(x));
          T* yp = y.mutable_data();
          run([&] {
            dropout_forward<T>(yp, x.data(), keep.data(), static_cast<std::size_t>(x.size()));
          });
          return std::move(y);
        });
      },
      "x"_a, "keep"_a, "y = x * keep; keep is the keep mask scaled by 1/(1-p), of x's shape.");

  m.def(
      "dropout_backward",
      [](const py::array& dy_, const py::array& keep_) {
        const char* fn = "dropout_backward";
        return by_dtype(fn, "dy", dy_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dy = input<T>(fn, "dy", dy_);
          auto keep = input<T>(fn, "keep", keep_);
          expect_shape(fn, "keep", keep, shape_of(dy), "dy's shape");
          CArray<T> dx(shape_of(dy));
          T* dxp = dx.mutable_data();
          run([&] {
            dropout_backward<T>(dxp, dy.data(), keep.data(), static_cast<std::size_t>(dy.size()));
          });
          return std::move(dx);
        });
      },
      "dy"_a, "keep"_a, "dx = dy * keep.");

  m.def(
      "embedding_forward",
      [](const py::array& tokens_, const py::array& W_) {
        const char* fn = "embedding_forward";
        return by_dtype(fn, "W", W_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto tokens = token_input(fn, "tokens", tokens_);
          auto W = input<T>(fn, "W", W_);
          const py::ssize_t N = leading_rows(fn, "tokens", tokens, 0, "[...]");
          expect_shape(fn, "W", W, {kAny, kAny}, "[V, E]");
          const py::ssize_t V = W.shape(0), E = W.shape(1);
          CArray<T> y(leading_then(tokens, 0, {E}));
          T* yp = y.mutable_data();
          run([&] {
            embedding_forward<T>(yp, tokens.data(), W.data(), as_int(fn, "N", N),
                                 as_int(fn, "V", V), as_int(fn, "E", E));
          });
          return std::move(y);
        });
      },
      "tokens"_a, "W"_a,
      "y = W[tokens]. tokens int32 [...] in [0, V), W [V, E] -> y [..., E]; a token outside "
      "[0, V) raises ValueError.");

  m.def(
      "embedding_backward",
      [](const py::array& dy_, const py::array& tokens_, PyInt num_embeddings) {
        const char* fn = "embedding_backward";
        return by_dtype(fn, "dy", dy_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dy = input<T>(fn, "dy", dy_);
          auto tokens = token_input(fn, "tokens", tokens_);
          const int V_int = size_arg(fn, "num_embeddings", num_embeddings);
          const py::ssize_t N = leading_rows(fn, "tokens", tokens, 0, "[...]");
          const py::ssize_t E = dy.ndim() > 0 ? dy.shape(dy.ndim() - 1) : 0;
          expect_shape(fn, "dy", dy, leading_then(tokens, 0, {E}), "[..., E], tokens' shape + E");
          const py::ssize_t V = V_int;
          CArray<T> dW({V, E});
          T* dWp = dW.mutable_data();
          run([&] {
            embedding_backward<T>(dWp, dy.data(), tokens.data(), as_int(fn, "N", N),
                                  as_int(fn, "V", V), as_int(fn, "E", E));
          });
          return std::move(dW);
        });
      },
      "dy"_a, "tokens"_a, "num_embeddings"_a,
      "dW [V, E]: rows of dy [..., E] summed into their tokens' rows, in input order.");

  m.def(
      "repeat_forward",
      [](const py::array& x_, PyInt repeats_arg) {
        const char* fn = "repeat_forward";
        return by_dtype(fn, "x", x_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto x = input<T>(fn, "x", x_);
          expect_shape(fn, "x", x, {kAny, kAny}, "[B, D]");
          const py::ssize_t repeats = size_arg(fn, "repeats", repeats_arg);
          const py::ssize_t B = x.shape(0), D = x.shape(1);
          CArray<T> y({B, repeats, D});
          T* yp = y.mutable_data();
          run([&] {
            repeat_forward<T>(yp, x.data(), as_int(fn, "B", B), as_int(fn, "repeats", repeats),
                              as_int(fn, "D", D));
          });
          return std::move(y);
        });
      },
      "x"_a, "repeats"_a, "RepeatVector: x [B, D] -> y [B, R, D], y[b, r] = x[b].");

  m.def(
      "repeat_backward",
      [](const py::array& dy_) {
        const char* fn = "repeat_backward";
        return by_dtype(fn, "dy", dy_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dy = input<T>(fn, "dy", dy_);
          expect_shape(fn, "dy", dy, {kAny, kAny, kAny}, "[B, R, D]");
          const py::ssize_t B = dy.shape(0), R = dy.shape(1), D = dy.shape(2);
          CArray<T> dx({B, D});
          T* dxp = dx.mutable_data();
          run([&] {
            repeat_backward<T>(dxp, dy.data(), as_int(fn, "B", B), as_int(fn, "R", R),
                               as_int(fn, "D", D));
          });
          return std::move(dx);
        });
      },
      "dy"_a, "dx [B, D] = sum over R of dy [B, R, D].");
}

// --- convolution blocks ------------------------------------------------------

// Shapes of a conv call from x [..., S, C], W [K, C, k] and b [K] (null in
// backward); Conv1dShape::validate reports a kernel or pool that does not fit.
Conv1dShape conv1d_shape(const char* fn, const py::array& x, const py::array& W, const py::array* b,
                         const PyInt& pool) {
  const py::ssize_t N = leading_rows(fn, "x", x, 2, "[..., S, C]");
  const py::ssize_t C = x.shape(x.ndim() - 1);
  expect_shape(fn, "W", W, {kAny, C, kAny}, "[K, C, k]");
  if (b) expect_shape(fn, "b", *b, {W.shape(0)}, "[K]");
  Conv1dShape s;
  s.samples = as_int(fn, "N", N);
  s.length = as_int(fn, "S", x.shape(x.ndim() - 2));
  s.channels = as_int(fn, "C", C);
  s.filters = as_int(fn, "K", W.shape(0));
  s.kernel = as_int(fn, "k", W.shape(2));
  s.pool = size_arg(fn, "pool", pool);
  s.validate();
  return s;
}

// As conv1d_shape for x [..., Y, X, C], W [K, C, kh, kw].
Conv2dShape conv2d_shape(const char* fn, const py::array& x, const py::array& W, const py::array* b,
                         const PyInt& pool) {
  const py::ssize_t N = leading_rows(fn, "x", x, 3, "[..., Y, X, C]");
  const py::ssize_t C = x.shape(x.ndim() - 1);
  expect_shape(fn, "W", W, {kAny, C, kAny, kAny}, "[K, C, kh, kw]");
  if (b) expect_shape(fn, "b", *b, {W.shape(0)}, "[K]");
  Conv2dShape s;
  s.samples = as_int(fn, "N", N);
  s.height = as_int(fn, "Y", x.shape(x.ndim() - 3));
  s.width = as_int(fn, "X", x.shape(x.ndim() - 2));
  s.channels = as_int(fn, "C", C);
  s.filters = as_int(fn, "K", W.shape(0));
  s.kernel_h = as_int(fn, "kh", W.shape(2));
  s.kernel_w = as_int(fn, "kw", W.shape(3));
  s.pool = size_arg(fn, "pool", pool);
  s.validate();
  return s;
}

template <typename S>
constexpr bool kIs1d = std::is_same<S, Conv1dShape>::value;

template <typename S>
S conv_shape(const char* fn, const py::array& x, const py::array& W, const py::array* b,
             const PyInt& pool) {
  if constexpr (kIs1d<S>) {
    return conv1d_shape(fn, x, W, b, pool);
  } else {
    return conv2d_shape(fn, x, W, b, pool);
  }
}

template <typename S>
void bind_conv(py::module_& m, const char* forward_name, const char* backward_name,
               const char* forward_doc, const char* backward_doc) {
  m.def(
      forward_name,
      [forward_name](const py::array& x_, const py::array& W_, const py::array& b_,
                     const PyInt& pool) {
        const char* fn = forward_name;
        return by_dtype(fn, "x", x_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto x = input<T>(fn, "x", x_);
          auto W = input<T>(fn, "W", W_);
          auto b = input<T>(fn, "b", b_);
          const S shape = conv_shape<S>(fn, x, W, &b, pool);
          const Shape out = leading_then(x, kIs1d<S> ? 2 : 3, {shape.output_width()});
          CArray<T> y(out);
          py::array_t<std::int32_t> argmax(out);
          T* yp = y.mutable_data();
          std::int32_t* ap = argmax.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            if constexpr (kIs1d<S>) {
              conv1d_forward<T>(yp, ap, x.data(), W.data(), b.data(), shape, workspace);
            } else {
              conv2d_forward<T>(yp, ap, x.data(), W.data(), b.data(), shape, workspace);
            }
          });
          return py::make_tuple(y, argmax);
        });
      },
      "x"_a, "W"_a, "b"_a, "pool"_a, forward_doc);

  m.def(
      backward_name,
      [backward_name](const py::array& dy_, const py::array& argmax_, const py::array& x_,
                      const py::array& W_, PyInt pool, bool compute_dx) {
        const char* fn = backward_name;
        return by_dtype(fn, "dy", dy_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dy = input<T>(fn, "dy", dy_);
          auto x = input<T>(fn, "x", x_);
          auto W = input<T>(fn, "W", W_);
          auto argmax = token_input(fn, "argmax", argmax_);
          const S shape = conv_shape<S>(fn, x, W, nullptr, pool);
          const Shape out = leading_then(x, kIs1d<S> ? 2 : 3, {shape.output_width()});
          expect_shape(fn, "dy", dy, out, "the forward output's shape");
          expect_shape(fn, "argmax", argmax, out, "the forward output's shape");
          CArray<T> dx = compute_dx ? CArray<T>(shape_of(x)) : CArray<T>();
          CArray<T> dW(shape_of(W)), db({W.shape(0)});
          T* dxp = compute_dx ? dx.mutable_data() : nullptr;
          T *dWp = dW.mutable_data(), *dbp = db.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            if constexpr (kIs1d<S>) {
              conv1d_backward<T>(dxp, dWp, dbp, dy.data(), argmax.data(), x.data(), W.data(), shape,
                                 workspace);
            } else {
              conv2d_backward<T>(dxp, dWp, dbp, dy.data(), argmax.data(), x.data(), W.data(), shape,
                                 workspace);
            }
          });
          return py::make_tuple(compute_dx ? py::object(dx) : py::none(), dW, db);
        });
      },
      "dy"_a, "argmax"_a, "x"_a, "W"_a, "pool"_a, "compute_dx"_a = true, backward_doc);
}

// --- attention ---------------------------------------------------------------

void bind_attention(py::module_& m) {
  m.def(
      "dot_attention_forward",
      [](const py::array& q_, const py::array& k_, const py::object& mask_) {
        const char* fn = "dot_attention_forward";
        return by_dtype(fn, "q", q_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto q = input<T>(fn, "q", q_);
          auto k = input<T>(fn, "k", k_);
          expect_shape(fn, "q", q, {kAny, kAny, kAny}, "[B, Tq, H]");
          const py::ssize_t B = q.shape(0), Tq = q.shape(1), H = q.shape(2);
          expect_shape(fn, "k", k, {B, kAny, H}, "[B, Tk, H]");
          const py::ssize_t Tk = k.shape(1);
          OptionalMask mask = mask_input(fn, "mask", mask_, {B, Tk}, "[B, Tk]");
          CArray<T> context({B, Tq, H}), weights({B, Tq, Tk});
          T *cp = context.mutable_data(), *wp = weights.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            dot_attention_forward<T>(cp, wp, q.data(), k.data(), mask.data, as_int(fn, "B", B),
                                     as_int(fn, "Tq", Tq), as_int(fn, "Tk", Tk), as_int(fn, "H", H),
                                     workspace);
          });
          return py::make_tuple(context, weights);
        });
      },
      "q"_a, "k"_a, "mask"_a = py::none(),
      "Dot (Luong) attention: q [B, Tq, H], k [B, Tk, H] (keys and values), mask [B, Tk] "
      "or None -> (context [B, Tq, H], weights [B, Tq, Tk]).");

  m.def(
      "dot_attention_backward",
      [](const py::array& dcontext_, const py::array& weights_, const py::array& q_,
         const py::array& k_) {
        const char* fn = "dot_attention_backward";
        return by_dtype(fn, "dcontext", dcontext_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dcontext = input<T>(fn, "dcontext", dcontext_);
          auto weights = input<T>(fn, "weights", weights_);
          auto q = input<T>(fn, "q", q_);
          auto k = input<T>(fn, "k", k_);
          expect_shape(fn, "q", q, {kAny, kAny, kAny}, "[B, Tq, H]");
          const py::ssize_t B = q.shape(0), Tq = q.shape(1), H = q.shape(2);
          expect_shape(fn, "k", k, {B, kAny, H}, "[B, Tk, H]");
          const py::ssize_t Tk = k.shape(1);
          expect_shape(fn, "dcontext", dcontext, {B, Tq, H}, "[B, Tq, H]");
          expect_shape(fn, "weights", weights, {B, Tq, Tk}, "[B, Tq, Tk]");
          CArray<T> dq({B, Tq, H}), dk({B, Tk, H});
          T *dqp = dq.mutable_data(), *dkp = dk.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            dot_attention_backward<T>(dqp, dkp, dcontext.data(), weights.data(), q.data(), k.data(),
                                      as_int(fn, "B", B), as_int(fn, "Tq", Tq),
                                      as_int(fn, "Tk", Tk), as_int(fn, "H", H), workspace);
          });
          return py::make_tuple(dq, dk);
        });
      },
      "dcontext"_a, "weights"_a, "q"_a, "k"_a,
      "Gradients of dot_attention_forward: (dq, dk); weights from the forward pass.");

  m.def(
      "additive_attention_forward",
      [](const py::array& q_, const py::array& k_, const py::array& Wq_, const py::array& Wk_,
         const py::array& b_, const py::array& v_, const py::object& mask_) {
        const char* fn = "additive_attention_forward";
        return by_dtype(fn, "q", q_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto q = input<T>(fn, "q", q_);
          auto k = input<T>(fn, "k", k_);
          auto Wq = input<T>(fn, "Wq", Wq_);
          auto Wk = input<T>(fn, "Wk", Wk_);
          auto b = input<T>(fn, "b", b_);
          auto v = input<T>(fn, "v", v_);
          expect_shape(fn, "q", q, {kAny, kAny, kAny}, "[B, Tq, H]");
          const py::ssize_t B = q.shape(0), Tq = q.shape(1), H = q.shape(2);
          expect_shape(fn, "k", k, {B, kAny, H}, "[B, Tk, H]");
          const py::ssize_t Tk = k.shape(1);
          expect_shape(fn, "Wq", Wq, {kAny, H}, "[A, H]");
          const py::ssize_t A = Wq.shape(0);
          expect_shape(fn, "Wk", Wk, {A, H}, "[A, H]");
          expect_shape(fn, "b", b, {A}, "[A]");
          expect_shape(fn, "v", v, {A}, "[A]");
          OptionalMask mask = mask_input(fn, "mask", mask_, {B, Tk}, "[B, Tk]");
          CArray<T> context({B, Tq, H}), weights({B, Tq, Tk});
          T *cp = context.mutable_data(), *wp = weights.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            additive_attention_forward<T>(cp, wp, q.data(), k.data(), mask.data, Wq.data(),
                                          Wk.data(), b.data(), v.data(), as_int(fn, "B", B),
                                          as_int(fn, "Tq", Tq), as_int(fn, "Tk", Tk),
                                          as_int(fn, "H", H), as_int(fn, "A", A), workspace);
          });
          return py::make_tuple(context, weights);
        });
      },
      "q"_a, "k"_a, "Wq"_a, "Wk"_a, "b"_a, "v"_a, "mask"_a = py::none(),
      "Additive (Bahdanau) attention, score = v . tanh(Wq q + Wk k + b): q [B, Tq, H], "
      "k [B, Tk, H], Wq, Wk [A, H], b, v [A], mask [B, Tk] or None -> (context [B, Tq, H], "
      "weights [B, Tq, Tk]).");

  m.def(
      "additive_attention_backward",
      [](const py::array& dcontext_, const py::array& weights_, const py::array& q_,
         const py::array& k_, const py::array& Wq_, const py::array& Wk_, const py::array& b_,
         const py::array& v_) {
        const char* fn = "additive_attention_backward";
        return by_dtype(fn, "dcontext", dcontext_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dcontext = input<T>(fn, "dcontext", dcontext_);
          auto weights = input<T>(fn, "weights", weights_);
          auto q = input<T>(fn, "q", q_);
          auto k = input<T>(fn, "k", k_);
          auto Wq = input<T>(fn, "Wq", Wq_);
          auto Wk = input<T>(fn, "Wk", Wk_);
          auto b = input<T>(fn, "b", b_);
          auto v = input<T>(fn, "v", v_);
          expect_shape(fn, "q", q, {kAny, kAny, kAny}, "[B, Tq, H]");
          const py::ssize_t B = q.shape(0), Tq = q.shape(1), H = q.shape(2);
          expect_shape(fn, "k", k, {B, kAny, H}, "[B, Tk, H]");
          const py::ssize_t Tk = k.shape(1);
          expect_shape(fn, "Wq", Wq, {kAny, H}, "[A, H]");
          const py::ssize_t A = Wq.shape(0);
          expect_shape(fn, "Wk", Wk, {A, H}, "[A, H]");
          expect_shape(fn, "b", b, {A}, "[A]");
          expect_shape(fn, "v", v, {A}, "[A]");
          expect_shape(fn, "dcontext", dcontext, {B, Tq, H}, "[B, Tq, H]");
          expect_shape(fn, "weights", weights, {B, Tq, Tk}, "[B, Tq, Tk]");
          CArray<T> dq({B, Tq, H}), dk({B, Tk, H}), dWq({A, H}), dWk({A, H}), db({A}), dv({A});
          T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dWqp = dWq.mutable_data(),
            *dWkp = dWk.mutable_data(), *dbp = db.mutable_data(), *dvp = dv.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            additive_attention_backward<T>(
                dqp, dkp, dWqp, dWkp, dbp, dvp, dcontext.data(), weights.data(), q.data(), k.data(),
                Wq.data(), Wk.data(), b.data(), v.data(), as_int(fn, "B", B), as_int(fn, "Tq", Tq),
                as_int(fn, "Tk", Tk), as_int(fn, "H", H), as_int(fn, "A", A), workspace);
          });
          return py::make_tuple(dq, dk, dWq, dWk, db, dv);
        });
      },
      "dcontext"_a, "weights"_a, "q"_a, "k"_a, "Wq"_a, "Wk"_a, "b"_a, "v"_a,
      "Gradients of additive_attention_forward: (dq, dk, dWq, dWk, db, dv).");
}

// --- pooling over time -------------------------------------------------------

void bind_pooling(py::module_& m) {
  m.def(
      "mean_pool_forward",
      [](const py::array& h_, const py::object& mask_) {
        const char* fn = "mean_pool_forward";
        return by_dtype(fn, "h", h_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto h = input<T>(fn, "h", h_);
          expect_shape(fn, "h", h, {kAny, kAny, kAny}, "[B, T, H]");
          const py::ssize_t B = h.shape(0), steps = h.shape(1), H = h.shape(2);
          OptionalMask mask = mask_input(fn, "mask", mask_, {B, steps}, "[B, T]");
          CArray<T> pooled({B, H});
          T* pp = pooled.mutable_data();
          run([&] {
            mean_pool_forward<T>(pp, h.data(), mask.data, as_int(fn, "B", B),
                                 as_int(fn, "T", steps), as_int(fn, "H", H));
          });
          return std::move(pooled);
        });
      },
      "h"_a, "mask"_a = py::none(),
      "Mean over the valid steps: h [B, T, H], mask [B, T] or None -> pooled [B, H].");

  m.def(
      "mean_pool_backward",
      [](const py::array& dpooled_, PyInt steps_arg, const py::object& mask_) {
        const char* fn = "mean_pool_backward";
        return by_dtype(fn, "dpooled", dpooled_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dpooled = input<T>(fn, "dpooled", dpooled_);
          expect_shape(fn, "dpooled", dpooled, {kAny, kAny}, "[B, H]");
          const py::ssize_t steps = size_arg(fn, "steps", steps_arg);
          const py::ssize_t B = dpooled.shape(0), H = dpooled.shape(1);
          OptionalMask mask = mask_input(fn, "mask", mask_, {B, steps}, "[B, T]");
          CArray<T> dh({B, steps, H});
          T* dhp = dh.mutable_data();
          run([&] {
            mean_pool_backward<T>(dhp, dpooled.data(), mask.data, as_int(fn, "B", B),
                                  as_int(fn, "T", steps), as_int(fn, "H", H));
          });
          return std::move(dh);
        });
      },
      "dpooled"_a, "steps"_a, "mask"_a = py::none(),
      "Gradient of mean_pool_forward: dpooled [B, H] -> dh [B, T, H].");

  m.def(
      "attention_pool_forward",
      [](const py::array& h_, const py::array& W_, const py::array& b_, const py::array& v_,
         const py::object& mask_) {
        const char* fn = "attention_pool_forward";
        return by_dtype(fn, "h", h_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto h = input<T>(fn, "h", h_);
          auto W = input<T>(fn, "W", W_);
          auto b = input<T>(fn, "b", b_);
          auto v = input<T>(fn, "v", v_);
          expect_shape(fn, "h", h, {kAny, kAny, kAny}, "[B, T, H]");
          const py::ssize_t B = h.shape(0), steps = h.shape(1), H = h.shape(2);
          expect_shape(fn, "W", W, {kAny, H}, "[A, H]");
          const py::ssize_t A = W.shape(0);
          expect_shape(fn, "b", b, {A}, "[A]");
          expect_shape(fn, "v", v, {A}, "[A]");
          OptionalMask mask = mask_input(fn, "mask", mask_, {B, steps}, "[B, T]");
          CArray<T> pooled({B, H}), weights({B, steps});
          T *pp = pooled.mutable_data(), *wp = weights.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            attention_pool_forward<T>(pp, wp, h.data(), mask.data, W.data(), b.data(), v.data(),
                                      as_int(fn, "B", B), as_int(fn, "T", steps),
                                      as_int(fn, "H", H), as_int(fn, "A", A), workspace);
          });
          return py::make_tuple(pooled, weights);
        });
      },
      "h"_a, "W"_a, "b"_a, "v"_a, "mask"_a = py::none(),
      "Attention pooling, score_t = v . tanh(W h_t + b): h [B, T, H], W [A, H], b, v [A], "
      "mask [B, T] or None -> (pooled [B, H], weights [B, T]).");

  m.def(
      "attention_pool_backward",
      [](const py::array& dpooled_, const py::array& weights_, const py::array& h_,
         const py::array& W_, const py::array& b_, const py::array& v_) {
        const char* fn = "attention_pool_backward";
        return by_dtype(fn, "dpooled", dpooled_, [&](auto zero) -> py::object {
          using T = decltype(zero);
          auto dpooled = input<T>(fn, "dpooled", dpooled_);
          auto weights = input<T>(fn, "weights", weights_);
          auto h = input<T>(fn, "h", h_);
          auto W = input<T>(fn, "W", W_);
          auto b = input<T>(fn, "b", b_);
          auto v = input<T>(fn, "v", v_);
          expect_shape(fn, "h", h, {kAny, kAny, kAny}, "[B, T, H]");
          const py::ssize_t B = h.shape(0), steps = h.shape(1), H = h.shape(2);
          expect_shape(fn, "W", W, {kAny, H}, "[A, H]");
          const py::ssize_t A = W.shape(0);
          expect_shape(fn, "b", b, {A}, "[A]");
          expect_shape(fn, "v", v, {A}, "[A]");
          expect_shape(fn, "dpooled", dpooled, {B, H}, "[B, H]");
          expect_shape(fn, "weights", weights, {B, steps}, "[B, T]");
          CArray<T> dh({B, steps, H}), dW({A, H}), db({A}), dv({A});
          T *dhp = dh.mutable_data(), *dWp = dW.mutable_data(), *dbp = db.mutable_data(),
            *dvp = dv.mutable_data();
          run([&] {
            AlignedVector<T> workspace;
            attention_pool_backward<T>(dhp, dWp, dbp, dvp, dpooled.data(), weights.data(), h.data(),
                                       W.data(), b.data(), v.data(), as_int(fn, "B", B),
                                       as_int(fn, "T", steps), as_int(fn, "H", H),
                                       as_int(fn, "A", A), workspace);
          });
          return py::make_tuple(dh, dW, db, dv);
        });
      },
      "dpooled"_a, "weights"_a, "h"_a, "W"_a, "b"_a, "v"_a,
      "Gradients of attention_pool_forward: (dh, dW, db, dv); weights from the forward pass.");
}

}  // namespace

void register_layers(py::module_& m) {
  bind_basic(m);
  bind_conv<Conv1dShape>(
      m, "conv1d_forward", "conv1d_backward",
      "Conv1d (valid, stride 1) + bias, ReLU, max pool (size and stride pool), flatten: "
      "x [..., S, C] channels-last, W [K, C, k], b [K] -> (y [..., P*K], argmax int32 "
      "[..., P*K]) with P = (S - k + 1) // pool.",
      "Gradients of conv1d_forward: (dx or None, dW [K, C, k], db [K]).");
  bind_conv<Conv2dShape>(
      m, "conv2d_forward", "conv2d_backward",
      "Conv2d (valid, stride 1) + bias, ReLU, max pool (pool x pool, stride pool), flatten: "
      "x [..., Y, X, C] channels-last, W [K, C, kh, kw], b [K] -> (y [..., Py*Px*K], argmax "
      "int32 [..., Py*Px*K]).",
      "Gradients of conv2d_forward: (dx or None, dW [K, C, kh, kw], db [K]).");
  bind_attention(m);
  bind_pooling(m);
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
