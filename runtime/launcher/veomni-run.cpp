// veomni-run: trains with a compiled artifact.
//
//   veomni-run model.vob --data tokens.bin --steps 1000 --save final.safetensors

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/train/Trainer.h"

ABSL_FLAG(std::string, data, "", "Token file to train on (make one with veomni-tokenize)");
ABSL_FLAG(int64_t, steps, 1, "Optimizer steps to run");
ABSL_FLAG(std::string, save, "",
          "Write the final parameters as safetensors to this file (DIR/ writes "
          "DIR/model.safetensors)");
ABSL_FLAG(std::string, metrics, "", "Write one JSON line of metrics per step to this file");
ABSL_FLAG(uint64_t, seed, 0, "Seed for parameters compiled with an init rule");
ABSL_FLAG(int32_t, n, 1, "Ranks to run; this build runs the CPU backend on one rank");
ABSL_FLAG(int64_t, log, 1, "Print a log line every this many steps (and the last)");

namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "veomni-run: error: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "trains with a compiled artifact\n  veomni-run model.vob --data tokens.bin --steps N "
      "[--save out.safetensors]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) return Fail("expects exactly one artifact (.vob) argument");
  if (absl::GetFlag(FLAGS_n) != 1) {
    return Fail(absl::StrCat("-n ", absl::GetFlag(FLAGS_n),
                             ": this build runs one rank (multi-rank recipes are not "
                             "implemented yet)"));
  }
  if (absl::GetFlag(FLAGS_data).empty()) return Fail("--data is required");
  if (absl::GetFlag(FLAGS_steps) < 1) return Fail("--steps must be >= 1");

  auto artifact = veomni::runtime::Artifact::Load(positional[1]);
  if (!artifact.ok()) return Fail(artifact.status().message());
  veomni::runtime::Executor::Options options;
  options.seed = absl::GetFlag(FLAGS_seed);
  auto trainer = veomni::runtime::Trainer::Create(std::move(*artifact), options);
  if (!trainer.ok()) return Fail(trainer.status().message());
  if (auto status = (*trainer)->LoadData(absl::GetFlag(FLAGS_data)); !status.ok()) {
    return Fail(status.message());
  }

  std::ofstream metrics;
  if (!absl::GetFlag(FLAGS_metrics).empty()) {
    metrics.open(absl::GetFlag(FLAGS_metrics));
    if (!metrics) return Fail(absl::StrCat("cannot write '", absl::GetFlag(FLAGS_metrics), "'"));
  }
  int64_t steps = absl::GetFlag(FLAGS_steps);
  int64_t log_every = std::max<int64_t>(1, absl::GetFlag(FLAGS_log));
  for (int64_t i = 0; i < steps; ++i) {
    auto step = (*trainer)->Step();
    if (!step.ok()) return Fail(step.status().message());
    if (step->skipped) {
      std::printf("step %lld/%lld  skipped: no valid label in this step\n",
                  static_cast<long long>(step->step), static_cast<long long>(steps));
    } else if (!std::isfinite(step->loss) || !std::isfinite(step->grad_norm)) {
      return Fail(absl::StrFormat("the loss (%g) or gradient norm (%g) is not finite at step %d",
                                  step->loss, step->grad_norm, step->step));
    } else if (step->step == 1 || step->step % log_every == 0 || step->step == steps) {
      double rate = (*trainer)->tokens_per_step() / std::max(step->seconds, 1e-9);
      std::printf("step %lld/%lld  loss %.6f  grad_norm %.4f  lr %.3e  tokens %lld  %.0f tok/s\n",
                  static_cast<long long>(step->step), static_cast<long long>(steps), step->loss,
                  step->grad_norm, step->lr, static_cast<long long>(step->tokens), rate);
      std::fflush(stdout);
    }
    if (metrics.is_open()) {
      metrics << absl::StrFormat(
          "{\"step\": %d, \"loss\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g, "
          "\"tokens\": %d, \"seconds\": %.6f, \"skipped\": %s}\n",
          step->step, step->loss, step->grad_norm, step->lr, step->tokens, step->seconds,
          step->skipped ? "true" : "false");
    }
  }
  std::string save = absl::GetFlag(FLAGS_save);
  if (!save.empty()) {
    if (save.back() == '/') save += "model.safetensors";
    if (auto status = (*trainer)->SaveParameters(save); !status.ok()) {
      return Fail(status.message());
    }
    std::printf("saved parameters to %s\n", save.c_str());
  }
  return 0;
}
