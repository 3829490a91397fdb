// The learning rate of each optimizer step, as the artifact's optimizer
// settings define it; and AdamW's per-step scalars.

#ifndef VEOMNI_RUNTIME_TRAIN_SCHEDULE_H
#define VEOMNI_RUNTIME_TRAIN_SCHEDULE_H

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "runtime/artifact/Artifact_generated.h"

namespace veomni::runtime {

// The artifact's optimizer settings are within the ranges veomni-compile
// accepts (lr > 0, 0 <= beta < 1, eps > 0, ...); a corrupt or hand-edited
// artifact fails here instead of training on NaN.
absl::Status ValidateOptimizer(const artifact::Optimizer* optimizer);

// Learning rate of 1-based optimizer step `step`. "cosine" is HF's
// get_cosine_schedule_with_warmup (linear warmup from 0, then half a cosine
// to min_lr over total_steps), evaluated at step - 1 as HF's scheduler is.
double LearningRate(const artifact::Optimizer& optimizer, int64_t step);

// {lr at training step `step`, 1 - beta1^update, 1 - beta2^update}: the
// `hyper` input of optimizer_step; `update` counts the updates applied
// (1-based), which is less than `step` once a step has been skipped.
std::array<float, 3> AdamwHyper(const artifact::Optimizer& optimizer, int64_t step,
                                int64_t update);

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_TRAIN_SCHEDULE_H
