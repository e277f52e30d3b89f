// Helpers for absl::Status / absl::StatusOr propagation.
//
//   RESTKV_RETURN_IF_ERROR(DoThing());
//   RESTKV_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RESTKV_STATUS_CONCAT_INNER(a, b) a##b
#define RESTKV_STATUS_CONCAT(a, b) RESTKV_STATUS_CONCAT_INNER(a, b)

#define RESTKV_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status restkv_status_ = (expr);          \
    if (!restkv_status_.ok()) return restkv_status_; \
  } while (0)

#define RESTKV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

#define RESTKV_ASSIGN_OR_RETURN(lhs, expr) \
  RESTKV_ASSIGN_OR_RETURN_IMPL(RESTKV_STATUS_CONCAT(restkv_statusor_, __LINE__), lhs, expr)
