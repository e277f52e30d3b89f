// RESTKV_CHECK: invariants that only a programming error can break.
//
// A failed check prints the expression, file, line and any values streamed
// into it, then aborts. It is never used to validate user input or file
// contents: those return absl::Status (see status_macros.h).
//
//   RESTKV_CHECK(ref_count > 0) << "block " << block_id;
//   RESTKV_CHECK_EQ(a.size(), b.size());
#pragma once

#include <sstream>
#include <string_view>

namespace restkv {

class CheckFailure {
 public:
  CheckFailure(const char* expr, const char* file, int line);
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  [[noreturn]] ~CheckFailure();

  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Makes `RESTKV_CHECK(x) << ...` a single void expression.
struct CheckVoidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace restkv

#define RESTKV_CHECK(cond) \
  (cond) ? (void)0 : ::restkv::CheckVoidify() & ::restkv::CheckFailure(#cond, __FILE__, __LINE__)

#define RESTKV_CHECK_OP(a, op, b)                                                                \
  ((a)op(b))                                                                                     \
      ? (void)0                                                                                  \
      : ::restkv::CheckVoidify() & ::restkv::CheckFailure(#a " " #op " " #b, __FILE__, __LINE__) \
                                       << "(" << (a) << " vs " << (b) << ") "

#define RESTKV_CHECK_EQ(a, b) RESTKV_CHECK_OP(a, ==, b)
#define RESTKV_CHECK_NE(a, b) RESTKV_CHECK_OP(a, !=, b)
#define RESTKV_CHECK_LT(a, b) RESTKV_CHECK_OP(a, <, b)
#define RESTKV_CHECK_LE(a, b) RESTKV_CHECK_OP(a, <=, b)
#define RESTKV_CHECK_GT(a, b) RESTKV_CHECK_OP(a, >, b)
#define RESTKV_CHECK_GE(a, b) RESTKV_CHECK_OP(a, >=, b)
