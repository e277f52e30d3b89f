#include "engine/model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace restkv::engine {

LlamaModel::LlamaModel(const ModelConfig& config, const ModelWeights& weights,
                       kernels::Backend& backend, int32_t block_size)
    : config_(config),
      weights_(weights),
      backend_(backend),
      block_size_(block_size) {
  rope_.style = config.rope_style;
  rope_.rot_dims = config.rope_dims;
  rope_.theta_base = config.rope_theta;
  rope_.position_scale = config.rope_position_scale;
  rope_.freq_factors = weights.rope_freq_factors;
}

absl::Status LlamaModel::EnsureWorkspace(int64_t num_tokens, int64_t num_logit_rows) {
  const ModelConfig& c = config_;
  auto alloc = [&](std::unique_ptr<kernels::Buffer>* buf, int64_t floats) -> absl::Status {
    RESTKV_ASSIGN_OR_RETURN(*buf, backend_.Allocate(static_cast<size_t>(floats) * sizeof(float)));
    return absl::OkStatus();
  };
  if (num_tokens > capacity_x_tokens_) {
    const int64_t t = std::max<int64_t>(num_tokens, 2 * capacity_x_tokens_);
    RESTKV_RETURN_IF_ERROR(alloc(&x_, t * c.hidden_size));
    capacity_x_tokens_ = t;
  }
  num_tokens = std::min<int64_t>(num_tokens, kMaxChunkTokens);
  if (num_tokens > capacity_tokens_) {
    const int64_t t = std::min<int64_t>(std::max<int64_t>(num_tokens, 2 * capacity_tokens_), kMaxChunkTokens);
    RESTKV_RETURN_IF_ERROR(alloc(&xb_, t * c.hidden_size));
    RESTKV_RETURN_IF_ERROR(alloc(&q_, t * c.q_dim()));
    RESTKV_RETURN_IF_ERROR(alloc(&k_, t * c.kv_dim()));
    RESTKV_RETURN_IF_ERROR(alloc(&v_, t * c.kv_dim()));
    RESTKV_RETURN_IF_ERROR(alloc(&att_, t * c.q_dim()));
    RESTKV_RETURN_IF_ERROR(alloc(&gate_, t * c.ffn_size));
    RESTKV_RETURN_IF_ERROR(alloc(&up_, t * c.ffn_size));
    capacity_tokens_ = t;
  }
  if (num_logit_rows > capacity_logit_rows_) {
    const int64_t r = std::max<int64_t>(num_logit_rows, 2 * capacity_logit_rows_);
    RESTKV_RETURN_IF_ERROR(alloc(&logit_in_, r * c.hidden_size));
    RESTKV_RETURN_IF_ERROR(alloc(&logits_, r * c.vocab_size));
    capacity_logit_rows_ = r;
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::Forward(absl::Span<const SequenceInput> batch,
                                 std::vector<float>* logits) {
  const ModelConfig& c = config_;
  if (batch.empty()) return absl::InvalidArgumentError("empty batch");
  const int32_t layer_begin = batch[0].layer_begin;
  const int32_t layer_end = batch[0].layer_end < 0 ? c.num_layers : batch[0].layer_end;
  RESTKV_CHECK(0 <= layer_begin && layer_begin < layer_end && layer_end <= c.num_layers)
      << "layers [" << layer_begin << ", " << layer_end << ")";
  // Pack tokens and positions; remember which rows need logits.
  std::vector<int32_t> tokens, positions;
  std::vector<int64_t> logit_rows;
  for (const SequenceInput& s : batch) {
    RESTKV_CHECK_EQ(static_cast<int32_t>(s.cached_len.size()), c.num_layers);
    RESTKV_CHECK_EQ(static_cast<int32_t>(s.pages.size()), c.num_layers);
    RESTKV_CHECK(s.layer_begin == layer_begin &&
                 (s.layer_end < 0 ? c.num_layers : s.layer_end) == layer_end)
        << "one Forward call runs one layer range";
    RESTKV_CHECK((layer_begin == 0 && layer_end == c.num_layers) || s.hidden != nullptr)
        << "a partial layer range needs a hidden-state buffer";
    const int64_t base = static_cast<int64_t>(tokens.size());
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      const int32_t id = s.tokens[i];
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("token id %d is outside the vocabulary [0, %d)", id, c.vocab_size));
      }
      tokens.push_back(id);
      positions.push_back(s.first_position + static_cast<int32_t>(i));
      if (s.logits == LogitsMode::kAll) logit_rows.push_back(base + static_cast<int64_t>(i));
    }
    if (s.logits == LogitsMode::kLast && !s.tokens.empty()) {
      logit_rows.push_back(base + static_cast<int64_t>(s.tokens.size()) - 1);
    }
  }
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) return absl::InvalidArgumentError("batch has no tokens");
  RESTKV_RETURN_IF_ERROR(EnsureWorkspace(T, static_cast<int64_t>(logit_rows.size())));

  float* x = x_->floats();
  float* xb = xb_->floats();
  float* q = q_->floats();
  float* k = k_->floats();
  float* v = v_->floats();
  float* att = att_->floats();
  float* gate = gate_->floats();
  float* up = up_->floats();
  const int64_t D = c.hidden_size;

  if (layer_begin == 0) {
    backend_.Embedding(weights_.token_embd, tokens.data(), T, x);
  } else {
    int64_t row = 0;
    for (const SequenceInput& s : batch) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      backend_.CopyDevice(s.hidden, x + row * D, n * D);
      row += n;
    }
  }
  // Packed rows of each sequence: [seq_row[s], seq_row[s] + n_s).
  std::vector<int64_t> seq_row(batch.size() + 1, 0);
  for (size_t s = 0; s < batch.size(); ++s) {
    seq_row[s + 1] = seq_row[s] + static_cast<int64_t>(batch[s].tokens.size());
  }
  // Queries the hooks asked for: the last num_rows rows of each sequence.
  struct QueryCapture {
    int32_t num_rows = 0;
    std::vector<float> q;  // [num_rows][H][d]
  };
  std::vector<QueryCapture> captured(batch.size());
  const int64_t qrow = c.q_dim();
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    if (in.hook == nullptr) continue;
    const int32_t n = static_cast<int32_t>(in.tokens.size());
    captured[s].num_rows = std::clamp(in.hook->NumQueryRows(n), 0, n);
    captured[s].q.resize(captured[s].num_rows * qrow);
  }
  const int64_t chunk = std::min<int64_t>(T, kMaxChunkTokens);
  std::vector<kernels::KvSlot> slots(chunk);
  std::vector<kernels::AttentionSeq> seqs;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  for (int32_t l = layer_begin; l < layer_end; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    for (const SequenceInput& in : batch) {
      if (in.hook == nullptr) continue;
      RESTKV_RETURN_IF_ERROR(in.hook->BeforeLayer(l, static_cast<int32_t>(in.tokens.size())));
    }
    // NOTE(restkv): rows are processed in chunks of at most kMaxChunkTokens so
    // per-token activations stay bounded for long prompts. A chunk's K/V are
    // stored before its attention runs, and earlier chunks' K/V are already
    // in the pages, so causal attention is exact across chunk boundaries.
    for (int64_t c0 = 0; c0 < T; c0 += chunk) {
      const int64_t n = std::min(chunk, T - c0);
      float* xc = x + c0 * D;
      // Attention block.
      backend_.RmsNorm(xc, lw.attn_norm, n, D, c.rms_eps, xb);
      backend_.MatMul(lw.wq, xb, n, q);
      backend_.MatMul(lw.wk, xb, n, k);
      backend_.MatMul(lw.wv, xb, n, v);
      if (c.has_qkv_bias) {
        backend_.AddBias(q, lw.bq, n, c.q_dim());
        backend_.AddBias(k, lw.bk, n, c.kv_dim());
        backend_.AddBias(v, lw.bv, n, c.kv_dim());
      }
      backend_.Rope(q, positions.data() + c0, n, c.num_heads, c.head_dim, rope_);
      backend_.Rope(k, positions.data() + c0, n, c.num_kv_heads, c.head_dim, rope_);
      seqs.clear();
      for (size_t s = 0; s < batch.size(); ++s) {
        const int64_t r0 = std::max(seq_row[s], c0), r1 = std::min(seq_row[s + 1], c0 + n);
        if (r0 >= r1) continue;
        const SequenceInput& in = batch[s];
        const int32_t cached = in.cached_len[l];
        const int32_t first = static_cast<int32_t>(r0 - seq_row[s]);  // index in the sequence
        const int32_t count = static_cast<int32_t>(r1 - r0);
        const std::vector<float*>& pages = in.pages[l];
        RESTKV_CHECK_GE(static_cast<int64_t>(pages.size()) * block_size_, cached + first + count)
            << "layer " << l << " block table too short";
        for (int32_t i = 0; i < count; ++i) {
          const int32_t slot = cached + first + i;
          slots[r0 - c0 + i] = {pages[slot / block_size_], slot % block_size_};
        }
        seqs.push_back({static_cast<int32_t>(r0 - c0), count, cached + first + count, pages.data()});
        // Keep the queries the hook asked for.
        QueryCapture& cap = captured[s];
        if (cap.num_rows > 0) {
          const int32_t from = static_cast<int32_t>(in.tokens.size()) - cap.num_rows;
          for (int32_t i = std::max(first, from); i < first + count; ++i) {
            backend_.CopyToHost(q + (seq_row[s] + i - c0) * qrow, cap.q.data() + (i - from) * qrow, qrow);
          }
        }
      }
      backend_.StoreKv(k, v, slots.data(), n, c.num_kv_heads, c.head_dim, block_size_);
      backend_.Attention(q, seqs, c.num_heads, c.num_kv_heads, c.head_dim, block_size_, scale, att);
      backend_.MatMul(lw.wo, att, n, xb);
      backend_.Add(xc, xb, n * D);
      // Feed-forward block.
      backend_.RmsNorm(xc, lw.ffn_norm, n, D, c.rms_eps, xb);
      backend_.MatMul(lw.w_gate, xb, n, gate);
      backend_.MatMul(lw.w_up, xb, n, up);
      backend_.SwiGlu(gate, up, n * c.ffn_size);
      backend_.MatMul(lw.w_down, gate, n, xb);
      backend_.Add(xc, xb, n * D);
    }
    for (size_t s = 0; s < batch.size(); ++s) {
      const SequenceInput& in = batch[s];
      if (in.hook == nullptr) continue;
      const float* queries = captured[s].num_rows > 0 ? captured[s].q.data() : nullptr;
      RESTKV_RETURN_IF_ERROR(
          in.hook->AfterLayer(l, static_cast<int32_t>(in.tokens.size()), queries));
    }
  }

  if (layer_end < c.num_layers) {
    int64_t row = 0;
    for (const SequenceInput& s : batch) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      backend_.CopyDevice(x + row * D, s.hidden, n * D);
      row += n;
    }
    logits->clear();
    return absl::OkStatus();
  }
  const int64_t R = static_cast<int64_t>(logit_rows.size());
  logits->assign(static_cast<size_t>(R) * c.vocab_size, 0.0f);
  if (R == 0) return absl::OkStatus();
  float* lin = logit_in_->floats();
  backend_.GatherRows(x, logit_rows.data(), R, D, lin);
  backend_.RmsNorm(lin, weights_.output_norm, R, D, c.rms_eps, lin);
  backend_.MatMul(weights_.output, lin, R, logits_->floats());
  backend_.CopyToHost(logits_->floats(), logits->data(), logits->size());
  return absl::OkStatus();
}

}  // namespace restkv::engine
