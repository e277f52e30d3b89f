// LlamaModel against a plain-loop reference forward pass on synthetic models,
// and the fast paths (paged, chunked, batched, incremental) against the
// simple one.
#include "engine/model/llama_model.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/testing/failing_backend.h"

namespace restkv::engine {
namespace {

using kernels::GgmlType;

struct Loaded {
  std::string bytes;
  std::unique_ptr<GgufFile> file;
  ModelConfig config;
  ModelWeights weights;
};

std::unique_ptr<Loaded> Load(const SyntheticModelSpec& spec, kernels::Backend& backend) {
  auto m = std::make_unique<Loaded>();
  m->bytes = BuildSyntheticGguf(spec);
  auto file = GgufFile::FromBuffer(m->bytes, "synthetic");
  EXPECT_TRUE(file.ok()) << file.status();
  m->file = std::move(*file);
  m->config = *ModelConfig::FromGguf(*m->file);
  auto w = ModelWeights::Load(*m->file, m->config, backend);
  EXPECT_TRUE(w.ok()) << w.status();
  m->weights = std::move(*w);
  return m;
}

std::vector<double> Tensor(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.FindTensor(name);
  std::vector<float> v(t->num_elements);
  kernels::DequantizeRow(t->type, t->data, v.data(), t->num_elements);
  return {v.begin(), v.end()};
}

// Plain-loop forward in double for all positions of one sequence: the oracle.
std::vector<std::vector<double>> ReferenceLogits(const GgufFile& f, const ModelConfig& c,
                                                 const std::vector<int32_t>& tokens) {
  const int64_t T = tokens.size(), D = c.hidden_size, d = c.head_dim, H = c.num_heads,
                Hkv = c.num_kv_heads, F = c.ffn_size, V = c.vocab_size;
  auto matvec = [](const std::vector<double>& w, const std::vector<double>& x, int64_t rows,
                   int64_t cols) {
    std::vector<double> y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i) y[r] += w[r * cols + i] * x[i];
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<double>& w) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double s = 1.0 / std::sqrt(ss / x.size() + c.rms_eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w[i];
    return y;
  };
  auto rope = [&](std::vector<double>& v, int64_t heads, int64_t pos) {
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double angle = pos * std::pow(static_cast<double>(c.rope_theta), -2.0 * i / d);
        const int64_t a = c.rope_style == kernels::RopeStyle::kNorm ? 2 * i : i;
        const int64_t b = c.rope_style == kernels::RopeStyle::kNorm ? 2 * i + 1 : i + d / 2;
        const double x0 = v[h * d + a], x1 = v[h * d + b];
        v[h * d + a] = x0 * std::cos(angle) - x1 * std::sin(angle);
        v[h * d + b] = x0 * std::sin(angle) + x1 * std::cos(angle);
      }
  };
  const std::vector<double> embd = Tensor(f, "token_embd.weight");
  std::vector<std::vector<double>> x(T);
  for (int64_t t = 0; t < T; ++t)
    x[t].assign(embd.begin() + tokens[t] * D, embd.begin() + (tokens[t] + 1) * D);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const auto wq = Tensor(f, p + "attn_q.weight"), wk = Tensor(f, p + "attn_k.weight"),
               wv = Tensor(f, p + "attn_v.weight"), wo = Tensor(f, p + "attn_output.weight"),
               wg = Tensor(f, p + "ffn_gate.weight"), wu = Tensor(f, p + "ffn_up.weight"),
               wd = Tensor(f, p + "ffn_down.weight"), an = Tensor(f, p + "attn_norm.weight"),
               fn = Tensor(f, p + "ffn_norm.weight");
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int64_t t = 0; t < T; ++t) {
      const auto xn = rmsnorm(x[t], an);
      q[t] = matvec(wq, xn, H * d, D);
      k[t] = matvec(wk, xn, Hkv * d, D);
      v[t] = matvec(wv, xn, Hkv * d, D);
      if (c.has_qkv_bias) {
        const auto bq = Tensor(f, p + "attn_q.bias"), bk = Tensor(f, p + "attn_k.bias"),
                   bv = Tensor(f, p + "attn_v.bias");
        for (int64_t i = 0; i < H * d; ++i) q[t][i] += bq[i];
        for (int64_t i = 0; i < Hkv * d; ++i) k[t][i] += bk[i], v[t][i] += bv[i];
      }
      rope(q[t], H, t);
      rope(k[t], Hkv, t);
    }
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> att(H * d, 0.0);
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / Hkv);
        std::vector<double> s(t + 1);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += q[t][h * d + i] * k[j][g * d + i];
          s[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < d; ++i) att[h * d + i] += s[j] / sum * v[j][g * d + i];
      }
      const auto o = matvec(wo, att, D, H * d);
      for (int64_t i = 0; i < D; ++i) x[t][i] += o[i];
      const auto xn = rmsnorm(x[t], fn);
      auto gate = matvec(wg, xn, F, D);
      const auto up = matvec(wu, xn, F, D);
      for (int64_t i = 0; i < F; ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const auto down = matvec(wd, gate, D, F);
      for (int64_t i = 0; i < D; ++i) x[t][i] += down[i];
    }
  }
  const auto on = Tensor(f, "output_norm.weight");
  const auto out = c.tied_embeddings ? embd : Tensor(f, "output.weight");
  std::vector<std::vector<double>> logits(T);
  for (int64_t t = 0; t < T; ++t) logits[t] = matvec(out, rmsnorm(x[t], on), V, D);
  return logits;
}

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 37 + salt * 11 + 5) % kSyntheticVocabSize;
  return t;
}

class LlamaModelReferenceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaModelReferenceTest, AllPositionLogitsMatchReference) {
  SyntheticModelSpec spec;
  spec.architecture = GetParam();
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.tied_embeddings = spec.architecture == "llama";
  kernels::cpu::CpuBackend backend(2);
  auto m = Load(spec, backend);
  auto pool = *BlockPool::Create(backend, {m->config.num_kv_heads, m->config.head_dim, 16}, 64);
  LlamaModel model(m->config, m->weights, backend, 16);
  const std::vector<int32_t> tokens = Tokens(21, 1);
  SequenceKv kv(*pool, m->config.num_layers);
  ASSERT_TRUE(kv.Reserve(tokens.size()));
  SequenceInput in{tokens, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kAll};
  std::vector<float> logits;
  ASSERT_TRUE(model.Forward({&in, 1}, &logits).ok());
  const auto ref = ReferenceLogits(*m->file, m->config, tokens);
  const int64_t V = m->config.vocab_size;
  ASSERT_EQ(logits.size(), tokens.size() * V);
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int64_t i = 0; i < V; ++i)
      ASSERT_NEAR(logits[t * V + i], ref[t][i], 2e-3 * (1 + std::fabs(ref[t][i])))
          << "position " << t << " token " << i;
}

INSTANTIATE_TEST_SUITE_P(Architectures, LlamaModelReferenceTest,
                         ::testing::Values("llama", "qwen2"));

// Runs `tokens` in chunks of the given sizes; returns the last logits row.
std::vector<float> RunChunked(LlamaModel& model, BlockPool& pool, int32_t layers,
                              const std::vector<int32_t>& tokens, const std::vector<int>& chunks) {
  SequenceKv kv(pool, layers);
  std::vector<float> logits;
  int32_t pos = 0;
  for (int n : chunks) {
    EXPECT_TRUE(kv.Reserve(n));
    absl::Span<const int32_t> part(tokens.data() + pos, n);
    SequenceInput in{part, pos, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    EXPECT_TRUE(model.Forward({&in, 1}, &logits).ok());
    kv.Commit(n);
    pos += n;
  }
  return logits;
}

// With quantised weights every kernel computes each row independently of
// the others in the step, so chunking and batching change nothing: the
// logits are bit-identical.
TEST(LlamaModelTest, ChunkedAndIncrementalPrefillAreBitIdentical) {
  SyntheticModelSpec spec;
  spec.weight_type = GgmlType::kQ8_0;
  kernels::cpu::CpuBackend backend(2);
  auto m = Load(spec, backend);
  auto pool = *BlockPool::Create(backend, {m->config.num_kv_heads, m->config.head_dim, 16}, 64);
  LlamaModel model(m->config, m->weights, backend, 16);
  const std::vector<int32_t> tokens = Tokens(40, 2);
  const auto one_shot = RunChunked(model, *pool, m->config.num_layers, tokens, {40});
  EXPECT_EQ(RunChunked(model, *pool, m->config.num_layers, tokens, {17, 16, 7}), one_shot);
  std::vector<int> ones(40, 1);
  EXPECT_EQ(RunChunked(model, *pool, m->config.num_layers, tokens, ones), one_shot);
  EXPECT_EQ(pool->num_free(), pool->num_pages());
}

TEST(LlamaModelTest, BatchedSequencesMatchAloneBitForBit) {
  SyntheticModelSpec spec;
  spec.weight_type = GgmlType::kQ4_1;
  kernels::cpu::CpuBackend backend(2);
  auto m = Load(spec, backend);
  auto pool = *BlockPool::Create(backend, {m->config.num_kv_heads, m->config.head_dim, 16}, 256);
  LlamaModel model(m->config, m->weights, backend, 16);
  const int L = m->config.num_layers;
  const std::vector<std::vector<int32_t>> prompts = {Tokens(5, 3), Tokens(33, 4), Tokens(1, 5),
                                                     Tokens(18, 6)};
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts)
    alone.push_back(RunChunked(model, *pool, L, p, {static_cast<int>(p.size())}));
  std::vector<std::unique_ptr<SequenceKv>> kvs;
  std::vector<SequenceInput> batch;
  for (const auto& p : prompts) {
    kvs.push_back(std::make_unique<SequenceKv>(*pool, L));
    ASSERT_TRUE(kvs.back()->Reserve(p.size()));
    batch.push_back({p, 0, kvs.back()->cached_len(), kvs.back()->page_ptrs(), LogitsMode::kLast});
  }
  std::vector<float> logits;
  ASSERT_TRUE(model.Forward(batch, &logits).ok());
  const int64_t V = m->config.vocab_size;
  for (size_t s = 0; s < prompts.size(); ++s) {
    EXPECT_EQ(std::vector<float>(logits.begin() + s * V, logits.begin() + (s + 1) * V), alone[s])
        << "sequence " << s;
  }
}

TEST(LlamaModelTest, RejectsTokenOutsideVocabulary) {
  SyntheticModelSpec spec;
  kernels::cpu::CpuBackend backend(1);
  auto m = Load(spec, backend);
  auto pool = *BlockPool::Create(backend, {m->config.num_kv_heads, m->config.head_dim, 16}, 8);
  LlamaModel model(m->config, m->weights, backend, 16);
  SequenceKv kv(*pool, m->config.num_layers);
  ASSERT_TRUE(kv.Reserve(1));
  const std::vector<int32_t> bad = {kSyntheticVocabSize};
  SequenceInput in{bad, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
  std::vector<float> logits;
  const absl::Status s = model.Forward({&in, 1}, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("263"), std::string::npos) << s;
}

// A failure the backend could only record (its operations return void) ends
// the pass at the layer it happened in, as an internal error naming the
// device's reason, never as logits computed from unwritten memory.
TEST(LlamaModelTest, BackendFailureEndsThePassAsAnInternalError) {
  SyntheticModelSpec spec;
  kernels::FailingBackend backend(
      /*attention_calls_left=*/1,
      absl::ResourceExhaustedError("scratch allocation of 64 MiB failed"));
  auto m = Load(spec, backend);
  ASSERT_GE(m->config.num_layers, 2);
  auto pool = *BlockPool::Create(backend, {m->config.num_kv_heads, m->config.head_dim, 16}, 8);
  LlamaModel model(m->config, m->weights, backend, 16);
  SequenceKv kv(*pool, m->config.num_layers);
  ASSERT_TRUE(kv.Reserve(3));
  const std::vector<int32_t> tokens = Tokens(3, 1);
  SequenceInput in{tokens, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
  std::vector<float> logits;
  const absl::Status s = model.Forward({&in, 1}, &logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("failing backend failed"), std::string::npos) << s;
  EXPECT_NE(s.message().find("scratch allocation of 64 MiB failed"), std::string::npos) << s;
  EXPECT_TRUE(logits.empty());
}

}  // namespace
}  // namespace restkv::engine
