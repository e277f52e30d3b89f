#include "eval/token_ids.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace restkv::eval {

absl::StatusOr<std::vector<int32_t>> ParseTokenIds(std::string_view text, int32_t vocab_size) {
  // Strip one enclosing [ ... ] (after leading / before trailing whitespace).
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  if (b < e && text[b] == '[') {
    if (text[e - 1] != ']')
      return absl::InvalidArgumentError("token ids: '[' without a closing ']'");
    ++b;
    --e;
  }
  std::vector<int32_t> ids;
  size_t i = b;
  while (i < e) {
    if (is_space(text[i]) || text[i] == ',') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < e && !is_space(text[j]) && text[j] != ',') ++j;
    const std::string item(text.substr(i, j - i));
    int32_t id;
    if (!absl::SimpleAtoi(item, &id)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token ids: item %d ('%s') is not an integer", ids.size(), item));
    }
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "token ids: item %d is %d, outside the vocabulary [0, %d)", ids.size(), id, vocab_size));
    }
    ids.push_back(id);
    i = j;
  }
  if (ids.empty()) return absl::InvalidArgumentError("token ids: the list is empty");
  return ids;
}

}  // namespace restkv::eval
