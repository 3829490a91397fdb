// RUN: veomni-opt %s -split-input-file -vo-lower-to-vrt -allow-unregistered-dialect -verify-diagnostics | FileCheck %s

// Parameters and state arguments become state reads, state results become
// stores after everything else, attributes become kernel params.
vo.parameter @w : tensor<4x8xf32> init #vo.init<zeros>

// CHECK-LABEL: func.func @step
// CHECK-SAME: (%[[X:[a-z0-9]+]]: tensor<2x8xf32> {vo.name = "x"}) -> (tensor<2x4xf32> {vo.name = "y"})
// CHECK-DAG: %[[ACC:[0-9]+]] = vrt.state "grad:w" : tensor<4x8xf32>
// CHECK-DAG: %[[W:[0-9]+]] = vrt.state "param:w" : tensor<4x8xf32>
// CHECK: %[[Y:[0-9]+]] = vrt.launch "matmul"(%[[X]], %[[W]]) {transpose_rhs = 1 : i64} : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
// CHECK: %[[ONE:[0-9]+]] = vrt.launch "fill"() {value = 1.000000e+00 : f64} : () -> tensor<4x8xf32>
// CHECK: %[[SUM:[0-9]+]] = vrt.launch "add"(%[[ACC]], %[[ONE]]) {} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK: vrt.store "grad:w", %[[SUM]] : tensor<4x8xf32>
// CHECK-NEXT: return %[[Y]]
func.func @step(%x: tensor<2x8xf32> {vo.name = "x"}, %acc: tensor<4x8xf32> {vo.state = "grad:w"})
    -> (tensor<2x4xf32> {vo.name = "y"}, tensor<4x8xf32> {vo.state = "grad:w"}) {
  %w = vo.param @w : tensor<4x8xf32>
  %y = vo.matmul %x, %w transpose_rhs : tensor<2x8xf32>, tensor<4x8xf32>
  %one = vo.constant dense<1.0> : tensor<4x8xf32>
  %sum = vo.add %acc, %one : tensor<4x8xf32>, tensor<4x8xf32>
  return %y, %sum : tensor<2x4xf32>, tensor<4x8xf32>
}

// -----

// Enums as integers, unit attributes as 1, a cast's target type dropped (the
// output dtype says it), non-splat constants kept for the artifact.
// CHECK-LABEL: func.func @params
// CHECK: vrt.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
// CHECK: vrt.launch "cross_entropy"(%{{.*}}, %{{.*}}) {ignore_index = -1 : i64, reduction = 1 : i64}
// CHECK: vrt.launch "cmp"(%{{.*}}, %{{.*}}) {predicate = 1 : i64}
// CHECK: vrt.launch "cast"(%{{.*}}) {} : (tensor<4xi1>) -> tensor<4xf32>
// CHECK: vrt.launch "attention"(%{{.*}}, %{{.*}}, %{{.*}}) {causal = 1 : i64, scale = 2.500000e-01 : f64}
func.func @params(%logits: tensor<4x8xf32>, %labels: tensor<4xi64>, %q: tensor<1x1x2x4xf32>)
    -> (tensor<f32>, tensor<4xf32>, tensor<1x1x2x4xf32>, tensor<2xf32>) {
  %c = vo.constant dense<[1.0, 2.0]> : tensor<2xf32>
  %l = vo.cross_entropy %logits, %labels ignore_index = -1 reduction = sum : tensor<4x8xf32>, tensor<4xi64>
  %m = vo.constant dense<-1> : tensor<i64>
  %v = vo.cmp ne, %labels, %m : tensor<4xi64>, tensor<i64>
  %f = vo.cast %v : tensor<4xi1> to f32
  %a = vo.attention %q, %q, %q scale = 0.25 causal : tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>, tensor<1x1x2x4xf32>
  return %l, %f, %a, %c : tensor<f32>, tensor<4xf32>, tensor<1x1x2x4xf32>, tensor<2xf32>
}

// -----

// Only vo (and func) ops lower.
func.func @foreign(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{cannot be lowered to the runtime}}
  %y = "test.unknown"(%x) : (tensor<4xf32>) -> tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// Each store follows its key's last reader (and its value), not the end of
// the function, so the stored value leaves the arena at once; the function
// still reads every state as it was at its start.
vo.parameter @a : tensor<4xf32> init #vo.init<zeros>
vo.parameter @b : tensor<4xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @update
// CHECK-DAG: %[[A:.*]] = vrt.state "param:a"
// CHECK-DAG: %[[B:.*]] = vrt.state "param:b"
// CHECK: %[[A2:.*]] = vrt.launch "exp"(%[[A]])
// CHECK-NEXT: vrt.store "param:a", %[[A2]]
// CHECK-NEXT: %[[B2:.*]] = vrt.launch "exp"(%[[B]])
// CHECK-NEXT: %[[SUM:.*]] = vrt.launch "add"(%[[B]], %[[B2]])
// CHECK-NEXT: vrt.store "param:b", %[[B2]]
// CHECK-NEXT: return %[[SUM]]
func.func @update() -> (tensor<4xf32> {vo.name = "sum"}, tensor<4xf32> {vo.state = "param:a"}, tensor<4xf32> {vo.state = "param:b"}) {
  %a = vo.param @a : tensor<4xf32>
  %b = vo.param @b : tensor<4xf32>
  %a2 = vo.exp %a : tensor<4xf32>
  %b2 = vo.exp %b : tensor<4xf32>
  %sum = vo.add %b, %b2 : tensor<4xf32>, tensor<4xf32>
  return %sum, %a2, %b2 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// A bf16 copy reads its own state; the bf16 rounding of an adamw's new
// parameter comes out of the adamw launch as one more output.
vo.parameter @e : tensor<4x8xf32> init #vo.init<zeros>
// CHECK-LABEL: func.func @copies
// CHECK:      %[[C:[0-9]+]] = vrt.state "param_bf16:e" : tensor<4x8xbf16>
// CHECK:      %[[W:[0-9]+]] = vrt.launch "cast"(%[[C]])
// CHECK:      %[[U:[0-9]+]]:4 = vrt.launch "adamw"
// CHECK-SAME: -> (tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xbf16>)
// CHECK-NOT:  vrt.launch "cast"
// CHECK:      vrt.store "param_bf16:e", %[[U]]#3 : tensor<4x8xbf16>
// CHECK:      return %[[W]]
func.func @copies(%g: tensor<4x8xf32>, %hyper: tensor<3xf32>, %scale: tensor<f32>)
    -> (tensor<4x8xf32>, tensor<4x8xf32> {vo.state = "param:e"},
        tensor<4x8xbf16> {vo.state = "param_bf16:e"}) {
  %copy = vo.param_bf16 @e : tensor<4x8xbf16>
  %wide = vo.cast %copy : tensor<4x8xbf16> to f32
  %p = vo.param @e : tensor<4x8xf32>
  %u:3 = vo.adamw %p, %g, %g, %g, %hyper, %scale beta1 = 0.9 beta2 = 0.999 eps = 1.0e-8 weight_decay = 0.0 : tensor<4x8xf32>, tensor<3xf32>, tensor<f32>
  %r = vo.cast %u#0 : tensor<4x8xf32> to bf16
  return %wide, %u#0, %r : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xbf16>
}
