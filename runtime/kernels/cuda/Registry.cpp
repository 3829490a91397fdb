// The CUDA kernel table: an explicit list, so what exists is visible in one
// place and nothing depends on static-initialization order.

#include "absl/strings/string_view.h"
#include "runtime/kernels/Kernel.h"
#include "runtime/kernels/cuda/CudaKernels.h"

namespace veomni::runtime {
namespace {

struct CudaKernelEntry {
  absl::string_view name;
  KernelFn function;
};

constexpr CudaKernelEntry kCudaKernels[] = {
    // Elementwise.cpp
    {"add", cuda::Add},
    {"sub", cuda::Sub},
    {"mul", cuda::Mul},
    {"div", cuda::Div},
    {"pow", cuda::Pow},
    {"maximum", cuda::Maximum},
    {"minimum", cuda::Minimum},
    {"cmp", cuda::Compare},
    {"select", cuda::Select},
    {"neg", cuda::Neg},
    {"exp", cuda::Exp},
    {"log", cuda::Log},
    {"sqrt", cuda::Sqrt},
    {"rsqrt", cuda::Rsqrt},
    {"reciprocal", cuda::Reciprocal},
    {"tanh", cuda::Tanh},
    {"erf", cuda::Erf},
    {"cos", cuda::Cos},
    {"sin", cuda::Sin},
    {"sigmoid", cuda::Sigmoid},
    {"silu", cuda::Silu},
    {"gelu", cuda::Gelu},
    {"is_nan", cuda::IsNan},
    // Cast.cpp
    {"cast", cuda::Cast},
    // Matmul.cpp
    {"matmul", cuda::Matmul},
    // Reduce.cpp
    {"reduce_sum", cuda::ReduceSum},
    {"reduce_sum_squares", cuda::ReduceSumSquares},
    {"reduce_mean", cuda::ReduceMean},
    {"reduce_max", cuda::ReduceMax},
    {"softmax", cuda::Softmax},
    {"log_softmax", cuda::LogSoftmax},
    // Shape.cpp
    {"reshape", cuda::Reshape},
    {"transpose", cuda::Transpose},
    {"slice", cuda::Slice},
    {"concat", cuda::Concat},
    {"broadcast_to", cuda::BroadcastTo},
    {"copy", cuda::Copy},
    {"fill", cuda::Fill},
    // Model.cpp
    {"embedding", cuda::Embedding},
    {"rms_norm", cuda::RmsNorm},
    {"rope", cuda::Rope},
    {"swiglu", cuda::Swiglu},
    {"attention", cuda::Attention},
    {"cross_entropy", cuda::CrossEntropy},
    // ModelGrad.cpp
    {"rms_norm_grad", cuda::RmsNormGrad},
    {"rope_grad", cuda::RopeGrad},
    {"swiglu_grad", cuda::SwigluGrad},
    {"attention_grad", cuda::AttentionGrad},
    {"cross_entropy_grad", cuda::CrossEntropyGrad},
    {"embedding_grad", cuda::EmbeddingGrad},
    // Moe.cpp
    {"top_k", cuda::TopK},
    {"moe_gate", cuda::MoeGate},
    {"moe_gate_grad", cuda::MoeGateGrad},
    {"moe_experts", cuda::MoeExperts},
    {"moe_experts_grad", cuda::MoeExpertsGrad},
    // Optimizer.cpp
    {"adamw", cuda::AdamW},
};

}  // namespace

const KernelFn* LookupCudaKernel(absl::string_view name) {
  // About fifty entries, looked up once per launch at load time: a scan is fine.
  for (const CudaKernelEntry& entry : kCudaKernels) {
    if (entry.name == name) return &entry.function;
  }
  return nullptr;
}

std::vector<std::string> CudaKernelNames() {
  std::vector<std::string> names;
  for (const CudaKernelEntry& entry : kCudaKernels) names.emplace_back(entry.name);
  return names;
}

}  // namespace veomni::runtime
