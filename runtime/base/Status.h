// Status propagation for the runtime. Abseil's LTS release does not export
// RETURN_IF_ERROR / ASSIGN_OR_RETURN, so the runtime carries its own.

#ifndef VEOMNI_RUNTIME_BASE_STATUS_H
#define VEOMNI_RUNTIME_BASE_STATUS_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VEOMNI_STATUS_CONCAT_INNER(a, b) a##b
#define VEOMNI_STATUS_CONCAT(a, b) VEOMNI_STATUS_CONCAT_INNER(a, b)

// Returns the status of `expr` from the enclosing function if it is not OK.
#define VEOMNI_RETURN_IF_ERROR(expr)                \
  do {                                              \
    ::absl::Status veomni_status_ = (expr);         \
    if (!veomni_status_.ok()) return veomni_status_; \
  } while (0)

// Declares or assigns `lhs` from the value of the StatusOr `expr`, or returns
// its error from the enclosing function.
#define VEOMNI_ASSIGN_OR_RETURN(lhs, expr) \
  VEOMNI_ASSIGN_OR_RETURN_IMPL(VEOMNI_STATUS_CONCAT(veomni_statusor_, __LINE__), lhs, expr)

#define VEOMNI_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // VEOMNI_RUNTIME_BASE_STATUS_H
