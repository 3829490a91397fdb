// RUN: veomni-opt %s -vo-bf16-matmuls="max-operand-bytes=256" -split-input-file | FileCheck %s

// An activation read by matmuls early and late (a forward projection and,
// through a reshape, the weight gradient) and by nothing else: rounded once
// right after its op; the late matmul reshapes the rounding. The parameter
// is rounded right before each of its matmuls.
// CHECK-LABEL: func.func @shared
// CHECK:       %[[X:.*]] = vo.rms_norm
// CHECK-NEXT:  %[[XB:.*]] = vo.cast %[[X]] : tensor<2x4x8xf32> to bf16
// CHECK:       %[[W1:.*]] = vo.cast %arg1 : tensor<6x8xf32> to bf16
// CHECK-NEXT:  %[[Y:.*]] = vo.matmul %[[XB]], %[[W1]] transpose_rhs f32_result : tensor<2x4x8xbf16>, tensor<6x8xbf16>
// CHECK:       %[[XR:.*]] = vo.reshape %[[XB]] to [8, 8] : tensor<2x4x8xbf16>
// CHECK:       vo.matmul %{{.*}}, %[[XR]] transpose_lhs f32_result : tensor<8x6xbf16>, tensor<8x8xbf16>
// CHECK-NOT:   vo.cast %[[X]]
// CHECK:       return
func.func @shared(%x0: tensor<2x4x8xf32>, %w: tensor<6x8xf32>, %g: tensor<8xf32>,
                  %dy: tensor<8x6xf32>) -> (tensor<2x4x6xf32>, tensor<6x8xf32>) {
  %x = vo.rms_norm %x0, %g epsilon = 1.0e-6 : tensor<2x4x8xf32>, tensor<8xf32>
  %y = vo.matmul %x, %w transpose_rhs : tensor<2x4x8xf32>, tensor<6x8xf32>
  %t = vo.exp %y : tensor<2x4x6xf32>
  %u = vo.exp %t : tensor<2x4x6xf32>
  %v = vo.exp %u : tensor<2x4x6xf32>
  %xr = vo.reshape %x to [8, 8] : tensor<2x4x8xf32>
  %dw = vo.matmul %dy, %xr transpose_lhs : tensor<8x6xf32>, tensor<8x8xf32>
  return %v, %dw : tensor<2x4x6xf32>, tensor<6x8xf32>
}

// -----

// A value whose other reader comes late (the f32 value lives to its end
// anyway): rounded right before each matmul.
// CHECK-LABEL: func.func @late_reader
// CHECK:       %[[A:.*]] = vo.exp %arg0
// CHECK-NEXT:  %[[A1:.*]] = vo.cast %[[A]] : tensor<4x4xf32> to bf16
// CHECK-NEXT:  vo.cast %arg1
// CHECK-NEXT:  vo.matmul %[[A1]], %{{.*}} f32_result
// CHECK:       %[[A2:.*]] = vo.cast %[[A]] : tensor<4x4xf32> to bf16
// CHECK-NEXT:  vo.cast %arg1
// CHECK-NEXT:  vo.matmul %[[A2]], %{{.*}} f32_result
// CHECK-NEXT:  vo.add %[[A]]
func.func @late_reader(%x: tensor<4x4xf32>, %w: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %a = vo.exp %x : tensor<4x4xf32>
  %b = vo.matmul %a, %w : tensor<4x4xf32>, tensor<4x4xf32>
  %c = vo.exp %b : tensor<4x4xf32>
  %d = vo.matmul %a, %w : tensor<4x4xf32>, tensor<4x4xf32>
  %e = vo.add %a, %d : tensor<4x4xf32>, tensor<4x4xf32>
  %f = vo.add %c, %e : tensor<4x4xf32>, tensor<4x4xf32>
  return %f : tensor<4x4xf32>
}

// -----

// A matmul with an activation past max-operand-bytes (here 256 bytes: 128
// bf16 elements) stays f32 with both of its operands; bf16 matmuls are left
// alone. A weight past it is rounded all the same (right before its reader):
// the copy is no larger than the parameter, and FSDP then gathers bf16.
vo.parameter @big : tensor<64x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @too_large
// CHECK:       %[[A:.*]] = vo.exp %arg0
// CHECK-NEXT:  %[[B:.*]] = vo.exp %arg1
// CHECK-NEXT:  vo.matmul %[[A]], %[[B]] : tensor<4x64xf32>, tensor<64x4xf32>
// CHECK-NEXT:  vo.matmul %arg2, %arg3 : tensor<2x2xbf16>, tensor<2x2xbf16>
// CHECK-NEXT:  %[[W:.*]] = vo.param @big
// CHECK-NEXT:  %[[X:.*]] = vo.cast %arg4 : tensor<2x64xf32> to bf16
// CHECK-NEXT:  %[[WB:.*]] = vo.cast %[[W]] : tensor<64x4xf32> to bf16
// CHECK-NEXT:  vo.matmul %[[X]], %[[WB]] f32_result : tensor<2x64xbf16>, tensor<64x4xbf16>
func.func @too_large(%a: tensor<4x64xf32>, %b: tensor<64x4xf32>, %c: tensor<2x2xbf16>,
                     %d: tensor<2x2xbf16>, %e: tensor<2x64xf32>)
    -> (tensor<4x4xf32>, tensor<2x2xbf16>, tensor<2x4xf32>) {
  %ea = vo.exp %a : tensor<4x64xf32>
  %eb = vo.exp %b : tensor<64x4xf32>
  %x = vo.matmul %ea, %eb : tensor<4x64xf32>, tensor<64x4xf32>
  %y = vo.matmul %c, %d : tensor<2x2xbf16>, tensor<2x2xbf16>
  %w = vo.param @big : tensor<64x4xf32>
  %z = vo.matmul %e, %w : tensor<2x64xf32>, tensor<64x4xf32>
  return %x, %y, %z : tensor<4x4xf32>, tensor<2x2xbf16>, tensor<2x4xf32>
}

// -----

// SwiGLU's projections, read only by the swiglu and its gradient, return
// bf16; the swiglu computes in bf16 storage, the down projection reads it as
// it is, and the gradient reads the bf16 gate and up beside the f32 dh.
// CHECK-LABEL: func.func @swiglu
// CHECK:       %[[X:.*]] = vo.exp %arg0
// CHECK-NEXT:  %[[XB:.*]] = vo.cast %[[X]] : tensor<4x8xf32> to bf16
// CHECK:       %[[G:.*]] = vo.matmul %[[XB]], %{{.*}} transpose_rhs : tensor<4x8xbf16>, tensor<6x8xbf16>
// CHECK:       %[[U:.*]] = vo.matmul %[[XB]], %{{.*}} transpose_rhs : tensor<4x8xbf16>, tensor<6x8xbf16>
// CHECK-NEXT:  %[[H:.*]] = vo.swiglu %[[G]], %[[U]] : tensor<4x6xbf16>, tensor<4x6xbf16>
// CHECK-NOT:   vo.cast %[[H]]
// CHECK:       vo.matmul %[[H]], %{{.*}} transpose_rhs f32_result : tensor<4x6xbf16>, tensor<8x6xbf16>
// CHECK:       vo.swiglu_grad %[[G]], %[[U]], %arg4 : tensor<4x6xbf16>, tensor<4x6xf32>
func.func @swiglu(%x0: tensor<4x8xf32>, %wg: tensor<6x8xf32>, %wu: tensor<6x8xf32>,
                  %wd: tensor<8x6xf32>, %dh: tensor<4x6xf32>)
    -> (tensor<4x8xf32>, tensor<4x6xf32>, tensor<4x6xf32>) {
  %x = vo.exp %x0 : tensor<4x8xf32>
  %g = vo.matmul %x, %wg transpose_rhs : tensor<4x8xf32>, tensor<6x8xf32>
  %u = vo.matmul %x, %wu transpose_rhs : tensor<4x8xf32>, tensor<6x8xf32>
  %h = vo.swiglu %g, %u : tensor<4x6xf32>, tensor<4x6xf32>
  %y = vo.matmul %h, %wd transpose_rhs : tensor<4x6xf32>, tensor<8x6xf32>
  %dg, %du = vo.swiglu_grad %g, %u, %dh : tensor<4x6xf32>, tensor<4x6xf32>
  return %y, %dg, %du : tensor<4x8xf32>, tensor<4x6xf32>, tensor<4x6xf32>
}

// -----

// A swiglu that something other than a matmul reads stays f32, and so do its
// projections' results.
// CHECK-LABEL: func.func @swiglu_read_elsewhere
// CHECK:       %[[G:.*]] = vo.matmul {{.*}} f32_result
// CHECK:       %[[U:.*]] = vo.matmul {{.*}} f32_result
// CHECK:       vo.swiglu %[[G]], %[[U]] : tensor<4x6xf32>, tensor<4x6xf32>
func.func @swiglu_read_elsewhere(%x: tensor<4x8xf32>, %wg: tensor<6x8xf32>,
                                 %wu: tensor<6x8xf32>) -> tensor<4x6xf32> {
  %g = vo.matmul %x, %wg transpose_rhs : tensor<4x8xf32>, tensor<6x8xf32>
  %u = vo.matmul %x, %wu transpose_rhs : tensor<4x8xf32>, tensor<6x8xf32>
  %h = vo.swiglu %g, %u : tensor<4x6xf32>, tensor<4x6xf32>
  %e = vo.exp %h : tensor<4x6xf32>
  return %e : tensor<4x6xf32>
}

// -----

// A weight's rounding that CSE shared between matmuls (veomni-compile runs
// the pass again after CSE) is made again before each reader: the forward's
// copy does not stay alive until the backward.
vo.parameter @w : tensor<4x4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @separate
// CHECK:       %[[W:.*]] = vo.param @w
// CHECK-NEXT:  %[[A:.*]] = vo.cast %[[W]] : tensor<4x4xf32> to bf16
// CHECK-NEXT:  vo.matmul %{{.*}}, %[[A]] f32_result
// CHECK:       %[[B:.*]] = vo.cast %[[W]] : tensor<4x4xf32> to bf16
// CHECK-NEXT:  vo.matmul %{{.*}}, %[[B]] f32_result
func.func @separate(%x: tensor<4x4xbf16>, %y: tensor<4x4xbf16>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %w = vo.param @w : tensor<4x4xf32>
  %wb = vo.cast %w : tensor<4x4xf32> to bf16
  %a = vo.matmul %x, %wb f32_result : tensor<4x4xbf16>, tensor<4x4xbf16>
  %e = vo.exp %a : tensor<4x4xf32>
  %b = vo.matmul %y, %wb f32_result : tensor<4x4xbf16>, tensor<4x4xbf16>
  return %e, %b : tensor<4x4xf32>, tensor<4x4xf32>
}

// -----

// An f32 parameter's embedding lookup reads the table's bf16 rounding, made
// right before it, and widens the rows back to f32.
vo.parameter @table : tensor<16x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @embedding_table
// CHECK:       %[[T:.*]] = vo.param @table
// CHECK-NEXT:  %[[TB:.*]] = vo.cast %[[T]] : tensor<16x8xf32> to bf16
// CHECK-NEXT:  %[[R:.*]] = vo.embedding %[[TB]], %arg0 : tensor<16x8xbf16>, tensor<2x4xi64>
// CHECK-NEXT:  %[[RF:.*]] = vo.cast %[[R]] : tensor<2x4x8xbf16> to f32
// CHECK-NEXT:  vo.exp %[[RF]]
// An activation table stays as it is.
// CHECK-NEXT:  %[[A:.*]] = vo.exp %arg1
// CHECK-NEXT:  vo.embedding %[[A]], %arg0 : tensor<16x8xf32>, tensor<2x4xi64>
func.func @embedding_table(%ids: tensor<2x4xi64>, %t: tensor<16x8xf32>)
    -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>) {
  %w = vo.param @table : tensor<16x8xf32>
  %x = vo.embedding %w, %ids : tensor<16x8xf32>, tensor<2x4xi64>
  %y = vo.exp %x : tensor<2x4x8xf32>
  %a = vo.exp %t : tensor<16x8xf32>
  %z = vo.embedding %a, %ids : tensor<16x8xf32>, tensor<2x4xi64>
  return %y, %z : tensor<2x4x8xf32>, tensor<2x4x8xf32>
}

// -----

// The loss gradient over the vocabulary, past max-operand-bytes but read
// only by matmuls (through a reshape): it returns its bf16 rounding itself,
// and both the input gradient and the weight gradient multiply bf16.
vo.parameter @head : tensor<32x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @loss_gradient
// CHECK:       %[[G:.*]] = vo.cross_entropy_grad %arg0, %arg1, %arg2 bf16_result
// CHECK-NOT:   vo.cross_entropy_grad
// CHECK:       %[[W:.*]] = vo.param @head
// CHECK-NEXT:  %[[WB:.*]] = vo.cast %[[W]] : tensor<32x8xf32> to bf16
// CHECK-NEXT:  vo.matmul %[[G]], %[[WB]] f32_result : tensor<8x32xbf16>, tensor<32x8xbf16>
// CHECK:       %[[GR:.*]] = vo.reshape %[[G]] to [2, 4, 32] : tensor<8x32xbf16>
// CHECK:       vo.matmul %[[GR]], %{{.*}} transpose_lhs f32_result : tensor<2x4x32xbf16>, tensor<2x4x8xbf16>
func.func @loss_gradient(%logits: tensor<8x32xf32>, %labels: tensor<8xi64>, %dloss: tensor<f32>,
                         %x: tensor<2x4x8xf32>) -> (tensor<8x8xf32>, tensor<2x32x8xf32>) {
  %g = vo.cross_entropy_grad %logits, %labels, %dloss : tensor<8x32xf32>, tensor<8xi64>, tensor<f32>
  %w = vo.param @head : tensor<32x8xf32>
  %dx = vo.matmul %g, %w : tensor<8x32xf32>, tensor<32x8xf32>
  %gr = vo.reshape %g to [2, 4, 32] : tensor<8x32xf32>
  %dw = vo.matmul %gr, %x transpose_lhs : tensor<2x4x32xf32>, tensor<2x4x8xf32>
  return %dx, %dw : tensor<8x8xf32>, tensor<2x32x8xf32>
}

// -----

// Another reader of the loss gradient (or a matmul kept f32 by its other
// operand) keeps it f32, and its large matmuls with it.
vo.parameter @head2 : tensor<32x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @loss_gradient_kept
// CHECK:       %[[G:.*]] = vo.cross_entropy_grad %arg0, %arg1, %arg2 :
// CHECK:       vo.matmul %[[G]], %{{.*}} : tensor<8x32xf32>, tensor<32x8xf32>
// CHECK:       vo.exp %[[G]]
// CHECK:       %[[H:.*]] = vo.cross_entropy_grad %arg0, %arg1, %arg2 :
// CHECK:       vo.matmul %[[H]], %{{.*}} : tensor<8x32xf32>, tensor<32x8xf32>
// CHECK:       vo.matmul %[[H]], %{{.*}} transpose_lhs : tensor<8x32xf32>, tensor<8x64xf32>
// CHECK-NOT:   bf16_result
func.func @loss_gradient_kept(%logits: tensor<8x32xf32>, %labels: tensor<8xi64>,
                              %dloss: tensor<f32>, %big: tensor<8x64xf32>)
    -> (tensor<8x8xf32>, tensor<8x32xf32>, tensor<8x8xf32>, tensor<32x64xf32>) {
  %g = vo.cross_entropy_grad %logits, %labels, %dloss : tensor<8x32xf32>, tensor<8xi64>, tensor<f32>
  %w = vo.param @head2 : tensor<32x8xf32>
  %dx = vo.matmul %g, %w : tensor<8x32xf32>, tensor<32x8xf32>
  %e = vo.exp %g : tensor<8x32xf32>
  %h = vo.cross_entropy_grad %logits, %labels, %dloss : tensor<8x32xf32>, tensor<8xi64>, tensor<f32>
  %dx2 = vo.matmul %h, %w : tensor<8x32xf32>, tensor<32x8xf32>
  %b = vo.exp %big : tensor<8x64xf32>
  %dw2 = vo.matmul %h, %b transpose_lhs : tensor<8x32xf32>, tensor<8x64xf32>
  return %dx, %e, %dx2, %dw2 : tensor<8x8xf32>, tensor<8x32xf32>, tensor<8x8xf32>, tensor<32x64xf32>
}

// -----

// Expert weights that are f32 parameters are rounded right before each MoE
// kernel; sizes the GPU kernel cannot read in place (not multiples of 8)
// keep f32 weights, which the kernel rounds into padded copies itself.
vo.parameter @gate_up : tensor<4x32x8xf32> init #vo.init<zeros>
vo.parameter @down : tensor<4x8x16xf32> init #vo.init<zeros>
vo.parameter @odd_gate_up : tensor<4x12x8xf32> init #vo.init<zeros>
vo.parameter @odd_down : tensor<4x8x6xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @experts
// CHECK:       %[[GU:.*]] = vo.cast %{{.*}} : tensor<4x32x8xf32> to bf16
// CHECK-NEXT:  %[[D:.*]] = vo.cast %{{.*}} : tensor<4x8x16xf32> to bf16
// CHECK-NEXT:  vo.moe_experts %arg0, %arg1, %arg2, %[[GU]], %[[D]] : {{.*}}, tensor<4x32x8xbf16>, tensor<4x8x16xbf16>
// CHECK:       vo.moe_experts %arg0, %arg1, %arg2, %{{.*}}, %{{.*}} : {{.*}}, tensor<4x12x8xf32>, tensor<4x8x6xf32>
func.func @experts(%x: tensor<3x8xf32>, %ids: tensor<3x2xi64>, %p: tensor<3x2xf32>)
    -> (tensor<3x8xf32>, tensor<3x8xf32>) {
  %gu = vo.param @gate_up : tensor<4x32x8xf32>
  %d = vo.param @down : tensor<4x8x16xf32>
  %y = vo.moe_experts %x, %ids, %p, %gu, %d : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x32x8xf32>, tensor<4x8x16xf32>
  %ogu = vo.param @odd_gate_up : tensor<4x12x8xf32>
  %od = vo.param @odd_down : tensor<4x8x6xf32>
  %z = vo.moe_experts %x, %ids, %p, %ogu, %od : tensor<3x8xf32>, tensor<3x2xi64>, tensor<3x2xf32>, tensor<4x12x8xf32>, tensor<4x8x6xf32>
  return %y, %z : tensor<3x8xf32>, tensor<3x8xf32>
}
