// placeholder
#include "KernelTestUtil.h"
