vo.parameter @wg1 : tensor<1024x4096xf32> init #vo.init<normal, std = 2.000000e-02>
vo.parameter @wu1 : tensor<1024x4096xf32> init #vo.init<normal, std = 2.000000e-02>
vo.parameter @wd1 : tensor<4096x1024xf32> init #vo.init<normal, std = 2.000000e-02>
vo.parameter @wg2 : tensor<1024x4096xf32> init #vo.init<normal, std = 2.000000e-02>
vo.parameter @wu2 : tensor<1024x4096xf32> init #vo.init<normal, std = 2.000000e-02>
vo.parameter @wd2 : tensor<16x1024xf32> init #vo.init<normal, std = 2.000000e-02>
func.func @forward(%x: tensor<4096x4096xf32>) -> tensor<f32> {
  %wg1 = vo.param @wg1 : tensor<1024x4096xf32>
  %wu1 = vo.param @wu1 : tensor<1024x4096xf32>
  %wd1 = vo.param @wd1 : tensor<4096x1024xf32>
  %wg2 = vo.param @wg2 : tensor<1024x4096xf32>
  %wu2 = vo.param @wu2 : tensor<1024x4096xf32>
  %wd2 = vo.param @wd2 : tensor<16x1024xf32>
  %g1 = vo.matmul %x, %wg1 transpose_rhs : tensor<4096x4096xf32>, tensor<1024x4096xf32>
  %u1 = vo.matmul %x, %wu1 transpose_rhs : tensor<4096x4096xf32>, tensor<1024x4096xf32>
  %h1 = vo.swiglu %g1, %u1 : tensor<4096x1024xf32>, tensor<4096x1024xf32>
  %y1 = vo.matmul %h1, %wd1 transpose_rhs : tensor<4096x1024xf32>, tensor<4096x1024xf32>
  %g2 = vo.matmul %y1, %wg2 transpose_rhs : tensor<4096x4096xf32>, tensor<1024x4096xf32>
  %u2 = vo.matmul %y1, %wu2 transpose_rhs : tensor<4096x4096xf32>, tensor<1024x4096xf32>
  %h2 = vo.swiglu %g2, %u2 : tensor<4096x1024xf32>, tensor<4096x1024xf32>
  %y2 = vo.matmul %h2, %wd2 transpose_rhs : tensor<4096x1024xf32>, tensor<16x1024xf32>
  %l = vo.reduce_sum %y2 axes = [0, 1] : tensor<4096x16xf32>
  return %l : tensor<f32>
}
