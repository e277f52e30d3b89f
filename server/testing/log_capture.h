// LogCapture: a temporary file for a test's RequestLogger, and the text
// written to it so far. The file is removed when the capture is destroyed.
#pragma once

#include <unistd.h>

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

  // Everything written so far. Reads with pread, which leaves the stream's
  // position alone: the server's threads may still be writing (a rewind
  // here once let a late log line overwrite the file's start).
  std::string Text() const {
    std::string out;
    if (file_ == nullptr) return out;
    std::fflush(file_);
    const int fd = fileno(file_);
    char buf[4096];
    off_t offset = 0;
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, offset)) > 0) {
      out.append(buf, static_cast<size_t>(n));
      offset += n;
    }
    return out;
  }

 private:
  std::FILE* file_;
};

}  // namespace restkv::server
