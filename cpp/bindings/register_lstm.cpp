// Binds the LSTM layer stack. Conversion and GIL handling only: the maths is
// in the engine. Shapes and dtypes are checked, with friendly messages, by
// python/lstmlearn/nn.py; here the engine's preconditions are asserted, and
// those that depend on the object's state (the cache backward pairs with,
// which thread made it) are checked under the object's lock.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "bindings.hpp"
#include "lstmlearn/lstm.hpp"
#include "lstmlearn/thread_pool.hpp"

namespace py = pybind11;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

// Every call takes `busy` first and reads or writes the object's state (the
// cache, the gradients, who made the last forward) only while holding it:
// another thread's forward may otherwise resize the cache under a backward.
template <typename T>
struct BoundLstm {
  const LstmSpec spec;
  AlignedVector<T> params;  // never resized: Python holds views of it
  // Guarded by `busy`:
  AlignedVector<T> grads;               // of the last backward
  std::unique_ptr<LstmCache<T>> cache;  // of the last forward
  std::thread::id forward_thread;       // who made the last forward (none yet: id())
  ForkSafeMutex busy;

  explicit BoundLstm(const LstmSpec& s) : spec(s) {
    spec.validate();  // sizes that fit, before allocating
    params.assign(lstm_parameter_count(spec), T(0));
    grads.assign(params.size(), T(0));
    cache = std::make_unique<LstmCache<T>>();
  }
};

// Holds `busy` for a call. In a child forked while another thread was inside
// a call, what that call left is dropped without being freed (a buffer may be
// mid-reallocation): the child starts as if no forward had been made.
template <typename T>
std::unique_lock<ForkSafeMutex> hold(BoundLstm<T>& self) {
  std::unique_lock<ForkSafeMutex> lock(self.busy);
  if (self.busy.interrupted_by_fork()) {
    (void)self.cache.release();  // leaked on purpose, see above
    self.cache = std::make_unique<LstmCache<T>>();
    self.forward_thread = std::thread::id();
  }
  return lock;
}

template <typename T>
const T* data_of(const CArray<T>& a, std::size_t size, const char* what) {
  if (static_cast<std::size_t>(a.size()) != size) {
    throw std::invalid_argument(std::string(what) + " has " + std::to_string(a.size()) +
                                " elements, expected " + std::to_string(size));
  }
  return a.data();
}

template <typename T>
T* mutable_data_of(CArray<T>& a, std::size_t size, const char* what) {
  data_of<T>(a, size, what);
  return a.mutable_data();
}

// A dimension of an input array as an int (the engine's index type).
int dimension(const py::array& a, int axis, const char* what) {
  return narrow(what, PyInt{static_cast<long long>(a.shape(axis))});
}

template <typename T>
py::array_t<T> view_of(AlignedVector<T>& buffer, py::handle owner) {
  // A writable 1-D view; `owner` keeps the buffer alive. Only for `params`,
  // which is never resized.
  return py::array_t<T>({static_cast<py::ssize_t>(buffer.size())}, {sizeof(T)}, buffer.data(),
                        owner);
}

constexpr const char* kOtherThread =
    "backward: nn.LSTM pairs each backward with the last forward made on the same module, and "
    "the last forward on this module was made by another thread (its cache now holds that "
    "thread's batch, not yours). Use one module per thread (copy.deepcopy(module), or a new "
    "module in each thread), or hold a lock around each forward + backward pair.";

template <typename T>
void bind_lstm(py::module_& m, const char* name) {
  using Self = BoundLstm<T>;
  py::class_<Self>(m, name, py::module_local())
      .def(py::init([](PyInt input_size, PyInt hidden_size, PyInt num_layers, bool bidirectional) {
             return new Self(LstmSpec{narrow("input_size", input_size),
                                      narrow("hidden_size", hidden_size),
                                      narrow("num_layers", num_layers), bidirectional});
           }),
           py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"))
      .def_property_readonly(
          "parameters", [](py::object self) { return view_of(self.cast<Self&>().params, self); })
      .def_property_readonly(
          "gradients",
          [](Self& self) {
            // A copy made under the lock: a view would change under the next backward.
            py::array_t<T> out(static_cast<py::ssize_t>(self.grads.size()));
            T* o = out.mutable_data();
            py::gil_scoped_release release;
            auto lock = hold(self);
            std::copy(self.grads.begin(), self.grads.end(), o);
            return out;
          },
          "A copy of the parameter gradients of the last backward.")
      .def("layout",
           [](const Self& self) { return layout_to_python(lstm_parameter_layout(self.spec)); })
      .def(
          "forward",
          [](Self& self, const CArray<T>& x, const CArray<T>& h0, const CArray<T>& c0,
             py::object mask, py::object recurrent_mask, CArray<T>& y, CArray<T>& h_n,
             CArray<T>& c_n, PyInt n_threads_arg) {
            if (x.ndim() != 3) throw std::invalid_argument("x must be [B, T, F]");
            const auto& s = self.spec;
            const int B = dimension(x, 0, "batch"), steps = dimension(x, 1, "steps");
            const int n_threads = narrow("n_threads", n_threads_arg);
            if (x.shape(2) != s.input_size) throw std::invalid_argument("x has the wrong F");
            const std::size_t bt = static_cast<std::size_t>(B) * steps;
            const std::size_t states =
                static_cast<std::size_t>(s.num_layers) * s.directions() * B * s.hidden_size;
            const std::uint8_t* mask_ptr = nullptr;
            py::array_t<std::uint8_t, py::array::c_style> mask_array;
            if (!mask.is_none()) {
              mask_array = mask.cast<py::array_t<std::uint8_t, py::array::c_style>>();
              mask_ptr = data_of<std::uint8_t>(mask_array, bt, "mask");
            }
            CArray<T> rmask_array;
            const T* rmask_ptr = nullptr;
            if (!recurrent_mask.is_none()) {
              rmask_array = recurrent_mask.cast<CArray<T>>();
              rmask_ptr = data_of<T>(rmask_array, states, "recurrent_mask");
            }
            const T* h0p = data_of<T>(h0, states, "h0");
            const T* c0p = data_of<T>(c0, states, "c0");
            T* yp = mutable_data_of<T>(y, bt * s.directions() * s.hidden_size, "y");
            T* hnp = mutable_data_of<T>(h_n, states, "h_n");
            T* cnp = mutable_data_of<T>(c_n, states, "c_n");
            // Safe without the GIL: the arrays are held by this call's arguments
            // and the object's own state is guarded by `busy`.
            py::gil_scoped_release release;
            auto lock = hold(self);
            // This forward is the last one, even if it fails (its cache is then not ready).
            self.forward_thread = std::this_thread::get_id();
            lstm_forward<T>(s, self.params.data(), B, steps, x.data(), h0p, c0p, mask_ptr,
                            rmask_ptr, yp, hnp, cnp, *self.cache, n_threads);
          },
          py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("mask"), py::arg("recurrent_mask"),
          py::arg("y"), py::arg("h_n"), py::arg("c_n"), py::arg("n_threads"))
      .def(
          "backward",
          [](Self& self, const CArray<T>& dy, py::object dh_n, py::object dc_n, CArray<T>& dx,
             CArray<T>& dh0, CArray<T>& dc0, PyInt n_threads_arg, py::object dparams) {
            const auto& s = self.spec;
            const int n_threads = narrow("n_threads", n_threads_arg);
            // Arrays are converted with the GIL; their sizes are checked below,
            // under the lock, against the cache of the forward they pair with.
            CArray<T> dh_array, dc_array, dparams_array;
            if (!dh_n.is_none()) dh_array = dh_n.cast<CArray<T>>();
            if (!dc_n.is_none()) dc_array = dc_n.cast<CArray<T>>();
            if (!dparams.is_none()) {
              dparams_array = dparams.cast<CArray<T>>();
              // A converted copy would receive the gradients and be thrown away.
              if (dparams_array.ptr() != dparams.ptr()) {
                throw std::invalid_argument(
                    "dparams must be a C-contiguous array of the module's dtype");
              }
            }
            const std::size_t dy_size = dy.size(), dx_size = dx.size();
            const std::size_t dh0_size = dh0.size(), dc0_size = dc0.size();
            const std::size_t dh_size = dh_array.size(), dc_size = dc_array.size();
            const std::size_t dp_size = dparams_array.size();
            const T* dyp = dy.data();
            const T* dhp = dh_n.is_none() ? nullptr : dh_array.data();
            const T* dcp = dc_n.is_none() ? nullptr : dc_array.data();
            T* dxp = dx.mutable_data();
            T* dh0p = dh0.mutable_data();
            T* dc0p = dc0.mutable_data();
            T* dpp = dparams.is_none() ? nullptr : dparams_array.mutable_data();
            py::gil_scoped_release release;  // as in forward
            auto lock = hold(self);
            if (self.forward_thread == std::thread::id()) {
              throw std::runtime_error("backward called before forward");
            }
            if (self.forward_thread != std::this_thread::get_id()) {
              throw std::runtime_error(kOtherThread);
            }
            const LstmCache<T>& cache = *self.cache;
            if (!cache.ready) {
              throw std::runtime_error(
                  "backward called before forward completed: the last forward on this module "
                  "raised an error");
            }
            const std::size_t B = cache.batch, bt = B * cache.steps;
            const std::size_t states =
                static_cast<std::size_t>(s.num_layers) * s.directions() * B * s.hidden_size;
            auto expect = [](std::size_t got, std::size_t want, const char* what) {
              if (got != want) {
                throw std::invalid_argument(std::string(what) + " has " + std::to_string(got) +
                                            " elements, expected " + std::to_string(want));
              }
            };
            if (dhp) expect(dh_size, states, "dh_n");
            if (dcp) expect(dc_size, states, "dc_n");
            expect(dy_size, bt * s.directions() * s.hidden_size, "dy");
            expect(dx_size, bt * s.input_size, "dx");
            expect(dh0_size, states, "dh0");
            expect(dc0_size, states, "dc0");
            if (dpp) expect(dp_size, self.grads.size(), "dparams");
            lstm_backward<T>(s, self.params.data(), *self.cache, dyp, dhp, dcp, dxp, dh0p, dc0p,
                             self.grads.data(), n_threads);
            // Copied out before the lock is released: the next backward overwrites grads.
            if (dpp) std::copy(self.grads.begin(), self.grads.end(), dpp);
          },
          py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("dx"), py::arg("dh0"),
          py::arg("dc0"), py::arg("n_threads"), py::arg("dparams") = py::none(),
          "Backpropagation through time for the last forward, which this thread must have "
          "made. `dparams` (optional, [P]) receives a copy of the parameter gradients.");
}

}  // namespace

void register_lstm(py::module_& m) {
  bind_lstm<float>(m, "LSTMF32");
  bind_lstm<double>(m, "LSTMF64");
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
