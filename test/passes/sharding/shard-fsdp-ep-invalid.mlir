// RUN: veomni-opt %s -split-input-file -vo-shard-fsdp="fsdp=2 ep=4" -verify-diagnostics

// expected-error @+1 {{vo-shard-fsdp: degrees must be >= 1 and ep must divide fsdp*sp, got dp=1 fsdp=2 sp=1 ep=4}}
module {
  func.func @forward_backward() -> (tensor<f32> {vo.name = "loss"}) {
    %c = vo.constant dense<1.0> : tensor<f32>
    return %c : tensor<f32>
  }
}
