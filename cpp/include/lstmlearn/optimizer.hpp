// Optimizers over one flat parameter vector (Keras's update rules).
//
// P = number of parameters. State buffers m, v [P] are owned by the caller, so
// they can be saved with a model and carried across fit calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

enum class OptimizerKind { Adam, Sgd, RmsProp };

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::Adam;
  double learning_rate = 1e-3;
  double beta_1 = 0.9;    // Adam
  double beta_2 = 0.999;  // Adam
  double epsilon = 1e-7;  // Adam, RMSprop
  double momentum = 0.0;  // SGD, RMSprop
  bool nesterov = false;  // SGD
  double rho = 0.9;       // RMSprop
};

// One update. `step` is the number of updates made before this one.
//   Adam:    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//            p -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)
//   SGD:     m = mu m - lr g;  p += nesterov ? mu m - lr g : m   (m unused if mu = 0)
//   RMSprop: v = rho v + (1-rho) g^2;  u = lr g / (sqrt(v) + eps);
//            p -= mu > 0 ? (m = mu m + u) : u
template <typename T>
void optimizer_step(const OptimizerSpec& spec, std::size_t n, T* params, const T* grads, T* m, T* v,
                    std::int64_t step);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
