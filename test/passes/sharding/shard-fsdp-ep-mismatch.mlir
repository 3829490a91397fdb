// RUN: veomni-opt %s -vo-shard-fsdp="fsdp=4 ep=4" -verify-diagnostics

// Split over ep=2 by vo-shard-experts, then sharded as if ep were 4.
// expected-error @+1 {{'vo.parameter' op is split over ep by vo-shard-experts, but vo-shard-fsdp runs with ep=4}}
vo.parameter @gate_up : tensor<4x6x2xf32> init #vo.init<ones> {vo.expert_shard = {group_size = 2 : i64}}
func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}) {
  %c = vo.constant dense<1.0> : tensor<f32>
  return %c : tensor<f32>
}
