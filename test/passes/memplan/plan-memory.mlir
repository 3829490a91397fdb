// RUN: veomni-opt %s -split-input-file -vrt-plan-memory | FileCheck %s

// A chain a -> b -> c -> d of 256-byte tensors: a dies when b is made, so c
// reuses a's slot, d reuses b's; a kernel's output never overlaps its input.
// CHECK-LABEL: func.func @chain
// CHECK-SAME: vrt.arena_bytes = 512
// CHECK: "fill"() {value = 1.000000e+00 : f64} {offsets = array<i64: [[A:[0-9]+]]>}
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[B:[0-9]+]]>}
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A]]>}
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[B]]>}
func.func @chain() -> tensor<64xf32> {
  %a = vrt.launch "fill"() {value = 1.0 : f64} : () -> tensor<64xf32>
  %b = vrt.launch "exp"(%a) {} : (tensor<64xf32>) -> tensor<64xf32>
  %c = vrt.launch "exp"(%b) {} : (tensor<64xf32>) -> tensor<64xf32>
  %d = vrt.launch "exp"(%c) {} : (tensor<64xf32>) -> tensor<64xf32>
  return %d : tensor<64xf32>
}

// -----

// Everything alive at once: the peak is the sum, sizes rounded up to 64.
// 100 f32 = 400 B -> 448; 10 f32 = 40 B -> 64; the largest goes first.
// CHECK-LABEL: func.func @all_live
// CHECK-SAME: vrt.arena_bytes = 576
// CHECK: "fill"() {value = 0.000000e+00 : f64} {offsets = array<i64: 448>}
// CHECK: "fill"() {value = 0.000000e+00 : f64} {offsets = array<i64: 0>}
// CHECK: "fill"() {value = 0.000000e+00 : f64} {offsets = array<i64: 512>}
func.func @all_live() -> (tensor<10xf32>, tensor<100xf32>, tensor<10xf32>) {
  %a = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<10xf32>
  %b = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<100xf32>
  %c = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<10xf32>
  return %a, %b, %c : tensor<10xf32>, tensor<100xf32>, tensor<10xf32>
}

// -----

// State, inputs and constants live outside the arena; i1 takes a byte.
// CHECK-LABEL: func.func @outside_arena
// CHECK-SAME: vrt.arena_bytes = 64
// CHECK: "cmp"(%{{.*}}, %{{.*}}) {predicate = 0 : i64} {offsets = array<i64: 0>}
func.func @outside_arena(%x: tensor<8xf32>) -> tensor<8xi1> {
  %s = vrt.state "param:w" : tensor<8xf32>
  %c = vrt.constant dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]> : tensor<8xf32>
  %m = vrt.launch "cmp"(%s, %x) {predicate = 0 : i64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xi1>
  return %m : tensor<8xi1>
}

// -----

// A reshape's result is its input's bytes: the same offset, no new slot, and
// the input's slot stays taken until the reshaped value's last use.
// CHECK-LABEL: func.func @reshape_aliases
// CHECK-SAME: vrt.arena_bytes = 512
// CHECK: "fill"() {value = 1.000000e+00 : f64} {offsets = array<i64: [[A:[0-9]+]]>}
// CHECK: "reshape"(%{{.*}}) {} {offsets = array<i64: [[A]]>}
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[E:[0-9]+]]>}
// CHECK: "reshape"(%{{.*}}) {} {offsets = array<i64: [[E]]>}
func.func @reshape_aliases() -> tensor<64xf32> {
  %a = vrt.launch "fill"() {value = 1.0 : f64} : () -> tensor<64xf32>
  %r = vrt.launch "reshape"(%a) {} : (tensor<64xf32>) -> tensor<8x8xf32>
  %e = vrt.launch "exp"(%r) {} : (tensor<8x8xf32>) -> tensor<8x8xf32>
  %f = vrt.launch "reshape"(%e) {} : (tensor<8x8xf32>) -> tensor<64xf32>
  return %f : tensor<64xf32>
}

// -----

// A collective over two ranks runs beside the kernels after it: its input
// stays allocated until its result's first reader (where the runtime waits
// for it), so the exp in between does not take the input's bytes (A). Over
// one rank nothing runs aside, and that exp reuses them.
// CHECK-LABEL: func.func @gather_input
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A:[0-9]+]]>}
// CHECK: "all_gather"
// CHECK-NOT: offsets = array<i64: [[A]]>
// CHECK: "exp"(%{{.*}}) {} {offsets
// CHECK: "mul"
// CHECK-LABEL: func.func @gather_input_one_rank
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A:[0-9]+]]>}
// CHECK: "all_gather"
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A]]>}
func.func @gather_input(%x: tensor<64xf32>) -> tensor<128xf32> {
  %a = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %g = vrt.launch "all_gather"(%a) {dim = 0 : i64, group_size = 2 : i64, mesh_axes = 2 : i64} : (tensor<64xf32>) -> tensor<128xf32>
  %b = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %c = vrt.launch "concat"(%b, %b) {axis = 0 : i64} : (tensor<64xf32>, tensor<64xf32>) -> tensor<128xf32>
  %d = vrt.launch "mul"(%g, %c) {} : (tensor<128xf32>, tensor<128xf32>) -> tensor<128xf32>
  return %d : tensor<128xf32>
}
func.func @gather_input_one_rank(%x: tensor<64xf32>) -> tensor<64xf32> {
  %a = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %g = vrt.launch "all_gather"(%a) {dim = 0 : i64, group_size = 1 : i64, mesh_axes = 2 : i64} : (tensor<64xf32>) -> tensor<64xf32>
  %b = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %d = vrt.launch "mul"(%g, %b) {} : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %d : tensor<64xf32>
}

// -----

// A reduce-scatter whose result nothing here reads (returned: a gradient
// shard) keeps its input until the next reduce-scatter is issued: the first
// input's bytes (A) are not reused by the exp between the two, and the
// second input's (B) stay until the end.
// CHECK-LABEL: func.func @scatter_inputs
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A:[0-9]+]]>}
// CHECK: "reduce_scatter"
// CHECK-NOT: offsets = array<i64: [[A]]>
// CHECK: "reduce_scatter"
// CHECK: "exp"(%{{.*}}) {} {offsets = array<i64: [[A]]>}
func.func @scatter_inputs(%x: tensor<64xf32>) -> (tensor<32xf32>, tensor<32xf32>, tensor<64xf32>) {
  %a = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %r = vrt.launch "reduce_scatter"(%a) {dim = 0 : i64, group_size = 2 : i64, mesh_axes = 2 : i64} : (tensor<64xf32>) -> tensor<32xf32>
  %b = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  %s = vrt.launch "reduce_scatter"(%b) {dim = 0 : i64, group_size = 2 : i64, mesh_axes = 2 : i64} : (tensor<64xf32>) -> tensor<32xf32>
  %c = vrt.launch "exp"(%x) {} : (tensor<64xf32>) -> tensor<64xf32>
  return %r, %s, %c : tensor<32xf32>, tensor<32xf32>, tensor<64xf32>
}
