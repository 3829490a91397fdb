// veomni-run: trains with a compiled artifact.
//
//   veomni-run model.vob --data tokens.bin --steps 1000 --save final.safetensors

#include <cmath>
#include <mutex>
#include <thread>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/comm/LocalCommunicator.h"
#include "runtime/device/Device.h"
#include "runtime/train/Trainer.h"

ABSL_FLAG(std::string, data, "", "Token file to train on (make one with veomni-tokenize)");
ABSL_FLAG(int64_t, steps, 1, "Optimizer steps to run");
ABSL_FLAG(std::string, save, "",
          "Write the final parameters as safetensors to this file (DIR/ writes "
          "DIR/model.safetensors)");
ABSL_FLAG(std::string, metrics, "", "Write one JSON line of metrics per step to this file");
ABSL_FLAG(uint64_t, seed, 0, "Seed for parameters compiled with an init rule");
ABSL_FLAG(int32_t, n, 1,
          "Ranks to run, as threads of this process on the CPU backend; must equal the "
          "artifact's dp * fsdp * sp");
ABSL_FLAG(int64_t, timeout, 600,
          "Seconds a rank waits for the others in a collective before giving up");
ABSL_FLAG(int64_t, log, 1, "Print a log line every this many steps (and the last)");
ABSL_FLAG(std::string, device, "cpu",
          "Where to run: cpu (the reference kernels), or cuda / cuda:N (GPU N; one rank)");
ABSL_FLAG(std::string, matmul_precision, "bf16",
          "On cuda: what matmul rounds its fp32 operands to on the tensor cores: bf16 "
          "(the training default), tf32, or fp32 (no rounding)");
ABSL_FLAG(bool, debug_sync, false,
          "Wait for every kernel and report a failure at the command that caused it "
          "(slow; for debugging the GPU backend)");

namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "veomni-run: error: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 1;
}

}  // namespace

namespace {

struct Shared {
  std::mutex mutex;
  absl::Status first_error;  // the root cause: the first failure reported
  void Fail(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mutex);
    if (first_error.ok() || (absl::IsAborted(first_error) && !absl::IsAborted(status))) {
      first_error = status;
    }
  }
};

// One rank's training loop; rank 0 prints and writes the metrics, which are
// global (the program sums the loss and token counts over all ranks).
absl::Status TrainRank(veomni::runtime::Trainer& trainer, int rank, int64_t steps,
                       std::ofstream* metrics) {
  int64_t log_every = std::max<int64_t>(1, absl::GetFlag(FLAGS_log));
  for (int64_t i = 0; i < steps; ++i) {
    absl::StatusOr<veomni::runtime::StepMetrics> step = trainer.Step();
    if (!step.ok()) return step.status();
    if (!step->skipped && (!std::isfinite(step->loss) || !std::isfinite(step->grad_norm))) {
      return absl::InternalError(
          absl::StrFormat("the loss (%g) or gradient norm (%g) is not finite at step %d",
                          step->loss, step->grad_norm, step->step));
    }
    if (rank != 0) continue;
    if (step->skipped) {
      std::printf("step %lld/%lld  skipped: no valid label in this step\n",
                  static_cast<long long>(step->step), static_cast<long long>(steps));
    } else if (step->step == 1 || step->step % log_every == 0 || step->step == steps) {
      double rate = trainer.tokens_per_step() / std::max(step->seconds, 1e-9);
      std::printf(
          "step %lld/%lld  loss %.6f  grad_norm %.4f  lr %.3e  tokens %lld  %.0f tok/s/rank\n",
          static_cast<long long>(step->step), static_cast<long long>(steps), step->loss,
          step->grad_norm, step->lr, static_cast<long long>(step->tokens), rate);
      std::fflush(stdout);
    }
    if (metrics && metrics->is_open()) {
      *metrics << absl::StrFormat(
          "{\"step\": %d, \"loss\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g, "
          "\"tokens\": %d, \"seconds\": %.6f, \"skipped\": %s}\n",
          step->step, step->loss, step->grad_norm, step->lr, step->tokens, step->seconds,
          step->skipped ? "true" : "false");
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "trains with a compiled artifact\n  veomni-run [-n RANKS] model.vob --data tokens.bin "
      "--steps N [--save out.safetensors]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) return Fail("expects exactly one artifact (.vob) argument");
  if (absl::GetFlag(FLAGS_data).empty()) return Fail("--data is required");
  int64_t steps = absl::GetFlag(FLAGS_steps);
  if (steps < 1) return Fail("--steps must be >= 1");

  auto loaded = veomni::runtime::Artifact::Load(positional[1]);
  if (!loaded.ok()) return Fail(loaded.status().message());
  std::shared_ptr<const veomni::runtime::Artifact> artifact = std::move(*loaded);
  veomni::runtime::Mesh mesh;
  if (const auto* recipe = artifact->program().recipe()) {
    mesh = veomni::runtime::Mesh{recipe->dp(), recipe->fsdp(), recipe->sp(), recipe->ep()};
  }
  int ranks = absl::GetFlag(FLAGS_n);
  if (ranks != mesh.size()) {
    return Fail(absl::StrFormat(
        "-n %d: the artifact was compiled for %d rank%s (dp=%d, fsdp=%d, sp=%d%s); run it with "
        "-n %d",
        ranks, mesh.size(), mesh.size() == 1 ? "" : "s", mesh.dp, mesh.fsdp, mesh.sp,
        mesh.ep > 1 ? absl::StrCat(", ep=", mesh.ep) : "", mesh.size()));
  }

  // The device: the host, or one GPU of this process.
  std::unique_ptr<veomni::runtime::Device> device;
  std::string device_name = absl::GetFlag(FLAGS_device);
  if (device_name == "cuda" || device_name.rfind("cuda:", 0) == 0) {
    int ordinal = 0;
    if (device_name.size() > 5 && !absl::SimpleAtoi(device_name.substr(5), &ordinal)) {
      return Fail(absl::StrCat("--device ", device_name, ": expected cuda or cuda:N"));
    }
    if (ranks > 1) {
      return Fail(absl::StrCat("--device ", device_name, " runs one rank per process; this "
                               "build has no multi-GPU communicator yet (NCCL), so -n ", ranks,
                               " runs only on --device cpu"));
    }
    auto precision = veomni::runtime::ParseMatmulPrecision(absl::GetFlag(FLAGS_matmul_precision));
    if (!precision.ok()) return Fail(precision.status().message());
    auto opened = veomni::runtime::CreateCudaDevice(ordinal, *precision);
    if (!opened.ok()) return Fail(opened.status().message());
    device = std::move(*opened);
    std::printf("device %s, matmul %s\n", device->Describe().c_str(),
                absl::GetFlag(FLAGS_matmul_precision).c_str());
  } else if (device_name != "cpu") {
    return Fail(absl::StrCat("--device ", device_name, ": expected cpu, cuda or cuda:N"));
  }

  std::unique_ptr<veomni::runtime::LocalWorld> world;
  std::vector<std::unique_ptr<veomni::runtime::Communicator>> communicators;
  if (ranks > 1) {
    world = std::make_unique<veomni::runtime::LocalWorld>(
        mesh, absl::Seconds(absl::GetFlag(FLAGS_timeout)));
    for (int r = 0; r < ranks; ++r) communicators.push_back(world->ForRank(r));
  }
  std::vector<std::unique_ptr<veomni::runtime::Trainer>> trainers;
  std::vector<veomni::runtime::Trainer*> trainer_ptrs;
  for (int r = 0; r < ranks; ++r) {
    veomni::runtime::Executor::Options options;
    options.seed = absl::GetFlag(FLAGS_seed);
    options.communicator = ranks > 1 ? communicators[r].get() : nullptr;
    options.device = device.get();
    options.synchronize_each_command = absl::GetFlag(FLAGS_debug_sync);
    auto trainer = veomni::runtime::Trainer::Create(artifact, options);
    if (!trainer.ok()) return Fail(trainer.status().message());
    if (auto status = (*trainer)->LoadData(absl::GetFlag(FLAGS_data)); !status.ok()) {
      return Fail(status.message());
    }
    trainer_ptrs.push_back(trainer->get());
    trainers.push_back(std::move(*trainer));
  }

  std::ofstream metrics;
  if (!absl::GetFlag(FLAGS_metrics).empty()) {
    metrics.open(absl::GetFlag(FLAGS_metrics));
    if (!metrics) return Fail(absl::StrCat("cannot write '", absl::GetFlag(FLAGS_metrics), "'"));
  }
  Shared shared;
  if (ranks == 1) {
    shared.Fail(TrainRank(*trainers[0], 0, steps, &metrics));
  } else {
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        absl::Status status = TrainRank(*trainers[r], r, steps, r == 0 ? &metrics : nullptr);
        if (!status.ok()) {
          absl::Status named(status.code(), absl::StrCat("rank ", r, ": ", status.message()));
          shared.Fail(named);
          // The others stop at their next collective instead of waiting.
          communicators[r]->Abort(named);
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  if (!shared.first_error.ok()) return Fail(shared.first_error.message());

  std::string save = absl::GetFlag(FLAGS_save);
  if (!save.empty()) {
    if (save.back() == '/') save += "model.safetensors";
    if (auto status = veomni::runtime::SaveParameters(trainer_ptrs, save); !status.ok()) {
      return Fail(status.message());
    }
    std::printf("saved parameters to %s\n", save.c_str());
  }
  return 0;
}
