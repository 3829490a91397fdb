#include "runtime/train/Schedule.h"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace veomni::runtime {

double LearningRate(const artifact::Optimizer& optimizer, int64_t step) {
  double peak = optimizer.lr();
  std::string_view schedule =
      optimizer.schedule() ? optimizer.schedule()->c_str() : "constant";
  if (schedule != "cosine") return peak;
  int64_t current = step - 1;
  int64_t warmup = optimizer.warmup_steps();
  if (current < warmup) {
    return peak * static_cast<double>(current) / std::max<int64_t>(1, warmup);
  }
  double progress = static_cast<double>(current - warmup) /
                    std::max<int64_t>(1, optimizer.total_steps() - warmup);
  double factor = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::min(progress, 1.0))));
  return optimizer.min_lr() + (peak - optimizer.min_lr()) * factor;
}

std::array<float, 3> AdamwHyper(const artifact::Optimizer& optimizer, int64_t step,
                                int64_t update) {
  double t = static_cast<double>(update);
  return {static_cast<float>(LearningRate(optimizer, step)),
          static_cast<float>(1.0 - std::pow(optimizer.beta1(), t)),
          static_cast<float>(1.0 - std::pow(optimizer.beta2(), t))};
}

}  // namespace veomni::runtime
