// bench_cuda: GPU measurements of the CUDA backend, printed as one
// JSON object. Needs a CUDA device; exits 2 without one.
//
//   decode_attention  one Backend::Attention call with one query per
//                     sequence over a paged cache (--kv-cache-dtype, default bf16), Llama-3-8B head
//                     shape (H=32, Hkv=8, d=128, block 16): achieved GB/s of
//                     K+V read and its fraction of the card's peak (from the
//                     memory clock and bus width the runtime reports).
//   prefill_attention causal attention of an N-token prompt, one layer, in
//                     the engine's 512-token chunks: tokens/s.
//   model             a Llama-3-8B-shaped model with seeded random weights
//                     (engine/model/synthetic_model.h, 263-token vocabulary; the
//                     figures are labelled "random-weights") prefilled at
//                     each --prefill-tokens length under each --policies
//                     entry (full, and restkv / snapkv at --kv-budget), then
//                     --decode-tokens decode steps: prefill tokens/s, the
//                     policies' overhead over full, decode ms/token.
//   concurrency       the same model; a KV pool of what
//                     --gpu-memory-utilization leaves after the weights of a
//                     --concurrency-depth-layer model (default: the loaded
//                     one; the pool is then in pages of the loaded layers, so
//                     as many requests fit as at that depth);
//                     --concurrency-tokens requests admitted one after
//                     another (each kept resident; pages filled with random
//                     K/V, or --concurrency-fill prefill) until the pool is
//                     full or --max-requests are in, then all of them decode
//                     together: requests that fit (measured, and from the
//                     page arithmetic), and decode ms per step, per policy.
//   parity            the smollm2-135m shape with random weights on the CPU
//                     backend and on the device: teacher-forced top-1
//                     agreement and logit error, greedy tokens, kept sets
//                     (engine/backend_parity.h).
// Sections run in that order; --sections picks a subset.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/thread_pool.h"
#include "engine/backend_parity.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/page_math.h"
#include "engine/kv/random_kv_fill.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

using kernels::cuda::CudaBackend;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_cuda: %s\n", what.c_str());
  std::exit(1);
}

// Llama-3-8B's attention shape.
constexpr int32_t kHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlock = 16;

// Llama-3-8B's KV page in the benchmark's dtype.
kernels::KvPageLayout PageLayout(kernels::KvDtype dtype) {
  return {kKvHeads, kHeadDim, kBlock, dtype};
}

// A device slab of `pages` KV pages of `layout` holding N(0,1) values
// stored as its dtype: a block of up to 16 MiB of page images encoded on the
// host, uploaded once and replicated on the device.
std::unique_ptr<kernels::Buffer> RandomPages(CudaBackend& gpu, int64_t pages,
                                             const kernels::KvPageLayout& layout) {
  const int64_t page_floats = layout.page_bytes() / 4;
  const int64_t floats = pages * page_floats;
  auto buf = gpu.Allocate(static_cast<size_t>(floats) * sizeof(float));
  if (!buf.ok()) Die(std::string(buf.status().message()));
  const int64_t block_pages =
      std::max<int64_t>(1, std::min<int64_t>(pages, (int64_t{4} << 20) / page_floats));
  const int64_t block = block_pages * page_floats;
  std::vector<float> host(static_cast<size_t>(block), 0.0f);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> row(kHeadDim);
  for (int64_t p = 0; p < block_pages; ++p) {
    auto* page = reinterpret_cast<uint8_t*>(host.data() + p * page_floats);
    for (int64_t r = 0; r < 2 * layout.rows_per_page(); ++r) {  // K rows, then V rows
      for (float& x : row) x = dist(rng);
      const bool v = r >= layout.rows_per_page();
      const int64_t i = v ? r - layout.rows_per_page() : r;
      float* scale =
          reinterpret_cast<float*>(page + (v ? layout.v_scale_offset() : layout.k_scale_offset())) +
          i;
      kernels::EncodeKvRow(layout.dtype, row.data(), kHeadDim,
                           page + (v ? layout.v_offset() : 0) + i * layout.row_bytes(),
                           layout.has_scales() ? scale : nullptr);
    }
  }
  float* base = (*buf)->floats();
  gpu.CopyFromHost(host.data(), base, static_cast<size_t>(block));
  for (int64_t off = block; off < floats; off += block) {
    gpu.CopyDevice(base, base + off, static_cast<size_t>(std::min(block, floats - off)));
  }
  gpu.Synchronize();
  return std::move(*buf);
}

// GPU time of the work `body` queues on the backend's stream, from CUDA
// events recorded before and after it (host gaps between launches count).
double DeviceSeconds(CudaBackend& gpu, const std::function<void()>& body) {
  cudaEvent_t start = nullptr, stop = nullptr;
  if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
    Die("cudaEventCreate failed");
  }
  cudaEventRecord(start, gpu.stream());
  body();
  cudaEventRecord(stop, gpu.stream());
  float ms = 0.0f;
  if (cudaEventSynchronize(stop) != cudaSuccess ||
      cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) {
    Die("CUDA event timing failed");
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1e3;
}

nlohmann::json DecodeAttention(CudaBackend& gpu, const std::vector<int>& contexts,
                               const std::vector<int>& batches, int iters, kernels::KvDtype dtype) {
  nlohmann::json out = nlohmann::json::array();
  const kernels::KvPageLayout layout = PageLayout(dtype);
  const int64_t page_floats = layout.page_bytes() / 4;
  const double peak = gpu.device_info().peak_bandwidth;
  for (int ctx : contexts) {
    for (int batch : batches) {
      const int64_t pages_per_seq = (ctx + kBlock - 1) / kBlock;
      auto slab = RandomPages(gpu, pages_per_seq * batch, layout);
      std::vector<std::vector<float*>> tables(batch);
      std::vector<kernels::AttentionSeq> seqs;
      for (int b = 0; b < batch; ++b) {
        for (int64_t p = 0; p < pages_per_seq; ++p) {
          tables[b].push_back(slab->floats() + (b * pages_per_seq + p) * page_floats);
        }
        seqs.push_back({b, 1, ctx, tables[b].data()});
      }
      auto q = gpu.Allocate(static_cast<size_t>(batch) * kHeads * kHeadDim * 4);
      auto o = gpu.Allocate(static_cast<size_t>(batch) * kHeads * kHeadDim * 4);
      if (!q.ok() || !o.ok()) Die("allocation failed");
      const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
      auto call = [&] {
        gpu.Attention((*q)->floats(), seqs, kHeads, layout, scale, (*o)->floats());
      };
      call();  // warm-up (uploads, scratch growth)
      gpu.Synchronize();
      const double per_call = DeviceSeconds(gpu,
                                            [&] {
                                              for (int i = 0; i < iters; ++i) call();
                                            }) /
                              iters;
      // K and V of every token read once, in the stored dtype (scales included).
      const double bytes = static_cast<double>(batch) * ctx * layout.bytes_per_token();
      const double gbps = bytes / per_call / 1e9;
      out.push_back({{"context", ctx},
                     {"batch", batch},
                     {"us_per_call", per_call * 1e6},
                     {"kv_bytes_read", bytes},
                     {"gb_per_s", gbps},
                     {"fraction_of_peak", peak > 0 ? gbps * 1e9 / peak : 0.0}});
      std::fprintf(stderr, "decode_attention ctx=%d batch=%d: %.1f us, %.0f GB/s\n", ctx, batch,
                   per_call * 1e6, gbps);
    }
  }
  return out;
}

nlohmann::json PrefillAttention(CudaBackend& gpu, const std::vector<int>& lengths,
                                kernels::KvDtype dtype) {
  nlohmann::json out = nlohmann::json::array();
  const kernels::KvPageLayout layout = PageLayout(dtype);
  const int64_t page_floats = layout.page_bytes() / 4;
  constexpr int kChunk = 512;  // LlamaModel::kMaxChunkTokens
  for (int n : lengths) {
    const int64_t pages = (n + kBlock - 1) / kBlock;
    auto slab = RandomPages(gpu, pages, layout);
    std::vector<float*> table;
    for (int64_t p = 0; p < pages; ++p) table.push_back(slab->floats() + p * page_floats);
    auto q = gpu.Allocate(static_cast<size_t>(kChunk) * kHeads * kHeadDim * 4);
    auto o = gpu.Allocate(static_cast<size_t>(kChunk) * kHeads * kHeadDim * 4);
    if (!q.ok() || !o.ok()) Die("allocation failed");
    const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
    gpu.Synchronize();
    const double s = DeviceSeconds(gpu, [&] {
      for (int c0 = 0; c0 < n; c0 += kChunk) {
        const int count = std::min(kChunk, n - c0);
        const kernels::AttentionSeq seq{0, count, c0 + count, table.data()};
        gpu.Attention((*q)->floats(), {&seq, 1}, kHeads, layout, scale, (*o)->floats());
      }
    });
    out.push_back({{"tokens", n}, {"seconds_per_layer", s}, {"tokens_per_s_per_layer", n / s}});
    std::fprintf(stderr, "prefill_attention n=%d: %.3f s per layer\n", n, s);
  }
  return out;
}

// A synthetic model (random weights) cached as a GGUF file `dir`/`name`, so
// later runs skip the generation.
std::string CachedSyntheticModel(const std::string& dir, const std::string& name,
                                 const engine::SyntheticModelSpec& spec) {
  const std::string path = dir + "/" + name;
  if (std::filesystem::exists(path)) return path;
  std::fprintf(stderr, "generating %s (random weights)\n", path.c_str());
  const std::string bytes = engine::BuildSyntheticGguf(spec);
  const std::string tmp = path + ".part";
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) Die("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
  return path;
}

// Llama-3-8B shape (vocabulary excepted) with random Q4_0 weights.
std::string SyntheticLlama3_8b(const std::string& dir, int layers) {
  engine::SyntheticModelSpec spec;
  spec.num_layers = layers;
  spec.hidden_size = 4096;
  spec.num_heads = 32;
  spec.num_kv_heads = 8;
  spec.ffn_size = 14336;
  spec.context_length = 131072 + 4096;
  spec.rope_theta = 500000.0f;
  spec.weight_type = kernels::GgmlType::kQ4_0;
  spec.tied_embeddings = false;
  return CachedSyntheticModel(
      dir, "restkv-synthetic-llama3-8b-" + std::to_string(layers) + "l.gguf", spec);
}

// The parity section: the smollm2-135m shape with random Q8_0 weights on the
// CPU backend (the reference) and on the device, in the same KV dtype
// (engine/backend_parity.h says what each figure means).
nlohmann::json ParitySection(CudaBackend& gpu, const std::string& dir, kernels::KvDtype dtype) {
  engine::SyntheticModelSpec spec;
  spec.num_layers = 30;
  spec.hidden_size = 576;
  spec.num_heads = 9;
  spec.num_kv_heads = 3;
  spec.ffn_size = 1536;
  spec.context_length = 8192;
  spec.rope_theta = 100000.0f;
  spec.weight_type = kernels::GgmlType::kQ8_0;
  const std::string path = CachedSyntheticModel(dir, "restkv-synthetic-smollm2-135m.gguf", spec);
  kernels::cpu::CpuBackend cpu(DefaultThreadCount());
  engine::ModelOptions options;
  options.kv_dtype = dtype;
  auto on_cpu = engine::Model::Load(path, cpu, options);
  if (!on_cpu.ok()) Die(std::string(on_cpu.status().message()));
  auto on_gpu = engine::Model::Load(path, gpu, options);
  if (!on_gpu.ok()) Die(std::string(on_gpu.status().message()));
  const engine::ParityOptions o;
  const auto r = engine::CompareBackends(**on_cpu, **on_gpu, o);
  if (!r.ok()) Die(std::string(r.status().message()));
  nlohmann::json kept = nlohmann::json::array();
  for (const engine::KeptParity& k : r->kept) {
    kept.push_back({{"policy", k.policy},
                    {"kv_budget", o.kv_budget},
                    {"prompt_tokens", o.evict_prompt_tokens},
                    {"mean_jaccard", k.mean_jaccard}});
  }
  std::fprintf(stderr,
               "parity: top-1 %d/%d (clear mismatches %d), max |dlogit| %.4g of %.4g, greedy %d/%d "
               "identical\n",
               r->top1_agree, r->steps, r->clear_mismatches, r->max_abs_logit_error,
               r->max_abs_logit, r->greedy_identical, o.decode_steps);
  return {{"weights", "random-weights (synthetic smollm2-135m shape, Q8_0 file)"},
          {"prompt_tokens", o.prompt_tokens},
          {"teacher_forced_steps", r->steps},
          {"top1_agree", r->top1_agree},
          {"clear_mismatches", r->clear_mismatches},
          {"max_abs_logit_error", r->max_abs_logit_error},
          {"max_abs_logit", r->max_abs_logit},
          {"greedy_identical", r->greedy_identical},
          {"greedy_steps", o.decode_steps},
          {"kept", kept}};
}

engine::KvPolicyConfig PolicyFor(const std::string& name, int32_t budget) {
  engine::KvPolicyConfig p;
  auto kind = engine::ParseKvPolicy(name);
  if (!kind.ok()) Die(std::string(kind.status().message()));
  p.kind = *kind;
  p.budget = p.kind == engine::KvPolicyKind::kFull ? 0 : budget;
  if (const absl::Status st = p.Validate(); !st.ok()) Die(std::string(st.message()));
  return p;
}

// Prefills `prompt` into kv (with eviction under `policy`), logits of the
// last token into *logits. Synchronised (the logits copy waits).
void Prefill(engine::Model& model, engine::SequenceKv& kv, const engine::KvPolicyConfig& policy,
             absl::Span<const int32_t> prompt, std::vector<float>* logits) {
  engine::EvictionReport report;
  engine::SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), engine::LogitsMode::kLast};
  engine::LayerEvictor evictor(model.config(), model.weights(), model.backend());
  engine::KvLayerHook hook(kv, policy, evictor, &report);
  in.hook = &hook;
  const absl::Status st = model.forward().Forward({&in, 1}, logits);
  if (!st.ok()) Die(std::string(st.message()));
}

std::vector<int32_t> RandomPrompt(int n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, vocab - 1);
  std::vector<int32_t> prompt(n);
  for (int32_t& t : prompt) t = tok(rng);
  return prompt;
}

nlohmann::json ModelSection(CudaBackend& gpu, engine::Model& model, const std::vector<int>& lengths,
                            const std::vector<std::string>& policies, int32_t budget,
                            int decode_tokens) {
  const auto& c = model.config();
  nlohmann::json out = nlohmann::json::array();
  for (int n : lengths) {
    const int32_t pages = c.num_layers * ((n + decode_tokens) / kBlock + 2);
    auto pool = engine::BlockPool::Create(
        gpu, {c.num_kv_heads, c.head_dim, kBlock, model.forward().kv_dtype()}, pages);
    if (!pool.ok()) Die(std::string(pool.status().message()));
    const std::vector<int32_t> prompt = RandomPrompt(n, c.vocab_size, 7);
    double full_prefill = 0;
    for (const std::string& name : policies) {
      const engine::KvPolicyConfig policy = PolicyFor(name, budget);
      std::vector<float> logits;
      engine::SequenceKv kv(**pool, c.num_layers);
      auto t0 = std::chrono::steady_clock::now();
      Prefill(model, kv, policy, prompt, &logits);
      const double prefill_s = Seconds(t0);
      if (policy.kind == engine::KvPolicyKind::kFull) full_prefill = prefill_s;
      int32_t next = 0;
      t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < decode_tokens; ++i) {
        next =
            static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (!kv.Reserve(1)) Die("KV pool too small");
        engine::SequenceInput in{
            {&next, 1}, n + i, kv.cached_len(), kv.page_ptrs(), engine::LogitsMode::kLast};
        const absl::Status st = model.forward().Forward({&in, 1}, &logits);
        if (!st.ok()) Die(std::string(st.message()));
        kv.Commit(1);
      }
      const double decode_s = Seconds(t0);
      nlohmann::json row = {
          {"prompt_tokens", n},
          {"policy", name},
          {"kv_budget", policy.budget},
          {"prefill_seconds", prefill_s},
          {"prefill_tokens_per_s", n / prefill_s},
          {"decode_tokens", decode_tokens},
          {"decode_ms_per_token", decode_tokens > 0 ? 1e3 * decode_s / decode_tokens : 0.0}};
      if (full_prefill > 0 && policy.kind != engine::KvPolicyKind::kFull) {
        row["prefill_overhead_vs_full"] = prefill_s / full_prefill - 1.0;
      }
      out.push_back(row);
      std::fprintf(stderr, "model n=%d %s: prefill %.2f s, decode %.2f ms/token\n", n, name.c_str(),
                   prefill_s, decode_tokens > 0 ? 1e3 * decode_s / decode_tokens : 0.0);
    }
  }
  return out;
}

struct ConcurrencyOptions {
  int prompt_tokens = 131072;
  int32_t budget = 2048;
  int max_requests = 8;
  int decode_steps = 8;
  double utilization = 0.9;
  // Pages filled with random K/V (engine/kv/random_kv_fill.h) instead of
  // prefilled: a pool of 128k-token requests fills in seconds.
  bool random_fill = true;
  // The depth the pool is sized for: the memory a `depth`-layer model of
  // this shape leaves (its weights scaled from the loaded layers'), in pages
  // of the loaded layers, so as many requests fit as would at that depth.
  int depth = 0;
  int64_t weight_bytes = 0;  // device bytes of the loaded model
};

nlohmann::json Concurrency(CudaBackend& gpu, engine::Model& model,
                           const std::vector<std::string>& policies, const ConcurrencyOptions& o) {
  const auto& c = model.config();
  const int n = o.prompt_tokens;
  const int depth = o.depth > 0 ? o.depth : c.num_layers;
  const engine::KvPageShape shape{c.num_kv_heads, c.head_dim, kBlock, model.forward().kv_dtype()};
  const engine::KvPageMath math{c.num_layers, kBlock};
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& name : policies) {
    const engine::KvPolicyConfig policy = PolicyFor(name, o.budget);
    gpu.Synchronize();
    const kernels::cuda::DeviceInfo now = kernels::cuda::GetDeviceInfo(0);
    const int64_t in_use = now.total_memory - now.free_memory;
    // At depth D the weights take (D / L) x the loaded layers' bytes.
    const int64_t extra_weights = o.weight_bytes * (depth - c.num_layers) / c.num_layers;
    const int64_t kv_bytes_at_depth = static_cast<int64_t>(o.utilization * now.total_memory) -
                                      in_use - extra_weights - (int64_t{2} << 30);
    if (kv_bytes_at_depth <= 0) Die("no memory left for the KV pool");
    const int32_t num_pages =
        static_cast<int32_t>(kv_bytes_at_depth / shape.page_bytes() * c.num_layers / depth);
    auto pool = engine::BlockPool::Create(gpu, shape, num_pages);
    if (!pool.ok()) Die(std::string(pool.status().message()));
    // Requests that fit by the page arithmetic: the last one's prefill peak
    // on top of the others' resident pages plus their decode growth.
    const int64_t resident = math.PagesAfterDecode(policy, n, o.decode_steps);
    const int64_t peak = math.PrefillPeakPages(policy, n);
    const int64_t fit_math =
        peak > num_pages ? 0 : 1 + (num_pages - peak) / std::max<int64_t>(1, resident);
    std::vector<std::unique_ptr<engine::SequenceKv>> seqs;
    std::vector<int32_t> next;
    std::vector<float> logits;
    double admit_total = 0;
    std::mt19937 rng(11);
    std::uniform_int_distribution<int32_t> token(0, c.vocab_size - 1);
    while (static_cast<int>(seqs.size()) < o.max_requests) {
      // Room for this prefill's peak while every admitted request keeps
      // room to decode (the scheduler's admission rule).
      const int64_t reserved =
          static_cast<int64_t>(seqs.size()) * o.decode_steps * c.num_layers / kBlock +
          static_cast<int64_t>(seqs.size()) * c.num_layers;
      if ((*pool)->num_free() - reserved < peak) break;
      auto kv = std::make_unique<engine::SequenceKv>(**pool, c.num_layers);
      const uint32_t seed = 100 + static_cast<uint32_t>(seqs.size());
      const auto t0 = std::chrono::steady_clock::now();
      if (o.random_fill) {
        const absl::Status st = engine::FillWithRandomKv(gpu, *kv, policy, n, seed);
        if (!st.ok()) Die(std::string(st.message()));
        next.push_back(token(rng));
      } else {
        Prefill(model, *kv, policy, RandomPrompt(n, c.vocab_size, seed), &logits);
        next.push_back(
            static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
      }
      admit_total += Seconds(t0);
      seqs.push_back(std::move(kv));
      if (seqs.size() % 64 == 1 || !o.random_fill) {
        std::fprintf(stderr, "concurrency %s: request %zu in (%d pages free)\n", name.c_str(),
                     seqs.size(), (*pool)->num_free());
      }
    }
    // Every admitted request decodes together.
    double decode_s = 0;
    int steps_done = 0;
    for (int step = 0; step < o.decode_steps && !seqs.empty(); ++step) {
      std::vector<engine::SequenceInput> batch;
      bool ok = true;
      for (size_t i = 0; i < seqs.size(); ++i) {
        if (!seqs[i]->Reserve(1)) ok = false;
      }
      if (!ok) break;
      for (size_t i = 0; i < seqs.size(); ++i) {
        batch.push_back({{&next[i], 1},
                         n + step,
                         seqs[i]->cached_len(),
                         seqs[i]->page_ptrs(),
                         engine::LogitsMode::kLast});
      }
      const auto t0 = std::chrono::steady_clock::now();
      const absl::Status st = model.forward().Forward(batch, &logits);
      decode_s += Seconds(t0);
      if (!st.ok()) Die(std::string(st.message()));
      for (size_t i = 0; i < seqs.size(); ++i) {
        seqs[i]->Commit(1);
        const float* row = logits.data() + i * c.vocab_size;
        next[i] = static_cast<int32_t>(std::max_element(row, row + c.vocab_size) - row);
      }
      ++steps_done;
    }
    const double step_ms = steps_done > 0 ? 1e3 * decode_s / steps_done : 0.0;
    out.push_back({{"policy", name},
                   {"kv_budget", policy.budget},
                   {"prompt_tokens", n},
                   {"fill", o.random_fill ? "random K/V" : "prefill"},
                   {"layers_run", c.num_layers},
                   {"pool_sized_for_layers", depth},
                   {"kv_pool_bytes", static_cast<int64_t>(num_pages) * shape.page_bytes()},
                   {"kv_pool_pages", num_pages},
                   {"requests_fit_by_page_math", fit_math},
                   {"requests_run", seqs.size()},
                   {"request_cap", o.max_requests},
                   {"admit_seconds_total", admit_total},
                   {"decode_steps", steps_done},
                   {"decode_ms_per_step", step_ms},
                   // Per-layer work dominates a step, so it scales with depth.
                   {"decode_ms_per_step_at_depth", step_ms * depth / c.num_layers}});
    std::fprintf(stderr,
                 "concurrency %s: %zu requests of %d tokens (pool for %d layers), %.2f ms per "
                 "decode step\n",
                 name.c_str(), seqs.size(), n, depth, step_ms);
  }
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv CUDA backend benchmark (JSON on stdout)"};
  std::vector<std::string> sections = {"decode_attention", "prefill_attention", "model",
                                       "concurrency", "parity"};
  std::vector<std::string> policies = {"full", "restkv", "snapkv"};
  int32_t budget = 2048;
  ConcurrencyOptions conc;
  std::string fill = "random";
  std::vector<int> contexts = {4096, 32768, 131072}, batches = {1, 32};
  std::vector<int> prefill = {8192, 131072};
  int iters = 20, layers = 32, decode_tokens = 16, device = 0;
  std::string kv_dtype_name = "bf16";
  std::string cache_dir = std::filesystem::temp_directory_path().string();
  app.add_option("--sections", sections,
                 "decode_attention, prefill_attention, model, concurrency, parity");
  app.add_option("--policies", policies, "KV policies for model and concurrency (full first)");
  app.add_option("--kv-budget", budget, "Budget of the evicting policies");
  app.add_option("--concurrency-tokens", conc.prompt_tokens,
                 "Prompt length of the concurrency section");
  app.add_option("--max-requests", conc.max_requests,
                 "Most requests the concurrency section admits");
  app.add_option("--concurrency-steps", conc.decode_steps,
                 "Decode steps run by all requests together");
  app.add_option("--concurrency-fill", fill,
                 "random: pages filled with random K/V; prefill: each request prefilled")
      ->check(CLI::IsMember({"random", "prefill"}))
      ->capture_default_str();
  app.add_option("--concurrency-depth", conc.depth,
                 "Size the KV pool for a model this many layers deep (default: --layers)");
  app.add_option("--gpu-memory-utilization", conc.utilization,
                 "Fraction of GPU memory for weights + KV");
  app.add_option("--contexts", contexts, "Decode-attention context lengths");
  app.add_option("--batches", batches, "Decode-attention batch sizes");
  app.add_option("--iters", iters, "Timed decode-attention calls per point");
  app.add_option("--prefill-tokens", prefill, "Prompt lengths for prefill_attention and model");
  app.add_option("--layers", layers, "Layers of the random-weights model (Llama-3-8B: 32)");
  app.add_option("--decode-tokens", decode_tokens, "Decode steps after each model prefill");
  app.add_option("--cache-dir", cache_dir, "Where the random-weights GGUF is cached");
  app.add_option("--device", device, "CUDA device ordinal");
  app.add_option("--kv-cache-dtype", kv_dtype_name, "KV page dtype: f32, f16, bf16, q8_0")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const std::optional<kernels::KvDtype> kv_dtype = kernels::KvDtypeFromName(kv_dtype_name);
  if (!kv_dtype.has_value()) Die("--kv-cache-dtype must be f32, f16, bf16 or q8_0");
  if (kernels::cuda::DeviceCount() == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device\n");
    return 2;
  }
  auto gpu = CudaBackend::Create({.device = device, .host_threads = DefaultThreadCount()});
  if (!gpu.ok()) Die(std::string(gpu.status().message()));
  const auto& info = (*gpu)->device_info();
  nlohmann::json j = {{"device", info.name},
                      {"sm_count", info.sm_count},
                      {"memory_bytes", info.total_memory},
                      {"peak_bandwidth_gb_per_s", info.peak_bandwidth / 1e9},
                      {"kv_dtype", kv_dtype_name}};
  std::unique_ptr<engine::Model> model;  // loaded once, for model and concurrency
  auto get_model = [&]() -> engine::Model& {
    if (model == nullptr) {
      engine::ModelOptions options;
      options.kv_dtype = *kv_dtype;
      const std::string path = SyntheticLlama3_8b(cache_dir, layers);
      (*gpu)->Synchronize();
      const kernels::cuda::DeviceInfo before = kernels::cuda::GetDeviceInfo(device);
      auto m = engine::Model::Load(path, **gpu, options);
      if (!m.ok()) Die(std::string(m.status().message()));
      model = std::move(*m);
      (*gpu)->Synchronize();
      conc.weight_bytes = before.free_memory - kernels::cuda::GetDeviceInfo(device).free_memory;
    }
    return *model;
  };
  const std::string weights_label =
      "random-weights (synthetic Llama-3-8B shape, Q4_0 file -> bf16)";
  for (const std::string& s : sections) {
    if (s == "decode_attention") {
      j[s] = DecodeAttention(**gpu, contexts, batches, iters, *kv_dtype);
    } else if (s == "prefill_attention") {
      j[s] = PrefillAttention(**gpu, prefill, *kv_dtype);
    } else if (s == "model") {
      j[s] = {{"weights", weights_label},
              {"layers", layers},
              {"runs", ModelSection(**gpu, get_model(), prefill, policies, budget, decode_tokens)}};
    } else if (s == "parity") {
      j[s] = ParitySection(**gpu, cache_dir, *kv_dtype);
    } else if (s == "concurrency") {
      j[s] = {{"weights", weights_label}, {"layers", layers}, {"runs", [&] {
                                                                 engine::Model& m = get_model();
                                                                 conc.budget = budget;
                                                                 conc.random_fill =
                                                                     fill == "random";
                                                                 return Concurrency(**gpu, m,
                                                                                    policies, conc);
                                                               }()}};
    } else {
      Die("unknown section " + s);
    }
  }
  // Backend operations record their first failure instead of aborting.
  if (!(*gpu)->status().ok())
    Die("CUDA backend failed: " + std::string((*gpu)->status().message()));
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
