#include "lstmlearn/optimizer.hpp"

#include <Eigen/Core>
#include <cmath>

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

template <typename T>
void optimizer_step(const OptimizerSpec& spec, std::size_t n, T* params, const T* grads, T* m, T* v,
                    std::int64_t step) {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  const auto count = static_cast<Eigen::Index>(n);
  Eigen::Map<Arr> p(params, count), mv(m, count), vv(v, count);
  Eigen::Map<const Arr> g(grads, count);
  const T lr = static_cast<T>(spec.learning_rate);
  const T eps = static_cast<T>(spec.epsilon);
  switch (spec.kind) {
    case OptimizerKind::Adam: {
      const double t = static_cast<double>(step + 1);
      const T b1 = static_cast<T>(spec.beta_1), b2 = static_cast<T>(spec.beta_2);
      const T rate = static_cast<T>(spec.learning_rate * std::sqrt(1.0 - std::pow(spec.beta_2, t)) /
                                    (1.0 - std::pow(spec.beta_1, t)));
      mv = b1 * mv + (T(1) - b1) * g;
      vv = b2 * vv + (T(1) - b2) * g.square();
      p -= rate * mv / (vv.sqrt() + eps);
      break;
    }
    case OptimizerKind::Sgd: {
      const T mu = static_cast<T>(spec.momentum);
      if (spec.momentum == 0.0) {
        p -= lr * g;
      } else {
        mv = mu * mv - lr * g;
        if (spec.nesterov) {
          p += mu * mv - lr * g;
        } else {
          p += mv;
        }
      }
      break;
    }
    case OptimizerKind::RmsProp: {
      const T rho = static_cast<T>(spec.rho), mu = static_cast<T>(spec.momentum);
      vv = rho * vv + (T(1) - rho) * g.square();
      if (spec.momentum > 0.0) {
        mv = mu * mv + lr * g / (vv.sqrt() + eps);
        p -= mv;
      } else {
        p -= lr * g / (vv.sqrt() + eps);
      }
      break;
    }
  }
}

template void optimizer_step<LSTMLEARN_ENGINE_DTYPE>(const OptimizerSpec&, std::size_t,
                                                     LSTMLEARN_ENGINE_DTYPE*,
                                                     const LSTMLEARN_ENGINE_DTYPE*,
                                                     LSTMLEARN_ENGINE_DTYPE*,
                                                     LSTMLEARN_ENGINE_DTYPE*, std::int64_t);

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
