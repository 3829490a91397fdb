#include "runtime/train/Schedule.h"

#include <algorithm>
#include <cmath>
#include <string_view>

namespace veomni::runtime {

absl::Status ValidateOptimizer(const artifact::Optimizer* optimizer) {
  if (!optimizer) return absl::DataLossError("the artifact has no optimizer settings");
  auto finite = [](double value) { return std::isfinite(value); };
  std::string_view schedule =
      optimizer->schedule() ? optimizer->schedule()->c_str() : "constant";
  bool ok = finite(optimizer->lr()) && optimizer->lr() > 0 && optimizer->beta1() >= 0 &&
            optimizer->beta1() < 1 && optimizer->beta2() >= 0 && optimizer->beta2() < 1 &&
            finite(optimizer->eps()) && optimizer->eps() > 0 &&
            finite(optimizer->weight_decay()) && optimizer->weight_decay() >= 0 &&
            finite(optimizer->max_grad_norm()) && optimizer->max_grad_norm() >= 0 &&
            (schedule == "constant" ||
             (schedule == "cosine" && optimizer->warmup_steps() >= 0 &&
              optimizer->total_steps() > optimizer->warmup_steps() &&
              finite(optimizer->min_lr()) && optimizer->min_lr() >= 0));
  if (!ok) {
    return absl::DataLossError(
        "the artifact's optimizer settings are out of range (corrupt artifact?)");
  }
  return absl::OkStatus();
}

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
