#include "engine/model/model_weights.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "engine/gguf/gguf_file.h"

namespace restkv::engine {
namespace {

class Loader {
 public:
  Loader(const GgufFile& file, kernels::Backend& backend) : file_(file), backend_(backend) {}

  absl::StatusOr<const GgufTensorInfo*> Find(const std::string& name,
                                             std::vector<int64_t> expected_dims) {
    const GgufTensorInfo* t = file_.FindTensor(name);
    if (t == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tensor '%s' is missing", file_.name(), name));
    }
    if (t->dims != expected_dims) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tensor '%s' has shape [%s], expected [%s]", file_.name(), name,
                          absl::StrJoin(t->dims, ", "), absl::StrJoin(expected_dims, ", ")));
    }
    return t;
  }

  // GGUF stores W [out][in] with dims = {in, out}.
  absl::StatusOr<kernels::Matrix> Matrix(const std::string& name, int64_t rows, int64_t cols) {
    RESTKV_ASSIGN_OR_RETURN(const GgufTensorInfo* t, Find(name, {cols, rows}));
    auto m = backend_.PrepareMatrix(t->type, rows, cols, t->data);
    if (!m.ok()) {
      return absl::Status(m.status().code(), absl::StrFormat("%s: tensor '%s': %s", file_.name(),
                                                             name, m.status().message()));
    }
    if (m->packed != nullptr || m->data != t->data) {
      // The backend reads its own copy; the file's pages need not stay resident.
      file_.DropResidentPages(t->data,
                              static_cast<size_t>(kernels::RowBytes(t->type, cols) * rows));
    }
    return m;
  }

  absl::StatusOr<const float*> Vector(const std::string& name, int64_t n) {
    RESTKV_ASSIGN_OR_RETURN(const GgufTensorInfo* t, Find(name, {n}));
    return backend_.PrepareVector(t->type, n, t->data);
  }

 private:
  const GgufFile& file_;
  kernels::Backend& backend_;
};

}  // namespace

absl::StatusOr<ModelWeights> ModelWeights::Load(const GgufFile& file, const ModelConfig& c,
                                                kernels::Backend& backend) {
  Loader ld(file, backend);
  ModelWeights w;
  const int64_t d = c.hidden_size, f = c.ffn_size, q = c.q_dim(), kv = c.kv_dim();
  RESTKV_ASSIGN_OR_RETURN(w.token_embd, ld.Matrix("token_embd.weight", c.vocab_size, d));
  RESTKV_ASSIGN_OR_RETURN(w.output_norm, ld.Vector("output_norm.weight", d));
  if (c.tied_embeddings) {
    w.output = w.token_embd;
  } else {
    RESTKV_ASSIGN_OR_RETURN(w.output, ld.Matrix("output.weight", c.vocab_size, d));
  }
  if (c.has_rope_freq_factors) {
    RESTKV_ASSIGN_OR_RETURN(w.rope_freq_factors, ld.Vector("rope_freqs.weight", c.rope_dims / 2));
  }
  w.layers.resize(c.num_layers);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = w.layers[l];
    const std::string p = absl::StrFormat("blk.%d.", l);
    RESTKV_ASSIGN_OR_RETURN(lw.attn_norm, ld.Vector(p + "attn_norm.weight", d));
    RESTKV_ASSIGN_OR_RETURN(lw.wq, ld.Matrix(p + "attn_q.weight", q, d));
    RESTKV_ASSIGN_OR_RETURN(lw.wk, ld.Matrix(p + "attn_k.weight", kv, d));
    RESTKV_ASSIGN_OR_RETURN(lw.wv, ld.Matrix(p + "attn_v.weight", kv, d));
    RESTKV_ASSIGN_OR_RETURN(lw.wo, ld.Matrix(p + "attn_output.weight", d, q));
    if (c.has_qkv_bias) {
      RESTKV_ASSIGN_OR_RETURN(lw.bq, ld.Vector(p + "attn_q.bias", q));
      RESTKV_ASSIGN_OR_RETURN(lw.bk, ld.Vector(p + "attn_k.bias", kv));
      RESTKV_ASSIGN_OR_RETURN(lw.bv, ld.Vector(p + "attn_v.bias", kv));
    }
    RESTKV_ASSIGN_OR_RETURN(lw.ffn_norm, ld.Vector(p + "ffn_norm.weight", d));
    RESTKV_ASSIGN_OR_RETURN(lw.w_gate, ld.Matrix(p + "ffn_gate.weight", f, d));
    RESTKV_ASSIGN_OR_RETURN(lw.w_up, ld.Matrix(p + "ffn_up.weight", f, d));
    RESTKV_ASSIGN_OR_RETURN(lw.w_down, ld.Matrix(p + "ffn_down.weight", d, f));
  }
  return w;
}

}  // namespace restkv::engine
