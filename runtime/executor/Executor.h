// Executes the functions of an artifact on a device (the host, or one CUDA
// GPU): a flat list of kernel launches over one arena, the persistent state,
// the function's inputs and the artifact's constants. Everything is resolved
// and bounds-checked once, when the executor is created; Run only launches.
//
// Inputs and outputs are host buffers whatever the device: Run copies the
// inputs in first and the outputs out last. The state lives on the device;
// State() reads a host copy, which SyncStateToHost refreshes (on the host
// device it is the state itself).

#ifndef VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H
#define VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/base/Tensor.h"
#include "runtime/comm/LocalCommunicator.h"
#include "runtime/device/Device.h"
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
    // Where tensors live and kernels run; null is the host (CPU kernels).
    // Not owned: it must outlive the executor.
    Device* device = nullptr;
    // Waits for every command and reports a failure at the command that
    // caused it (slow; for debugging asynchronous devices).
    bool synchronize_each_command = false;
    // On a device with graphs (CUDA), each function runs eagerly once, is
    // captured as a graph on its second run and replayed from then on;
    // functions with expert-parallel commands always run eagerly.
    bool use_graphs = true;
    // Times every command (Device::Time: waiting for each, so without
    // graphs) and adds the time to its kernel's entry in KernelProfile;
    // each function's first run (warm-up: plans, pools) is not counted.
    bool profile_kernels = false;
  };
  struct KernelTime {
    std::string kernel;
    int64_t launches = 0;
    double seconds = 0;
  };
  // Time per kernel name over every Run so far, most first (profile_kernels).
  std::vector<KernelTime> KernelProfile() const;

  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      std::shared_ptr<const Artifact> artifact, const Options& options);

  // The buffer of input `name` of `function`, to fill before Run.
  absl::StatusOr<TensorView> Input(absl::string_view function, absl::string_view name);
  absl::Status Run(absl::string_view function);
  // Output `name` of `function`, valid until the next Run.
  absl::StatusOr<TensorView> Output(absl::string_view function,
                                    absl::string_view name) const;
  // Persistent state by key ("param:<name>", "grad:<name>", ...): a host
  // view, current after SyncStateToHost.
  absl::StatusOr<TensorView> State(absl::string_view key) const;
  absl::Status SyncStateToHost();
  // The state entry as commands see it: device memory on a GPU.
  absl::StatusOr<TensorView> DeviceState(absl::string_view key) const;
  Device& device() const { return *device_; }
  Communicator* communicator() const { return communicator_; }
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
    // Wait first for the function's deferred collective of this ordinal (and
    // so for the ones before it): this command touches what it reads or
    // writes (PlanCollectiveJoins). -1: none.
    int join_through = -1;
  };
  struct Function {
    std::string name;
    // Host buffers of the inputs and, on a device the host cannot address,
    // their device copies that commands read.
    std::vector<std::vector<uint8_t>> input_buffers;
    std::vector<DeviceBuffer> device_inputs;
    std::vector<std::pair<std::string, TensorView>> inputs;   // host views
    std::vector<std::pair<std::string, TensorView>> outputs;  // device views
    // Host copies of the outputs (empty on the host device).
    std::vector<std::vector<uint8_t>> output_buffers;
    std::vector<std::pair<std::string, TensorView>> host_outputs;
    std::vector<Command> commands;
    int64_t runs = 0;
    // False when a command waits for the device (expert parallelism).
    bool capturable = true;
    std::unique_ptr<DeviceGraph> graph;
  };
  // A range of the artifact's blobs that commands read as constants, and
  // where its copy lives on the device.
  struct ConstantRange {
    uint64_t blob_offset = 0, bytes = 0;
    uint8_t* device = nullptr;
  };

  Executor() = default;
  absl::Status InitState(const Options& options);
  absl::Status FillState(const Options& options);
  absl::Status UploadConstants();
  // `defer`: leave an NCCL collective running on the communicator's stream
  // (joined before the command whose join_through names it).
  absl::Status RunCollective(const Command& command, bool defer);
  absl::Status RunDeferrable(const Command& command);
  // The collectives that run on the communicator's own stream and may be
  // joined later; expert parallelism joins its exchanges itself, and
  // shard_slice is a local copy.
  static bool Deferrable(Collective collective);
  // Marks the commands that must wait for earlier NCCL collectives
  // (Command::join_through).
  static void PlanJoins(Function& function);
  absl::Status LaunchCommands(const Function& function);
  absl::StatusOr<TensorView> Resolve(const artifact::Tensor* tensor, Function& function,
                                     absl::string_view where);
  absl::StatusOr<Function> BuildFunction(const artifact::Function& source);
  const Function* Find(absl::string_view name) const;
  Function* Find(absl::string_view name);

  std::shared_ptr<const Artifact> artifact_;
  Communicator* communicator_ = nullptr;
  std::unique_ptr<Device> own_device_;  // the host, when no device is given
  Device* device_ = nullptr;
  bool synchronize_each_command_ = false;
  bool use_graphs_ = false;
  bool profile_kernels_ = false;
  std::map<std::string, KernelTime> profile_;
  Mesh mesh_;
  int rank_ = 0;
  DeviceBuffer arena_, state_device_, constants_;
  std::vector<uint8_t> state_host_;
  uint8_t* state_ = nullptr;  // the state commands use: host or device
  std::vector<ConstantRange> constant_ranges_;
  std::vector<std::pair<std::string, TensorView>> state_views_;  // host views
  std::vector<Function> functions_;
};

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_EXECUTOR_EXECUTOR_H
