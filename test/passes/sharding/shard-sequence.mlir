// RUN: veomni-opt %s -split-input-file -vo-shard-sequence="sp=4" -verify-diagnostics | FileCheck %s

// A causal GQA attention with 2 kv heads on 4 ranks: inputs become 8 of the
// 32 positions; the RoPE tables this rank's slice; kv heads are replicated
// to 4 before the all-to-all; the output goes back to the local chunk.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[IDS:[a-z0-9]+]]: tensor<1x8xi64> {vo.name = "input_ids"})
// CHECK: %[[X:[0-9]+]] = vo.embedding %{{[0-9]+}}, %[[IDS]] : tensor<256x16xf32>, tensor<1x8xi64>
// CHECK: %[[QR:[0-9]+]] = vo.reshape %[[X]] to [1, 8, 4, 4] : tensor<1x8x16xf32>
// CHECK: %[[Q:[0-9]+]] = vo.transpose %[[QR]] perm = [0, 2, 1, 3] : tensor<1x8x4x4xf32>
// CHECK: %[[COS:[0-9]+]] = vo.shard_slice %{{[0-9]+}} over ["sp"] group_size = 4 dim = 2 : tensor<1x1x32x4xf32>
// CHECK: %[[SIN:[0-9]+]] = vo.shard_slice %{{[0-9]+}} over ["sp"] group_size = 4 dim = 2 : tensor<1x1x32x4xf32>
// CHECK: %[[ROT:[0-9]+]] = vo.rope %[[Q]], %[[COS]], %[[SIN]] : tensor<1x4x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>
// CHECK: %[[QA:[0-9]+]] = vo.all_to_all %[[ROT]] over ["sp"] group_size = 4 split_dim = 1 concat_dim = 2
// CHECK: vo.reshape %{{[0-9]+}} to [1, 2, 1, 8, 4]
// CHECK: vo.broadcast_to %{{[0-9]+}} to [1, 2, 2, 8, 4]
// CHECK: %[[KR:[0-9]+]] = vo.reshape %{{[0-9]+}} to [1, 4, 8, 4]
// CHECK: %[[K:[0-9]+]] = vo.all_to_all %[[KR]] over ["sp"] group_size = 4 split_dim = 1 concat_dim = 2
// CHECK: %[[V:[0-9]+]] = vo.all_to_all %{{[0-9]+}} over ["sp"] group_size = 4 split_dim = 1 concat_dim = 2
// CHECK: %[[A:[0-9]+]] = vo.attention %[[QA]], %[[K]], %[[V]] scale = 5.000000e-01 causal : tensor<1x1x32x4xf32>, tensor<1x1x32x4xf32>, tensor<1x1x32x4xf32>
// CHECK: %[[BACK:[0-9]+]] = vo.all_to_all %[[A]] over ["sp"] group_size = 4 split_dim = 2 concat_dim = 1 : tensor<1x1x32x4xf32>
// CHECK: vo.transpose %[[BACK]] perm = [0, 2, 1, 3] : tensor<1x4x8x4xf32>
// CHECK: vo.reshape %{{[0-9]+}} to [1, 8, 16] : tensor<1x8x4x4xf32>
// CHECK: vo.cross_entropy %{{[0-9]+}}, %[[IDS]] : tensor<1x8x256xf32>, tensor<1x8xi64>
vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
vo.parameter @wk : tensor<8x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %wk = vo.param @wk : tensor<8x16xf32>
  %cos = vo.constant dense<0.5> : tensor<1x1x32x4xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x32xi64>
  %q0 = vo.reshape %x to [1, 32, 4, 4] : tensor<1x32x16xf32>
  %q = vo.transpose %q0 perm = [0, 2, 1, 3] : tensor<1x32x4x4xf32>
  %qr = vo.rope %q, %cos, %cos : tensor<1x4x32x4xf32>, tensor<1x1x32x4xf32>, tensor<1x1x32x4xf32>
  %k0 = vo.matmul %x, %wk transpose_rhs : tensor<1x32x16xf32>, tensor<8x16xf32>
  %k1 = vo.reshape %k0 to [1, 32, 2, 4] : tensor<1x32x8xf32>
  %k = vo.transpose %k1 perm = [0, 2, 1, 3] : tensor<1x32x2x4xf32>
  %a = vo.attention %qr, %k, %k scale = 0.5 causal : tensor<1x4x32x4xf32>, tensor<1x2x32x4xf32>, tensor<1x2x32x4xf32>
  %o = vo.transpose %a perm = [0, 2, 1, 3] : tensor<1x4x32x4xf32>
  %h = vo.reshape %o to [1, 32, 16] : tensor<1x32x4x4xf32>
  %logits = vo.matmul %h, %e transpose_rhs : tensor<1x32x16xf32>, tensor<256x16xf32>
  %l = vo.cross_entropy %logits, %ids : tensor<1x32x256xf32>, tensor<1x32xi64>
  return %l : tensor<f32>
}

// -----

// The label shift: each chunk's last label is the next rank's first label
// (the fill on the last rank).
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[IDS:[a-z0-9]+]]: tensor<2x8xi64> {vo.name = "input_ids"}, %[[LABELS:[a-z0-9]+]]: tensor<2x8xi64> {vo.name = "labels"})
// CHECK: %[[FIRST:[0-9]+]] = vo.slice %[[LABELS]] start = [0, 0] limit = [2, 1] stride = [1, 1]
// CHECK: %[[FIRSTS:[0-9]+]] = vo.all_gather %[[FIRST]] over ["sp"] group_size = 4 dim = 1 : tensor<2x1xi64>
// CHECK: %[[AFTER:[0-9]+]] = vo.slice %[[FIRSTS]] start = [0, 1] limit = [2, 4] stride = [1, 1]
// CHECK: %[[CANDIDATES:[0-9]+]] = vo.concat %[[AFTER]], %{{.*}} axis = 1 : tensor<2x3xi64>, tensor<2x1xi64>
// CHECK: %[[NEXT:[0-9]+]] = vo.shard_slice %[[CANDIDATES]] over ["sp"] group_size = 4 dim = 1 : tensor<2x4xi64>
// CHECK: %[[REST:[0-9]+]] = vo.slice %[[LABELS]] start = [0, 1] limit = [2, 8] stride = [1, 1]
// CHECK: %[[SHIFTED:[0-9]+]] = vo.concat %[[REST]], %[[NEXT]] axis = 1 : tensor<2x7xi64>, tensor<2x1xi64>
// CHECK: vo.cross_entropy %{{.*}}, %[[SHIFTED]] : tensor<2x8x256xf32>, tensor<2x8xi64>
vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<2x32xi64> {vo.name = "input_ids"}, %labels: tensor<2x32xi64> {vo.name = "labels"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %fill = vo.constant dense<-100> : tensor<2x1xi64>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<2x32xi64>
  %logits = vo.matmul %x, %e transpose_rhs : tensor<2x32x16xf32>, tensor<256x16xf32>
  %p = vo.concat %labels, %fill axis = 1 : tensor<2x32xi64>, tensor<2x1xi64>
  %shifted = vo.slice %p start = [0, 1] limit = [2, 33] stride = [1, 1] : tensor<2x33xi64>
  %l = vo.cross_entropy %logits, %shifted : tensor<2x32x256xf32>, tensor<2x32xi64>
  return %l : tensor<f32>
}

// -----

vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x32xi64>
  // expected-error @+1 {{'vo.softmax' op under sp=4: mixes sequence positions; not supported by vo-shard-sequence}}
  %s = vo.softmax %x axis = 1 : tensor<1x32x16xf32>
  %l = vo.reduce_sum %s axes = [0, 1, 2] : tensor<1x32x16xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @p : tensor<32x16xf32> init #vo.init<zeros>
vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %p = vo.param @p : tensor<32x16xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x32xi64>
  // expected-error @+1 {{'vo.add' op under sp=4: combines the sequence with a non-constant value indexed by position; only constant tables can be split}}
  %y = vo.add %x, %p : tensor<1x32x16xf32>, tensor<32x16xf32>
  %l = vo.reduce_sum %y axes = [0, 1, 2] : tensor<1x32x16xf32>
  return %l : tensor<f32>
}

// -----

vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
// expected-error @+1 {{sp=4 does not divide the sequence length 30}}
func.func @forward(%ids: tensor<1x30xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x30xi64>
  %l = vo.reduce_sum %x axes = [0, 1, 2] : tensor<1x30x16xf32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{vo-shard-sequence: @forward has no input named 'input_ids'}}
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "tokens"}) -> (tensor<f32> {vo.name = "loss"}) {
  %c = vo.constant dense<1.0> : tensor<f32>
  return %c : tensor<f32>
}

// -----

// Splitting the sequence over two dims would make a rank's chunk a strided,
// not contiguous, block of the global tensor.
vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x32xi64>
  // expected-error @+1 {{'vo.reshape' op under sp=4: reshapes the sequence across dims}}
  %r = vo.reshape %x to [1, 4, 8, 16] : tensor<1x32x16xf32>
  %l = vo.reduce_sum %r axes = [0, 1, 2, 3] : tensor<1x4x8x16xf32>
  return %l : tensor<f32>
}

// -----

// Merging the sequence with an inner dim would leave it outermost in the
// merged dim, which later ops cannot track.
vo.parameter @e : tensor<256x16xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<1x32xi64> {vo.name = "input_ids"}) -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @e : tensor<256x16xf32>
  %x = vo.embedding %e, %ids : tensor<256x16xf32>, tensor<1x32xi64>
  // expected-error @+1 {{'vo.reshape' op under sp=4: reshapes the sequence across dims}}
  %r = vo.reshape %x to [1, 512] : tensor<1x32x16xf32>
  %l = vo.reduce_sum %r axes = [0, 1] : tensor<1x512xf32>
  return %l : tensor<f32>
}
