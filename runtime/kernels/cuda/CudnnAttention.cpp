#include "runtime/kernels/cuda/CudnnAttention.h"

#include <cudnn.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <cudnn_frontend.h>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cuda/CudaSupport.h"
#include "runtime/kernels/cuda/ElementwiseLaunch.h"

namespace veomni::runtime::cuda {

namespace fe = cudnn_frontend;

namespace {

// Tensor ids in cuDNN's variant packs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDOut, kDQ, kDK, kDV };

// One built graph per distinct attention: the shapes, scale and mask, and
// whether it is the backward or a forward that also writes the statistics.
struct GraphKey {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  double scale;
  bool causal;
  bool with_stats;
  bool backward;
  bool operator<(const GraphKey& o) const {
    return std::tie(batch, q_heads, kv_heads, q_len, kv_len, head_dim, scale, causal, with_stats,
                    backward) < std::tie(o.batch, o.q_heads, o.kv_heads, o.q_len, o.kv_len,
                                         o.head_dim, o.scale, o.causal, o.with_stats, o.backward);
  }
};

struct BuiltGraph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace_bytes = 0;
};

}  // namespace

// The handle and graphs of one context. Graphs are built on a function's
// first (uncaptured) run and executed from then on, inside CUDA graphs too.
struct CudnnState {
  cudnnHandle_t handle = nullptr;
  std::mutex mutex;
  std::map<GraphKey, BuiltGraph> graphs;
};

namespace {

absl::Status CudnnError(cudnnStatus_t status, absl::string_view what) {
  if (status == CUDNN_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudnnGetErrorString(status)));
}

// cuDNN refusing a graph is a property of this GPU and cuDNN version, not a
// bug here; say how to run without it.
absl::Status FrontendError(const fe::error_t& error, absl::string_view what) {
  if (error.is_good()) return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrCat("attention: cuDNN's fused attention ", what, ": ", error.err_msg,
                   " (--matmul_precision fp32 runs the f32 reference attention instead)"));
}

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * dims[i + 1];
  }
  return strides;
}

absl::StatusOr<BuiltGraph> BuildGraph(const GraphKey& key, cudnnHandle_t handle) {
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const std::vector<int64_t> q_dims = {key.batch, key.q_heads, key.q_len, key.head_dim};
  const std::vector<int64_t> kv_dims = {key.batch, key.kv_heads, key.kv_len, key.head_dim};
  const std::vector<int64_t> stats_dims = {key.batch, key.q_heads, key.q_len, 1};
  auto input = [&](const char* name, Uid uid, const std::vector<int64_t>& dims) {
    return graph->tensor(fe::graph::Tensor_attributes()
                             .set_name(name)
                             .set_uid(uid)
                             .set_dim(dims)
                             .set_stride(ContiguousStrides(dims)));
  };
  auto output = [](const std::shared_ptr<fe::graph::Tensor_attributes>& tensor, Uid uid,
                   const std::vector<int64_t>& dims) {
    tensor->set_output(true).set_uid(uid).set_dim(dims).set_stride(ContiguousStrides(dims));
  };
  auto q = input("q", kQ, q_dims);
  auto k = input("k", kK, kv_dims);
  auto v = input("v", kV, kv_dims);
  if (!key.backward) {
    auto options = fe::graph::SDPA_attributes()
                       .set_name("attention")
                       .set_generate_stats(key.with_stats)
                       .set_attn_scale(static_cast<float>(key.scale));
    if (key.causal) options.set_causal_mask(true);
    auto [out, stats] = graph->sdpa(q, k, v, options);
    output(out, kO, q_dims);
    if (key.with_stats) {
      output(stats, kStats, stats_dims);
      stats->set_data_type(fe::DataType_t::FLOAT);
    }
  } else {
    auto out = input("out", kO, q_dims);
    auto dout = input("dout", kDOut, q_dims);
    auto stats = input("stats", kStats, stats_dims);
    stats->set_data_type(fe::DataType_t::FLOAT);
    auto options = fe::graph::SDPA_backward_attributes()
                       .set_name("attention_grad")
                       .set_attn_scale(static_cast<float>(key.scale));
    if (key.causal) options.set_causal_mask(true);
    auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, out, dout, stats, options);
    output(dq, kDQ, q_dims);
    output(dk, kDK, kv_dims);
    output(dv, kDV, kv_dims);
  }
  BuiltGraph built;
  built.graph = graph;
  try {
    VEOMNI_RETURN_IF_ERROR(FrontendError(graph->validate(), "rejects the graph"));
    VEOMNI_RETURN_IF_ERROR(
        FrontendError(graph->build_operation_graph(handle), "cannot build the graph"));
    VEOMNI_RETURN_IF_ERROR(FrontendError(graph->create_execution_plans({fe::HeurMode_t::A}),
                                         "has no plan"));
    VEOMNI_RETURN_IF_ERROR(FrontendError(graph->check_support(handle), "does not support it"));
    VEOMNI_RETURN_IF_ERROR(FrontendError(graph->build_plans(handle), "cannot build a plan"));
    VEOMNI_RETURN_IF_ERROR(
        FrontendError(graph->get_workspace_size(built.workspace_bytes), "workspace"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("attention: cuDNN frontend: ", e.what()));
  }
  return built;
}

absl::StatusOr<CudnnState*> StateOf(CudaContext* context) {
  if (context->cudnn == nullptr) {
    auto state = std::make_unique<CudnnState>();
    VEOMNI_RETURN_IF_ERROR(CudnnError(cudnnCreate(&state->handle), "cudnnCreate"));
    context->cudnn = state.release();
  }
  return context->cudnn;
}

absl::StatusOr<const BuiltGraph*> GraphFor(const GraphKey& key, CudaContext* context) {
  VEOMNI_ASSIGN_OR_RETURN(CudnnState * state, StateOf(context));
  std::lock_guard<std::mutex> lock(state->mutex);
  auto found = state->graphs.find(key);
  if (found == state->graphs.end()) {
    VEOMNI_ASSIGN_OR_RETURN(BuiltGraph built, BuildGraph(key, state->handle));
    found = state->graphs.emplace(key, std::move(built)).first;
  }
  return &found->second;
}

GraphKey KeyOf(const cpu::AttentionGeometry& g, bool with_stats, bool backward) {
  return {g.batch, g.q_heads,  g.kv_heads, g.q_len,    g.kv_len,
          g.head_dim, g.scale, g.causal,   with_stats, backward};
}

absl::Status Execute(const BuiltGraph& graph, std::unordered_map<int64_t, void*>& pack,
                     void* workspace, CudaContext* context) {
  cudnnHandle_t handle = context->cudnn->handle;
  VEOMNI_RETURN_IF_ERROR(CudnnError(cudnnSetStream(handle, context->stream), "cudnnSetStream"));
  try {
    return FrontendError(graph.graph->execute(handle, pack, workspace), "failed to run");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("attention: cuDNN frontend: ", e.what()));
  }
}

// The bf16 copies both directions make: q, k, v (rounded from f32) and the
// output, as pieces of one StreamScratch.
struct Bf16Operands {
  int64_t q_count = 0, kv_count = 0;
  size_t q = 0, k = 0, v = 0, out = 0;
};

Bf16Operands ReserveOperands(const cpu::AttentionGeometry& g, StreamScratch& scratch) {
  Bf16Operands o;
  o.q_count = g.batch * g.q_heads * g.q_len * g.head_dim;
  o.kv_count = g.batch * g.kv_heads * g.kv_len * g.head_dim;
  o.q = scratch.Reserve(o.q_count * 2);
  o.k = scratch.Reserve(o.kv_count * 2);
  o.v = scratch.Reserve(o.kv_count * 2);
  o.out = scratch.Reserve(o.q_count * 2);
  return o;
}

void ToBF16(const float* x, void* y, int64_t count, cudaStream_t stream) {
  LaunchCast(CastType::kF32, x, CastType::kBF16, y, count, stream);
}
void ToF32(const void* x, float* y, int64_t count, cudaStream_t stream) {
  LaunchCast(CastType::kBF16, x, CastType::kF32, y, count, stream);
}

}  // namespace

bool CudnnAttentionApplies(const cpu::AttentionGeometry& geometry, bool has_cu_seqlens,
                           const CudaContext& context) {
  return context.matmul_precision == MatmulPrecision::kBF16 && !has_cu_seqlens &&
         geometry.head_dim == geometry.value_dim && geometry.head_dim % 8 == 0 &&
         geometry.head_dim <= 128;
}

absl::Status CudnnAttention(const cpu::AttentionGeometry& g, const float* q, const float* k,
                            const float* v, float* out, CudaContext* context) {
  VEOMNI_ASSIGN_OR_RETURN(const BuiltGraph* graph,
                          GraphFor(KeyOf(g, /*with_stats=*/false, /*backward=*/false), context));
  StreamScratch scratch(context, "attention");
  Bf16Operands o = ReserveOperands(g, scratch);
  size_t workspace = scratch.Reserve(graph->workspace_bytes);
  VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
  cudaStream_t stream = context->stream;
  ToBF16(q, scratch.At(o.q), o.q_count, stream);
  ToBF16(k, scratch.At(o.k), o.kv_count, stream);
  ToBF16(v, scratch.At(o.v), o.kv_count, stream);
  VEOMNI_RETURN_IF_ERROR(LaunchStatus("attention"));
  std::unordered_map<int64_t, void*> pack = {{kQ, scratch.At(o.q)},
                                             {kK, scratch.At(o.k)},
                                             {kV, scratch.At(o.v)},
                                             {kO, scratch.At(o.out)}};
  VEOMNI_RETURN_IF_ERROR(Execute(*graph, pack, scratch.At(workspace), context));
  ToF32(scratch.At(o.out), out, o.q_count, stream);
  return LaunchStatus("attention");
}

absl::Status CudnnAttentionGrad(const cpu::AttentionGeometry& g, const float* q, const float* k,
                                const float* v, const float* dout, float* dq, float* dk,
                                float* dv, CudaContext* context) {
  VEOMNI_ASSIGN_OR_RETURN(const BuiltGraph* forward,
                          GraphFor(KeyOf(g, /*with_stats=*/true, /*backward=*/false), context));
  VEOMNI_ASSIGN_OR_RETURN(const BuiltGraph* backward,
                          GraphFor(KeyOf(g, /*with_stats=*/false, /*backward=*/true), context));
  StreamScratch scratch(context, "attention_grad");
  Bf16Operands o = ReserveOperands(g, scratch);
  const int64_t q_count = o.q_count, kv_count = o.kv_count;
  size_t dout16 = scratch.Reserve(q_count * 2), dq16 = scratch.Reserve(q_count * 2),
         dk16 = scratch.Reserve(kv_count * 2), dv16 = scratch.Reserve(kv_count * 2),
         stats = scratch.Reserve(g.batch * g.q_heads * g.q_len * 4),
         workspace = scratch.Reserve(std::max(forward->workspace_bytes, backward->workspace_bytes));
  VEOMNI_RETURN_IF_ERROR(scratch.Allocate());
  cudaStream_t stream = context->stream;
  ToBF16(q, scratch.At(o.q), q_count, stream);
  ToBF16(k, scratch.At(o.k), kv_count, stream);
  ToBF16(v, scratch.At(o.v), kv_count, stream);
  ToBF16(dout, scratch.At(dout16), q_count, stream);
  VEOMNI_RETURN_IF_ERROR(LaunchStatus("attention_grad"));
  std::unordered_map<int64_t, void*> pack = {{kQ, scratch.At(o.q)},   {kK, scratch.At(o.k)},
                                             {kV, scratch.At(o.v)},   {kO, scratch.At(o.out)},
                                             {kStats, scratch.At(stats)}};
  VEOMNI_RETURN_IF_ERROR(Execute(*forward, pack, scratch.At(workspace), context));
  pack[kDOut] = scratch.At(dout16);
  pack[kDQ] = scratch.At(dq16);
  pack[kDK] = scratch.At(dk16);
  pack[kDV] = scratch.At(dv16);
  VEOMNI_RETURN_IF_ERROR(Execute(*backward, pack, scratch.At(workspace), context));
  ToF32(scratch.At(dq16), dq, q_count, stream);
  ToF32(scratch.At(dk16), dk, kv_count, stream);
  ToF32(scratch.At(dv16), dv, kv_count, stream);
  return LaunchStatus("attention_grad");
}

void DestroyCudnnState(CudaContext* context) {
  if (context->cudnn == nullptr) return;
  context->cudnn->graphs.clear();
  if (context->cudnn->handle != nullptr) cudnnDestroy(context->cudnn->handle);
  delete context->cudnn;
  context->cudnn = nullptr;
}

}  // namespace veomni::runtime::cuda
