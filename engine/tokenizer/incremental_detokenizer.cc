#include "engine/tokenizer/incremental_detokenizer.h"

#include "engine/tokenizer/utf8.h"

namespace restkv::engine {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, StripLeadingSpace strip,
                                               bool render_special, bool spaces_between_special)
    : tok_(tok),
      render_special_(render_special),
      spaces_between_special_(render_special && spaces_between_special),
      strip_next_space_(strip == StripLeadingSpace::kLikeDecode && tok.data().add_space_prefix) {}

std::string IncrementalDetokenizer::Push(int32_t id) {
  std::string piece = tok_.TokenToPiece(id, render_special_);
  // Decode drops the space of the first token only, whatever that token is
  // (an empty BOS piece uses up the chance), so do the same.
  if (strip_next_space_ && !piece.empty() && piece.front() == ' ') piece.erase(0, 1);
  strip_next_space_ = false;
  if (spaces_between_special_ && !piece.empty()) {
    const bool special = tok_.IsControl(id);
    if (emitted_any_ && (special || last_was_special_)) piece.insert(0, 1, ' ');
    emitted_any_ = true;
    last_was_special_ = special;
  }
  pending_ += piece;
  const size_t complete = CompleteUtf8PrefixLength(pending_);
  if (complete == 0) return "";
  std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, complete));
  pending_.erase(0, complete);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace restkv::engine
