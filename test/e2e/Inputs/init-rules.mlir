// A model whose parameters have init rules instead of values.
vo.parameter @embed : tensor<256x64xf32> init #vo.init<normal, std = 0.02>
vo.parameter @norm : tensor<64xf32> init #vo.init<ones>
vo.parameter @bias : tensor<256xf32> init #vo.init<zeros>
func.func @forward(%ids: tensor<2x8xi64> {vo.name = "input_ids"}, %labels: tensor<2x8xi64> {vo.name = "labels"})
    -> (tensor<f32> {vo.name = "loss"}) {
  %e = vo.param @embed : tensor<256x64xf32>
  %n = vo.param @norm : tensor<64xf32>
  %b = vo.param @bias : tensor<256xf32>
  %x = vo.embedding %e, %ids : tensor<256x64xf32>, tensor<2x8xi64>
  %h = vo.rms_norm %x, %n epsilon = 1.0e-6 : tensor<2x8x64xf32>, tensor<64xf32>
  %logits = vo.matmul %h, %e transpose_rhs : tensor<2x8x64xf32>, tensor<256x64xf32>
  %biased = vo.add %logits, %b : tensor<2x8x256xf32>, tensor<256xf32>
  %loss = vo.cross_entropy %biased, %labels : tensor<2x8x256xf32>, tensor<2x8xi64>
  return %loss : tensor<f32>
}
