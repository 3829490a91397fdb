#include "runtime/kernels/Kernel.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace veomni::runtime {
namespace {

absl::string_view KindName(size_t variant_index) {
  switch (variant_index) {
    case 0: return "an int";
    case 1: return "a float";
    default: return "an int list";
  }
}

absl::Status WrongKind(absl::string_view name, size_t held, absl::string_view wanted) {
  return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' is ",
                                                 KindName(held), ", not ", wanted));
}

absl::Status Missing(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("attribute '", name, "' is not set"));
}

}  // namespace

void KernelAttrs::SetInt(std::string name, int64_t value) {
  values_[std::move(name)] = value;
}

void KernelAttrs::SetFloat(std::string name, double value) {
  values_[std::move(name)] = value;
}

void KernelAttrs::SetInts(std::string name, std::vector<int64_t> values) {
  values_[std::move(name)] = std::move(values);
}

absl::StatusOr<int64_t> KernelAttrs::GetInt(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return Missing(name);
  if (const auto* value = std::get_if<int64_t>(&it->second)) return *value;
  return WrongKind(name, it->second.index(), "an int");
}

absl::StatusOr<double> KernelAttrs::GetFloat(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return Missing(name);
  if (const auto* value = std::get_if<double>(&it->second)) return *value;
  if (const auto* value = std::get_if<int64_t>(&it->second)) {
    return static_cast<double>(*value);
  }
  return WrongKind(name, it->second.index(), "a float");
}

absl::StatusOr<std::vector<int64_t>> KernelAttrs::GetInts(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return Missing(name);
  if (const auto* values = std::get_if<std::vector<int64_t>>(&it->second)) return *values;
  return WrongKind(name, it->second.index(), "an int list");
}

int64_t KernelAttrs::GetIntOr(absl::string_view name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (const auto* value = std::get_if<int64_t>(&it->second)) return *value;
  return fallback;
}

bool KernelAttrs::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

}  // namespace veomni::runtime
