// Binds the LSTM layer stack. Conversion and GIL handling only: the maths is
// in the engine. Shapes and dtypes are checked, with friendly messages, by
// python/lstmlearn/nn.py; here the engine's preconditions are asserted.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "bindings.hpp"
#include "lstmlearn/lstm.hpp"

namespace py = pybind11;

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

template <typename T>
struct BoundLstm {
  LstmSpec spec;
  AlignedVector<T> params;
  AlignedVector<T> grads;
  LstmCache<T> cache;
  std::mutex busy;  // one call at a time: the cache is shared state

  explicit BoundLstm(const LstmSpec& s) : spec(s) {
    spec.validate();
    params.assign(lstm_parameter_count(spec), T(0));
    grads.assign(params.size(), T(0));
  }
};

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

template <typename T>
py::array_t<T> view_of(AlignedVector<T>& buffer, py::handle owner) {
  // A writable 1-D view; `owner` keeps the buffer alive.
  return py::array_t<T>({static_cast<py::ssize_t>(buffer.size())}, {sizeof(T)}, buffer.data(),
                        owner);
}

template <typename T>
void bind_lstm(py::module_& m, const char* name) {
  using Self = BoundLstm<T>;
  py::class_<Self>(m, name, py::module_local())
      .def(py::init([](int input_size, int hidden_size, int num_layers, bool bidirectional) {
             return new Self(LstmSpec{input_size, hidden_size, num_layers, bidirectional});
           }),
           py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers"),
           py::arg("bidirectional"))
      .def_property_readonly(
          "parameters", [](py::object self) { return view_of(self.cast<Self&>().params, self); })
      .def_property_readonly(
          "gradients", [](py::object self) { return view_of(self.cast<Self&>().grads, self); })
      .def("layout",
           [](const Self& self) { return layout_to_python(lstm_parameter_layout(self.spec)); })
      .def(
          "forward",
          [](Self& self, const CArray<T>& x, const CArray<T>& h0, const CArray<T>& c0,
             py::object mask, py::object recurrent_mask, CArray<T>& y, CArray<T>& h_n,
             CArray<T>& c_n, int n_threads) {
            if (x.ndim() != 3) throw std::invalid_argument("x must be [B, T, F]");
            const auto& s = self.spec;
            const int B = static_cast<int>(x.shape(0)), steps = static_cast<int>(x.shape(1));
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
            // and the object's own buffers are guarded by `busy`.
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(self.busy);
            lstm_forward<T>(s, self.params.data(), B, steps, x.data(), h0p, c0p, mask_ptr,
                            rmask_ptr, yp, hnp, cnp, self.cache, n_threads);
          },
          py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("mask"), py::arg("recurrent_mask"),
          py::arg("y"), py::arg("h_n"), py::arg("c_n"), py::arg("n_threads"))
      .def(
          "backward",
          [](Self& self, const CArray<T>& dy, py::object dh_n, py::object dc_n, CArray<T>& dx,
             CArray<T>& dh0, CArray<T>& dc0, int n_threads) {
            const auto& s = self.spec;
            if (!self.cache.ready) throw std::runtime_error("backward called before forward");
            const std::size_t B = self.cache.batch, bt = B * self.cache.steps;
            const std::size_t states =
                static_cast<std::size_t>(s.num_layers) * s.directions() * B * s.hidden_size;
            CArray<T> dh_array, dc_array;
            const T* dhp = nullptr;
            const T* dcp = nullptr;
            if (!dh_n.is_none()) {
              dh_array = dh_n.cast<CArray<T>>();
              dhp = data_of<T>(dh_array, states, "dh_n");
            }
            if (!dc_n.is_none()) {
              dc_array = dc_n.cast<CArray<T>>();
              dcp = data_of<T>(dc_array, states, "dc_n");
            }
            const T* dyp = data_of<T>(dy, bt * s.directions() * s.hidden_size, "dy");
            T* dxp = mutable_data_of<T>(dx, bt * s.input_size, "dx");
            T* dh0p = mutable_data_of<T>(dh0, states, "dh0");
            T* dc0p = mutable_data_of<T>(dc0, states, "dc0");
            py::gil_scoped_release release;  // as in forward
            std::lock_guard<std::mutex> lock(self.busy);
            lstm_backward<T>(s, self.params.data(), self.cache, dyp, dhp, dcp, dxp, dh0p, dc0p,
                             self.grads.data(), n_threads);
          },
          py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("dx"), py::arg("dh0"),
          py::arg("dc0"), py::arg("n_threads"));
}

}  // namespace

void register_lstm(py::module_& m) {
  bind_lstm<float>(m, "LSTMF32");
  bind_lstm<double>(m, "LSTMF64");
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
