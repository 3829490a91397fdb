// Executes the functions of an artifact on the CPU: a flat list of kernel
// launches over one arena, the persistent state, the function's inputs and
// the artifact's constants. Everything is resolved and bounds-checked once,
// when the executor is created; Run only calls kernels.

#ifndef VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H
#define VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/base/Tensor.h"
#include "runtime/comm/LocalCommunicator.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime {

class Executor {
 public:
  struct Options {
    // Seeds the parameters that have an init rule instead of values; every
    // rank draws the same full tensors, so sharded runs start as one rank.
    uint64_t seed = 0;
    // This rank's link to the others; null runs a one-rank artifact.
    Communicator* communicator = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      std::shared_ptr<const Artifact> artifact, const Options& options);

  // The buffer of input `name` of `function`, to fill before Run.
  absl::StatusOr<TensorView> Input(absl::string_view function, absl::string_view name);
  absl::Status Run(absl::string_view function);
  // Output `name` of `function`, valid until the next Run.
  absl::StatusOr<TensorView> Output(absl::string_view function,
                                    absl::string_view name) const;
  // Persistent state by key ("param:<name>", "grad:<name>", ...).
  absl::StatusOr<TensorView> State(absl::string_view key) const;
  std::vector<std::string> StateKeys() const;
  bool HasFunction(absl::string_view name) const;
  int rank() const { return rank_; }
  const Mesh& mesh() const { return mesh_; }
  const Artifact& artifact() const { return *artifact_; }

 private:
  enum class Collective {
    kNone,
    kAllGather,
    kReduceScatter,
    kAllReduce,
    kAllToAll,
    kShardSlice,
    kExperts,  // moe_experts(_grad) over an ep group
  };
  struct Command {
    std::string kernel;
    KernelFn fn = nullptr;
    Collective collective = Collective::kNone;
    uint32_t mesh_axes = 0;
    int dim = 0;            // all_gather, reduce_scatter, shard_slice
    int split_dim = 0;      // all_to_all
    int concat_dim = 0;
    KernelAttrs attrs;
    std::vector<TensorView> inputs, outputs;
  };
  struct Function {
    std::string name;
    std::vector<std::vector<uint8_t>> input_buffers;
    std::vector<std::pair<std::string, TensorView>> inputs, outputs;
    std::vector<Command> commands;
  };

  Executor() = default;
  absl::Status InitState(const Options& options);
  absl::Status RunCollective(const Command& command);
  absl::StatusOr<TensorView> Resolve(const artifact::Tensor* tensor, Function& function,
                                     absl::string_view where);
  absl::StatusOr<Function> BuildFunction(const artifact::Function& source);
  const Function* Find(absl::string_view name) const;

  std::shared_ptr<const Artifact> artifact_;
  Communicator* communicator_ = nullptr;
  Mesh mesh_;
  int rank_ = 0;
  std::vector<uint8_t> arena_, state_;
  std::vector<std::pair<std::string, TensorView>> state_views_;
  std::vector<Function> functions_;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H
