#include "runtime/train/Trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/io/Safetensors.h"
#include "runtime/train/Schedule.h"

namespace veomni::runtime {
namespace {

std::string Str(const flatbuffers::String* text) {
  return text ? std::string(text->c_str(), text->size()) : std::string();
}

absl::Status CopyIds(const int64_t* ids, const TensorView& view) {
  int64_t count = view.NumElements();
  switch (view.dtype) {
    case DType::kI64:
      std::memcpy(view.data, ids, count * sizeof(int64_t));
      return absl::OkStatus();
    case DType::kI32:
      for (int64_t i = 0; i < count; ++i) view.As<int32_t>()[i] = static_cast<int32_t>(ids[i]);
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("token inputs must be i64 or i32, not ", DTypeName(view.dtype)));
  }
}

absl::StatusOr<double> ScalarOutput(Executor& executor, absl::string_view function,
                                    absl::string_view name) {
  VEOMNI_ASSIGN_OR_RETURN(TensorView view, executor.Output(function, name));
  if (view.dtype != DType::kF32 || view.NumElements() != 1) {
    return absl::DataLossError(
        absl::StrCat("@", function, " output '", name, "' is not an f32 scalar"));
  }
  return static_cast<double>(*view.As<float>());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    std::shared_ptr<const Artifact> artifact, const Executor::Options& options) {
  auto trainer = std::unique_ptr<Trainer>(new Trainer());
  VEOMNI_ASSIGN_OR_RETURN(trainer->executor_, Executor::Create(std::move(artifact), options));
  trainer->program_ = &trainer->executor_->artifact().program();
  for (absl::string_view name : {"count_tokens", "micro_step", "optimizer_step"}) {
    if (!trainer->executor_->HasFunction(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the artifact has no @", name, ": it was not compiled for training"));
    }
  }
  if (trainer->program_->micro_batch() <= 0 || trainer->program_->seq_len() <= 0 ||
      trainer->program_->grad_accum() <= 0 || trainer->program_->vocab_size() <= 0) {
    return absl::DataLossError("the artifact's batch shape or vocabulary is not positive");
  }
  VEOMNI_RETURN_IF_ERROR(ValidateOptimizer(trainer->program_->optimizer()));
  // The scalars the trainer feeds each step, as it writes them.
  for (auto [function, input, elements] :
       {std::tuple("micro_step", "loss_scale", 1), std::tuple("optimizer_step", "hyper", 3)}) {
    VEOMNI_ASSIGN_OR_RETURN(TensorView view, trainer->executor_->Input(function, input));
    if (view.dtype != DType::kF32 || view.NumElements() != elements) {
      return absl::DataLossError(absl::StrCat("@", function, " input '", input, "' must be ",
                                              elements, " f32, not ", FormatShape(view.shape),
                                              " ", DTypeName(view.dtype)));
    }
  }
  return trainer;
}

int64_t Trainer::tokens_per_step() const {
  return program_->grad_accum() * program_->micro_batch() * program_->seq_len();
}

absl::Status Trainer::LoadData(absl::string_view path) {
  VEOMNI_ASSIGN_OR_RETURN(TokenData data, ReadTokenFile(path, program_->vocab_size()));
  return SetData(std::move(data));
}

absl::Status Trainer::SetData(TokenData data) {
  VEOMNI_ASSIGN_OR_RETURN(BatchReader reader,
                          BatchReader::Create(std::move(data), program_->micro_batch(),
                                              program_->seq_len()));
  reader_.emplace(std::move(reader));
  return absl::OkStatus();
}

absl::Status Trainer::Feed(absl::string_view function, int64_t micro) {
  int64_t batch = program_->micro_batch(), seq = program_->seq_len();
  // Under Ulysses each sp rank holds a contiguous chunk of every sequence.
  const Mesh& mesh = executor_->mesh();
  int64_t chunk = seq / mesh.sp;
  int64_t first = mesh.Coords(executor_->rank())[2] * chunk;
  VEOMNI_ASSIGN_OR_RETURN(TensorView tokens,
                          executor_->Input(function, Str(program_->token_input())));
  VEOMNI_ASSIGN_OR_RETURN(TensorView labels,
                          executor_->Input(function, Str(program_->label_input())));
  if (tokens.NumElements() != batch * chunk || labels.NumElements() != batch * chunk) {
    return absl::DataLossError(absl::StrCat(
        "@", function, "'s token inputs do not hold micro_batch x seq_len / sp"));
  }
  std::vector<int64_t> local(batch * chunk);
  for (const auto& [source, view] : {std::pair(&tokens_, tokens), std::pair(&labels_, labels)}) {
    for (int64_t row = 0; row < batch; ++row) {
      const int64_t* begin = source->data() + (micro * batch + row) * seq + first;
      std::copy(begin, begin + chunk, local.begin() + row * chunk);
    }
    VEOMNI_RETURN_IF_ERROR(CopyIds(local.data(), view));
  }
  return absl::OkStatus();
}

absl::StatusOr<StepMetrics> Trainer::Step() {
  if (!reader_) return absl::FailedPreconditionError("no training data loaded");
  auto start = std::chrono::steady_clock::now();
  StepMetrics metrics;
  metrics.step = ++step_;
  int64_t accum = program_->grad_accum();
  int64_t window = program_->micro_batch() * program_->seq_len();
  const Mesh& mesh = executor_->mesh();
  std::array<int, 3> coords = mesh.Coords(executor_->rank());
  int64_t data_ranks = mesh.dp * mesh.fsdp;
  int64_t data_rank = coords[0] * mesh.fsdp + coords[1];
  tokens_.resize(accum * window);
  labels_.resize(accum * window);
  for (int64_t micro = 0; micro < accum; ++micro) {
    int64_t index = ((step_ - 1) * accum + micro) * data_ranks + data_rank;
    reader_->Read(index, tokens_.data() + micro * window, labels_.data() + micro * window);
    metrics.epoch = index / reader_->windows();
  }

  double count = 0;
  for (int64_t micro = 0; micro < accum; ++micro) {
    VEOMNI_RETURN_IF_ERROR(Feed("count_tokens", micro));
    VEOMNI_RETURN_IF_ERROR(executor_->Run("count_tokens"));
    VEOMNI_ASSIGN_OR_RETURN(double tokens, ScalarOutput(*executor_, "count_tokens", "tokens"));
    count += tokens;
  }
  metrics.tokens = static_cast<int64_t>(count);
  metrics.lr = LearningRate(*program_->optimizer(), step_);
  if (count == 0) {
    // A loss over no tokens is undefined; updating on it would spread NaNs.
    metrics.skipped = true;
    metrics.loss = std::nan("");
    return metrics;
  }

  VEOMNI_ASSIGN_OR_RETURN(TensorView scale, executor_->Input("micro_step", "loss_scale"));
  *scale.As<float>() = static_cast<float>(1.0 / count);
  for (int64_t micro = 0; micro < accum; ++micro) {
    VEOMNI_RETURN_IF_ERROR(Feed("micro_step", micro));
    VEOMNI_RETURN_IF_ERROR(executor_->Run("micro_step"));
    VEOMNI_ASSIGN_OR_RETURN(double loss, ScalarOutput(*executor_, "micro_step", "loss"));
    metrics.loss += loss;
  }

  VEOMNI_ASSIGN_OR_RETURN(TensorView hyper, executor_->Input("optimizer_step", "hyper"));
  // As torch's AdamW, bias correction counts updates, not skipped steps;
  // the learning-rate schedule follows the training step.
  std::array<float, 3> values = AdamwHyper(*program_->optimizer(), step_, ++updates_);
  std::memcpy(hyper.data, values.data(), sizeof(values));
  VEOMNI_RETURN_IF_ERROR(executor_->Run("optimizer_step"));
  VEOMNI_ASSIGN_OR_RETURN(metrics.grad_norm,
                          ScalarOutput(*executor_, "optimizer_step", "grad_norm"));
  metrics.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return metrics;
}

absl::Status SaveParameters(Trainer& rank, absl::string_view path) {
  Executor& executor = rank.executor();
  Device& device = executor.device();
  Communicator* communicator = executor.communicator();
  const bool writer = executor.rank() == 0;
  const artifact::Program& program = executor.artifact().program();
  VEOMNI_RETURN_IF_ERROR(executor.SyncStateToHost());
  std::vector<std::pair<std::string, TensorView>> tensors;
  std::vector<std::vector<uint8_t>> assembled;
  assembled.reserve(program.state() ? program.state()->size() : 0);
  if (program.state()) {
    for (const artifact::StateEntry* entry : *program.state()) {
      std::string key = Str(entry->key());
      if (key.rfind("param:", 0) != 0) continue;
      VEOMNI_ASSIGN_OR_RETURN(TensorView local, executor.State(key));
      if (entry->shard_group() <= 1 && entry->expert_group() <= 1) {
        tensors.emplace_back(key.substr(6), local);
        continue;
      }
      if (!communicator) {
        return absl::FailedPreconditionError(
            absl::StrCat("'", key, "' is sharded but the run has no communicator"));
      }
      // This rank's expert block (its shard group's shards in group order,
      // less the padding), then every block in ep order.
      TensorView full = local;
      full.shape.assign(entry->full_shape()->begin(), entry->full_shape()->end());
      const int64_t blocks = std::max<int64_t>(1, entry->expert_group());
      const int64_t shards = std::max<int64_t>(1, entry->shard_group());
      const int64_t block_elements = full.NumElements() / blocks;
      VEOMNI_ASSIGN_OR_RETURN(TensorView shard, executor.DeviceState(key));
      shard.shape = {shard.NumElements()};
      VEOMNI_ASSIGN_OR_RETURN(
          DeviceBuffer gathered,
          DeviceBuffer::Allocate(device, shard.Bytes() * shards, "gathering " + key));
      TensorView block{gathered.data(), shard.dtype, {shard.NumElements() * shards}};
      if (shards > 1) {
        VEOMNI_RETURN_IF_ERROR(communicator->AllGather(shard, block, entry->shard_axes(), 0));
      } else {
        VEOMNI_RETURN_IF_ERROR(device.CopyOnDevice(block.data, shard.data, shard.Bytes()));
      }
      block.shape = {block_elements};
      DeviceBuffer all_blocks;
      TensorView whole = block;
      if (blocks > 1) {
        VEOMNI_ASSIGN_OR_RETURN(
            all_blocks, DeviceBuffer::Allocate(device, block.Bytes() * blocks, "gathering " + key));
        whole = TensorView{all_blocks.data(), block.dtype, {block_elements * blocks}};
        VEOMNI_RETURN_IF_ERROR(communicator->AllGather(block, whole, entry->expert_axes(), 0));
      }
      if (!writer) continue;
      std::vector<uint8_t> bytes(full.Bytes());
      VEOMNI_RETURN_IF_ERROR(device.CopyToHost(bytes.data(), whole.data, bytes.size()));
      assembled.push_back(std::move(bytes));
      full.data = assembled.back().data();
      tensors.emplace_back(key.substr(6), full);
    }
  }
  if (!writer) return absl::OkStatus();
  return WriteSafetensors(path, tensors,
                          {{"format", "pt"}, {"producer", "veomni-run"},
                           {"step", absl::StrCat(rank.step())}});
}

}  // namespace veomni::runtime
