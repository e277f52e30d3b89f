// The request fields each POST route reads, and the warning for the rest.
//
// OpenAI's clients send fields restkv has no use for (metadata, store,
// service_tier, ...), and other servers' extensions arrive too. vLLM ignores
// a field it does not define and logs a warning naming it; restkv does the
// same: the routes ask UnknownFields() which top-level fields of a body the
// parsers never read, and IgnoredFieldWarnings logs each name once per
// route at warning level, so a client's typo ("max_token") is visible in
// the log without flooding it. Fields restkv defines but refuses (best_of >
// 1, a non-empty suffix, tools) stay 400s in openai_protocol.cc.
//
// The lists must name every field openai_protocol.cc and
// structured_fields.cc read (known_fields_test.cc checks the ones it can).
//
// Thread safety: UnknownFields is pure; IgnoredFieldWarnings is thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/json.h"
#include "server/request_log.h"

namespace restkv::server {

enum class FieldSet { kCompletion, kChat, kTokenize, kDetokenize };

// Top-level members of `body` (a JSON object) the route's parser does not
// read, in name order.
std::vector<std::string> UnknownFields(const Json& body, FieldSet set);

class IgnoredFieldWarnings {
 public:
  explicit IgnoredFieldWarnings(RequestLogger* log) : log_(log) {}

  // Logs "WARNING <route>: ignoring unknown request field '<name>'" for each
  // name not warned about before on this route. Returns how many lines it logged.
  int Note(std::string_view route, const std::vector<std::string>& fields);

 private:
  RequestLogger* log_;
  std::mutex mu_;
  absl::flat_hash_set<std::string> warned_;  // "<route> <field>"
};

}  // namespace restkv::server
