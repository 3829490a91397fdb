// RUN: veomni-opt %s -vo-autodiff -vo-optimizer="beta1=0.8 beta2=0.95 eps=1e-6 weight-decay=0.1 max-grad-norm=2.0 grad-accum=4" | FileCheck %s
// RUN: veomni-opt %s -vo-autodiff -vo-optimizer | FileCheck %s --check-prefix=NOCLIP
// RUN: veomni-opt %s -vo-autodiff -vo-optimizer="grad-accum=1" | FileCheck %s --check-prefix=ONE

vo.parameter @w : tensor<2x3xf32> init #vo.init<normal, std = 0.02>
vo.parameter @b : tensor<3xf32> init #vo.init<zeros>

func.func @forward(%x: tensor<4x2xf32>) -> tensor<f32> {
  %w = vo.param @w : tensor<2x3xf32>
  %b = vo.param @b : tensor<3xf32>
  %y = vo.matmul %x, %w : tensor<4x2xf32>, tensor<2x3xf32>
  %z = vo.add %y, %b : tensor<4x3xf32>, tensor<3xf32>
  %l = vo.reduce_mean %z axes = [0, 1] : tensor<4x3xf32>
  return %l : tensor<f32>
}

// With several micro-batches a step, the micro-step adds each one's
// gradients into the accumulators.
// CHECK-LABEL: func.func @micro_step
// CHECK-SAME: %[[GW:[a-z_0-9]+]]: tensor<2x3xf32> {vo.state = "grad:w"}, %[[GB:[a-z_0-9]+]]: tensor<3xf32> {vo.state = "grad:b"}
// CHECK-SAME: -> (tensor<f32> {vo.name = "loss"}, tensor<2x3xf32> {vo.state = "grad:w"}, tensor<3xf32> {vo.state = "grad:b"})
// CHECK: %[[NW:[a-z_0-9]+]] = vo.add %[[GW]], %{{.*}} : tensor<2x3xf32>, tensor<2x3xf32>
// CHECK: %[[NB:[a-z_0-9]+]] = vo.add %[[GB]], %{{.*}} : tensor<3xf32>, tensor<3xf32>
// CHECK: return %{{.*}}, %[[NW]], %[[NB]]

// The optimizer step: global norm, clipping, AdamW, cleared accumulators.
// CHECK-LABEL: func.func @optimizer_step
// CHECK-SAME: (%[[HYPER:[a-z_0-9]+]]: tensor<3xf32> {vo.name = "hyper"}, %[[G0:[a-z_0-9]+]]: tensor<2x3xf32> {vo.state = "grad:w"}, %[[G1:[a-z_0-9]+]]: tensor<3xf32> {vo.state = "grad:b"}, %[[M0:[a-z_0-9]+]]: tensor<2x3xf32> {vo.state = "exp_avg:w"}, %{{.*}}: tensor<3xf32> {vo.state = "exp_avg:b"}, %[[V0:[a-z_0-9]+]]: tensor<2x3xf32> {vo.state = "exp_avg_sq:w"}, %{{.*}}: tensor<3xf32> {vo.state = "exp_avg_sq:b"})
// CHECK-SAME: -> (tensor<f32> {vo.name = "grad_norm"}, tensor<2x3xf32> {vo.state = "param:w"}, tensor<3xf32> {vo.state = "param:b"}, tensor<2x3xf32> {vo.state = "exp_avg:w"}, tensor<3xf32> {vo.state = "exp_avg:b"}, tensor<2x3xf32> {vo.state = "exp_avg_sq:w"}, tensor<3xf32> {vo.state = "exp_avg_sq:b"}, tensor<2x3xf32> {vo.state = "grad:w"}, tensor<3xf32> {vo.state = "grad:b"})
// CHECK: vo.reduce_sum_squares %[[G0]] axes = [0, 1] : tensor<2x3xf32>
// CHECK: vo.reduce_sum_squares %[[G1]] axes = [0] : tensor<3xf32>
// CHECK: %[[NORM:[a-z_0-9]+]] = vo.sqrt
// CHECK: %[[MAX:[a-z_0-9]+]] = vo.constant dense<2.000000e+00>
// CHECK: %[[COEF:[a-z_0-9]+]] = vo.div %[[MAX]]
// CHECK: %[[SCALE:[a-z_0-9]+]] = vo.minimum %[[COEF]]
// CHECK: %[[W:[a-z_0-9]+]] = vo.param @w
// CHECK: vo.adamw %[[W]], %[[G0]], %[[M0]], %[[V0]], %[[HYPER]], %[[SCALE]] beta1 = 8.000000e-01 beta2 = 0.94999999999999996 eps = 9.9999999999999995E-7 weight_decay = 1.000000e-01
// CHECK: vo.constant dense<0.000000e+00> : tensor<2x3xf32>
// CHECK: return %[[NORM]]

// Without clipping the norm waits for nothing: each adamw also returns its
// gradient's sum of squares (sum_squares), read in the same pass, and no
// reduce_sum_squares makes a second one.
// NOCLIP-LABEL: func.func @optimizer_step
// NOCLIP-NOT: vo.minimum
// NOCLIP-NOT: vo.reduce_sum_squares
// NOCLIP: %{{.*}}, %{{.*}}, %{{.*}}, %[[SW:.*]] = vo.adamw {{.*}} beta1 = 9.000000e-01 beta2 = 0.99899999999999999 eps = 1.000000e-08 weight_decay = 1.000000e-02 {sum_squares}
// NOCLIP: %{{.*}}, %{{.*}}, %{{.*}}, %[[SB:.*]] = vo.adamw {{.*}} {sum_squares}
// NOCLIP: %[[S1:.*]] = vo.add %{{.*}}, %[[SW]]
// NOCLIP: %[[S2:.*]] = vo.add %[[S1]], %[[SB]]
// NOCLIP: %[[NORM:.*]] = vo.sqrt %[[S2]]
// NOCLIP: return %[[NORM]]

// One micro-batch a step (the default): the micro-step stores its gradients
// over the accumulators, which it does not read, and the optimizer step
// leaves them.
// ONE-LABEL: func.func @micro_step
// ONE-NOT: vo.state = "grad:
// ONE-SAME: -> (tensor<f32> {vo.name = "loss"}, tensor<2x3xf32> {vo.state = "grad:w"}, tensor<3xf32> {vo.state = "grad:b"})
// ONE-NOT: vo.add %{{.*}} : tensor<2x3xf32>, tensor<2x3xf32>
// ONE: return
// ONE-LABEL: func.func @optimizer_step
// ONE-SAME: -> (tensor<f32> {vo.name = "grad_norm"}, tensor<2x3xf32> {vo.state = "param:w"}, tensor<3xf32> {vo.state = "param:b"}, tensor<2x3xf32> {vo.state = "exp_avg:w"}, tensor<3xf32> {vo.state = "exp_avg:b"}, tensor<2x3xf32> {vo.state = "exp_avg_sq:w"}, tensor<3xf32> {vo.state = "exp_avg_sq:b"})
// ONE-NOT: vo.constant dense<0.000000e+00> : tensor<2x3xf32>
// ONE: return
