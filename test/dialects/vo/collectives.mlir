// RUN: veomni-opt %s -split-input-file -verify-diagnostics | FileCheck %s

vo.parameter @w : tensor<2x5xf32> init #vo.init<zeros> {vo.shard = {elements = 4 : i64, group_size = 3 : i64, mesh_axes = ["fsdp"]}}

// CHECK-LABEL: func @collectives
func.func @collectives(%x: tensor<4x6xf32>) {
  // CHECK: vo.param_shard @w : tensor<4xf32>
  %s = vo.param_shard @w : tensor<4xf32>
  // CHECK: vo.all_gather %{{.*}} over ["fsdp", "sp"] group_size = 4 dim = 1 : tensor<4x6xf32>
  %g = vo.all_gather %x over ["fsdp", "sp"] group_size = 4 dim = 1 : tensor<4x6xf32>
  // CHECK: vo.reduce_scatter %{{.*}} over ["dp"] group_size = 2 dim = 0 : tensor<4x6xf32>
  %r = vo.reduce_scatter %x over ["dp"] group_size = 2 dim = 0 : tensor<4x6xf32>
  // CHECK: vo.all_reduce %{{.*}} over ["dp", "fsdp", "sp"] group_size = 8 : tensor<4x6xf32>
  %a = vo.all_reduce %x over ["dp", "fsdp", "sp"] group_size = 8 : tensor<4x6xf32>
  return
}

// -----

func.func @unknown_axis(%x: tensor<4xf32>) {
  // expected-error @+1 {{'vo.all_reduce' op names unknown mesh axis 'tp' (expected dp, fsdp, sp, ep_fsdp, ep)}}
  %a = vo.all_reduce %x over ["tp"] group_size = 2 : tensor<4xf32>
  return
}

// -----

func.func @axis_order(%x: tensor<4xf32>) {
  // expected-error @+1 {{'vo.all_gather' op expects mesh axes in order dp, fsdp, sp, ep_fsdp, ep, each once}}
  %a = vo.all_gather %x over ["sp", "fsdp"] group_size = 4 dim = 0 : tensor<4xf32>
  return
}

// -----

func.func @mixed_axes(%x: tensor<4xf32>) {
  // expected-error @+1 {{'vo.all_reduce' op mixes fsdp/sp with ep_fsdp/ep, which factor the same ranks}}
  %a = vo.all_reduce %x over ["fsdp", "ep"] group_size = 4 : tensor<4xf32>
  return
}

// -----

func.func @scatter_divides(%x: tensor<6xf32>) {
  // expected-error @+1 {{'vo.reduce_scatter' op expects dim 0 (6) divisible by group_size (4)}}
  %a = vo.reduce_scatter %x over ["fsdp"] group_size = 4 dim = 0 : tensor<6xf32>
  return
}

// -----

vo.parameter @w : tensor<2x5xf32> init #vo.init<zeros>
func.func @unsharded() {
  // expected-error @+1 {{'vo.param_shard' op parameter @w is not sharded (no vo.shard attribute)}}
  %s = vo.param_shard @w : tensor<4xf32>
  return
}

// -----

vo.parameter @w : tensor<2x5xf32> init #vo.init<zeros> {vo.shard = {elements = 4 : i64, group_size = 3 : i64, mesh_axes = ["fsdp"]}}
func.func @wrong_shard() {
  // expected-error @+1 {{'vo.param_shard' op expects a 1-D shard of 4 'f32', got 'tensor<5xf32>'}}
  %s = vo.param_shard @w : tensor<5xf32>
  return
}
