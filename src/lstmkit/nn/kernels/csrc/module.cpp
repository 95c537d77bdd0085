// Python bindings of lstmkit's fused CPU kernels (built on first use by lstmkit/nn/kernels/fused.py).
// pybind11 with torch's Tensor casters, without the rest of <torch/extension.h> (see common.h)
#include <torch/csrc/utils/pybind.h>

#include <tuple>
#include <vector>

#include "stepper.h"

namespace lstmkit {
std::vector<Tensor> lstm_forward(int64_t, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&,
                                 const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&,
                                 const std::vector<int64_t>&, bool, bool);
std::vector<Tensor> lstm_backward(int64_t, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const Tensor&, const Tensor&, const OptTensor&, const OptTensor&,
                                  const OptTensor&, const OptTensor&, const OptTensor&, const OptTensor&,
                                  const OptTensor&, const OptTensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const std::vector<int64_t>&, bool);
std::vector<Tensor> gru_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OptTensor&,
                                const OptTensor&, const std::vector<int64_t>&, bool, bool);
std::vector<Tensor> gru_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, bool, const Tensor&, const Tensor&, const Tensor&,
                                 const std::vector<int64_t>&, bool);
std::tuple<Tensor, int64_t, bool> lstm1997_learn(const std::vector<Tensor>&, const std::vector<Tensor>&,
                                                 const std::vector<Tensor>&, const Tensor&, const Tensor&,
                                                 const Tensor&, const std::vector<Tensor>&,
                                                 const std::vector<int64_t>&, double, double, double);
}  // namespace lstmkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstmkit::lstm_forward, "fused LSTM layer-direction forward");
  m.def("lstm_backward", &lstmkit::lstm_backward, "fused LSTM layer-direction backward");
  m.def("gru_forward", &lstmkit::gru_forward, "fused GRU layer-direction forward");
  m.def("gru_backward", &lstmkit::gru_backward, "fused GRU layer-direction backward");
  m.def("lstm1997_learn", &lstmkit::lstm1997_learn, "the 1997 network's online truncated-RTRL learning of a sequence");
  pybind11::class_<lstmkit::Stepper>(m, "Stepper")
      .def(pybind11::init<int64_t, const std::vector<std::vector<lstmkit::OptTensor>>&, int64_t>())
      .def("step", &lstmkit::Stepper::step, pybind11::arg("x"), pybind11::arg("out") = pybind11::none())
      .def("state", &lstmkit::Stepper::state);
}
