#include "runtime/executor/Executor.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Status.h"

namespace veomni::runtime {
namespace {

std::string Name(const flatbuffers::String* name) {
  return name ? std::string(name->c_str(), name->size()) : std::string();
}

// A view of `bytes` at `offset` of a region, checked to fit inside it.
absl::StatusOr<TensorView> MakeView(artifact::DType dtype,
                                    const flatbuffers::Vector<int64_t>* shape,
                                    uint8_t* region, uint64_t region_bytes,
                                    uint64_t offset) {
  if (static_cast<int>(dtype) > static_cast<int>(DType::kI1)) {
    return absl::DataLossError(absl::StrCat("unknown dtype ", static_cast<int>(dtype)));
  }
  TensorView view;
  view.dtype = static_cast<DType>(dtype);
  if (shape) view.shape.assign(shape->begin(), shape->end());
  for (int64_t dim : view.shape) {
    if (dim < 0) return absl::DataLossError(absl::StrCat("negative dim ", dim));
  }
  uint64_t bytes = static_cast<uint64_t>(view.Bytes());
  if (offset > region_bytes || bytes > region_bytes - offset) {
    return absl::DataLossError(absl::StrCat("a ", FormatShape(view.shape), " ",
                                            DTypeName(view.dtype), " tensor at offset ",
                                            offset, " overruns its region of ",
                                            region_bytes, " bytes"));
  }
  view.data = region + offset;
  return view;
}

void FillNormal(const TensorView& view, double stddev, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, stddev);
  int64_t count = view.NumElements();
  for (int64_t i = 0; i < count; ++i) {
    double value = normal(rng);
    switch (view.dtype) {
      case DType::kF32:
        view.As<float>()[i] = static_cast<float>(value);
        break;
      case DType::kBF16:
        view.As<uint16_t>()[i] = FloatToBFloat16Bits(static_cast<float>(value));
        break;
      case DType::kF16:
        view.As<uint16_t>()[i] = FloatToHalfBits(static_cast<float>(value));
        break;
      default:
        break;
    }
  }
}

void FillOnes(const TensorView& view) {
  int64_t count = view.NumElements();
  for (int64_t i = 0; i < count; ++i) {
    switch (view.dtype) {
      case DType::kF32:
        view.As<float>()[i] = 1.0f;
        break;
      case DType::kBF16:
        view.As<uint16_t>()[i] = FloatToBFloat16Bits(1.0f);
        break;
      case DType::kF16:
        view.As<uint16_t>()[i] = FloatToHalfBits(1.0f);
        break;
      case DType::kI64:
        view.As<int64_t>()[i] = 1;
        break;
      case DType::kI32:
        view.As<int32_t>()[i] = 1;
        break;
      case DType::kI1:
        view.As<uint8_t>()[i] = 1;
        break;
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    std::shared_ptr<const Artifact> artifact, const Options& options) {
  auto executor = std::unique_ptr<Executor>(new Executor());
  executor->artifact_ = std::move(artifact);
  const artifact::Program& program = executor->artifact_->program();
  uint64_t arena_bytes = 0;
  if (program.functions()) {
    for (const artifact::Function* function : *program.functions()) {
      arena_bytes = std::max<uint64_t>(arena_bytes, function->arena_bytes());
    }
  }
  // Functions run one at a time, so they share one arena.
  executor->arena_.assign(arena_bytes, 0);
  VEOMNI_RETURN_IF_ERROR(executor->InitState(options));
  if (program.functions()) {
    for (const artifact::Function* function : *program.functions()) {
      VEOMNI_ASSIGN_OR_RETURN(Function built, executor->BuildFunction(*function));
      executor->functions_.push_back(std::move(built));
    }
  }
  return executor;
}

absl::Status Executor::InitState(const Options& options) {
  const artifact::Program& program = artifact_->program();
  state_.assign(program.state_bytes(), 0);
  if (!program.state()) return absl::OkStatus();
  std::mt19937_64 rng(options.seed);
  const uint8_t* blobs = artifact_->blobs();
  for (const artifact::StateEntry* entry : *program.state()) {
    std::string key = Name(entry->key());
    auto view = MakeView(entry->dtype(), entry->shape(), state_.data(), state_.size(),
                         entry->offset());
    if (!view.ok()) {
      return absl::DataLossError(
          absl::StrCat("state '", key, "': ", view.status().message()));
    }
    switch (entry->init()) {
      case artifact::Init_Values:
        if (entry->blob_offset() > artifact_->blobs_bytes() ||
            static_cast<uint64_t>(view->Bytes()) >
                artifact_->blobs_bytes() - entry->blob_offset()) {
          return absl::DataLossError(
              absl::StrCat("state '", key, "': initial values overrun the blob section"));
        }
        std::memcpy(view->data, blobs + entry->blob_offset(), view->Bytes());
        break;
      case artifact::Init_Zeros:
        break;  // state_ starts zeroed
      case artifact::Init_Ones:
        FillOnes(*view);
        break;
      case artifact::Init_Normal:
        FillNormal(*view, entry->init_std(), rng);
        break;
      default:
        return absl::DataLossError(absl::StrCat("state '", key, "': unknown init rule"));
    }
    state_views_.emplace_back(key, *view);
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorView> Executor::Resolve(const artifact::Tensor* tensor,
                                             Function& function,
                                             absl::string_view where) {
  if (!tensor) return absl::DataLossError(absl::StrCat(where, ": missing tensor"));
  absl::StatusOr<TensorView> view;
  switch (tensor->region()) {
    case artifact::Region_Arena:
      view = MakeView(tensor->dtype(), tensor->shape(), arena_.data(), arena_.size(),
                      tensor->offset());
      break;
    case artifact::Region_State:
      view = MakeView(tensor->dtype(), tensor->shape(), state_.data(), state_.size(),
                      tensor->offset());
      break;
    case artifact::Region_Constant:
      view = MakeView(tensor->dtype(), tensor->shape(),
                      const_cast<uint8_t*>(artifact_->blobs()), artifact_->blobs_bytes(),
                      tensor->offset());
      break;
    case artifact::Region_Input: {
      uint64_t index = tensor->offset();
      if (index >= function.input_buffers.size()) {
        return absl::DataLossError(
            absl::StrCat(where, ": reads input ", index, " of ",
                         function.input_buffers.size()));
      }
      std::vector<uint8_t>& buffer = function.input_buffers[index];
      view = MakeView(tensor->dtype(), tensor->shape(), buffer.data(), buffer.size(), 0);
      break;
    }
    default:
      return absl::DataLossError(absl::StrCat(where, ": unknown region"));
  }
  if (!view.ok()) return absl::DataLossError(absl::StrCat(where, ": ", view.status().message()));
  return view;
}

absl::StatusOr<Executor::Function> Executor::BuildFunction(
    const artifact::Function& source) {
  Function function;
  function.name = Name(source.name());
  std::string where = absl::StrCat("artifact function @", function.name);
  if (source.inputs()) {
    // Input buffers first: commands refer to them by index.
    for (const artifact::NamedTensor* input : *source.inputs()) {
      if (!input->tensor() || input->tensor()->region() != artifact::Region_Input) {
        return absl::DataLossError(absl::StrCat(where, ": malformed input"));
      }
      int64_t bytes = DTypeBytes(static_cast<DType>(input->tensor()->dtype()));
      if (input->tensor()->shape()) {
        for (int64_t dim : *input->tensor()->shape()) bytes *= dim;
      }
      function.input_buffers.emplace_back(std::max<int64_t>(bytes, 0), 0);
    }
    for (const artifact::NamedTensor* input : *source.inputs()) {
      VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(input->tensor(), function, where));
      function.inputs.emplace_back(Name(input->name()), view);
    }
  }
  if (source.outputs()) {
    for (const artifact::NamedTensor* output : *source.outputs()) {
      VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(output->tensor(), function, where));
      function.outputs.emplace_back(Name(output->name()), view);
    }
  }
  if (!source.commands()) return function;
  int index = 0;
  for (const artifact::Command* command : *source.commands()) {
    Command built;
    built.kernel = Name(command->kernel());
    std::string at = absl::StrCat(where, " command ", index++, " (", built.kernel, ")");
    const KernelFn* fn = LookupCpuKernel(built.kernel);
    if (!fn) {
      return absl::UnimplementedError(
          absl::StrCat(at, ": the CPU runtime has no kernel '", built.kernel, "'"));
    }
    built.fn = *fn;
    if (command->inputs()) {
      for (const artifact::Tensor* tensor : *command->inputs()) {
        VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(tensor, function, at));
        built.inputs.push_back(view);
      }
    }
    if (command->outputs()) {
      for (const artifact::Tensor* tensor : *command->outputs()) {
        VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(tensor, function, at));
        built.outputs.push_back(view);
      }
    }
    if (command->params()) {
      for (const artifact::Param* param : *command->params()) {
        std::string name = Name(param->name());
        switch (param->kind()) {
          case artifact::ParamKind_Int:
            built.attrs.SetInt(name, param->int_value());
            break;
          case artifact::ParamKind_Float:
            built.attrs.SetFloat(name, param->float_value());
            break;
          case artifact::ParamKind_Ints:
            built.attrs.SetInts(name, param->ints()
                                          ? std::vector<int64_t>(param->ints()->begin(),
                                                                 param->ints()->end())
                                          : std::vector<int64_t>());
            break;
          default:
            return absl::DataLossError(absl::StrCat(at, ": unknown param kind"));
        }
      }
    }
    function.commands.push_back(std::move(built));
  }
  return function;
}

const Executor::Function* Executor::Find(absl::string_view name) const {
  for (const Function& function : functions_) {
    if (function.name == name) return &function;
  }
  return nullptr;
}

bool Executor::HasFunction(absl::string_view name) const { return Find(name) != nullptr; }

absl::StatusOr<TensorView> Executor::Input(absl::string_view function,
                                           absl::string_view name) {
  const Function* found = Find(function);
  if (!found) return absl::NotFoundError(absl::StrCat("no function @", function));
  for (const auto& [input, view] : found->inputs) {
    if (input == name) return view;
  }
  return absl::NotFoundError(absl::StrCat("@", function, " has no input '", name, "'"));
}

absl::StatusOr<TensorView> Executor::Output(absl::string_view function,
                                            absl::string_view name) const {
  const Function* found = Find(function);
  if (!found) return absl::NotFoundError(absl::StrCat("no function @", function));
  for (const auto& [output, view] : found->outputs) {
    if (output == name) return view;
  }
  return absl::NotFoundError(absl::StrCat("@", function, " has no output '", name, "'"));
}

absl::StatusOr<TensorView> Executor::State(absl::string_view key) const {
  for (const auto& [name, view] : state_views_) {
    if (name == key) return view;
  }
  return absl::NotFoundError(absl::StrCat("no state '", key, "'"));
}

std::vector<std::string> Executor::StateKeys() const {
  std::vector<std::string> keys;
  for (const auto& [name, view] : state_views_) keys.push_back(name);
  return keys;
}

absl::Status Executor::Run(absl::string_view name) {
  const Function* function = Find(name);
  if (!function) return absl::NotFoundError(absl::StrCat("no function @", name));
  int index = 0;
  for (const Command& command : function->commands) {
    absl::Status status = command.fn(command.attrs, command.inputs, command.outputs);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("@", name, " command ", index, " (",
                                                      command.kernel,
                                                      "): ", status.message()));
    }
    ++index;
  }
  return absl::OkStatus();
}

}  // namespace veomni::runtime
