// Test helpers for the CPU kernels: owning tensors, running a kernel through
// the registry, index arithmetic for naive references, and tolerant compares.

#ifndef VEOMNI_TEST_UNIT_RUNTIME_KERNELTESTUTIL_H
#define VEOMNI_TEST_UNIT_RUNTIME_KERNELTESTUTIL_H

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/base/FloatBits.h"
#include "runtime/base/Tensor.h"
#include "runtime/kernels/Kernel.h"

namespace veomni::runtime::testing {

// A tensor that owns its (8-byte aligned, zero-initialized) storage.
class OwnedTensor {
 public:
  OwnedTensor(DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
    int64_t bytes = View().Bytes();
    storage_.assign(static_cast<size_t>((bytes + 7) / 8), 0);
  }

  TensorView View() const {
    return TensorView{const_cast<uint64_t*>(storage_.data()), dtype_, shape_};
  }
  const std::vector<int64_t>& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t NumElements() const { return View().NumElements(); }

  template <typename T>
  T* Data() {
    return reinterpret_cast<T*>(storage_.data());
  }
  template <typename T>
  const T* Data() const {
    return reinterpret_cast<const T*>(storage_.data());
  }
  template <typename T>
  std::vector<T> Values() const {
    return std::vector<T>(Data<T>(), Data<T>() + NumElements());
  }
  template <typename T>
  void SetValues(const std::vector<T>& values) {
    EXPECT_EQ(static_cast<int64_t>(values.size()), NumElements());
    std::memcpy(storage_.data(), values.data(), values.size() * sizeof(T));
  }

 private:
  DType dtype_;
  std::vector<int64_t> shape_;
  std::vector<uint64_t> storage_;
};

template <typename T>
OwnedTensor MakeTensor(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  OwnedTensor tensor(dtype, std::move(shape));
  tensor.SetValues(values);
  return tensor;
}
inline OwnedTensor F32(std::vector<int64_t> shape, const std::vector<float>& values) {
  return MakeTensor(DType::kF32, std::move(shape), values);
}
inline OwnedTensor I64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return MakeTensor(DType::kI64, std::move(shape), values);
}
inline OwnedTensor I32(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  return MakeTensor(DType::kI32, std::move(shape), values);
}
inline OwnedTensor I1(std::vector<int64_t> shape, const std::vector<uint8_t>& values) {
  return MakeTensor(DType::kI1, std::move(shape), values);
}

// A bf16 copy of an f32 tensor (nearest even), and a bf16 tensor's values
// widened to f32 (exact).
inline OwnedTensor RoundedToBf16(const OwnedTensor& tensor) {
  OwnedTensor rounded(DType::kBF16, tensor.shape());
  for (int64_t i = 0; i < tensor.NumElements(); ++i)
    rounded.Data<uint16_t>()[i] = FloatToBFloat16Bits(tensor.Data<float>()[i]);
  return rounded;
}
inline std::vector<float> WidenedBf16(const OwnedTensor& tensor) {
  std::vector<float> values;
  for (int64_t i = 0; i < tensor.NumElements(); ++i)
    values.push_back(BFloat16BitsToFloat(tensor.Data<uint16_t>()[i]));
  return values;
}

inline int64_t NumElementsOf(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

inline std::vector<float> RandomFloats(int64_t count, std::mt19937& rng, float low = -1.0f,
                                       float high = 1.0f) {
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& value : values) value = distribution(rng);
  return values;
}
inline OwnedTensor RandomF32(std::vector<int64_t> shape, std::mt19937& rng, float low = -1.0f,
                             float high = 1.0f) {
  std::vector<float> values = RandomFloats(NumElementsOf(shape), rng, low, high);
  return F32(std::move(shape), values);
}

// Runs the registered CPU kernel `name`.
inline absl::Status RunKernel(const std::string& name, const KernelAttrs& attrs,
                              const std::vector<const OwnedTensor*>& inputs,
                              const std::vector<OwnedTensor*>& outputs) {
  const KernelFn* kernel = LookupCpuKernel(name);
  if (kernel == nullptr) return absl::NotFoundError("no CPU kernel named " + name);
  std::vector<TensorView> input_views, output_views;
  for (const OwnedTensor* input : inputs) input_views.push_back(input->View());
  for (OwnedTensor* output : outputs) output_views.push_back(output->View());
  return (*kernel)(attrs, input_views, output_views);
}

// Row-major multi-index <-> flat index, written out independently of the
// kernels' stride walkers.
inline std::vector<int64_t> Unravel(const std::vector<int64_t>& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}
inline int64_t Ravel(const std::vector<int64_t>& shape, const std::vector<int64_t>& index) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
  return flat;
}
// The flat element of a tensor of `shape` that numpy broadcasting reads for
// `out_index` of the (right-aligned, larger) output.
inline int64_t BroadcastSource(const std::vector<int64_t>& shape,
                               const std::vector<int64_t>& out_index) {
  std::vector<int64_t> index(shape.size());
  size_t skip = out_index.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) index[d] = shape[d] == 1 ? 0 : out_index[skip + d];
  return Ravel(shape, index);
}

// Loose enough for f32 forwards differenced at step 1e-3, tight enough to
// catch any wrong term.
constexpr double kGradAtol = 5e-4;
constexpr double kGradRtol = 1e-2;

inline double WeightedSum(const std::vector<float>& values, const std::vector<float>& weights) {
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) sum += double(values[i]) * weights[i];
  return sum;
}

// d/dx of sum(weights * forward()) by central differences, perturbing each
// element of `x` in place (and restoring it). The divisor is the perturbation
// f32 actually represents.
inline std::vector<double> NumericalGradient(OwnedTensor& x,
                                      const std::function<std::vector<float>()>& forward,
                                      const std::vector<float>& weights, float step = 1e-3f) {
  std::vector<double> gradient;
  for (int64_t i = 0; i < x.NumElements(); ++i) {
    float original = x.Data<float>()[i];
    float plus = original + step;
    float minus = original - step;
    x.Data<float>()[i] = plus;
    double f_plus = WeightedSum(forward(), weights);
    x.Data<float>()[i] = minus;
    double f_minus = WeightedSum(forward(), weights);
    x.Data<float>()[i] = original;
    gradient.push_back((f_plus - f_minus) / (double(plus) - double(minus)));
  }
  return gradient;
}

// Every element within atol + rtol * |expected| (NaN matches only NaN).
template <typename Actual, typename Expected>
::testing::AssertionResult AllClose(const std::vector<Actual>& actual,
                                    const std::vector<Expected>& expected, double atol,
                                    double rtol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  }
  int mismatches = 0;
  std::ostringstream report;
  for (size_t i = 0; i < actual.size(); ++i) {
    double a = static_cast<double>(actual[i]);
    double e = static_cast<double>(expected[i]);
    bool ok = (std::isnan(a) && std::isnan(e)) || a == e ||
              std::fabs(a - e) <= atol + rtol * std::fabs(e);
    if (!ok && mismatches++ < 5) {
      report << "\n  [" << i << "] actual " << a << ", expected " << e;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << actual.size() << " elements differ:" << report.str();
}

}  // namespace veomni::runtime::testing

#endif  // VEOMNI_TEST_UNIT_RUNTIME_KERNELTESTUTIL_H
