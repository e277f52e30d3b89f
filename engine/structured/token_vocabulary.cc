#include "engine/structured/token_vocabulary.h"

#include <algorithm>
#include <numeric>

#include "common/check.h"

namespace restkv::engine::structured {

TokenVocabulary::TokenVocabulary(std::vector<std::string> pieces, std::vector<int32_t> end_ids)
    : pieces_(std::move(pieces)), end_ids_(std::move(end_ids)) {
  for (const int32_t id : end_ids_) RESTKV_CHECK(id >= 0 && id < vocab_size()) << id;
  std::vector<int32_t> order;
  for (int32_t id = 0; id < vocab_size(); ++id) {
    RESTKV_CHECK(pieces_[id].size() < 65536) << "token " << id;
    const bool is_end = std::find(end_ids_.begin(), end_ids_.end(), id) != end_ids_.end();
    if (!pieces_[id].empty() && !is_end) order.push_back(id);
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return pieces_[a] != pieces_[b] ? pieces_[a] < pieces_[b] : a < b;
  });
  // Sorted pieces visit the trie in preorder: each piece shares a prefix
  // with the path to the previous one, and the nodes past that prefix are
  // complete (their subtrees end here).
  nodes_.push_back(Node{});
  std::vector<int32_t> path{0};  // node indices, path[d] at depth d
  std::string path_bytes;
  for (const int32_t id : order) {
    const std::string& p = pieces_[id];
    size_t common = 0;
    while (common < p.size() && common < path_bytes.size() && p[common] == path_bytes[common]) {
      ++common;
    }
    while (path.size() > common + 1) {
      nodes_[path.back()].subtree_end = static_cast<int32_t>(nodes_.size());
      path.pop_back();
    }
    path_bytes.resize(common);
    for (size_t d = common; d < p.size(); ++d) {
      Node n;
      n.byte = static_cast<uint8_t>(p[d]);
      n.depth = static_cast<uint16_t>(d + 1);
      n.tokens_begin = n.tokens_end = static_cast<int32_t>(token_ids_.size());
      path.push_back(static_cast<int32_t>(nodes_.size()));
      nodes_.push_back(n);
      path_bytes.push_back(p[d]);
    }
    Node& last = nodes_[path.back()];
    RESTKV_CHECK_EQ(last.tokens_end, static_cast<int32_t>(token_ids_.size()));
    token_ids_.push_back(id);
    last.tokens_end = static_cast<int32_t>(token_ids_.size());
  }
  while (!path.empty()) {
    nodes_[path.back()].subtree_end = static_cast<int32_t>(nodes_.size());
    path.pop_back();
  }
}

std::shared_ptr<const TokenVocabulary> TokenVocabulary::FromTokenizer(const Tokenizer& tokenizer) {
  std::vector<std::string> pieces(tokenizer.vocab_size());
  std::vector<int32_t> ends;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.IsEndOfGeneration(id)) ends.push_back(id);
    if (!tokenizer.IsControl(id)) pieces[id] = tokenizer.TokenToPiece(id);
  }
  return std::make_shared<const TokenVocabulary>(std::move(pieces), std::move(ends));
}

}  // namespace restkv::engine::structured
