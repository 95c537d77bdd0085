// Fused forward and backward (BPTT) of one LSTM layer-direction, every lstmkit variant.
//
// The math is that of lstmkit/nn/cells.py (the reference); the shapes are T steps, B rows,
// I inputs, H cell units, P outputs (P = H without projection), G gate blocks (GH = G * H).
//
// Forward: the input projection of all steps in one GEMM, then per step one GEMM for the
// recurrence (two with a projection) and one pass over memory for the gates and the cell.
// Saved for the backward: the gate activations (T, B, GH), the cells (T, B, H), the outputs
// (returned anyway) and, for layernorm, the per-row means and reciprocal deviations.
// Backward: per step one GEMM for dh (two with a projection) and one pass over memory; the
// weight gradients are accumulated afterwards with one GEMM over all steps each.
//
// Variable lengths follow PackedSequence: at time t only the first sizes[t] rows are active.
// A row's state stops changing after its last step (forward direction) and starts from the
// initial state at its last step (reverse direction).
#include <torch/extension.h>

#include <cstring>
#include <vector>

#include "common.h"
#include "lstm_rows.h"

namespace lstmkit {

// ---------------------------------------------------------------------------------------------

struct Weights {
  Tensor w_ih, w_hh;
  OptTensor b_ih, b_hh, w_hr, w_ch, ln_ih, ln_hh, ln_c, ln_c_bias;
  bool proj() const { return present(w_hr); }
  bool bias() const { return present(b_ih); }
};

template <typename S, int V>
std::vector<Tensor> forward_impl(const Tensor& x, const Tensor& h0, const Tensor& c0, const Weights& w,
                                 const Schedule& sched, bool train, bool padded) {
  const int64_t T = x.size(0), B = x.size(1), H = c0.size(1), P = h0.size(1);
  const int64_t GH = w.w_ih.size(0);
  const auto opts = x.options();
  Tensor x2 = x.reshape({T * B, x.size(2)});
  Tensor gates = at::empty({T, B, GH}, opts);
  Tensor gates2 = gates.view({T * B, GH});
  Tensor stats = V == kLayerNorm ? at::zeros({T, B, kStats}, opts) : Tensor();
  if constexpr (V == kLayerNorm) {
    at::mm_out(gates2, x2, w.w_ih.t());
    normalize_rows<S>(gates.data_ptr<S>(), T * B, GH, GH, stats.data_ptr<S>(), kStats);
    gates2.mul_(*w.ln_ih);
    if (w.bias()) gates2.add_(*w.b_ih);
  } else if (w.bias()) {
    at::addmm_out(gates2, *w.b_ih, x2, w.w_ih.t());
  } else {
    at::mm_out(gates2, x2, w.w_ih.t());
  }
  Tensor out = padded ? at::zeros({T, B, P}, opts) : at::empty({T, B, P}, opts);
  Tensor cells = train ? at::empty({T, B, H}, opts) : Tensor();
  Tensor h = h0.clone(), c = c0.clone();
  Tensor hcell_buf = w.proj() ? at::empty({B, H}, opts) : Tensor();
  Tensor ah = V == kLayerNorm ? at::empty({B, GH}, opts) : Tensor();
  const S* b_hh = V == kLayerNorm ? nullptr : cptr<S>(w.b_hh);  // layernorm adds it below
  const S* w_hh = w.w_hh.data_ptr<S>();
  const S* w_hr = w.proj() ? w.w_hr->data_ptr<S>() : nullptr;
  const S* ln_hh = cptr<S>(w.ln_hh);
  const S* b_hh_ln = cptr<S>(w.b_hh);
  S* hp = h.data_ptr<S>();
  S* cp = c.data_ptr<S>();
  S* hcell_ptr = w.proj() ? hcell_buf.data_ptr<S>() : nullptr;
  S* a = V == kLayerNorm ? ah.data_ptr<S>() : nullptr;
  for (int64_t k = 0; k < sched.steps; ++k) {
    const int64_t t = sched.time(k), n = sched.sizes[t];
    if (n == 0) continue;
    S* z = gates.data_ptr<S>() + t * B * GH;
    S* out_t = out.data_ptr<S>() + t * B * P;
    S* st = V == kLayerNorm ? stats.data_ptr<S>() + t * B * kStats : nullptr;
    if constexpr (V == kLayerNorm) {
      gemm<S>(false, true, n, GH, P, hp, P, w_hh, P, S(0), a, GH);  // a = h W_hh^T
      normalize_rows<S>(a, n, GH, GH, st + 2, kStats);
      for (int64_t b = 0; b < n; ++b) scale_shift_add<S>(GH, z + b * GH, a + b * GH, ln_hh, b_hh_ln);
    } else {
      gemm<S>(false, true, n, GH, P, hp, P, w_hh, P, S(1), z, GH);  // z += h W_hh^T
    }
    S* hcell = w.proj() ? hcell_ptr : out_t;
    forward_rows<S, V>(n, H, z, b_hh, cp, train ? cells.data_ptr<S>() + t * B * H : nullptr, hcell,
                       cptr<S>(w.w_ch), cptr<S>(w.ln_c), cptr<S>(w.ln_c_bias), st);
    if (w.proj()) gemm<S>(false, true, n, P, H, hcell, H, w_hr, H, S(0), out_t, P);  // h = m W_hr^T
    std::memcpy(hp, out_t, n * P * sizeof(S));
  }
  return {out, h, c, train ? gates : Tensor(), cells, stats};
}

template <typename S, int V>
std::vector<Tensor> backward_impl(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& grad_cn,
                                  const Tensor& x, const Tensor& h0, const Tensor& c0, const Weights& w,
                                  const Tensor& out, const Tensor& gates, const Tensor& cells,
                                  const Tensor& stats, const Schedule& sched) {
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = c0.size(1), P = h0.size(1);
  const int64_t GH = w.w_ih.size(0);
  const auto opts = x.options();
  Tensor x2 = x.reshape({T * B, I});
  Tensor hprev = previous_outputs(out, h0, sched);  // h_{t-1} of every step, for dW_hh
  Tensor hprev2 = hprev.view({T * B, P});
  // layernorm: the recurrent pre-normalisation values, recomputed in one GEMM; later d of them
  Tensor ah = V == kLayerNorm ? at::mm(hprev2, w.w_hh.t()).view({T, B, GH}) : Tensor();
  Tensor dz = at::zeros({T, B, GH}, opts);
  Tensor dh = grad_hn.clone(), dc = grad_cn.clone();
  Tensor dh_out = w.proj() ? at::zeros({T, B, P}, opts) : Tensor();  // dL/dh_t, for dW_hr
  Tensor hcell_all = w.proj() ? at::zeros({T, B, H}, opts) : Tensor();
  Tensor dm = at::empty({B, H}, opts);
  Tensor cprev = at::empty({B, H}, opts);
  Tensor scratch = at::empty({3 * H}, opts);
  Tensor dpeep = V == kPeephole ? at::zeros({3, H}, opts) : Tensor();
  Tensor dlnc_w = V == kLayerNorm ? at::zeros({H}, opts) : Tensor();
  Tensor dlnc_b = (V == kLayerNorm && w.bias()) ? at::zeros({H}, opts) : Tensor();
  Tensor dln_hh = V == kLayerNorm ? at::zeros({GH}, opts) : Tensor();
  Tensor xhat_row = V == kLayerNorm ? at::empty({GH}, opts) : Tensor();
  auto ptr = [](Tensor& t) { return t.defined() ? t.data_ptr<S>() : nullptr; };
  const S* w_hh = w.w_hh.data_ptr<S>();
  const S* w_hr = w.proj() ? w.w_hr->data_ptr<S>() : nullptr;
  S* dhp = dh.data_ptr<S>();
  S* dmp = dm.data_ptr<S>();
  S* cprevp = cprev.data_ptr<S>();
  const S* c0p = c0.data_ptr<S>();
  const S* gop = grad_out.data_ptr<S>();

  for (int64_t k = sched.steps - 1; k >= 0; --k) {
    const int64_t t = sched.time(k), n = sched.sizes[t], nc = sched.carried(k);
    if (n == 0) continue;
    add_to<S>(n * P, dhp, gop + t * B * P);  // dL/dh_t: from the output and from step t+1
    if (w.proj()) {
      std::memcpy(dh_out.data_ptr<S>() + t * B * P, dhp, n * P * sizeof(S));
      gemm<S>(false, false, n, H, P, dhp, P, w_hr, H, S(0), dmp, H);  // dm = dh W_hr
    } else {
      std::memcpy(dmp, dhp, n * H * sizeof(S));
    }
    if (nc > 0) std::memcpy(cprevp, cells.data_ptr<S>() + sched.time(k - 1) * B * H, nc * H * sizeof(S));
    if (n > nc) std::memcpy(cprevp + nc * H, c0p + nc * H, (n - nc) * H * sizeof(S));
    S* dzt = dz.data_ptr<S>() + t * B * GH;
    backward_rows<S, V>(n, H, gates.data_ptr<S>() + t * B * GH, cells.data_ptr<S>() + t * B * H, cprevp, dmp,
                        dc.data_ptr<S>(), dzt, w.proj() ? hcell_all.data_ptr<S>() + t * B * H : nullptr,
                        cptr<S>(w.w_ch), ptr(dpeep), cptr<S>(w.ln_c), cptr<S>(w.ln_c_bias), ptr(dlnc_w),
                        ptr(dlnc_b), V == kLayerNorm ? stats.data_ptr<S>() + t * B * kStats : nullptr,
                        scratch.data_ptr<S>());
    if constexpr (V == kLayerNorm) {
      // d of the recurrent part before its normalisation, in place of ah[t]
      const S* st = stats.data_ptr<S>() + t * B * kStats;
      S* xh = xhat_row.data_ptr<S>();
      S* at_ = ah.data_ptr<S>() + t * B * GH;
      for (int64_t b = 0; b < n; ++b) {
        S* a = at_ + b * GH;
        normalized_copy<S>(GH, a, st[b * kStats + 2], st[b * kStats + 3], xh);
        layer_norm_backward_row<S>(dzt + b * GH, xh, cptr<S>(w.ln_hh), st[b * kStats + 3], GH, a,
                                   dln_hh.data_ptr<S>());
      }
      gemm<S>(false, false, n, P, GH, at_, GH, w_hh, P, S(0), dhp, P);  // dh_{t-1} = da W_hh
    } else {
      gemm<S>(false, false, n, P, GH, dzt, GH, w_hh, P, S(0), dhp, P);  // dh_{t-1} = dz W_hh
    }
  }

  Tensor dz2 = dz.view({T * B, GH});
  Tensor db = w.bias() ? dz2.sum(0) : Tensor();
  Tensor dw_hh = at::mm((V == kLayerNorm ? ah.view({T * B, GH}) : dz2).t(), hprev2);
  Tensor dln_ih;
  Tensor dx_pre = dz2;  // gradient w.r.t. x W_ih^T
  if constexpr (V == kLayerNorm) {
    // input part: recompute x W_ih^T, then the layer-norm backward row by row
    Tensor ax = at::mm(x2, w.w_ih.t());
    dln_ih = at::zeros({GH}, opts);
    const S* st = stats.data_ptr<S>();
    S* xh = xhat_row.data_ptr<S>();
    for (int64_t r = 0; r < T * B; ++r) {
      S* a = ax.data_ptr<S>() + r * GH;
      const S rstd = st[r * kStats + 1];
      normalized_copy<S>(GH, a, st[r * kStats], rstd, xh);
      layer_norm_backward_row<S>(dz2.data_ptr<S>() + r * GH, xh, cptr<S>(w.ln_ih), rstd, GH, a,
                                 dln_ih.data_ptr<S>());
    }
    // padded rows have dz = 0, so their gradient is 0 as well
    dx_pre = ax;
  }
  Tensor dw_ih = at::mm(dx_pre.t(), x2);
  Tensor dx = at::mm(dx_pre, w.w_ih).view({T, B, I});
  Tensor dw_hr = w.proj() ? at::mm(dh_out.view({T * B, P}).t(), hcell_all.view({T * B, H})) : Tensor();
  return {dx, dh, dc, dw_ih, dw_hh, db, db, dw_hr, dpeep, dln_ih, dln_hh, dlnc_w, dlnc_b};
}

#define LSTMKIT_DISPATCH_VARIANT(variant, FN, ...)                      \
  [&] {                                                                 \
    switch (variant) {                                                  \
      case kStandard: return FN<scalar_t, kStandard>(__VA_ARGS__);      \
      case kVanilla: return FN<scalar_t, kVanilla>(__VA_ARGS__);        \
      case kPeephole: return FN<scalar_t, kPeephole>(__VA_ARGS__);      \
      case kCifg: return FN<scalar_t, kCifg>(__VA_ARGS__);              \
      case kLayerNorm: return FN<scalar_t, kLayerNorm>(__VA_ARGS__);    \
      default: break;                                                   \
    }                                                                   \
    TORCH_CHECK(false, "unknown LSTM variant ", variant);               \
    return std::vector<Tensor>{};                                       \
  }()

std::vector<Tensor> lstm_forward(int64_t variant, const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_ih, const Tensor& w_hh, const OptTensor& b_ih,
                                 const OptTensor& b_hh, const OptTensor& w_hr, const OptTensor& w_ch,
                                 const OptTensor& ln_ih, const OptTensor& ln_hh, const OptTensor& ln_c,
                                 const OptTensor& ln_c_bias, const std::vector<int64_t>& batch_sizes,
                                 bool reverse, bool train) {
  const Weights w{w_ih.contiguous(), w_hh.contiguous(), contiguous(b_ih), contiguous(b_hh), contiguous(w_hr),
                  contiguous(w_ch), contiguous(ln_ih), contiguous(ln_hh), contiguous(ln_c), contiguous(ln_c_bias)};
  const Schedule sched(x.size(0), x.size(1), batch_sizes, reverse);
  const Tensor xc = x.contiguous();
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_forward", [&] {
    result = LSTMKIT_DISPATCH_VARIANT(variant, forward_impl, xc, h0.contiguous(), c0.contiguous(), w,
                                      sched, train, !batch_sizes.empty());
  });
  return result;
}

std::vector<Tensor> lstm_backward(int64_t variant, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const Tensor& x, const Tensor& h0, const Tensor& c0,
                                  const Tensor& w_ih, const Tensor& w_hh, const OptTensor& b_ih,
                                  const OptTensor& b_hh, const OptTensor& w_hr, const OptTensor& w_ch,
                                  const OptTensor& ln_ih, const OptTensor& ln_hh, const OptTensor& ln_c,
                                  const OptTensor& ln_c_bias, const Tensor& out, const Tensor& gates,
                                  const Tensor& cells, const Tensor& stats,
                                  const std::vector<int64_t>& batch_sizes, bool reverse) {
  const Weights w{w_ih.contiguous(), w_hh.contiguous(), contiguous(b_ih), contiguous(b_hh), contiguous(w_hr),
                  contiguous(w_ch), contiguous(ln_ih), contiguous(ln_hh), contiguous(ln_c), contiguous(ln_c_bias)};
  const Schedule sched(x.size(0), x.size(1), batch_sizes, reverse);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_lstm_backward", [&] {
    result = LSTMKIT_DISPATCH_VARIANT(variant, backward_impl, grad_out.contiguous(), grad_hn.contiguous(),
                                      grad_cn.contiguous(), x.contiguous(), h0.contiguous(), c0.contiguous(),
                                      w, out, gates, cells, stats, sched);
  });
  return result;
}

}  // namespace lstmkit
