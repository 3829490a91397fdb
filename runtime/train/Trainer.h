// The training loop over an artifact's entry points:
//   for each micro-batch: @count_tokens  (valid labels of the whole step)
//   for each micro-batch: @micro_step    (loss and accumulated gradients,
//                                         scaled by 1 / the step's count)
//   once:                 @optimizer_step (clipping, AdamW, clear)
// so the loss is the mean over every valid token of the step, as one GPU
// over the whole batch computes it. On several ranks each runs a Trainer;
// rank r of data-parallel index d (its dp, fsdp coordinates) reads window
// (step * grad_accum + micro) * D + d of the data, D = dp * fsdp, so D
// ranks see the batches one rank sees with grad_accum * D.

#ifndef VEOMNI_RUNTIME_TRAIN_TRAINER_H
#define VEOMNI_RUNTIME_TRAIN_TRAINER_H

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/data/TokenFile.h"
#include "runtime/executor/Executor.h"

namespace veomni::runtime {

struct StepMetrics {
  int64_t step = 0;
  double loss = 0;       // mean over the step's valid tokens
  double grad_norm = 0;  // before clipping
  double lr = 0;
  int64_t tokens = 0;    // valid labels
  double seconds = 0;
  int64_t epoch = 0;
  bool skipped = false;  // no valid label in the step: no update
};

class Trainer;

// Writes the parameters of a run as safetensors, named as the model names
// them. Every rank calls it (each on its own thread or process): sharded
// parameters and expert blocks are gathered to full tensors with the
// executor's communicator, and rank 0 writes the file.
absl::Status SaveParameters(Trainer& rank, absl::string_view path);

class Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      std::shared_ptr<const Artifact> artifact, const Executor::Options& options);

  // Loads the training data; every id must be in the model's vocabulary.
  absl::Status LoadData(absl::string_view path);
  absl::Status SetData(TokenData data);
  absl::StatusOr<StepMetrics> Step();
  Executor& executor() { return *executor_; }
  int64_t tokens_per_step() const;  // this rank's
  int64_t step() const { return step_; }

 private:
  Trainer() = default;
  absl::Status Feed(absl::string_view function, int64_t micro);

  std::unique_ptr<Executor> executor_;
  const artifact::Program* program_ = nullptr;
  std::optional<BatchReader> reader_;  // shared data, read by window
  std::vector<int64_t> tokens_, labels_;  // [grad_accum, micro_batch, seq_len]
  int64_t step_ = 0;     // training steps taken, skipped ones included
  int64_t updates_ = 0;  // optimizer updates applied: AdamW's bias-correction t
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_TRAIN_TRAINER_H
