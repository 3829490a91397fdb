// RUN: veomni-opt %s -vo-keep-moe-projections -split-input-file | FileCheck %s

// The forward of the gradient's five operands keeps its gate/up projection
// ([T*k, 2I]) and the gradient reads it.
// CHECK-LABEL: func.func @kept
// CHECK:       %[[Y:.*]], %[[P:.*]] = vo.moe_experts %arg0, %arg1, %arg2, %arg3, %arg4 keep_projected
// CHECK:       vo.exp %[[Y]]
// CHECK:       vo.moe_experts_grad %arg0, %arg1, %arg2, %arg3, %arg4, %arg5 projected(%[[P]] : tensor<6x32xf32>)
func.func @kept(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %w: tensor<3x2xf32>,
                %gu: tensor<4x32x8xf32>, %d: tensor<4x8x16xf32>, %dy: tensor<3x8xf32>)
    -> (tensor<3x8xf32>, tensor<3x8xf32>, tensor<4x32x8xf32>) {
  %y = vo.moe_experts %x, %ids, %w, %gu, %d : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x32x8xf32>, tensor<4x8x16xf32>
  %e = vo.exp %y : tensor<3x8xf32>
  %g:4 = vo.moe_experts_grad %x, %ids, %w, %gu, %d, %dy : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x32x8xf32>, tensor<4x8x16xf32>
  return %e, %g#0, %g#2 : tensor<3x8xf32>, tensor<3x8xf32>, tensor<4x32x8xf32>
}

// -----

// Expert parallel layers recompute (their rows move between ranks), and a
// gradient without its forward in the block keeps recomputing.
// CHECK-LABEL: func.func @recomputed
// CHECK-NOT:   keep_projected
// CHECK-NOT:   projected(
func.func @recomputed(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %w: tensor<3x2xf32>,
                      %gu: tensor<2x32x8xf32>, %d: tensor<2x8x16xf32>, %dy: tensor<3x8xf32>,
                      %gu4: tensor<4x32x8xf32>, %d4: tensor<4x8x16xf32>)
    -> (tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>) {
  %y = vo.moe_experts %x, %ids, %w, %gu, %d {group_size = 2 : i64, mesh_axes = ["ep"]} : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<2x32x8xf32>, tensor<2x8x16xf32>
  %g:4 = vo.moe_experts_grad %x, %ids, %w, %gu, %d, %dy {group_size = 2 : i64, mesh_axes = ["ep"]} : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<2x32x8xf32>, tensor<2x8x16xf32>
  %h:4 = vo.moe_experts_grad %x, %ids, %w, %gu4, %d4, %dy : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x32x8xf32>, tensor<4x8x16xf32>
  return %y, %g#0, %h#0 : tensor<3x8xf32>, tensor<3x8xf32>, tensor<3x8xf32>
}
