// The kernel interface shared by every backend: a kernel is a plain function
// that reads its inputs and writes outputs the executor has already
// allocated, with the attributes the compiler attached to the launch.

#ifndef VEOMNI_RUNTIME_KERNELS_KERNEL_H
#define VEOMNI_RUNTIME_KERNELS_KERNEL_H

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/base/Tensor.h"

namespace veomni::runtime {

// Named int, float and int-list attributes of one kernel launch.
class KernelAttrs {
 public:
  // Setting a name again replaces its value (and its kind).
  void SetInt(std::string name, int64_t value);
  void SetFloat(std::string name, double value);
  void SetInts(std::string name, std::vector<int64_t> values);

  // NotFound naming the attribute when it is absent; InvalidArgument when it
  // holds another kind. GetFloat also accepts an int attribute, since a
  // compiler may well write `scale = 1` as an integer.
  absl::StatusOr<int64_t> GetInt(absl::string_view name) const;
  absl::StatusOr<double> GetFloat(absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> GetInts(absl::string_view name) const;
  // `fallback` only when absent; an attribute of another kind still counts as
  // set, and yields `fallback` too, so prefer GetInt where that matters.
  int64_t GetIntOr(absl::string_view name, int64_t fallback) const;

  bool Has(absl::string_view name) const;

 private:
  using Value = std::variant<int64_t, double, std::vector<int64_t>>;
  std::map<std::string, Value, std::less<>> values_;
};

using KernelFn = absl::Status (*)(const KernelAttrs& attrs,
                                  absl::Span<const TensorView> inputs,
                                  absl::Span<const TensorView> outputs);

// The CPU kernel registered under `name`, or nullptr if there is none.
const KernelFn* LookupCpuKernel(absl::string_view name);
// Every registered CPU kernel name, in registration order.
std::vector<std::string> CpuKernelNames();

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_KERNELS_KERNEL_H
