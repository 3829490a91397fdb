// RUN: veomni-opt %s -split-input-file -vrt-forward-stores | FileCheck %s
// RUN: veomni-opt %s -split-input-file -vrt-forward-stores -vrt-plan-memory | FileCheck %s --check-prefix=PLAN

// An optimizer update: adamw reads each element of the parameter and the
// moments before writing it, so its results go straight into their states;
// the gradient's zeroing fill, which CSE shares between two gradients and
// which comes before adamw reads the gradient, is cloned per store and
// moved after that read. Only the returned norm is left in the arena.
// CHECK-LABEL: func.func @update
// CHECK: vrt.launch "mul"
// CHECK-NEXT: %[[ZERO_U:.*]] = vrt.launch "fill"
// CHECK-NEXT: vrt.store "grad:u", %[[ZERO_U]] {forwarded}
// CHECK: %[[NEW:.*]]:3 = vrt.launch "adamw"
// CHECK-NEXT: %[[ZERO_W:.*]] = vrt.launch "fill"
// CHECK: vrt.store "param:w", %[[NEW]]#0 {forwarded}
// CHECK: vrt.store "exp_avg:w", %[[NEW]]#1 {forwarded}
// CHECK: vrt.store "exp_avg_sq:w", %[[NEW]]#2 {forwarded}
// CHECK: vrt.store "grad:w", %[[ZERO_W]] {forwarded}
// PLAN-LABEL: func.func @update
// PLAN-SAME: vrt.arena_bytes = 64
// PLAN: "adamw"{{.*}}offsets = array<i64: -1, -1, -1>
// PLAN: "fill"{{.*}}offsets = array<i64: -1>
func.func @update(%hyper: tensor<3xf32>, %scale: tensor<f32>) -> tensor<8xf32> {
  %p = vrt.state "param:w" : tensor<8xf32>
  %g = vrt.state "grad:w" : tensor<8xf32>
  %gu = vrt.state "grad:u" : tensor<8xf32>
  %m = vrt.state "exp_avg:w" : tensor<8xf32>
  %v = vrt.state "exp_avg_sq:w" : tensor<8xf32>
  %zero = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<8xf32>
  %norm = vrt.launch "mul"(%gu, %gu) {} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  vrt.store "grad:u", %zero : tensor<8xf32>
  %new:3 = vrt.launch "adamw"(%p, %g, %m, %v, %hyper, %scale) {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<3xf32>, tensor<f32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  vrt.store "param:w", %new#0 : tensor<8xf32>
  vrt.store "exp_avg:w", %new#1 : tensor<8xf32>
  vrt.store "exp_avg_sq:w", %new#2 : tensor<8xf32>
  vrt.store "grad:w", %zero : tensor<8xf32>
  return %norm : tensor<8xf32>
}

// -----

// An old state value that the function returns is read after every launch.
// CHECK-LABEL: func.func @returned
// CHECK: vrt.store "grad:w", %{{[0-9]+}} : tensor<8xf32>
func.func @returned() -> tensor<8xf32> {
  %g = vrt.state "grad:w" : tensor<8xf32>
  %zero = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<8xf32>
  vrt.store "grad:w", %zero : tensor<8xf32>
  return %g : tensor<8xf32>
}

// -----

// Gradient accumulation: the elementwise add may write the accumulator it
// reads.
// CHECK-LABEL: func.func @accumulate
// CHECK: vrt.store "grad:w", %{{.*}} {forwarded}
func.func @accumulate(%x: tensor<8xf32>) {
  %g = vrt.state "grad:w" : tensor<8xf32>
  %d = vrt.launch "exp"(%x) {} : (tensor<8xf32>) -> tensor<8xf32>
  %sum = vrt.launch "add"(%g, %d) {} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  vrt.store "grad:w", %sum : tensor<8xf32>
  return
}

// -----

// Kept as copies: a matmul reads its input whole, so it may not write it;
// a value read after its producer's start (exp reads the old state after
// the new value exists); a reshape's result (its input's bytes); one value
// in two states.
// CHECK-LABEL: func.func @kept
// CHECK: vrt.store "param:a", %{{[0-9]+}} : tensor<4x4xf32>
// CHECK: vrt.store "param:b", %{{[0-9]+}} : tensor<4x4xf32>
// CHECK: vrt.store "param:c", %{{[0-9]+}} : tensor<16xf32>
// CHECK: vrt.store "param:d", %{{[0-9]+}} : tensor<16xf32>
// CHECK: vrt.store "param:e", %{{[0-9]+}} : tensor<16xf32>
// PLAN-LABEL: func.func @kept
// PLAN-NOT: -1
func.func @kept(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %a = vrt.state "param:a" : tensor<4x4xf32>
  %b = vrt.state "param:b" : tensor<4x4xf32>
  %a2 = vrt.launch "matmul"(%a, %x) {} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  vrt.store "param:a", %a2 : tensor<4x4xf32>
  %b2 = vrt.launch "exp"(%x) {} : (tensor<4x4xf32>) -> tensor<4x4xf32>
  %late = vrt.launch "exp"(%b) {} : (tensor<4x4xf32>) -> tensor<4x4xf32>
  vrt.store "param:b", %b2 : tensor<4x4xf32>
  %flat = vrt.launch "reshape"(%late) {} : (tensor<4x4xf32>) -> tensor<16xf32>
  vrt.store "param:c", %flat : tensor<16xf32>
  %both = vrt.launch "fill"() {value = 1.0 : f64} : () -> tensor<16xf32>
  %twice = vrt.launch "exp"(%both) {} : (tensor<16xf32>) -> tensor<16xf32>
  vrt.store "param:d", %twice : tensor<16xf32>
  vrt.store "param:e", %twice : tensor<16xf32>
  return %late : tensor<4x4xf32>
}

// -----

// A forwarded value that is also returned and read later lives in its state
// for every reader (no arena offset); of a launch's two results only the
// stored one is forwarded.
// CHECK-LABEL: func.func @also_read
// CHECK: %[[PAIR:.*]]:2 = vrt.launch "split_pair"
// CHECK: vrt.store "param:w", %[[PAIR]]#0 {forwarded}
// PLAN-LABEL: func.func @also_read
// PLAN: "split_pair"{{.*}}offsets = array<i64: -1, 0>
func.func @also_read(%x: tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>) {
  %w = vrt.state "param:w" : tensor<8xf32>
  %old = vrt.launch "exp"(%w) {} : (tensor<8xf32>) -> tensor<8xf32>
  %pair:2 = vrt.launch "split_pair"(%x) {} : (tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>)
  vrt.store "param:w", %pair#0 : tensor<8xf32>
  %later = vrt.launch "add"(%pair#0, %pair#1) {} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  return %pair#0, %later : tensor<8xf32>, tensor<8xf32>
}

// -----

// A fill that is also read before the old state's last reader stays where
// it is for that reader; the store gets a clone of it after the last read.
// CHECK-LABEL: func.func @fill_in_use
// CHECK: %[[FIRST:.*]] = vrt.launch "fill"
// CHECK-NEXT: vrt.launch "exp"(%[[FIRST]])
// CHECK-NEXT: vrt.launch "mul"
// CHECK-NEXT: %[[CLONE:.*]] = vrt.launch "fill"
// CHECK-NEXT: vrt.store "grad:w", %[[CLONE]] {forwarded}
func.func @fill_in_use() -> tensor<8xf32> {
  %g = vrt.state "grad:w" : tensor<8xf32>
  %zero = vrt.launch "fill"() {value = 0.0 : f64} : () -> tensor<8xf32>
  %use = vrt.launch "exp"(%zero) {} : (tensor<8xf32>) -> tensor<8xf32>
  %norm = vrt.launch "mul"(%g, %use) {} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32>
  vrt.store "grad:w", %zero : tensor<8xf32>
  return %norm : tensor<8xf32>
}
