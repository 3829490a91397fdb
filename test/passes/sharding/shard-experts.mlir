// RUN: veomni-opt %s -split-input-file -vo-shard-experts="ep=2" | FileCheck %s
// RUN: veomni-opt %s -split-input-file -vo-shard-experts="ep=2" -vo-shard-fsdp="fsdp=4 ep=2" | FileCheck %s --check-prefix=FSDP

// Each of the 2 ep members owns 2 of the 4 experts: the expert weights read
// as their [2, ...] block, the MoE ops exchange over ["ep"], and the expert
// gradients are the block. The router weight is not an expert weight.
// Under fsdp=4 the block is then sharded over the 2 ep_fsdp ranks that own
// the same experts, while other parameters shard over all 4.

// CHECK: vo.parameter @gate_up : tensor<4x6x2xf32> init #vo.init<ones> {vo.expert_shard = {group_size = 2 : i64}}
// CHECK: vo.parameter @down : tensor<4x2x3xf32> init #vo.init<ones> {vo.expert_shard = {group_size = 2 : i64}}
// CHECK: vo.parameter @router : tensor<2x4xf32> init #vo.init<ones>{{$}}
// FSDP: vo.parameter @gate_up : tensor<4x6x2xf32> init #vo.init<ones> {vo.expert_shard = {group_size = 2 : i64}, vo.shard = {elements = 12 : i64, group_size = 2 : i64, mesh_axes = ["ep_fsdp"]}}
// FSDP: vo.parameter @router : tensor<2x4xf32> init #vo.init<ones> {vo.shard = {elements = 2 : i64, group_size = 4 : i64, mesh_axes = ["fsdp"]}}
vo.parameter @gate_up : tensor<4x6x2xf32> init #vo.init<ones>
vo.parameter @down : tensor<4x2x3xf32> init #vo.init<ones>
vo.parameter @router : tensor<2x4xf32> init #vo.init<ones>

// CHECK-LABEL: func.func @forward_backward
// CHECK-SAME: tensor<2x6x2xf32> {vo.name = "grad.gate_up"}, tensor<2x2x3xf32> {vo.name = "grad.down"}
// CHECK: vo.param @gate_up : tensor<2x6x2xf32>
// CHECK: vo.param @down : tensor<2x2x3xf32>
// CHECK: vo.moe_experts {{.*}} {group_size = 2 : i64, mesh_axes = ["ep"]}
// CHECK: vo.moe_experts_grad {{.*}} {group_size = 2 : i64, mesh_axes = ["ep"]}
// FSDP-LABEL: func.func @forward_backward
// FSDP: vo.param_shard @gate_up : tensor<12xf32>
// FSDP: vo.all_gather %{{.*}} over ["ep_fsdp"] group_size = 2 dim = 0 : tensor<12xf32>
// FSDP: vo.reduce_scatter %{{.*}} over ["ep_fsdp"] group_size = 2 dim = 0 : tensor<24xf32>
func.func @forward_backward(%x: tensor<3x2xf32>, %dy: tensor<3x2xf32>)
    -> (tensor<f32> {vo.name = "loss"}, tensor<4x6x2xf32> {vo.name = "grad.gate_up"},
        tensor<4x2x3xf32> {vo.name = "grad.down"}) {
  %r = vo.param @router : tensor<2x4xf32>
  %logits = vo.matmul %x, %r : tensor<3x2xf32>, tensor<2x4xf32>
  %w, %e = vo.moe_gate %logits top_k = 1 : tensor<3x4xf32>
  %gu = vo.param @gate_up : tensor<4x6x2xf32>
  %dn = vo.param @down : tensor<4x2x3xf32>
  %y = vo.moe_experts %x, %e, %w, %gu, %dn : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<4x6x2xf32>, tensor<4x2x3xf32>
  %l = vo.reduce_sum %y axes = [0, 1] : tensor<3x2xf32>
  %dx, %dw, %dgu, %ddn = vo.moe_experts_grad %x, %e, %w, %gu, %dn, %dy : tensor<3x2xf32>, tensor<3x1xi64>, tensor<3x1xf32>, tensor<4x6x2xf32>, tensor<4x2x3xf32>
  return %l, %dgu, %ddn : tensor<f32>, tensor<4x6x2xf32>, tensor<4x2x3xf32>
}
