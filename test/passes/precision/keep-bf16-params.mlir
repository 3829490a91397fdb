// RUN: veomni-opt %s -vo-keep-bf16-params | FileCheck %s --check-prefix=EXPERTS
// RUN: veomni-opt %s -vo-keep-bf16-params="weights=all" | FileCheck %s --check-prefix=ALL
// RUN: not veomni-opt %s -vo-keep-bf16-params="weights=some" 2>&1 | FileCheck %s --check-prefix=OPTION

// OPTION: vo-keep-bf16-params: weights must be 'experts' or 'all', got 'some'

// The roundings of a weight only MoE kernels read become reads of its kept
// copy (experts); with `all`, every rounding of a parameter does. The
// optimizer step returns each copied parameter's update rounded, into the
// copy's state. Casts of other values stay.
vo.parameter @gate_up : tensor<4x16x8xf32> init #vo.init<zeros>
vo.parameter @down : tensor<4x8x8xf32> init #vo.init<zeros>
vo.parameter @w : tensor<8x8xf32> init #vo.init<zeros>

// EXPERTS-LABEL: func.func @micro_step
// EXPERTS:       %[[GU:.*]] = vo.param_bf16 @gate_up : tensor<4x16x8xbf16>
// EXPERTS:       %[[D:.*]] = vo.param_bf16 @down : tensor<4x8x8xbf16>
// EXPERTS:       vo.moe_experts %{{.*}}, %{{.*}}, %{{.*}}, %[[GU]], %[[D]]
// EXPERTS:       %[[W:.*]] = vo.param @w
// EXPERTS:       vo.cast %[[W]] : tensor<8x8xf32> to bf16
// EXPERTS:       vo.cast %arg0 : tensor<3x8xf32> to bf16
// EXPERTS-NOT:   vo.param @gate_up
// ALL-LABEL:     func.func @micro_step
// ALL:           vo.param_bf16 @gate_up
// ALL:           vo.param_bf16 @down
// ALL:           %[[W:.*]] = vo.param_bf16 @w : tensor<8x8xbf16>
// ALL:           vo.matmul %{{.*}}, %[[W]]
// ALL-NOT:       vo.param @w
func.func @micro_step(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %p: tensor<3x2xf32>)
    -> (tensor<3x8xf32>, tensor<3x8xf32>) {
  %gu = vo.param @gate_up : tensor<4x16x8xf32>
  %gu16 = vo.cast %gu : tensor<4x16x8xf32> to bf16
  %d = vo.param @down : tensor<4x8x8xf32>
  %d16 = vo.cast %d : tensor<4x8x8xf32> to bf16
  %y = vo.moe_experts %x, %ids, %p, %gu16, %d16 : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x16x8xbf16>, tensor<4x8x8xbf16>
  %w = vo.param @w : tensor<8x8xf32>
  %w16 = vo.cast %w : tensor<8x8xf32> to bf16
  %x16 = vo.cast %x : tensor<3x8xf32> to bf16
  %z = vo.matmul %x16, %w16 f32_result : tensor<3x8xbf16>, tensor<8x8xbf16>
  return %y, %z : tensor<3x8xf32>, tensor<3x8xf32>
}

// EXPERTS-LABEL: func.func @optimizer_step
// EXPERTS-SAME:  tensor<4x16x8xbf16> {vo.state = "param_bf16:gate_up"}, tensor<4x8x8xbf16> {vo.state = "param_bf16:down"})
// EXPERTS:       %[[NGU:.*]] = vo.exp %arg0 : tensor<4x16x8xf32>
// EXPERTS:       %[[ND:.*]] = vo.exp %arg1 : tensor<4x8x8xf32>
// EXPERTS:       %[[CGU:.*]] = vo.cast %[[NGU]] : tensor<4x16x8xf32> to bf16
// EXPERTS:       %[[CD:.*]] = vo.cast %[[ND]] : tensor<4x8x8xf32> to bf16
// EXPERTS:       return %[[NGU]], %[[ND]], %{{.*}}, %[[CGU]], %[[CD]]
// ALL-LABEL:     func.func @optimizer_step
// ALL:           {vo.state = "param_bf16:w"}
func.func @optimizer_step(%a: tensor<4x16x8xf32>, %b: tensor<4x8x8xf32>, %c: tensor<8x8xf32>)
    -> (tensor<4x16x8xf32> {vo.state = "param:gate_up"}, tensor<4x8x8xf32> {vo.state = "param:down"},
        tensor<8x8xf32> {vo.state = "param:w"}) {
  %na = vo.exp %a : tensor<4x16x8xf32>
  %nb = vo.exp %b : tensor<4x8x8xf32>
  %nc = vo.exp %c : tensor<8x8xf32>
  return %na, %nb, %nc : tensor<4x16x8xf32>, tensor<4x8x8xf32>, tensor<8x8xf32>
}
