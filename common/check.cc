#include "common/check.h"

#include <cstdio>
#include <cstdlib>

namespace restkv {

CheckFailure::CheckFailure(const char* expr, const char* file, int line) {
  stream_ << file << ":" << line << ": RESTKV_CHECK failed: " << expr << " ";
}

CheckFailure::~CheckFailure() {
  std::fprintf(stderr, "%s\n", stream_.str().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace restkv
