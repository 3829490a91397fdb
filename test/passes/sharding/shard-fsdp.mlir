// RUN: veomni-opt %s -split-input-file -vo-shard-fsdp="dp=2 fsdp=3" | FileCheck %s
// RUN: veomni-opt %s -split-input-file -vo-shard-fsdp="dp=2 fsdp=3" -vo-optimizer="grad-accum=2" | FileCheck %s --check-prefix=OPT
// RUN: veomni-opt %s -split-input-file -vo-shard-fsdp | FileCheck %s --check-prefix=ONE

// 10 elements over 3 shards: 4 per rank, padded to 12. Each use of the
// weight gathers it right before the use; the gradient is padded and
// reduce-scattered; the loss is summed over all 6 ranks.
vo.parameter @w : tensor<2x5xf32> init #vo.init<zeros>

// CHECK: vo.parameter @w : tensor<2x5xf32> init #vo.init<zeros> {vo.shard = {elements = 4 : i64, group_size = 3 : i64, mesh_axes = ["fsdp"]}}
// CHECK-LABEL: func.func @forward_backward
// CHECK: %[[SHARD:.*]] = vo.param_shard @w : tensor<4xf32>
// CHECK: %[[G1:.*]] = vo.all_gather %[[SHARD]] over ["fsdp"] group_size = 3 dim = 0 : tensor<4xf32>
// CHECK: %[[U1:.*]] = vo.slice %[[G1]] start = [0] limit = [10] stride = [1] : tensor<12xf32>
// CHECK: %[[W1:.*]] = vo.reshape %[[U1]] to [2, 5]
// CHECK: vo.exp %[[W1]]
// CHECK: %[[G2:.*]] = vo.all_gather %[[SHARD]] over ["fsdp"] group_size = 3 dim = 0
// CHECK: vo.slice %[[G2]]
// CHECK: %[[FLAT:.*]] = vo.reshape %{{.*}} to [10] : tensor<2x5xf32>
// CHECK: %[[PAD:.*]] = vo.constant dense<0.000000e+00> : tensor<2xf32>
// CHECK: %[[PADDED:.*]] = vo.concat %[[FLAT]], %[[PAD]] axis = 0
// CHECK: %[[GRAD:.*]] = vo.reduce_scatter %[[PADDED]] over ["fsdp"] group_size = 3 dim = 0 : tensor<12xf32>
// CHECK: %[[LOSS:.*]] = vo.all_reduce %{{.*}} over ["dp", "fsdp"] group_size = 6 : tensor<f32>
// CHECK: return %[[LOSS]], %[[GRAD]] : tensor<f32>, tensor<4xf32>

// The optimizer keeps shards: accumulators and moments of 4 elements, the
// accumulated gradient summed over dp once per step, the squared norm (each
// shard's from its adamw) summed over the shards.
// OPT-LABEL: func.func @micro_step
// OPT-SAME: %{{.*}}: tensor<4xf32> {vo.state = "grad:w"}
// OPT-LABEL: func.func @optimizer_step
// OPT-SAME: %[[ACC:[a-z0-9]+]]: tensor<4xf32> {vo.state = "grad:w"}
// OPT: %[[SUM:.*]] = vo.all_reduce %[[ACC]] over ["dp"] group_size = 2 : tensor<4xf32>
// OPT: %[[P:.*]] = vo.param_shard @w : tensor<4xf32>
// OPT: %{{.*}}, %{{.*}}, %{{.*}}, %[[SS:.*]] = vo.adamw %[[P]], %[[SUM]]
// OPT: %[[LOCAL:.*]] = vo.add %{{.*}}, %[[SS]]
// OPT: %[[SQ:.*]] = vo.all_reduce %[[LOCAL]] over ["fsdp"] group_size = 3 : tensor<f32>
// OPT: vo.sqrt %[[SQ]]

// One rank: nothing changes but the recorded mesh.
// ONE: module attributes {vo.mesh = {dp = 1 : i64, ep = 1 : i64, fsdp = 1 : i64, sp = 1 : i64}}
// ONE-NOT: vo.all_gather
// ONE: vo.param @w
func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}, tensor<2x5xf32> {vo.name = "grad.w"}) {
  %w = vo.param @w : tensor<2x5xf32>
  %e = vo.exp %w : tensor<2x5xf32>
  %l = vo.reduce_sum %e axes = [0, 1] : tensor<2x5xf32>
  %g = vo.mul %e, %w : tensor<2x5xf32>, tensor<2x5xf32>
  return %l, %g : tensor<f32>, tensor<2x5xf32>
}

// -----

// @count_tokens' count is summed over all ranks too.
// CHECK-LABEL: func.func @count_tokens
// CHECK: %[[C:.*]] = vo.all_reduce %{{.*}} over ["dp", "fsdp"] group_size = 6
// CHECK: return %[[C]]
func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}) {
  %c = vo.constant dense<1.0> : tensor<f32>
  return %c : tensor<f32>
}
func.func @count_tokens() -> (tensor<f32> {vo.name = "tokens"}) {
  %c = vo.constant dense<4.0> : tensor<f32>
  return %c : tensor<f32>
}
