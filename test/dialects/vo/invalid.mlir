// RUN: veomni-opt %s -split-input-file -verify-diagnostics
// Each case breaks one rule of one op and checks the diagnostic names it.

// expected-error @+1 {{'vo.parameter' op expects exactly one of an initial value or an init rule, got neither}}
vo.parameter @w : tensor<4xf32>

// -----

// expected-error @+1 {{'vo.parameter' op expects exactly one of an initial value or an init rule, got both}}
vo.parameter @w : tensor<4xf32> = dense<1.0> init #vo.init<ones>

// -----

// expected-error @+1 {{init std must be non-negative, got -1}}
vo.parameter @w : tensor<4xf32> init #vo.init<normal, std = -1.0>

// -----

// expected-error @+1 {{init std applies only to 'normal', not 'ones'}}
vo.parameter @w : tensor<4xf32> init #vo.init<ones, std = 0.5>

// -----

// expected-error @+1 {{'vo.parameter' op attribute 'type' failed to satisfy constraint}}
vo.parameter @w : tensor<4xi64> init #vo.init<zeros>

// -----

vo.parameter @w : tensor<4xf32> init #vo.init<zeros>
func.func @unknown_parameter() -> tensor<4xf32> {
  // expected-error @+1 {{'vo.param' op refers to unknown parameter @v}}
  %0 = vo.param @v : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

vo.parameter @w : tensor<4xf32> init #vo.init<zeros>
func.func @parameter_type() -> tensor<8xf32> {
  // expected-error @+1 {{'vo.param' op has type 'tensor<8xf32>', but parameter @w reads as 'tensor<4xf32>'}}
  %0 = vo.param @w : tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

func.func @dynamic_shape(%a: tensor<?x4xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor}}
  %0 = vo.exp %a : tensor<?x4xf32>
  return
}

// -----

func.func @float_op_on_ints(%a: tensor<4xi64>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %0 = vo.exp %a : tensor<4xi64>
  return
}

// -----

func.func @add_element_types(%a: tensor<4xf32>, %b: tensor<4xbf16>) {
  // expected-error @+1 {{'vo.add' op expects operands of one element type, got 'f32' and 'bf16'}}
  %0 = vo.add %a, %b : tensor<4xf32>, tensor<4xbf16>
  return
}

// -----

func.func @add_broadcast(%a: tensor<2x3xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{'vo.add' op cannot broadcast shapes [2, 3] and [4]}}
  %0 = vo.add %a, %b : tensor<2x3xf32>, tensor<4xf32>
  return
}

// -----

func.func @declared_type_differs(%a: tensor<2xf32>) {
  // expected-error @+2 {{'vo.add' op inferred type(s) 'tensor<2xf32>' are incompatible with return type(s) of operation 'tensor<3xf32>'}}
  // expected-error @+1 {{'vo.add' op failed to infer returned types}}
  %0 = "vo.add"(%a, %a) : (tensor<2xf32>, tensor<2xf32>) -> tensor<3xf32>
  return
}

// -----

func.func @select_branches(%c: tensor<4xi1>, %a: tensor<4xf32>, %b: tensor<4xi64>) {
  // expected-error @+1 {{'vo.select' op expects both branches of one element type, got 'f32' and 'i64'}}
  %0 = vo.select %c, %a, %b : tensor<4xi1>, tensor<4xf32>, tensor<4xi64>
  return
}

// -----

func.func @cast_target(%a: tensor<4xf32>) {
  // expected-error @+1 {{'vo.cast' op expects element type f32, bf16, f16, i64, i32 or i1, got 'f64'}}
  %0 = vo.cast %a : tensor<4xf32> to f64
  return
}

// -----

func.func @matmul_rank(%a: tensor<4xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{'vo.matmul' op expects operands of rank >= 2, got 1 and 2}}
  %0 = vo.matmul %a, %b : tensor<4xf32>, tensor<4x2xf32>
  return
}

// -----

func.func @matmul_f32_result_of_f32(%a: tensor<3x4xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{'vo.matmul' op with f32_result expects bf16 operands, got 'f32'}}
  %0 = vo.matmul %a, %b f32_result : tensor<3x4xf32>, tensor<4x2xf32>
  return
}

// -----

func.func @swiglu_grad_f16_beside_f32(%g: tensor<2x3xf16>, %dh: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.swiglu_grad' op expects gate, up and the result gradient of one type (or bf16 gate and up beside an f32 result gradient), got 'tensor<2x3xf16>', 'tensor<2x3xf16>' and 'tensor<2x3xf32>'}}
  %dg, %du = vo.swiglu_grad %g, %g, %dh : tensor<2x3xf16>, tensor<2x3xf32>
  return
}

// -----

func.func @matmul_contraction(%a: tensor<3x4xf32>, %b: tensor<5x2xf32>) {
  // expected-error @+1 {{'vo.matmul' op expects contracting dims to match, got 4 (lhs [3, 4]) and 5 (rhs [5, 2])}}
  %0 = vo.matmul %a, %b : tensor<3x4xf32>, tensor<5x2xf32>
  return
}

// -----

func.func @matmul_transposed_contraction(%a: tensor<3x4xf32>, %w: tensor<4x2xf32>) {
  // expected-error @+1 {{'vo.matmul' op expects contracting dims to match, got 4 (lhs [3, 4]) and 2 (rhs [4, 2])}}
  %0 = vo.matmul %a, %w transpose_rhs : tensor<3x4xf32>, tensor<4x2xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x3x4xf32>, %b: tensor<5x4x2xf32>) {
  // expected-error @+1 {{'vo.matmul' op cannot broadcast shapes [2] and [5]}}
  %0 = vo.matmul %a, %b : tensor<2x3x4xf32>, tensor<5x4x2xf32>
  return
}

// -----

func.func @reduce_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.reduce_sum' op expects axis in [0, 2), got 2}}
  %0 = vo.reduce_sum %a axes = [2] : tensor<2x3xf32>
  return
}

// -----

// Its kernels square and sum f32 only.
func.func @sum_squares_of_bf16(%a: tensor<2x3xbf16>) {
  // expected-error @+1 {{'vo.reduce_sum_squares' op operand #0 must be statically shaped tensor of 32-bit float values}}
  %0 = vo.reduce_sum_squares %a axes = [0, 1] : tensor<2x3xbf16>
  return
}

// -----

func.func @reduce_twice(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.reduce_mean' op reduces axis 1 twice}}
  %0 = vo.reduce_mean %a axes = [1, 1] : tensor<2x3xf32>
  return
}

// -----

func.func @softmax_axis(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.softmax' op expects axis in [0, 2), got -1}}
  %0 = vo.softmax %a axis = -1 : tensor<2x3xf32>
  return
}

// -----

func.func @reshape_count(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.reshape' op cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)}}
  %0 = vo.reshape %a to [4, 2] : tensor<2x3xf32>
  return
}

// -----

func.func @reshape_negative(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.reshape' op expects non-negative target dims, got [-1, 6]}}
  %0 = vo.reshape %a to [-1, 6] : tensor<2x3xf32>
  return
}

// -----

func.func @transpose_permutation(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.transpose' op expects a permutation of [0, 2), got [0, 0]}}
  %0 = vo.transpose %a perm = [0, 0] : tensor<2x3xf32>
  return
}

// -----

func.func @slice_lengths(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.slice' op expects start, limit and stride of length 2 (the input rank), got 1, 2 and 2}}
  %0 = vo.slice %a start = [0] limit = [2, 3] stride = [1, 1] : tensor<2x3xf32>
  return
}

// -----

func.func @slice_bounds(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.slice' op expects 0 <= start <= limit <= 3 in dim 1, got start 1 and limit 4}}
  %0 = vo.slice %a start = [0, 1] limit = [2, 4] stride = [1, 1] : tensor<2x3xf32>
  return
}

// -----

func.func @slice_stride(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.slice' op expects stride >= 1 in dim 0, got 0}}
  %0 = vo.slice %a start = [0, 0] limit = [2, 3] stride = [0, 1] : tensor<2x3xf32>
  return
}

// -----

func.func @concat_shapes(%a: tensor<2x3xf32>, %b: tensor<3x3xf32>) {
  // expected-error @+1 {{'vo.concat' op expects input 1 to match [2, 3] outside the concat axis, got [3, 3]}}
  %0 = vo.concat %a, %b axis = 1 : tensor<2x3xf32>, tensor<3x3xf32>
  return
}

// -----

func.func @concat_ranks(%a: tensor<2x3xf32>, %b: tensor<2x3x1xf32>) {
  // expected-error @+1 {{'vo.concat' op expects inputs of one rank, got 2 and 3 (input 1)}}
  %0 = vo.concat %a, %b axis = 0 : tensor<2x3xf32>, tensor<2x3x1xf32>
  return
}

// -----

func.func @broadcast_to(%a: tensor<2x3xf32>) {
  // expected-error @+1 {{'vo.broadcast_to' op cannot broadcast [2, 3] to [4, 3]}}
  %0 = vo.broadcast_to %a to [4, 3] : tensor<2x3xf32>
  return
}

// -----

func.func @embedding_table(%t: tensor<16xf32>, %ids: tensor<4xi64>) {
  // expected-error @+1 {{'vo.embedding' op expects a table of rank >= 2 [vocab, ...], got [16]}}
  %0 = vo.embedding %t, %ids : tensor<16xf32>, tensor<4xi64>
  return
}

// -----

func.func @embedding_ids(%t: tensor<16x8xf32>, %ids: tensor<4xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 64-bit signless integer or 32-bit signless integer values}}
  %0 = vo.embedding %t, %ids : tensor<16x8xf32>, tensor<4xf32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{'vo.rms_norm' op expects weight of shape [last dim of input], got input [2, 8] and weight [4]}}
  %0 = vo.rms_norm %x, %w epsilon = 1.0e-6 : tensor<2x8xf32>, tensor<4xf32>
  return
}

// -----

func.func @rms_norm_epsilon(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{'vo.rms_norm' op expects epsilon >= 0, got -1}}
  %0 = vo.rms_norm %x, %w epsilon = -1.0 : tensor<2x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @rope_odd(%x: tensor<1x2x4x7xf32>, %c: tensor<1x1x4x7xf32>) {
  // expected-error @+1 {{'vo.rope' op expects an even last dim, got input [1, 2, 4, 7]}}
  %0 = vo.rope %x, %c, %c : tensor<1x2x4x7xf32>, tensor<1x1x4x7xf32>, tensor<1x1x4x7xf32>
  return
}

// -----

func.func @rope_tables(%x: tensor<1x2x4x8xf32>, %c: tensor<1x1x4x8xf32>, %s: tensor<1x1x3x8xf32>) {
  // expected-error @+1 {{'vo.rope' op expects cos and sin of one type, got 'tensor<1x1x4x8xf32>' and 'tensor<1x1x3x8xf32>'}}
  %0 = vo.rope %x, %c, %s : tensor<1x2x4x8xf32>, tensor<1x1x4x8xf32>, tensor<1x1x3x8xf32>
  return
}

// -----

func.func @rope_broadcast(%x: tensor<1x2x4x8xf32>, %c: tensor<1x1x5x8xf32>) {
  // expected-error @+1 {{'vo.rope' op expects cos/sin [1, 1, 5, 8] to broadcast to the input [1, 2, 4, 8]}}
  %0 = vo.rope %x, %c, %c : tensor<1x2x4x8xf32>, tensor<1x1x5x8xf32>, tensor<1x1x5x8xf32>
  return
}

// -----

func.func @swiglu_types(%g: tensor<2x8xf32>, %u: tensor<2x4xf32>) {
  // expected-error @+1 {{'vo.swiglu' op expects gate and up of one type, got 'tensor<2x8xf32>' and 'tensor<2x4xf32>'}}
  %0 = vo.swiglu %g, %u : tensor<2x8xf32>, tensor<2x4xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<4x6x8xf32>) {
  // expected-error @+1 {{'vo.attention' op expects query, key and value of rank 4 [batch, heads, seq, head_dim], got ranks 3, 3 and 3}}
  %0 = vo.attention %q, %q, %q scale = 1.0 : tensor<4x6x8xf32>, tensor<4x6x8xf32>, tensor<4x6x8xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<1x6x8x16xf32>, %kv: tensor<1x4x8x16xf32>) {
  // expected-error @+1 {{'vo.attention' op expects query heads (6) to be a multiple of key/value heads (4)}}
  %0 = vo.attention %q, %kv, %kv scale = 0.25 causal : tensor<1x6x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<1x4x8x16xf32>, %kv: tensor<1x2x8x8xf32>) {
  // expected-error @+1 {{'vo.attention' op expects query and key head_dim to match, got 16 and 8}}
  %0 = vo.attention %q, %kv, %kv scale = 0.25 : tensor<1x4x8x16xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>
  return
}

// -----

func.func @attention_batch(%q: tensor<2x4x8x16xf32>, %kv: tensor<1x2x8x16xf32>) {
  // expected-error @+1 {{'vo.attention' op expects one batch size, got query [2, 4, 8, 16], key [1, 2, 8, 16], value [1, 2, 8, 16]}}
  %0 = vo.attention %q, %kv, %kv scale = 0.25 : tensor<2x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_causal_lengths(%q: tensor<1x4x8x16xf32>, %kv: tensor<1x2x12x16xf32>) {
  // expected-error @+1 {{'vo.attention' op expects equal query and key sequence lengths when causal, got 8 and 12}}
  %0 = vo.attention %q, %kv, %kv scale = 0.25 causal : tensor<1x4x8x16xf32>, tensor<1x2x12x16xf32>, tensor<1x2x12x16xf32>
  return
}

// -----

func.func @attention_cu_seqlens(%q: tensor<1x4x8x16xf32>, %kv: tensor<1x2x8x16xf32>, %cu: tensor<1xi32>) {
  // expected-error @+1 {{'vo.attention' op expects cu_seqlens of shape [documents + 1] with at least 2 entries, got [1]}}
  %0 = vo.attention %q, %kv, %kv, %cu scale = 0.25 causal : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi32>
  return
}

// -----

func.func @cross_entropy_labels(%logits: tensor<2x4x16xf32>, %labels: tensor<2x5xi64>) {
  // expected-error @+1 {{'vo.cross_entropy' op expects labels shaped like logits without the class axis, got logits [2, 4, 16] and labels [2, 5]}}
  %0 = vo.cross_entropy %logits, %labels : tensor<2x4x16xf32>, tensor<2x5xi64>
  return
}

// -----

func.func @top_k_too_many(%x: tensor<4x3xf32>) {
  // expected-error @+1 {{'vo.top_k' op expects 1 <= k <= 3, got 4}}
  %v, %i = vo.top_k %x k = 4 : tensor<4x3xf32>
  return
}

// -----

func.func @moe_gate_top_k(%x: tensor<4x8xf32>) {
  // expected-error @+1 {{'vo.moe_gate' op expects 1 <= top_k <= 8 experts, got 9}}
  %w, %e = vo.moe_gate %x top_k = 9 : tensor<4x8xf32>
  return
}

// -----

func.func @moe_experts_shapes(%x: tensor<4x6xf32>, %e: tensor<4x2xi64>, %w: tensor<4x2xf32>,
                              %gu: tensor<5x6x6xf32>, %down: tensor<5x6x4xf32>) {
  // expected-error @+1 {{'vo.moe_experts' op expects gate_up [5, 8, 6] and down [5, 6, 4], got [5, 6, 6] and [5, 6, 4]}}
  %y = vo.moe_experts %x, %e, %w, %gu, %down : tensor<4x6xf32>, tensor<4x2xi64>, tensor<4x2xf32>, tensor<5x6x6xf32>, tensor<5x6x4xf32>
  return
}

// -----

func.func @cross_entropy_grad_bf16_of_bf16(%logits: tensor<4x8xbf16>, %labels: tensor<4xi64>,
                                           %dloss: tensor<f32>) -> tensor<4x8xbf16> {
  // expected-error @+1 {{'vo.cross_entropy_grad' op bf16_result needs f32 logits}}
  %0 = vo.cross_entropy_grad %logits, %labels, %dloss bf16_result : tensor<4x8xbf16>, tensor<4xi64>, tensor<f32>
  return %0 : tensor<4x8xbf16>
}

// -----

func.func @moe_keep_projected_ep(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %w: tensor<3x2xf32>,
                                 %gu: tensor<2x32x8xf32>, %d: tensor<2x8x16xf32>) -> tensor<3x8xf32> {
  // expected-error @+2 {{'vo.moe_experts' op keeps no projections under expert parallelism}}
  // expected-error @+1 {{'vo.moe_experts' op failed to infer returned types}}
  %y, %p = vo.moe_experts %x, %ids, %w, %gu, %d keep_projected {group_size = 2 : i64, mesh_axes = ["ep"]} : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<2x32x8xf32>, tensor<2x8x16xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @moe_grad_projected_shape(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %w: tensor<3x2xf32>,
                                    %gu: tensor<4x32x8xf32>, %d: tensor<4x8x16xf32>, %dy: tensor<3x8xf32>,
                                    %p: tensor<3x32xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{'vo.moe_experts_grad' op expects projected of type 'tensor<6x32xf32>', got 'tensor<3x32xf32>'}}
  %g:4 = vo.moe_experts_grad %x, %ids, %w, %gu, %d, %dy projected(%p : tensor<3x32xf32>) : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x32x8xf32>, tensor<4x8x16xf32>
  return %g#0 : tensor<3x8xf32>
}

// -----

func.func @moe_grad_projected_ep(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %w: tensor<3x2xf32>,
                                 %gu: tensor<2x32x8xf32>, %d: tensor<2x8x16xf32>, %dy: tensor<3x8xf32>,
                                 %p: tensor<6x32xf32>) -> tensor<3x8xf32> {
  // expected-error @+2 {{'vo.moe_experts_grad' op reads no projections under expert parallelism}}
  // expected-error @+1 {{'vo.moe_experts_grad' op failed to infer returned types}}
  %g:4 = vo.moe_experts_grad %x, %ids, %w, %gu, %d, %dy projected(%p : tensor<6x32xf32>) {group_size = 2 : i64, mesh_axes = ["ep"]} : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<2x32x8xf32>, tensor<2x8x16xf32>
  return %g#0 : tensor<3x8xf32>
}
