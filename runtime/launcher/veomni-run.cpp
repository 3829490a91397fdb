// veomni-run: trains with a compiled artifact.
//
//   veomni-run model.vob --data tokens.bin --steps 1000 --save final.safetensors
//   veomni-run -n 2 model.vob --device cuda ...   (one process per GPU)
//
// On the CPU, -n N runs N ranks as threads of this process. On CUDA each rank
// is a process with one GPU: with -n N this process starts N copies of
// itself on this host (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT set, as torchrun would) and waits for them; a process started
// with those variables (or Slurm's or Open MPI's) is one rank of a run that
// may span hosts. Ranks meet at MASTER_ADDR:MASTER_PORT, where rank 0 hands
// out the NCCL id, and a rank that fails or dies makes every other rank exit
// with a message naming it.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
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
#include "runtime/comm/NcclCommunicator.h"
#include "runtime/comm/Rendezvous.h"
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
          "Ranks to run, one per GPU (processes) on cuda, or as threads of this process on "
          "cpu; must equal the artifact's dp * fsdp * sp");
ABSL_FLAG(int64_t, timeout, 600,
          "Seconds a rank waits for the others (to join, or in a collective on cpu) before "
          "giving up");
ABSL_FLAG(int64_t, log, 1, "Print a log line every this many steps (and the last)");
ABSL_FLAG(std::string, device, "cpu",
          "Where to run: cpu (the reference kernels), cuda (GPU LOCAL_RANK of each rank "
          "process, GPU 0 for one rank), or cuda:N (GPU N; one rank)");
ABSL_FLAG(std::string, matmul_precision, "bf16",
          "On cuda: what matmul rounds its fp32 operands to on the tensor cores: bf16 "
          "(the training default), tf32, or fp32 (no rounding)");
ABSL_FLAG(bool, cuda_graphs, true,
          "On cuda: capture each function as a CUDA graph on its second run and replay it "
          "after (false: launch every kernel each time)");
ABSL_FLAG(bool, profile, false,
          "Time every kernel (GPU time between CUDA events, waiting for each, so without "
          "CUDA graphs) and print the kernels that took the most time at the end; each "
          "function's first run (warm-up) is not counted, so profile at least 2 steps");
ABSL_FLAG(std::string, profile_out, "",
          "With --profile: also write the kernel times as JSON, {\"kernel\": {\"launches\": N, "
          "\"seconds\": S}}, for veomni-compile --kernel-profile");
ABSL_FLAG(bool, debug_sync, false,
          "Wait for every kernel and report a failure at the command that caused it "
          "(slow; for debugging the GPU backend)");

namespace {

// --save as a file: DIR/ names DIR/model.safetensors.
std::string SavePath() {
  std::string save = absl::GetFlag(FLAGS_save);
  if (!save.empty() && save.back() == '/') save += "model.safetensors";
  return save;
}

// Whether --save can be written, asked before training so that a long run
// does not end with its result lost to a typo in a directory name.
absl::Status CheckSavePath() {
  std::string path = SavePath();
  if (path.empty()) return absl::OkStatus();
  bool existed = access(path.c_str(), F_OK) == 0;
  std::ofstream probe(path, std::ios::app);
  if (!probe) {
    return absl::InvalidArgumentError(
        absl::StrCat("--save ", path, ": cannot write there (checked before training)"));
  }
  probe.close();
  if (!existed) std::remove(path.c_str());
  return absl::OkStatus();
}

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

// What a run used: device memory (on a GPU) and, with --profile, where the
// time went, by kernel.
void PrintReport(veomni::runtime::Executor& executor) {
  const veomni::runtime::Device& device = executor.device();
  // On the host only the arena comes from the device (the state is host
  // memory either way); on a GPU everything veomni-run holds does.
  std::printf("memory on %s: peak %lld bytes (%.2f GiB) allocated by veomni-run (%s)\n",
              device.Describe().c_str(), static_cast<long long>(device.peak_allocated_bytes()),
              device.peak_allocated_bytes() / double(1 << 30),
              device.host_accessible()
                  ? "the arena"
                  : "arena, state, constants, input copies, collective scratch, cuBLASLt "
                    "workspace");
  if (!device.host_accessible()) {
    // What compares with --explain's "total on a GPU" and with PyTorch's
    // max_memory_allocated: the CUDA context and libraries' own memory are
    // in neither.
    uint64_t scratch = device.peak_scratch_bytes();
    uint64_t all = device.peak_allocated_bytes() + scratch;
    std::printf("memory on %s: peak %lld bytes (%.2f GiB) in all, with %lld bytes of kernel "
                "scratch at most\n",
                device.Describe().c_str(), static_cast<long long>(all), all / double(1 << 30),
                static_cast<long long>(scratch));
  }
  std::vector<veomni::runtime::Executor::KernelTime> profile = executor.KernelProfile();
  if (profile.empty()) return;
  if (std::string path = absl::GetFlag(FLAGS_profile_out); !path.empty()) {
    std::ofstream out(path);
    out << "{";
    for (size_t i = 0; i < profile.size(); ++i) {
      out << (i ? ",\n " : "\n ")
          << absl::StrFormat("\"%s\": {\"launches\": %d, \"seconds\": %.9f}",
                             profile[i].kernel, profile[i].launches, profile[i].seconds);
    }
    out << "\n}\n";
    if (!out) std::fprintf(stderr, "veomni-run: warning: could not write %s\n", path.c_str());
  }
  double total = 0;
  for (const auto& entry : profile) total += entry.seconds;
  std::printf("time by kernel (%d kernels, %.3f s in all):\n", static_cast<int>(profile.size()),
              total);
  for (size_t i = 0; i < profile.size() && i < 20; ++i) {
    std::printf("  %-20s %8lld launches  %9.3f s  %5.1f%%\n", profile[i].kernel.c_str(),
                static_cast<long long>(profile[i].launches), profile[i].seconds,
                100 * profile[i].seconds / total);
  }
  std::fflush(stdout);
}

// A free TCP port of this host for rank 0 to listen on (it may be taken
// before rank 0 binds it; then rank 0 fails with a clear message).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

// How long the other ranks get to exit after one has failed.
constexpr absl::Duration kFailureGrace = absl::Seconds(15);

// Starts `ranks` copies of this program, one per local GPU, and waits. When
// one fails, the others are told by the rendezvous and exit on their own;
// any still running kFailureGrace later are killed.
int LaunchLocalRanks(int ranks, char** argv) {
  int port = FreePort();
  if (port == 0) return Fail("cannot find a free TCP port for the rendezvous");
  std::vector<pid_t> children;
  for (int r = 0; r < ranks; ++r) {
    pid_t pid = fork();
    if (pid < 0) {
      std::string error = std::strerror(errno);
      for (pid_t child : children) kill(child, SIGKILL);
      for (pid_t child : children) waitpid(child, nullptr, 0);
      return Fail(absl::StrCat("fork: ", error));
    }
    if (pid == 0) {
      // A rank outlives no launcher (killed by Ctrl-C, scancel, ...).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(ranks).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      execv("/proc/self/exe", argv);
      std::fprintf(stderr, "veomni-run: error: rank %d: exec: %s\n", r, std::strerror(errno));
      _exit(127);
    }
    children.push_back(pid);
  }
  int exit_code = 0;
  std::string first_failure;
  absl::Time kill_at = absl::InfiniteFuture();
  size_t running = children.size();
  while (running > 0) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      if (absl::Now() > kill_at) {
        for (size_t r = 0; r < children.size(); ++r) {
          if (children[r] > 0) {
            std::fprintf(stderr, "veomni-run: rank %zu did not exit after rank failure; killing it\n", r);
            kill(children[r], SIGKILL);
          }
        }
        kill_at = absl::InfiniteFuture();
      }
      usleep(20 * 1000);
      continue;
    }
    if (pid < 0) break;
    size_t r = std::find(children.begin(), children.end(), pid) - children.begin();
    if (r == children.size()) continue;
    children[r] = -1;
    --running;
    bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (failed && first_failure.empty()) {
      first_failure = WIFSIGNALED(status)
                          ? absl::StrCat("rank ", r, " was killed by signal ", WTERMSIG(status))
                          : absl::StrCat("rank ", r, " exited with status ", WEXITSTATUS(status));
      exit_code = 1;
      // The others hear of it through the rendezvous and exit at once; one
      // that cannot (stuck before it joined, say) is killed.
      kill_at = absl::Now() + kFailureGrace;
    }
  }
  if (exit_code != 0) return Fail(absl::StrCat("the run failed: ", first_failure));
  return 0;
}

// One rank of a multi-process GPU run, as the environment describes it.
int RunGpuRank(const veomni::runtime::LaunchEnvironment& env,
               std::shared_ptr<const veomni::runtime::Artifact> artifact,
               const veomni::runtime::Mesh& mesh, veomni::runtime::MatmulPrecision precision,
               int64_t steps) {
  const int rank = env.rendezvous.rank;
  auto fail = [rank](absl::string_view message) {
    return Fail(absl::StrCat("rank ", rank, ": ", message));
  };
  if (env.rendezvous.world != mesh.size()) {
    return fail(absl::StrFormat("the artifact was compiled for %d ranks but WORLD_SIZE is %d",
                                mesh.size(), env.rendezvous.world));
  }
  veomni::runtime::RendezvousConfig config = env.rendezvous;
  config.timeout = absl::Seconds(std::max<int64_t>(1, absl::GetFlag(FLAGS_timeout)));
  auto rendezvous = veomni::runtime::Rendezvous::Join(config);
  if (!rendezvous.ok()) return fail(rendezvous.status().message());
  // From here every failure is told to the others before this rank exits.
  auto report = [&](absl::string_view message) {
    (*rendezvous)->ReportFailure(std::string(message));
    return fail(message);
  };
  auto device = veomni::runtime::CreateCudaDevice(env.local_rank, precision);
  if (!device.ok()) return report(device.status().message());
  std::string id;
  if (rank == 0) {
    auto made = veomni::runtime::MakeNcclId();
    if (!made.ok()) return report(made.status().message());
    id = std::move(*made);
  }
  auto shared_id = (*rendezvous)->Broadcast(id);
  if (!shared_id.ok()) return fail(shared_id.status().message());
  // Another rank's failure ends this process at once: it may be blocked in
  // NCCL's setup or in a collective that will never complete.
  (*rendezvous)->Watch([rank](const std::string& message) {
    std::fprintf(stderr, "veomni-run: error: rank %d: stopping: %s\n", rank, message.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    _exit(1);
  });
  auto communicator =
      veomni::runtime::CreateNcclCommunicator(mesh, rank, *shared_id, **device);
  if (!communicator.ok()) return report(communicator.status().message());
  veomni::runtime::Executor::Options options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.communicator = communicator->get();
  options.device = device->get();
  options.synchronize_each_command = absl::GetFlag(FLAGS_debug_sync);
  options.use_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  options.profile_kernels = absl::GetFlag(FLAGS_profile);
  absl::Status status;
  auto trainer = veomni::runtime::Trainer::Create(artifact, options);
  if (!trainer.ok()) {
    status = trainer.status();
  } else {
    status = (*trainer)->LoadData(absl::GetFlag(FLAGS_data));
  }
  std::ofstream metrics;
  if (status.ok() && rank == 0 && !absl::GetFlag(FLAGS_metrics).empty()) {
    metrics.open(absl::GetFlag(FLAGS_metrics));
    if (!metrics) status = absl::InvalidArgumentError(
        absl::StrCat("cannot write '", absl::GetFlag(FLAGS_metrics), "'"));
  }
  if (status.ok()) {
    if (rank == 0) std::printf("device %s, %d ranks\n", (*device)->Describe().c_str(), mesh.size());
    status = TrainRank(**trainer, rank, steps, rank == 0 ? &metrics : nullptr);
  }
  std::string save = SavePath();
  if (status.ok() && !save.empty()) {
    status = veomni::runtime::SaveParameters(**trainer, save);
    if (status.ok() && rank == 0) std::printf("saved parameters to %s\n", save.c_str());
  }
  if (!status.ok()) {
    // Tell the others, then leave at once: destructors would wait for GPU
    // work that waits for ranks that are already gone.
    (*rendezvous)->ReportFailure(std::string(status.message()));
    (*communicator)->Abort(status);
    Fail(absl::StrCat("rank ", rank, ": ", status.message()));
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(1);
  }
  if (rank == 0) PrintReport((*trainer)->executor());
  if (auto finished = (*rendezvous)->Finish(); !finished.ok()) return fail(finished.message());
  return 0;
}

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "trains with a compiled artifact\n  veomni-run [-n RANKS] model.vob --data tokens.bin "
      "--steps N [--device cpu|cuda] [--save out.safetensors]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) return Fail("expects exactly one artifact (.vob) argument");
  if (absl::GetFlag(FLAGS_data).empty()) return Fail("--data is required");
  int64_t steps = absl::GetFlag(FLAGS_steps);
  if (steps < 1) return Fail("--steps must be >= 1");

  std::string device_name = absl::GetFlag(FLAGS_device);
  const bool on_gpu = device_name == "cuda" || device_name.rfind("cuda:", 0) == 0;
  int ordinal = 0;
  if (on_gpu && device_name.size() > 5 && !absl::SimpleAtoi(device_name.substr(5), &ordinal)) {
    return Fail(absl::StrCat("--device ", device_name, ": expected cuda or cuda:N"));
  }
  if (!on_gpu && device_name != "cpu") {
    return Fail(absl::StrCat("--device ", device_name, ": expected cpu, cuda or cuda:N"));
  }
  auto precision = veomni::runtime::ParseMatmulPrecision(absl::GetFlag(FLAGS_matmul_precision));
  if (!precision.ok()) return Fail(precision.status().message());

  // Rank processes other than 0 (torchrun's, Slurm's or MPI's) do not write.
  if (auto launch = veomni::runtime::LaunchEnvironmentFromEnv();
      !launch.ok() || launch->rendezvous.rank == 0) {
    if (auto writable = CheckSavePath(); !writable.ok()) return Fail(writable.message());
  }
  auto loaded = veomni::runtime::Artifact::Load(positional[1]);
  if (!loaded.ok()) return Fail(loaded.status().message());
  std::shared_ptr<const veomni::runtime::Artifact> artifact = std::move(*loaded);
  veomni::runtime::Mesh mesh;
  if (const auto* recipe = artifact->program().recipe()) {
    mesh = veomni::runtime::Mesh{recipe->dp(), recipe->fsdp(), recipe->sp(), recipe->ep()};
  }

  // A rank process of a GPU run (started by -n below, torchrun, Slurm or MPI).
  auto env = veomni::runtime::LaunchEnvironmentFromEnv();
  if (on_gpu && env.ok() && env->rendezvous.world > 1) {
    if (device_name != "cuda") {
      return Fail("--device cuda:N names one GPU; a rank process takes GPU LOCAL_RANK "
                  "(use --device cuda)");
    }
    return RunGpuRank(*env, artifact, mesh, *precision, steps);
  }
  if (on_gpu && !env.ok() && !absl::IsNotFound(env.status())) {
    return Fail(env.status().message());
  }

  int ranks = absl::GetFlag(FLAGS_n);
  if (ranks != mesh.size()) {
    return Fail(absl::StrFormat(
        "-n %d: the artifact was compiled for %d rank%s (dp=%d, fsdp=%d, sp=%d%s); run it with "
        "-n %d",
        ranks, mesh.size(), mesh.size() == 1 ? "" : "s", mesh.dp, mesh.fsdp, mesh.sp,
        mesh.ep > 1 ? absl::StrCat(", ep=", mesh.ep) : "", mesh.size()));
  }
  if (on_gpu && ranks > 1) {
    if (device_name != "cuda") {
      return Fail("--device cuda:N names one GPU; -n runs one process per GPU 0..n-1 "
                  "(use --device cuda)");
    }
    if (!veomni::runtime::HaveCudaBackend()) {
      return Fail(veomni::runtime::CreateCudaDevice(0).status().message());
    }
    return LaunchLocalRanks(ranks, argv);
  }

  // The device: the host, or one GPU of this process.
  std::unique_ptr<veomni::runtime::Device> device;
  if (on_gpu) {
    auto opened = veomni::runtime::CreateCudaDevice(ordinal, *precision);
    if (!opened.ok()) return Fail(opened.status().message());
    device = std::move(*opened);
    std::printf("device %s, matmul %s\n", device->Describe().c_str(),
                absl::GetFlag(FLAGS_matmul_precision).c_str());
  }

  std::unique_ptr<veomni::runtime::LocalWorld> world;
  std::vector<std::unique_ptr<veomni::runtime::Communicator>> communicators;
  if (ranks > 1) {
    world = std::make_unique<veomni::runtime::LocalWorld>(
        mesh, absl::Seconds(absl::GetFlag(FLAGS_timeout)));
    for (int r = 0; r < ranks; ++r) communicators.push_back(world->ForRank(r));
  }
  std::vector<std::unique_ptr<veomni::runtime::Trainer>> trainers;
  for (int r = 0; r < ranks; ++r) {
    veomni::runtime::Executor::Options options;
    options.seed = absl::GetFlag(FLAGS_seed);
    options.communicator = ranks > 1 ? communicators[r].get() : nullptr;
    options.device = device.get();
    options.synchronize_each_command = absl::GetFlag(FLAGS_debug_sync);
    options.use_graphs = absl::GetFlag(FLAGS_cuda_graphs);
    options.profile_kernels = absl::GetFlag(FLAGS_profile);
  options.profile_kernels = absl::GetFlag(FLAGS_profile);
  options.use_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  options.profile_kernels = absl::GetFlag(FLAGS_profile);
    auto trainer = veomni::runtime::Trainer::Create(artifact, options);
    if (!trainer.ok()) return Fail(trainer.status().message());
    if (auto status = (*trainer)->LoadData(absl::GetFlag(FLAGS_data)); !status.ok()) {
      return Fail(status.message());
    }
    trainers.push_back(std::move(*trainer));
  }

  std::ofstream metrics;
  if (!absl::GetFlag(FLAGS_metrics).empty()) {
    metrics.open(absl::GetFlag(FLAGS_metrics));
    if (!metrics) return Fail(absl::StrCat("cannot write '", absl::GetFlag(FLAGS_metrics), "'"));
  }
  Shared shared;
  if (ranks == 1) {
    absl::Status status = TrainRank(*trainers[0], 0, steps, &metrics);
    if (status.ok() && !SavePath().empty()) {
      status = veomni::runtime::SaveParameters(*trainers[0], SavePath());
    }
    shared.Fail(status);
  } else {
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        absl::Status status = TrainRank(*trainers[r], r, steps, r == 0 ? &metrics : nullptr);
        // Saving gathers shards with collectives: every rank takes part.
        if (status.ok() && !SavePath().empty()) {
          status = veomni::runtime::SaveParameters(*trainers[r], SavePath());
        }
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
  PrintReport(trainers[0]->executor());

  if (!SavePath().empty()) std::printf("saved parameters to %s\n", SavePath().c_str());
  return 0;
}
