#include "runtime/executor/Executor.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Status.h"
#include "runtime/executor/CollectiveJoins.h"
#include "runtime/executor/ExpertParallel.h"

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
  TensorView view;
  view.dtype = static_cast<DType>(dtype);
  if (shape) view.shape.assign(shape->begin(), shape->end());
  VEOMNI_ASSIGN_OR_RETURN(int64_t checked, CheckedBytes(view.dtype, view.shape));
  uint64_t bytes = static_cast<uint64_t>(checked);
  if (offset > region_bytes || bytes > region_bytes - offset) {
    return absl::DataLossError(absl::StrCat("a ", FormatShape(view.shape), " ",
                                            DTypeName(view.dtype), " tensor at offset ",
                                            offset, " overruns its region of ",
                                            region_bytes, " bytes"));
  }
  view.data = region + offset;
  return view;
}

// Sizes come from the artifact: a corrupt one must fail, not abort.
absl::Status Allocate(std::vector<uint8_t>& buffer, uint64_t bytes, absl::string_view what) {
  try {
    buffer.assign(bytes, 0);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes for ", what));
  } catch (const std::length_error&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes for ", what));
  }
  return absl::OkStatus();
}

// Normals in chunks of 2^20 elements, each drawn from its own generator
// seeded by (stream, chunk), so the values do not depend on how many threads
// draw them and every rank draws the same tensor; the chunks run on all
// cores (a 1.7B-parameter model took most of a minute on one).
void FillNormal(const TensorView& view, double stddev, uint64_t stream) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  const int64_t count = view.NumElements();
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  auto fill_chunk = [&](int64_t chunk) {
    // SplitMix64 of (stream, chunk): well-mixed seeds for neighbouring chunks.
    uint64_t z = stream + static_cast<uint64_t>(chunk + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    std::mt19937_64 rng(z ^ (z >> 31));
    std::normal_distribution<double> normal(0.0, stddev);
    const int64_t end = std::min(count, (chunk + 1) * kChunk);
    for (int64_t i = chunk * kChunk; i < end; ++i) {
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
  };
  const int64_t workers =
      std::min<int64_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
  if (workers <= 1) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) fill_chunk(chunk);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      for (int64_t chunk = next++; chunk < chunks; chunk = next++) fill_chunk(chunk);
    });
  }
  for (std::thread& thread : threads) thread.join();
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
  if (const artifact::Recipe* recipe = program.recipe()) {
    executor->mesh_ = Mesh{recipe->dp(), recipe->fsdp(), recipe->sp(), recipe->ep()};
  }
  const Mesh& own = executor->mesh_;
  if (own.dp < 1 || own.fsdp < 1 || own.sp < 1 || own.ep < 1 ||
      (own.fsdp * own.sp) % own.ep != 0) {
    return absl::DataLossError(
        "the artifact's recipe has a degree below 1 or an ep that does not divide fsdp*sp");
  }
  executor->communicator_ = options.communicator;
  executor->synchronize_each_command_ = options.synchronize_each_command;
  executor->profile_kernels_ = options.profile_kernels;
  executor->use_graphs_ =
      options.use_graphs && !options.synchronize_each_command && !options.profile_kernels;
  if (options.device) {
    executor->device_ = options.device;
  } else {
    executor->own_device_ = CreateCpuDevice();
    executor->device_ = executor->own_device_.get();
  }
  Device& device = *executor->device_;
  if (options.communicator &&
      options.communicator->operates_on_device() == device.host_accessible()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the communicator works on ", options.communicator->operates_on_device() ? "GPU" : "host",
        " memory but the executor runs on ", device.Describe()));
  }
  if (options.communicator) {
    executor->rank_ = options.communicator->rank();
    const Mesh& mesh = options.communicator->mesh();
    if (mesh.dp != own.dp || mesh.fsdp != own.fsdp || mesh.sp != own.sp || mesh.ep != own.ep) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the artifact was compiled for dp=", own.dp, ",fsdp=", own.fsdp, ",sp=", own.sp,
          ",ep=", own.ep, " but runs on dp=", mesh.dp, ",fsdp=", mesh.fsdp, ",sp=", mesh.sp,
          ",ep=", mesh.ep));
    }
  } else if (executor->mesh_.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the artifact was compiled for ", executor->mesh_.size(),
                     " ranks; run it with veomni-run -n ", executor->mesh_.size()));
  }
  uint64_t arena_bytes = 0;
  if (program.functions()) {
    for (const artifact::Function* function : *program.functions()) {
      arena_bytes = std::max<uint64_t>(arena_bytes, function->arena_bytes());
    }
  }
  // Functions run one at a time, so they share one arena.
  VEOMNI_ASSIGN_OR_RETURN(executor->arena_, DeviceBuffer::Allocate(device, arena_bytes, "arena"));
  VEOMNI_RETURN_IF_ERROR(executor->InitState(options));
  VEOMNI_RETURN_IF_ERROR(executor->UploadConstants());
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
  VEOMNI_RETURN_IF_ERROR(Allocate(state_host_, program.state_bytes(), "state"));
  VEOMNI_RETURN_IF_ERROR(FillState(options));
  if (device_->host_accessible()) {
    state_ = state_host_.data();
    return absl::OkStatus();
  }
  VEOMNI_ASSIGN_OR_RETURN(state_device_,
                          DeviceBuffer::Allocate(*device_, state_host_.size(), "state"));
  VEOMNI_RETURN_IF_ERROR(
      device_->CopyToDevice(state_device_.data(), state_host_.data(), state_host_.size()));
  state_ = state_device_.data();
  return absl::OkStatus();
}

// The initial state, on the host: values, zeros, ones or seeded normals, each
// rank keeping its expert block and FSDP shard of the full tensor.
absl::Status Executor::FillState(const Options& options) {
  const artifact::Program& program = artifact_->program();
  if (!program.state()) return absl::OkStatus();
  std::mt19937_64 rng(options.seed);
  const uint8_t* blobs = artifact_->blobs();
  for (const artifact::StateEntry* entry : *program.state()) {
    std::string key = Name(entry->key());
    auto view = MakeView(entry->dtype(), entry->shape(), state_host_.data(),
                         state_host_.size(), entry->offset());
    if (!view.ok()) {
      return absl::DataLossError(
          absl::StrCat("state '", key, "': ", view.status().message()));
    }
    if (entry->init() == artifact::Init_RoundedParam) {
      // The rank's parameter (shard) is filled already: its rounding, element
      // for element, is this rank's copy whatever the sharding.
      constexpr absl::string_view kPrefix = "param_bf16:";
      const TensorView* param = nullptr;
      if (absl::StartsWith(key, kPrefix)) {
        const std::string source = absl::StrCat("param:", key.substr(kPrefix.size()));
        for (const auto& [name, filled] : state_views_) {
          if (name == source) param = &filled;
        }
      }
      if (!param || param->dtype != DType::kF32 || view->dtype != DType::kBF16 ||
          param->NumElements() != view->NumElements()) {
        return absl::DataLossError(absl::StrCat(
            "state '", key, "': a bf16 copy needs an f32 parameter of as many elements "
            "before it"));
      }
      const float* values = param->As<float>();
      uint16_t* copy = view->As<uint16_t>();
      for (int64_t i = 0; i < view->NumElements(); ++i) copy[i] = FloatToBFloat16Bits(values[i]);
      state_views_.emplace_back(key, *view);
      continue;
    }
    // A sharded entry starts as this rank's slice of the full initial tensor:
    // under ep its block of experts, then its FSDP shard of that block.
    TensorView full = *view;
    std::vector<uint8_t> full_bytes;
    const int64_t blocks = entry->expert_group();
    const int64_t shards = entry->shard_group();
    const bool sharded = shards > 1 || blocks > 1;
    int64_t block = 0;  // elements of one expert block (the whole tensor without ep)
    if (sharded) {
      if (!entry->full_shape()) {
        return absl::DataLossError(absl::StrCat("state '", key, "': sharded without a shape"));
      }
      full.shape.assign(entry->full_shape()->begin(), entry->full_shape()->end());
      auto bytes = CheckedBytes(full.dtype, full.shape);
      if (!bytes.ok()) {
        return absl::DataLossError(absl::StrCat("state '", key, "': ", bytes.status().message()));
      }
      if (blocks < 1 || shards < 1 || full.shape.empty() || full.shape[0] % blocks != 0) {
        return absl::DataLossError(absl::StrCat("state '", key, "': cannot split a ",
                                                FormatShape(full.shape), " tensor into ",
                                                blocks, " expert blocks of ", shards, " shards"));
      }
      block = full.NumElements() / blocks;
      // Every rank holds ceil(block / shards) elements, the last one padded.
      if (view->shape.size() != 1 || view->NumElements() != (block + shards - 1) / shards) {
        return absl::DataLossError(absl::StrCat(
            "state '", key, "': a shard of ", view->NumElements(), " elements cannot hold 1/",
            shards, " of 1/", blocks, " of a ", FormatShape(full.shape), " tensor"));
      }
      VEOMNI_RETURN_IF_ERROR(Allocate(full_bytes, *bytes, key));
      full.data = full_bytes.data();
    }
    switch (entry->init()) {
      case artifact::Init_Values:
        if (entry->blob_offset() > artifact_->blobs_bytes() ||
            static_cast<uint64_t>(full.Bytes()) >
                artifact_->blobs_bytes() - entry->blob_offset()) {
          return absl::DataLossError(
              absl::StrCat("state '", key, "': initial values overrun the blob section"));
        }
        std::memcpy(full.data, blobs + entry->blob_offset(), full.Bytes());
        break;
      case artifact::Init_Zeros:
        break;  // zeroed already
      case artifact::Init_Ones:
        FillOnes(full);
        break;
      case artifact::Init_Normal:
        FillNormal(full, entry->init_std(), rng());
        break;
      default:
        return absl::DataLossError(absl::StrCat("state '", key, "': unknown init rule"));
    }
    if (sharded) {
      // This rank's index in a group of `size` ranks along `axes`.
      auto index_in = [&](uint32_t axes, int64_t size) -> absl::StatusOr<int64_t> {
        if (!Mesh::ValidAxes(axes)) {
          return absl::DataLossError(absl::StrCat("state '", key, "': bad mesh axes ", axes));
        }
        std::vector<int> group = mesh_.Group(rank_, axes);
        if (static_cast<int64_t>(group.size()) != size) {
          return absl::DataLossError(absl::StrCat("state '", key, "': split ", size,
                                                  " ways, but its group over ",
                                                  FormatAxes(axes), " has ", group.size(),
                                                  " ranks"));
        }
        return std::find(group.begin(), group.end(), rank_) - group.begin();
      };
      VEOMNI_ASSIGN_OR_RETURN(int64_t block_index, index_in(entry->expert_axes(), blocks));
      VEOMNI_ASSIGN_OR_RETURN(int64_t shard_index, index_in(entry->shard_axes(), shards));
      int64_t width = DTypeBytes(view->dtype);
      int64_t begin = shard_index * view->NumElements();
      int64_t end = std::min(begin + view->NumElements(), block);
      if (end > begin) {
        std::memcpy(view->data, full_bytes.data() + (block_index * block + begin) * width,
                    (end - begin) * width);
      }
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
      view = MakeView(tensor->dtype(), tensor->shape(), state_, state_host_.size(),
                      tensor->offset());
      break;
    case artifact::Region_Constant:
      view = MakeView(tensor->dtype(), tensor->shape(),
                      const_cast<uint8_t*>(artifact_->blobs()), artifact_->blobs_bytes(),
                      tensor->offset());
      if (view.ok() && !device_->host_accessible()) {
        // The range UploadConstants copied that holds this tensor.
        uint64_t offset = tensor->offset();
        auto range = std::find_if(constant_ranges_.begin(), constant_ranges_.end(),
                                  [&](const ConstantRange& r) {
                                    return offset >= r.blob_offset &&
                                           offset - r.blob_offset + view->Bytes() <= r.bytes;
                                  });
        if (range == constant_ranges_.end()) {
          return absl::InternalError(absl::StrCat(where, ": constant not on the device"));
        }
        view->data = range->device + (offset - range->blob_offset);
      }
      break;
    case artifact::Region_Input: {
      uint64_t index = tensor->offset();
      if (index >= function.input_buffers.size()) {
        return absl::DataLossError(
            absl::StrCat(where, ": reads input ", index, " of ",
                         function.input_buffers.size()));
      }
      if (device_->host_accessible()) {
        std::vector<uint8_t>& buffer = function.input_buffers[index];
        view = MakeView(tensor->dtype(), tensor->shape(), buffer.data(), buffer.size(), 0);
      } else {
        DeviceBuffer& buffer = function.device_inputs[index];
        view = MakeView(tensor->dtype(), tensor->shape(), buffer.data(), buffer.size(), 0);
      }
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
      const auto* shape = input->tensor()->shape();
      auto bytes = CheckedBytes(static_cast<DType>(input->tensor()->dtype()),
                                shape ? absl::Span<const int64_t>(shape->data(), shape->size())
                                      : absl::Span<const int64_t>());
      if (!bytes.ok()) {
        return absl::DataLossError(absl::StrCat(where, ": input '", Name(input->name()),
                                                "': ", bytes.status().message()));
      }
      function.input_buffers.emplace_back();
      VEOMNI_RETURN_IF_ERROR(
          Allocate(function.input_buffers.back(), *bytes, Name(input->name())));
      if (!device_->host_accessible()) {
        VEOMNI_ASSIGN_OR_RETURN(DeviceBuffer buffer,
                                DeviceBuffer::Allocate(*device_, *bytes, Name(input->name())));
        function.device_inputs.push_back(std::move(buffer));
      }
    }
    for (const artifact::NamedTensor* input : *source.inputs()) {
      VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(input->tensor(), function, where));
      // Callers fill the host buffer; Run copies it to the device.
      std::vector<uint8_t>& host = function.input_buffers[input->tensor()->offset()];
      view.data = host.data();
      function.inputs.emplace_back(Name(input->name()), view);
    }
  }
  if (source.outputs()) {
    for (const artifact::NamedTensor* output : *source.outputs()) {
      VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(output->tensor(), function, where));
      function.outputs.emplace_back(Name(output->name()), view);
      if (!device_->host_accessible()) {
        function.output_buffers.emplace_back();
        VEOMNI_RETURN_IF_ERROR(
            Allocate(function.output_buffers.back(), view.Bytes(), Name(output->name())));
        view.data = function.output_buffers.back().data();
        function.host_outputs.emplace_back(Name(output->name()), view);
      }
    }
  }
  if (!source.commands()) return function;
  int index = 0;
  for (const artifact::Command* command : *source.commands()) {
    Command built;
    built.kernel = Name(command->kernel());
    std::string at = absl::StrCat(where, " command ", index++, " (", built.kernel, ")");
    built.collective = built.kernel == "all_gather"       ? Collective::kAllGather
                       : built.kernel == "reduce_scatter" ? Collective::kReduceScatter
                       : built.kernel == "all_reduce"     ? Collective::kAllReduce
                       : built.kernel == "all_to_all"     ? Collective::kAllToAll
                       : built.kernel == "shard_slice"    ? Collective::kShardSlice
                                                          : Collective::kNone;
    if (built.collective == Collective::kNone) {
      const KernelFn* fn = device_->LookupKernel(built.kernel);
      if (!fn) {
        return absl::UnimplementedError(absl::StrCat(at, ": the runtime has no kernel '",
                                                     built.kernel, "' for ",
                                                     device_->Describe()));
      }
      built.fn = *fn;
    }
    if (command->inputs()) {
      for (const artifact::Tensor* tensor : *command->inputs()) {
        VEOMNI_ASSIGN_OR_RETURN(TensorView view, Resolve(tensor, function, at));
        built.inputs.push_back(view);
      }
    }
    if (command->outputs()) {
      for (const artifact::Tensor* tensor : *command->outputs()) {
        // Constants and fed inputs are read-only to commands.
        if (tensor && tensor->region() != artifact::Region_Arena &&
            tensor->region() != artifact::Region_State) {
          return absl::DataLossError(
              absl::StrCat(at, ": writes outside the arena and the state"));
        }
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
    // moe_experts(_grad) over an ep group exchange rows with the owners of
    // the experts (ExpertParallel.h) instead of computing locally.
    if ((built.kernel == "moe_experts" || built.kernel == "moe_experts_grad") &&
        built.attrs.Has("mesh_axes")) {
      int64_t axes = built.attrs.GetIntOr("mesh_axes", 0);
      int64_t group = Mesh::ValidAxes(static_cast<uint32_t>(axes))
                          ? static_cast<int64_t>(
                                mesh_.Group(rank_, static_cast<uint32_t>(axes)).size())
                          : 0;
      // Owners are found by their ep index, as the expert state's blocks are.
      if (axes != kAxisEp || group < 2 || built.attrs.GetIntOr("group_size", 0) != group) {
        return absl::DataLossError(
            absl::StrCat(at, ": malformed expert-parallel launch (its group is ", group,
                         " ranks of this mesh)"));
      }
      // Its exchange waits for the device (ExpertParallel.h), which a graph
      // cannot hold: this function runs eagerly.
      function.capturable = false;
      built.collective = Collective::kExperts;
      built.mesh_axes = static_cast<uint32_t>(axes);
    } else if (built.collective != Collective::kNone) {
      int64_t axes = built.attrs.GetIntOr("mesh_axes", 0);
      built.mesh_axes = static_cast<uint32_t>(axes);
      built.dim = static_cast<int>(built.attrs.GetIntOr("dim", 0));
      built.split_dim = static_cast<int>(built.attrs.GetIntOr("split_dim", 0));
      built.concat_dim = static_cast<int>(built.attrs.GetIntOr("concat_dim", 0));
      int64_t group = static_cast<int64_t>(mesh_.Group(rank_, built.mesh_axes).size());
      if (axes < 0 || !Mesh::ValidAxes(static_cast<uint32_t>(axes)) ||
          built.inputs.size() != 1 || built.outputs.size() != 1 ||
          built.attrs.GetIntOr("group_size", group) != group) {
        return absl::DataLossError(absl::StrCat(
            at, ": malformed collective (its group is ", group, " ranks of this mesh)"));
      }
    }
    function.commands.push_back(std::move(built));
  }
  PlanJoins(function);
  return function;
}

bool Executor::Deferrable(Collective collective) {
  return collective == Collective::kAllGather || collective == Collective::kReduceScatter ||
         collective == Collective::kAllReduce || collective == Collective::kAllToAll;
}

void Executor::PlanJoins(Function& function) {
  std::vector<JoinStep> steps;
  steps.reserve(function.commands.size());
  for (const Command& command : function.commands) {
    JoinStep& step = steps.emplace_back();
    step.kind = Deferrable(command.collective) ? JoinStep::Kind::kDeferredCollective
                : command.collective == Collective::kExperts ? JoinStep::Kind::kJoinsAll
                                                              : JoinStep::Kind::kKernel;
    for (const std::vector<TensorView>* views : {&command.inputs, &command.outputs}) {
      for (const TensorView& view : *views) {
        uintptr_t begin = reinterpret_cast<uintptr_t>(view.data);
        step.touched.push_back({begin, begin + static_cast<uintptr_t>(view.Bytes())});
      }
    }
  }
  std::vector<int> joins = PlanCollectiveJoins(steps);
  for (size_t i = 0; i < joins.size(); ++i) function.commands[i].join_through = joins[i];
}

const Executor::Function* Executor::Find(absl::string_view name) const {
  // One lookup for both: looking up changes nothing.
  return const_cast<Executor*>(this)->Find(name);
}

Executor::Function* Executor::Find(absl::string_view name) {
  for (Function& function : functions_) {
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
  for (const auto& [output, view] :
       device_->host_accessible() ? found->outputs : found->host_outputs) {
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

absl::StatusOr<TensorView> Executor::DeviceState(absl::string_view key) const {
  VEOMNI_ASSIGN_OR_RETURN(TensorView view, State(key));
  view.data = state_ + (static_cast<uint8_t*>(view.data) - state_host_.data());
  return view;
}

std::vector<std::string> Executor::StateKeys() const {
  std::vector<std::string> keys;
  for (const auto& [name, view] : state_views_) keys.push_back(name);
  return keys;
}

absl::Status Executor::SyncStateToHost() {
  if (device_->host_accessible()) return absl::OkStatus();
  return device_->CopyToHost(state_host_.data(), state_, state_host_.size());
}

absl::Status Executor::Run(absl::string_view name) {
  Function* function = Find(name);
  if (!function) return absl::NotFoundError(absl::StrCat("no function @", name));
  VEOMNI_RETURN_IF_ERROR(device_->Activate());
  for (size_t i = 0; i < function->device_inputs.size(); ++i) {
    VEOMNI_RETURN_IF_ERROR(device_->CopyToDevice(function->device_inputs[i].data(),
                                                 function->input_buffers[i].data(),
                                                 function->input_buffers[i].size()));
  }
  // The first run is eager: it makes what later runs reuse (NCCL groups,
  // collective scratch), which a capture must not.
  const bool graphs = use_graphs_ && function->capturable && !device_->host_accessible();
  if (graphs && !function->graph && function->runs >= 1) {
    VEOMNI_ASSIGN_OR_RETURN(function->graph,
                            device_->Capture([&] { return LaunchCommands(*function); }));
  }
  if (function->graph) {
    VEOMNI_RETURN_IF_ERROR(function->graph->Replay());
  } else {
    VEOMNI_RETURN_IF_ERROR(LaunchCommands(*function));
  }
  ++function->runs;
  for (size_t i = 0; i < function->output_buffers.size(); ++i) {
    VEOMNI_RETURN_IF_ERROR(device_->CopyToHost(function->output_buffers[i].data(),
                                               function->outputs[i].second.data,
                                               function->output_buffers[i].size()));
  }
  absl::Status status = device_->Synchronize();
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("@", name, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status Executor::LaunchCommands(const Function& function) {
  int index = 0;
  // Collectives overlap the kernels after them up to the first that touches
  // their buffers, except when each command is waited for anyway.
  const bool defer = communicator_ && !profile_kernels_ && !synchronize_each_command_;
  // The communicator's ticket of each deferred collective, by ordinal.
  std::vector<int64_t> tickets;
  for (const Command& command : function.commands) {
    if (defer && command.join_through >= 0) {
      absl::Status joined =
          command.join_through < static_cast<int>(tickets.size())
              ? communicator_->JoinThrough(tickets[command.join_through])
              : absl::InternalError("joins a collective that has not run");
      if (!joined.ok()) {
        // Nothing may keep writing after the failure (nor a capture end forked).
        communicator_->Join().IgnoreError();
        return absl::Status(joined.code(), absl::StrCat("@", function.name, " command ", index,
                                                        ": ", joined.message()));
      }
    }
    auto launch = [&] {
      return command.collective == Collective::kNone
                 ? command.fn(command.attrs, command.inputs, command.outputs)
                 : RunCollective(command, defer);
    };
    absl::Status status;
    if (profile_kernels_) {
      absl::StatusOr<double> seconds = device_->Time(launch);
      status = seconds.status();
      // A function's first run builds plans and pools (cuDNN graphs,
      // cuBLASLt heuristics, scratch) once; it would skew a profile of
      // steady steps.
      if (seconds.ok() && function.runs >= 1) {
        KernelTime& entry = profile_[command.kernel];
        entry.kernel = command.kernel;
        ++entry.launches;
        entry.seconds += *seconds;
      }
    } else {
      status = launch();
      if (status.ok() && synchronize_each_command_) status = device_->Synchronize();
      if (status.ok() && defer && Deferrable(command.collective)) {
        absl::StatusOr<int64_t> ticket = communicator_->Ticket();
        status = ticket.status();
        if (ticket.ok()) tickets.push_back(*ticket);
      }
    }
    if (!status.ok()) {
      // Nothing may keep writing after the failure is reported (nor may a
      // capture end forked); the command's error is the one to report.
      if (communicator_) communicator_->Join().IgnoreError();
      return absl::Status(status.code(), absl::StrCat("@", function.name, " command ", index,
                                                      " (", command.kernel,
                                                      "): ", status.message()));
    }
    ++index;
  }
  // Nothing stays forked past the function (a graph capture must end joined).
  if (communicator_) {
    absl::Status joined = communicator_->Join();
    if (!joined.ok()) {
      return absl::Status(joined.code(), absl::StrCat("@", function.name, ": ", joined.message()));
    }
  }
  return absl::OkStatus();
}

std::vector<Executor::KernelTime> Executor::KernelProfile() const {
  std::vector<KernelTime> times;
  for (const auto& [kernel, time] : profile_) times.push_back(time);
  std::sort(times.begin(), times.end(),
            [](const KernelTime& a, const KernelTime& b) { return a.seconds > b.seconds; });
  return times;
}

absl::Status Executor::UploadConstants() {
  if (device_->host_accessible()) return absl::OkStatus();
  // Only the blob ranges that commands read as constants go to the device:
  // the rest holds initial state values, which InitState has copied.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) of the blobs
  const artifact::Program& program = artifact_->program();
  auto note = [&](const artifact::Tensor* tensor) {
    if (!tensor || tensor->region() != artifact::Region_Constant) return;
    const auto* shape = tensor->shape();
    auto bytes = CheckedBytes(static_cast<DType>(tensor->dtype()),
                              shape ? absl::Span<const int64_t>(shape->data(), shape->size())
                                    : absl::Span<const int64_t>());
    // A bad shape or offset is reported by Resolve, with its command.
    if (!bytes.ok() || tensor->offset() > artifact_->blobs_bytes() ||
        static_cast<uint64_t>(*bytes) > artifact_->blobs_bytes() - tensor->offset()) {
      return;
    }
    ranges.emplace_back(tensor->offset(), tensor->offset() + *bytes);
  };
  if (program.functions()) {
    for (const artifact::Function* function : *program.functions()) {
      // Function outputs may be constants too (a value the program folded).
      if (function->outputs()) {
        for (const artifact::NamedTensor* output : *function->outputs()) note(output->tensor());
      }
      if (!function->commands()) continue;
      for (const artifact::Command* command : *function->commands()) {
        if (command->inputs()) {
          for (const artifact::Tensor* tensor : *command->inputs()) note(tensor);
        }
      }
    }
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& range : ranges) {
    if (!merged.empty() && range.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, range.second);
    } else {
      merged.push_back(range);
    }
  }
  uint64_t total = 0;
  for (const auto& range : merged) total += (range.second - range.first + 255) / 256 * 256;
  VEOMNI_ASSIGN_OR_RETURN(constants_, DeviceBuffer::Allocate(*device_, total, "constants"));
  uint64_t at = 0;
  for (const auto& [begin, end] : merged) {
    VEOMNI_RETURN_IF_ERROR(
        device_->CopyToDevice(constants_.data() + at, artifact_->blobs() + begin, end - begin));
    constant_ranges_.push_back({begin, end - begin, constants_.data() + at});
    at += (end - begin + 255) / 256 * 256;
  }
  return absl::OkStatus();
}

absl::Status Executor::RunCollective(const Command& command, bool defer) {
  if (command.collective == Collective::kExperts) {
    if (!communicator_) return absl::InternalError("expert parallelism needs a communicator");
    const bool forward = command.kernel == "moe_experts";
    if (device_->host_accessible()) {
      return forward ? MoeExpertsExpertParallel(*communicator_, command.mesh_axes,
                                                command.inputs, command.outputs)
                     : MoeExpertsGradExpertParallel(*communicator_, command.mesh_axes,
                                                    command.inputs, command.outputs);
    }
    return forward ? MoeExpertsExpertParallelOnDevice(*device_, *communicator_,
                                                      command.mesh_axes, command.inputs,
                                                      command.outputs)
                   : MoeExpertsGradExpertParallelOnDevice(*device_, *communicator_,
                                                          command.mesh_axes, command.inputs,
                                                          command.outputs);
  }
  const TensorView& in = command.inputs[0];
  const TensorView& out = command.outputs[0];
  if (command.collective == Collective::kShardSlice) {
    // This rank's chunk of `dim`: no communication, the input is the same
    // on every member.
    std::vector<int> group = mesh_.Group(rank_, command.mesh_axes);
    int64_t index = std::find(group.begin(), group.end(), rank_) - group.begin();
    int dim = command.dim;
    bool chunk_shape = in.shape.size() == out.shape.size() && dim >= 0 &&
                       dim < static_cast<int>(in.shape.size());
    for (size_t d = 0; chunk_shape && d < in.shape.size(); ++d) {
      chunk_shape = in.shape[d] == out.shape[d] * (static_cast<int>(d) == dim
                                                       ? static_cast<int64_t>(group.size())
                                                       : 1);
    }
    if (!chunk_shape || in.dtype != out.dtype) {
      return absl::InvalidArgumentError("shard_slice: output is not one chunk of the input");
    }
    int64_t outer = 1, inner = DTypeBytes(in.dtype);
    for (int d = 0; d < dim; ++d) outer *= in.shape[d];
    for (size_t d = dim + 1; d < in.shape.size(); ++d) inner *= in.shape[d];
    int64_t chunk = out.shape[dim] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      VEOMNI_RETURN_IF_ERROR(device_->CopyOnDevice(
          static_cast<uint8_t*>(out.data) + o * chunk,
          static_cast<const uint8_t*>(in.data) + (o * in.shape[dim] * inner) + index * chunk,
          chunk));
    }
    return absl::OkStatus();
  }
  if (!communicator_) {
    // One rank: every group is this rank alone, so a collective is a copy.
    if (in.Bytes() != out.Bytes()) {
      return absl::InvalidArgumentError("a one-rank collective must keep its size");
    }
    return device_->CopyOnDevice(out.data, in.data, in.Bytes());
  }
  // Joined at the first command that touches its buffers (PlanJoins).
  communicator_->DeferJoins(defer && Deferrable(command.collective));
  absl::Status status = RunDeferrable(command);
  communicator_->DeferJoins(false);
  return status;
}

absl::Status Executor::RunDeferrable(const Command& command) {
  const TensorView& in = command.inputs[0];
  const TensorView& out = command.outputs[0];
  switch (command.collective) {
    case Collective::kAllGather:
      return communicator_->AllGather(in, out, command.mesh_axes, command.dim);
    case Collective::kReduceScatter:
      return communicator_->ReduceScatter(in, out, command.mesh_axes, command.dim);
    case Collective::kAllReduce:
      return communicator_->AllReduce(in, out, command.mesh_axes);
    case Collective::kAllToAll:
      return communicator_->AllToAll(in, out, command.mesh_axes, command.split_dim,
                                     command.concat_dim);
    case Collective::kShardSlice:
    case Collective::kExperts:
    case Collective::kNone:
      break;
  }
  return absl::InternalError("not a collective");
}

}  // namespace veomni::runtime
