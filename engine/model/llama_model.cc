#include "engine/model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace restkv::engine {

LlamaModel::LlamaModel(const ModelConfig& config, const ModelWeights& weights,
                       kernels::Backend& backend, int32_t block_size, kernels::KvDtype kv_dtype)
    : config_(config),
      weights_(weights),
      backend_(backend),
      block_size_(block_size),
      kv_layout_{config.num_kv_heads, config.head_dim, block_size, kv_dtype} {
  RESTKV_CHECK(backend.SupportsKvDtype(kv_dtype))
      << backend.name() << " has no " << kernels::KvDtypeName(kv_dtype) << " KV pages";
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
    const int64_t t =
        std::min<int64_t>(std::max<int64_t>(num_tokens, 2 * capacity_tokens_), kMaxChunkTokens);
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

// One Forward call's rows: every sequence's new tokens packed in input order.
struct LlamaModel::Step {
  int32_t layer_begin = 0, layer_end = 0;
  std::vector<int32_t> tokens, positions;  // [T]
  std::vector<int64_t> logit_rows;         // rows that produce logits
  std::vector<int64_t> seq_row;            // [S+1]: sequence s owns rows [seq_row[s], seq_row[s+1])
  // Queries a hook asked for: the last num_rows rows of sequence s.
  struct QueryCapture {
    int32_t num_rows = 0;
    std::vector<float> q;  // [num_rows][H][d]
  };
  std::vector<QueryCapture> captured;       // [S]
  std::vector<kernels::KvSlot> slots;       // [chunk] where each row's K/V goes
  std::vector<kernels::AttentionSeq> seqs;  // the chunk's attention segments
  [[nodiscard]] int64_t num_rows() const { return static_cast<int64_t>(tokens.size()); }
};

absl::StatusOr<LlamaModel::Step> LlamaModel::PackBatch(
    absl::Span<const SequenceInput> batch) const {
  const ModelConfig& c = config_;
  if (batch.empty()) return absl::InvalidArgumentError("empty batch");
  Step step;
  step.layer_begin = batch[0].layer_begin;
  step.layer_end = batch[0].layer_end < 0 ? c.num_layers : batch[0].layer_end;
  RESTKV_CHECK(0 <= step.layer_begin && step.layer_begin < step.layer_end &&
               step.layer_end <= c.num_layers)
      << "layers [" << step.layer_begin << ", " << step.layer_end << ")";
  step.seq_row.assign(batch.size() + 1, 0);
  step.captured.resize(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    RESTKV_CHECK_EQ(static_cast<int32_t>(in.cached_len.size()), c.num_layers);
    RESTKV_CHECK_EQ(static_cast<int32_t>(in.pages.size()), c.num_layers);
    RESTKV_CHECK(in.layer_begin == step.layer_begin &&
                 (in.layer_end < 0 ? c.num_layers : in.layer_end) == step.layer_end)
        << "one Forward call runs one layer range";
    RESTKV_CHECK((step.layer_begin == 0 && step.layer_end == c.num_layers) || in.hidden != nullptr)
        << "a partial layer range needs a hidden-state buffer";
    const int64_t base = step.num_rows();
    const int32_t n = static_cast<int32_t>(in.tokens.size());
    for (int32_t i = 0; i < n; ++i) {
      const int32_t id = in.tokens[i];
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("token id %d is outside the vocabulary [0, %d)", id, c.vocab_size));
      }
      step.tokens.push_back(id);
      step.positions.push_back(in.first_position + i);
      if (in.logits == LogitsMode::kAll) step.logit_rows.push_back(base + i);
    }
    if (in.logits == LogitsMode::kLast && n > 0) step.logit_rows.push_back(base + n - 1);
    step.seq_row[s + 1] = step.num_rows();
    if (in.hook != nullptr) {
      Step::QueryCapture& cap = step.captured[s];
      cap.num_rows = std::clamp(in.hook->NumQueryRows(n), 0, n);
      cap.q.resize(static_cast<size_t>(cap.num_rows) * c.q_dim());
    }
  }
  if (step.num_rows() == 0) return absl::InvalidArgumentError("batch has no tokens");
  return step;
}

void LlamaModel::LoadResidual(absl::Span<const SequenceInput> batch, const Step& step) {
  const int64_t D = config_.hidden_size;
  float* x = x_->floats();
  if (step.layer_begin == 0) {
    backend_.Embedding(weights_.token_embd, step.tokens.data(), step.num_rows(), x);
    return;
  }
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t n = step.seq_row[s + 1] - step.seq_row[s];
    backend_.CopyDevice(batch[s].hidden, x + step.seq_row[s] * D, n * D);
  }
}

absl::Status LlamaModel::Forward(absl::Span<const SequenceInput> batch,
                                 std::vector<float>* logits) {
  RESTKV_ASSIGN_OR_RETURN(Step step, PackBatch(batch));
  RESTKV_RETURN_IF_ERROR(
      EnsureWorkspace(step.num_rows(), static_cast<int64_t>(step.logit_rows.size())));
  LoadResidual(batch, step);
  for (int32_t l = step.layer_begin; l < step.layer_end; ++l) {
    RESTKV_RETURN_IF_ERROR(RunLayer(l, batch, step));
    // Before the layer's KV is used again (the next layer's hook evicts from
    // it): a failed device leaves every later result unspecified.
    RESTKV_RETURN_IF_ERROR(BackendStatus());
  }
  if (step.layer_end < config_.num_layers) {
    // A prefill slice: the residual stream waits in each sequence's buffer.
    const int64_t D = config_.hidden_size;
    for (size_t s = 0; s < batch.size(); ++s) {
      const int64_t n = step.seq_row[s + 1] - step.seq_row[s];
      backend_.CopyDevice(x_->floats() + step.seq_row[s] * D, batch[s].hidden, n * D);
    }
    logits->clear();
    return BackendStatus();
  }
  ComputeLogits(step, logits);
  return BackendStatus();
}

absl::Status LlamaModel::BackendStatus() const {
  const absl::Status s = backend_.status();
  if (s.ok()) return s;
  // Whatever the device's own code (a scratch allocation's ResourceExhausted,
  // say), the request is not at fault: callers see an internal error (HTTP
  // 500, gRPC INTERNAL) that names the device's reason.
  return absl::InternalError(
      absl::StrFormat("%s backend failed: %s", std::string(backend_.name()), s.ToString()));
}

absl::Status LlamaModel::RunLayer(int32_t layer, absl::Span<const SequenceInput> batch,
                                  Step& step) {
  for (const SequenceInput& in : batch) {
    if (in.hook == nullptr) continue;
    RESTKV_RETURN_IF_ERROR(in.hook->BeforeLayer(layer, static_cast<int32_t>(in.tokens.size())));
  }
  // NOTE(restkv): rows are processed in chunks of at most kMaxChunkTokens so
  // per-token activations stay bounded for long prompts. A chunk's K/V are
  // stored before its attention runs, and earlier chunks' K/V are already
  // in the pages, so causal attention is exact across chunk boundaries.
  const int64_t T = step.num_rows();
  const int64_t chunk = std::min<int64_t>(T, kMaxChunkTokens);
  step.slots.resize(chunk);
  for (int64_t c0 = 0; c0 < T; c0 += chunk) {
    RunChunk(weights_.layers[layer], layer, batch, step, c0, std::min(chunk, T - c0));
  }
  for (size_t s = 0; s < batch.size(); ++s) {
    const SequenceInput& in = batch[s];
    if (in.hook == nullptr) continue;
    const Step::QueryCapture& cap = step.captured[s];
    RESTKV_RETURN_IF_ERROR(in.hook->AfterLayer(layer, static_cast<int32_t>(in.tokens.size()),
                                               cap.num_rows > 0 ? cap.q.data() : nullptr));
  }
  return absl::OkStatus();
}

void LlamaModel::RunChunk(const LayerWeights& lw, int32_t layer,
                          absl::Span<const SequenceInput> batch, Step& step, int64_t c0,
                          int64_t n) {
  const ModelConfig& c = config_;
  const int64_t D = c.hidden_size;
  const int64_t qrow = c.q_dim();
  float* xc = x_->floats() + c0 * D;
  float* xb = xb_->floats();
  float* q = q_->floats();
  float* k = k_->floats();
  float* v = v_->floats();
  float* att = att_->floats();
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
  backend_.Rope(q, step.positions.data() + c0, n, c.num_heads, c.head_dim, rope_);
  backend_.Rope(k, step.positions.data() + c0, n, c.num_kv_heads, c.head_dim, rope_);
  step.seqs.clear();
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t r0 = std::max(step.seq_row[s], c0);
    const int64_t r1 = std::min(step.seq_row[s + 1], c0 + n);
    if (r0 >= r1) continue;
    const SequenceInput& in = batch[s];
    const int32_t cached = in.cached_len[layer];
    const int32_t first = static_cast<int32_t>(r0 - step.seq_row[s]);  // index in the sequence
    const int32_t count = static_cast<int32_t>(r1 - r0);
    const std::vector<float*>& pages = in.pages[layer];
    RESTKV_CHECK_GE(static_cast<int64_t>(pages.size()) * block_size_, cached + first + count)
        << "layer " << layer << " block table too short";
    for (int32_t i = 0; i < count; ++i) {
      const int32_t slot = cached + first + i;
      step.slots[r0 - c0 + i] = {pages[slot / block_size_], slot % block_size_};
    }
    step.seqs.push_back(
        {static_cast<int32_t>(r0 - c0), count, cached + first + count, pages.data()});
    // Sparse prefill for a prompt prefilled from position 0 (in row chunks
    // of this loop); its last dense_rows rows, the eviction window, dense.
    if (sparse_.has_value() && cached == 0 && in.first_position == 0) {
      step.seqs.back().sparse = &*sparse_;
      step.seqs.back().sparse_dense_from =
          static_cast<int32_t>(in.tokens.size()) - sparse_->dense_rows;
    }
    if (!in.head_len.empty() && !in.head_len[layer].empty()) {
      step.seqs.back().hole_begin = in.head_len[layer].data();
      step.seqs.back().hole_end = in.padding_end[layer];
    }
    // Keep the queries the hook asked for.
    Step::QueryCapture& cap = step.captured[s];
    if (cap.num_rows > 0) {
      const int32_t from = static_cast<int32_t>(in.tokens.size()) - cap.num_rows;
      for (int32_t i = std::max(first, from); i < first + count; ++i) {
        backend_.CopyToHost(q + (step.seq_row[s] + i - c0) * qrow, cap.q.data() + (i - from) * qrow,
                            qrow);
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  backend_.StoreKv(k, v, step.slots.data(), n, kv_layout_);
  backend_.Attention(q, step.seqs, c.num_heads, kv_layout_, scale, att);
  backend_.MatMul(lw.wo, att, n, xb);
  backend_.Add(xc, xb, n * D);
  // Feed-forward block.
  float* gate = gate_->floats();
  float* up = up_->floats();
  backend_.RmsNorm(xc, lw.ffn_norm, n, D, c.rms_eps, xb);
  backend_.MatMul(lw.w_gate, xb, n, gate);
  backend_.MatMul(lw.w_up, xb, n, up);
  backend_.SwiGlu(gate, up, n * c.ffn_size);
  backend_.MatMul(lw.w_down, gate, n, xb);
  backend_.Add(xc, xb, n * D);
}

void LlamaModel::ComputeLogits(const Step& step, std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int64_t R = static_cast<int64_t>(step.logit_rows.size());
  logits->assign(static_cast<size_t>(R) * c.vocab_size, 0.0f);
  if (R == 0) return;
  float* lin = logit_in_->floats();
  backend_.GatherRows(x_->floats(), step.logit_rows.data(), R, c.hidden_size, lin);
  backend_.RmsNorm(lin, weights_.output_norm, R, c.hidden_size, c.rms_eps, lin);
  backend_.MatMul(weights_.output, lin, R, logits_->floats());
  backend_.CopyToHost(logits_->floats(), logits->data(), logits->size());
}

}  // namespace restkv::engine
