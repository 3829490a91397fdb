// RUN: veomni-opt %s -split-input-file -vo-raise | FileCheck %s

// The router: softmax, top-2, renormalized.
// CHECK-LABEL: func @router
// CHECK-SAME: (%[[LOGITS:.*]]: tensor<4x8xf32>)
// CHECK-NEXT: %[[W:.*]], %[[E:.*]] = vo.moe_gate %[[LOGITS]] top_k = 2 normalize : tensor<4x8xf32>
// CHECK-NEXT: return %[[W]], %[[E]]
func.func @router(%logits: tensor<4x8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %p = vo.softmax %logits axis = 1 : tensor<4x8xf32>
  %v, %i = vo.top_k %p k = 2 : tensor<4x8xf32>
  %s = vo.reduce_sum %v axes = [1] keep_dims : tensor<4x2xf32>
  %w = vo.div %v, %s : tensor<4x2xf32>, tensor<4x1xf32>
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// Without renormalization (norm_topk_prob false).
// CHECK-LABEL: func @router_plain
// CHECK: vo.moe_gate %{{.*}} top_k = 2 : tensor<4x8xf32>
// CHECK-NOT: normalize
func.func @router_plain(%logits: tensor<4x8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %p = vo.softmax %logits axis = 1 : tensor<4x8xf32>
  %v, %i = vo.top_k %p k = 2 : tensor<4x8xf32>
  return %v, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// Top-k of the logits, then a softmax over the k: the same experts and the
// renormalized weights.
// CHECK-LABEL: func @router_topk_softmax
// CHECK-SAME: (%[[LOGITS:.*]]: tensor<4x8xf32>)
// CHECK-NEXT: %[[W:.*]], %[[E:.*]] = vo.moe_gate %[[LOGITS]] top_k = 2 normalize : tensor<4x8xf32>
// CHECK-NEXT: return %[[W]], %[[E]]
func.func @router_topk_softmax(%logits: tensor<4x8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %v, %i = vo.top_k %logits k = 2 : tensor<4x8xf32>
  %w = vo.softmax %v axis = 1 : tensor<4x2xf32>
  return %w, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// The top-k values read elsewhere too: left alone.
// CHECK-LABEL: func @topk_values_reused
// CHECK: vo.top_k
// CHECK-NOT: vo.moe_gate
func.func @topk_values_reused(%logits: tensor<4x8xf32>) -> (tensor<4x2xf32>, tensor<4x2xf32>) {
  %v, %i = vo.top_k %logits k = 2 : tensor<4x8xf32>
  %w = vo.softmax %v axis = 1 : tensor<4x2xf32>
  return %w, %v : tensor<4x2xf32>, tensor<4x2xf32>
}

// -----

// top_k of logits (no softmax) is not this router.
// CHECK-LABEL: func @not_a_router
// CHECK: vo.top_k
// CHECK-NOT: vo.moe_gate
func.func @not_a_router(%logits: tensor<4x8xf32>) -> (tensor<4x2xf32>, tensor<4x2xi64>) {
  %v, %i = vo.top_k %logits k = 2 : tensor<4x8xf32>
  return %v, %i : tensor<4x2xf32>, tensor<4x2xi64>
}

// -----

// The experts as the exporter writes them (T=4 tokens, k=2, H=6, I=3, E=5).
// CHECK-LABEL: func @experts
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<4x6xf32>, %[[IDS:[a-z0-9]+]]: tensor<4x2xi64>, %[[W:[a-z0-9]+]]: tensor<4x2xf32>, %[[GU:[a-z0-9]+]]: tensor<5x6x6xf32>, %[[DOWN:[a-z0-9]+]]: tensor<5x6x3xf32>)
// CHECK-NEXT: %[[Y:.*]] = vo.moe_experts %[[X]], %[[IDS]], %[[W]], %[[GU]], %[[DOWN]]
// CHECK-NEXT: return %[[Y]]
func.func @experts(%x: tensor<4x6xf32>, %ids: tensor<4x2xi64>, %w: tensor<4x2xf32>,
                   %gate_up: tensor<5x6x6xf32>, %down: tensor<5x6x3xf32>) -> tensor<4x6xf32> {
  %zero = vo.constant dense<0> : tensor<i64>
  %last = vo.constant dense<4> : tensor<i64>
  %x1 = vo.reshape %x to [4, 1, 6] : tensor<4x6xf32>
  %x2 = vo.broadcast_to %x1 to [4, 2, 6] : tensor<4x1x6xf32>
  %flat = vo.reshape %ids to [8] : tensor<4x2xi64>
  %lo = vo.maximum %flat, %zero : tensor<8xi64>, tensor<i64>
  %e = vo.minimum %lo, %last : tensor<8xi64>, tensor<i64>
  %wgu = vo.embedding %gate_up, %e : tensor<5x6x6xf32>, tensor<8xi64>
  %xc = vo.reshape %x2 to [8, 6, 1] : tensor<4x2x6xf32>
  %gu3 = vo.matmul %wgu, %xc : tensor<8x6x6xf32>, tensor<8x6x1xf32>
  %gu = vo.reshape %gu3 to [8, 6] : tensor<8x6x1xf32>
  %g = vo.slice %gu start = [0, 0] limit = [8, 3] stride = [1, 1] : tensor<8x6xf32>
  %u = vo.slice %gu start = [0, 3] limit = [8, 6] stride = [1, 1] : tensor<8x6xf32>
  %h = vo.swiglu %g, %u : tensor<8x3xf32>, tensor<8x3xf32>
  %wd = vo.embedding %down, %e : tensor<5x6x3xf32>, tensor<8xi64>
  %hc = vo.reshape %h to [8, 3, 1] : tensor<8x3xf32>
  %y3 = vo.matmul %wd, %hc : tensor<8x6x3xf32>, tensor<8x3x1xf32>
  %y = vo.reshape %y3 to [8, 6] : tensor<8x6x1xf32>
  %wc = vo.reshape %w to [8, 1] : tensor<4x2xf32>
  %ys = vo.mul %y, %wc : tensor<8x6xf32>, tensor<8x1xf32>
  %y4 = vo.reshape %ys to [4, 2, 6] : tensor<8x6xf32>
  %out = vo.reduce_sum %y4 axes = [1] : tensor<4x2x6xf32>
  return %out : tensor<4x6xf32>
}

// -----

// up taken as the first half: not the experts' SwiGLU, left alone.
// CHECK-LABEL: func @swapped_halves
// CHECK-NOT: vo.moe_experts
func.func @swapped_halves(%x: tensor<4x6xf32>, %ids: tensor<4x2xi64>, %w: tensor<4x2xf32>,
                          %gate_up: tensor<5x6x6xf32>, %down: tensor<5x6x3xf32>) -> tensor<4x6xf32> {
  %x1 = vo.reshape %x to [4, 1, 6] : tensor<4x6xf32>
  %x2 = vo.broadcast_to %x1 to [4, 2, 6] : tensor<4x1x6xf32>
  %e = vo.reshape %ids to [8] : tensor<4x2xi64>
  %wgu = vo.embedding %gate_up, %e : tensor<5x6x6xf32>, tensor<8xi64>
  %xc = vo.reshape %x2 to [8, 6, 1] : tensor<4x2x6xf32>
  %gu3 = vo.matmul %wgu, %xc : tensor<8x6x6xf32>, tensor<8x6x1xf32>
  %gu = vo.reshape %gu3 to [8, 6] : tensor<8x6x1xf32>
  %g = vo.slice %gu start = [0, 3] limit = [8, 6] stride = [1, 1] : tensor<8x6xf32>
  %u = vo.slice %gu start = [0, 0] limit = [8, 3] stride = [1, 1] : tensor<8x6xf32>
  %h = vo.swiglu %g, %u : tensor<8x3xf32>, tensor<8x3xf32>
  %wd = vo.embedding %down, %e : tensor<5x6x3xf32>, tensor<8xi64>
  %hc = vo.reshape %h to [8, 3, 1] : tensor<8x3xf32>
  %y3 = vo.matmul %wd, %hc : tensor<8x6x3xf32>, tensor<8x3x1xf32>
  %y = vo.reshape %y3 to [8, 6] : tensor<8x6x1xf32>
  %wc = vo.reshape %w to [8, 1] : tensor<4x2xf32>
  %ys = vo.mul %y, %wc : tensor<8x6xf32>, tensor<8x1xf32>
  %y4 = vo.reshape %ys to [4, 2, 6] : tensor<8x6xf32>
  %out = vo.reduce_sum %y4 axes = [1] : tensor<4x2x6xf32>
  return %out : tensor<4x6xf32>
}
