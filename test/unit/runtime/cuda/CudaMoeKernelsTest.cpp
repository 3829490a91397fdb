// PLACEHOLDER
#include "test/unit/runtime/cuda/CudaKernelTestUtil.h"
