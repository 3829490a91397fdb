// The CPU kernel table: an explicit list, so what exists is visible in one
// place and nothing depends on static-initialization order.

#include "absl/strings/string_view.h"
#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cpu/CpuKernels.h"

namespace veomni::runtime {
namespace {

struct CpuKernelEntry {
  absl::string_view name;
  KernelFn function;
};

constexpr CpuKernelEntry kCpuKernels[] = {
    // Elementwise.cpp
    {"add", cpu::Add},
    {"sub", cpu::Sub},
    {"mul", cpu::Mul},
    {"div", cpu::Div},
    {"pow", cpu::Pow},
    {"maximum", cpu::Maximum},
    {"minimum", cpu::Minimum},
    {"cmp", cpu::Compare},
    {"select", cpu::Select},
    {"neg", cpu::Neg},
    {"exp", cpu::Exp},
    {"log", cpu::Log},
    {"sqrt", cpu::Sqrt},
    {"rsqrt", cpu::Rsqrt},
    {"reciprocal", cpu::Reciprocal},
    {"tanh", cpu::Tanh},
    {"erf", cpu::Erf},
    {"cos", cpu::Cos},
    {"sin", cpu::Sin},
    {"sigmoid", cpu::Sigmoid},
    {"silu", cpu::Silu},
    {"gelu", cpu::Gelu},
    {"is_nan", cpu::IsNan},
    // Cast.cpp
    {"cast", cpu::Cast},
    // Matmul.cpp
    {"matmul", cpu::Matmul},
    // Reduce.cpp
    {"reduce_sum", cpu::ReduceSum},
    {"reduce_sum_squares", cpu::ReduceSumSquares},
    {"reduce_mean", cpu::ReduceMean},
    {"reduce_max", cpu::ReduceMax},
    {"softmax", cpu::Softmax},
    {"log_softmax", cpu::LogSoftmax},
    // Shape.cpp
    {"reshape", cpu::Reshape},
    {"transpose", cpu::Transpose},
    {"slice", cpu::Slice},
    {"concat", cpu::Concat},
    {"broadcast_to", cpu::BroadcastTo},
    {"copy", cpu::Copy},
    {"fill", cpu::Fill},
    // Model.cpp
    {"embedding", cpu::Embedding},
    {"rms_norm", cpu::RmsNorm},
    {"rope", cpu::Rope},
    {"swiglu", cpu::Swiglu},
    {"attention", cpu::Attention},
    {"cross_entropy", cpu::CrossEntropy},
    // ModelGrad.cpp
    {"rms_norm_grad", cpu::RmsNormGrad},
    {"rope_grad", cpu::RopeGrad},
    {"swiglu_grad", cpu::SwigluGrad},
    {"attention_grad", cpu::AttentionGrad},
    {"cross_entropy_grad", cpu::CrossEntropyGrad},
    {"embedding_grad", cpu::EmbeddingGrad},
    // Moe.cpp
    {"top_k", cpu::TopK},
    {"moe_gate", cpu::MoeGate},
    {"moe_gate_grad", cpu::MoeGateGrad},
    {"moe_experts", cpu::MoeExperts},
    {"moe_experts_grad", cpu::MoeExpertsGrad},
    // Optimizer.cpp
    {"adamw", cpu::AdamW},
};

}  // namespace

const KernelFn* LookupCpuKernel(absl::string_view name) {
  // About fifty entries, looked up once per launch at load time: a scan is fine.
  for (const CpuKernelEntry& entry : kCpuKernels) {
    if (entry.name == name) return &entry.function;
  }
  return nullptr;
}

std::vector<std::string> CpuKernelNames() {
  std::vector<std::string> names;
  for (const CpuKernelEntry& entry : kCpuKernels) names.emplace_back(entry.name);
  return names;
}

}  // namespace veomni::runtime
