#include "engine/model/synthetic_model.h"

#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "engine/gguf/gguf_writer.h"
#include "kernels/cpu/quantize_ref.h"

namespace restkv::engine {
namespace {

// GPT-2's byte-to-unicode mapping: printable bytes map to themselves, the
// rest to U+0100 and up, so every byte is a visible one-character token.
std::string ByteToken(int b) {
  static const auto table = [] {
    std::vector<int> cps(256, -1);
    int next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE);
      cps[i] = printable ? i : next++;
    }
    return cps;
  }();
  const int cp = table[b];
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

}  // namespace

std::string BuildSyntheticGguf(const SyntheticModelSpec& spec) {
  RESTKV_CHECK(spec.hidden_size % spec.num_heads == 0);
  RESTKV_CHECK(spec.num_heads % spec.num_kv_heads == 0);
  RESTKV_CHECK(spec.hidden_size % 32 == 0 && spec.ffn_size % 32 == 0);
  const std::string& a = spec.architecture;
  const int32_t head_dim = spec.hidden_size / spec.num_heads;
  const int32_t kv_dim = head_dim * spec.num_kv_heads;
  GgufWriter w;
  w.AddString("general.architecture", a);
  w.AddString("general.name", "synthetic-" + a);
  w.AddUint32(a + ".block_count", spec.num_layers);
  w.AddUint32(a + ".context_length", spec.context_length);
  w.AddUint32(a + ".embedding_length", spec.hidden_size);
  w.AddUint32(a + ".feed_forward_length", spec.ffn_size);
  w.AddUint32(a + ".attention.head_count", spec.num_heads);
  w.AddUint32(a + ".attention.head_count_kv", spec.num_kv_heads);
  w.AddFloat32(a + ".rope.freq_base", spec.rope_theta);
  w.AddFloat32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddUint32(a + ".rope.dimension_count", head_dim);

  // Tokenizer: bytes, then merges "h e", "l l", "o Ġ"(o+space) and "he ll",
  // then ChatML control tokens.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(ByteToken(b));
  // (Built with append: GCC 12 warns falsely on literal + string here.)
  std::string o_space = "o";
  o_space.append(ByteToken(' '));
  std::string o_merge = "o ";
  o_merge.append(ByteToken(' '));
  const std::vector<std::string> merges = {"h e", "l l", o_merge, "he ll"};
  tokens.insert(tokens.end(), {"he", "ll", o_space, "hell"});
  tokens.insert(tokens.end(), {"<|endoftext|>", "<|im_start|>", "<|im_end|>"});
  RESTKV_CHECK_EQ(static_cast<int32_t>(tokens.size()), kSyntheticVocabSize);
  std::vector<int32_t> types(tokens.size(), 1);
  for (size_t i = tokens.size() - 3; i < tokens.size(); ++i) types[i] = 3;
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "gpt-2");
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddInt32Array("tokenizer.ggml.token_type", types);
  w.AddStringArray("tokenizer.ggml.merges", merges);
  w.AddUint32("tokenizer.ggml.bos_token_id", 261);
  w.AddUint32("tokenizer.ggml.eos_token_id", 262);
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  w.AddString("tokenizer.chat_template",
              "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
              "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");

  std::mt19937 rng(spec.seed);
  // Scaled so activations stay O(1) through the layers.
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, kernels::GgmlType type) {
    std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    std::vector<float> v(rows * cols);
    for (float& x : v) x = dist(rng);
    w.AddTensor(name, {cols, rows}, type, kernels::QuantizeMatrix(type, v.data(), rows, cols));
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float spread) {
    std::uniform_real_distribution<float> dist(mean - spread, mean + spread);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    w.AddTensor(name, {n}, kernels::GgmlType::kF32,
                std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  };
  const kernels::GgmlType t = spec.weight_type;
  {
    // Embeddings with unit-scale rows so the first norm sees O(1) inputs.
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(static_cast<int64_t>(kSyntheticVocabSize) * spec.hidden_size);
    for (float& x : v) x = dist(rng);
    w.AddTensor("token_embd.weight", {spec.hidden_size, kSyntheticVocabSize}, t,
                kernels::QuantizeMatrix(t, v.data(), kSyntheticVocabSize, spec.hidden_size));
  }
  vector("output_norm.weight", spec.hidden_size, 1.0f, 0.2f);
  if (!spec.tied_embeddings) matrix("output.weight", kSyntheticVocabSize, spec.hidden_size, t);
  for (int32_t l = 0; l < spec.num_layers; ++l) {
    const std::string p = absl::StrFormat("blk.%d.", l);
    vector(p + "attn_norm.weight", spec.hidden_size, 1.0f, 0.2f);
    matrix(p + "attn_q.weight", spec.hidden_size, spec.hidden_size, t);
    matrix(p + "attn_k.weight", kv_dim, spec.hidden_size, t);
    matrix(p + "attn_v.weight", kv_dim, spec.hidden_size, t);
    if (a == "qwen2") {
      vector(p + "attn_q.bias", spec.hidden_size, 0.0f, 0.1f);
      vector(p + "attn_k.bias", kv_dim, 0.0f, 0.1f);
      vector(p + "attn_v.bias", kv_dim, 0.0f, 0.1f);
    }
    matrix(p + "attn_output.weight", spec.hidden_size, spec.hidden_size, t);
    vector(p + "ffn_norm.weight", spec.hidden_size, 1.0f, 0.2f);
    matrix(p + "ffn_gate.weight", spec.ffn_size, spec.hidden_size, t);
    matrix(p + "ffn_up.weight", spec.ffn_size, spec.hidden_size, t);
    matrix(p + "ffn_down.weight", spec.hidden_size, spec.ffn_size, t);
  }
  return w.ToBytes();
}

}  // namespace restkv::engine
