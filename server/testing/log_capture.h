// LogCapture: a temporary file for a test's RequestLogger, and the text
// written to it so far. The file is removed when the capture is destroyed.
#pragma once

#include <cstdio>
#include <string>

namespace restkv::server {

class LogCapture {
 public:
  LogCapture() : file_(std::tmpfile()) {}
  ~LogCapture() {
    if (file_ != nullptr) std::fclose(file_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Where the logger writes; nullptr when no temporary file could be made.
  std::FILE* file() const { return file_; }

  // Everything written so far. Leaves the position at the end, so later
  // writes append (an update stream must be positioned between a read and a
  // write).
  std::string Text() const {
    std::string out;
    if (file_ == nullptr) return out;
    std::fflush(file_);
    std::rewind(file_);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  std::FILE* file_;
};

}  // namespace restkv::server
