// TokenVocabulary: the model's tokens as byte strings, arranged once per
// vocabulary as a trie in preorder, so a grammar matcher can find every token
// allowed in a state by one walk that skips a whole subtree as soon as its
// prefix is rejected.
//
//   pieces  "a" "ab" "b"         nodes (preorder)  0:root  1:'a'{a}  2:'b'{ab}  3:'b'{b}
//                                subtree_end       4       3         3          4
//
// A token whose piece is empty (control tokens such as <|im_start|>,
// unused slots) has no trie node: a grammar can never produce it. End
// tokens (end_ids: the tokenizer's end-of-generation set) are allowed by the
// matcher exactly where the grammar may end.
//
// Thread safety: immutable after construction; share it freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine::structured {

class TokenVocabulary {
 public:
  struct Node {
    uint8_t byte = 0;                          // the byte that leads here from the parent (root: 0)
    uint16_t depth = 0;                        // bytes from the root
    int32_t subtree_end = 0;                   // first node index after this node's subtree
    int32_t tokens_begin = 0, tokens_end = 0;  // range of token_ids() ending here
  };

  // pieces[id]: the bytes token `id` decodes to ("" = never allowed).
  // REQUIRES: every end id in [0, pieces.size()); pieces shorter than 65536.
  TokenVocabulary(std::vector<std::string> pieces, std::vector<int32_t> end_ids);

  // Pieces from Tokenizer::TokenToPiece (control tokens give ""), end ids
  // from Tokenizer::IsEndOfGeneration.
  static std::shared_ptr<const TokenVocabulary> FromTokenizer(const Tokenizer& tokenizer);

  [[nodiscard]] int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  [[nodiscard]] const std::string& piece(int32_t id) const { return pieces_[id]; }
  [[nodiscard]] const std::vector<int32_t>& end_ids() const { return end_ids_; }
  [[nodiscard]] const std::vector<Node>& nodes() const { return nodes_; }
  [[nodiscard]] const std::vector<int32_t>& token_ids() const { return token_ids_; }

 private:
  std::vector<std::string> pieces_;
  std::vector<int32_t> end_ids_;
  std::vector<Node> nodes_;
  std::vector<int32_t> token_ids_;
};

}  // namespace restkv::engine::structured
