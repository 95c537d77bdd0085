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
  const SerialBlas serial(T * B * GH * (x.size(2) + P) < kSerialCallSize);
  Tensor x2 = x.reshape({T * B, x.size(2)});
  Tensor gates = at::empty({T, B, GH}, opts);
  Tensor gates2 = gates.view({T * B, GH});
  Tensor stats = V == kLayerNorm ? at::zeros({T, B, kStats}, opts) : Tensor();
  if constexpr (V == kLayerNorm) {
    at::mm_out(gates2, x2, w.w_ih.t());
    at::parallel_for(0, T * B, std::max<int64_t>(1, 8192 / GH), [&](int64_t r0, int64_t r1) {
      normalize_rows<S>(gates.data_ptr<S>() + r0 * GH, r1 - r0, GH, GH, stats.data_ptr<S>() + r0 * kStats, kStats);
    });
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
  const S* b_hh = V == kLayerNorm ? nullptr : cptr<S>(w.b_hh);  // layernorm adds it below
  const S* ln_hh = cptr<S>(w.ln_hh);
  const S* b_hh_ln = cptr<S>(w.b_hh);
  S* gates_p = gates.data_ptr<S>();
  S* out_p = out.data_ptr<S>();
  S* cells_p = train ? cells.data_ptr<S>() : nullptr;
  S* stats_p = V == kLayerNorm ? stats.data_ptr<S>() : nullptr;
  const StepLinear<S> recurrent(w.w_hh, B);                                 // h W_hh^T
  const std::optional<StepLinear<S>> project = w.proj() ? std::optional(StepLinear<S>(*w.w_hr, B)) : std::nullopt;
  const RowBlocks blocks(sched, B, kMinBlockRows, B * GH * P < kSerialGemmSize, recurrent.threaded());
  blocks.run([&](int64_t, int64_t r0, int64_t r1) {
    const Schedule s = sched.rows(r0, r1);
    std::vector<S> hcell_buf(w.proj() ? (r1 - r0) * H : 0), a_buf(V == kLayerNorm ? (r1 - r0) * GH : 0);
    S* hp = h.data_ptr<S>() + r0 * P;
    S* cp = c.data_ptr<S>() + r0 * H;
    S* a = a_buf.data();
    for (int64_t k = 0; k < s.steps; ++k) {
      const int64_t t = s.time(k), n = s.sizes[t], row = t * B + r0;
      if (n == 0) continue;
      S* z = gates_p + row * GH;
      S* out_t = out_p + row * P;
      S* st = V == kLayerNorm ? stats_p + row * kStats : nullptr;
      if constexpr (V == kLayerNorm) {
        recurrent(hp, n, a, GH, false);  // a = h W_hh^T
        for_rows(blocks.size() == 1, n, GH, 0, [&](int64_t b0, int64_t b1, int64_t) {
          normalize_rows<S>(a + b0 * GH, b1 - b0, GH, GH, st + b0 * kStats + 2, kStats);
          for (int64_t b = b0; b < b1; ++b) scale_shift_add<S>(GH, z + b * GH, a + b * GH, ln_hh, b_hh_ln);
        });
      } else {
        recurrent(hp, n, z, GH, true);  // z += h W_hh^T
      }
      S* hcell = w.proj() ? hcell_buf.data() : out_t;
      S* cells_t = train ? cells_p + row * H : nullptr;
      for_rows(blocks.size() == 1, n, GH, 0, [&](int64_t b0, int64_t b1, int64_t) {
        forward_rows<S, V>(b1 - b0, H, z + b0 * GH, b_hh, cp + b0 * H, cells_t ? cells_t + b0 * H : nullptr,
                           hcell + b0 * H, cptr<S>(w.w_ch), cptr<S>(w.ln_c), cptr<S>(w.ln_c_bias),
                           st ? st + b0 * kStats : nullptr);
      });
      if (w.proj()) (*project)(hcell, n, out_t, P, false);  // h = m W_hr^T
      std::memcpy(hp, out_t, n * P * sizeof(S));
    }
  });
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
  const SerialBlas serial(T * B * GH * (I + P) < kSerialCallSize);
  Tensor x2 = x.reshape({T * B, I});
  Tensor hprev = previous_outputs(out, h0, sched);  // h_{t-1} of every step, for dW_hh
  Tensor hprev2 = hprev.view({T * B, P});
  // layernorm: the recurrent pre-normalisation values, recomputed in one GEMM; later d of them
  Tensor ah = V == kLayerNorm ? at::mm(hprev2, w.w_hh.t()).view({T, B, GH}) : Tensor();
  Tensor dz = at::zeros({T, B, GH}, opts);
  Tensor dh = grad_hn.clone(), dc = grad_cn.clone();
  Tensor dh_out = w.proj() ? at::zeros({T, B, P}, opts) : Tensor();  // dL/dh_t, for dW_hr
  Tensor hcell_all = w.proj() ? at::zeros({T, B, H}, opts) : Tensor();
  const StepLinear<S> recurrent_t(w.w_hh.t(), B);  // dz W_hh
  const std::optional<StepLinear<S>> project_t =
      w.proj() ? std::optional(StepLinear<S>(w.w_hr->t(), B)) : std::nullopt;  // dh W_hr
  const RowBlocks blocks(sched, B, kMinBlockRows, B * GH * P < kSerialGemmSize, recurrent_t.threaded());
  // accumulated per block or per thread (both run in parallel), summed afterwards
  const int64_t nb = std::max<int64_t>(blocks.size(), at::get_num_threads());
  Tensor dpeep = V == kPeephole ? at::zeros({nb, 3, H}, opts) : Tensor();
  Tensor dlnc_w = V == kLayerNorm ? at::zeros({nb, H}, opts) : Tensor();
  Tensor dlnc_b = (V == kLayerNorm && w.bias()) ? at::zeros({nb, H}, opts) : Tensor();
  Tensor dln_hh = V == kLayerNorm ? at::zeros({nb, GH}, opts) : Tensor();
  auto ptr = [](Tensor& t, int64_t block, int64_t size) { return t.defined() ? t.data_ptr<S>() + block * size : nullptr; };
  const S* c0p = c0.data_ptr<S>();
  const S* gop = grad_out.data_ptr<S>();
  const S* gates_p = gates.data_ptr<S>();
  const S* cells_p = cells.data_ptr<S>();
  const S* stats_p = V == kLayerNorm ? stats.data_ptr<S>() : nullptr;
  S* dz_p = dz.data_ptr<S>();
  S* ah_p = V == kLayerNorm ? ah.data_ptr<S>() : nullptr;
  S* dh_out_p = w.proj() ? dh_out.data_ptr<S>() : nullptr;
  S* hcell_p = w.proj() ? hcell_all.data_ptr<S>() : nullptr;

  blocks.run([&](int64_t block, int64_t r0, int64_t r1) {
    const Schedule s = sched.rows(r0, r1);
    const int64_t R = r1 - r0;
    std::vector<S> dm(R * H), cprev(R * H), scratch(nb * 3 * H), xhat_row(V == kLayerNorm ? nb * GH : 0);
    S* dhp = dh.data_ptr<S>() + r0 * P;
    S* dcp = dc.data_ptr<S>() + r0 * H;
    S* dmp = dm.data();
    S* cprevp = cprev.data();
    for (int64_t k = s.steps - 1; k >= 0; --k) {
      const int64_t t = s.time(k), n = s.sizes[t], nc = s.carried(k), row = t * B + r0;
      if (n == 0) continue;
      add_to<S>(n * P, dhp, gop + row * P);  // dL/dh_t: from the output and from step t+1
      if (w.proj()) {
        std::memcpy(dh_out_p + row * P, dhp, n * P * sizeof(S));
        (*project_t)(dhp, n, dmp, H, false);  // dm = dh W_hr
      } else {
        std::memcpy(dmp, dhp, n * H * sizeof(S));
      }
      if (nc > 0) std::memcpy(cprevp, cells_p + (s.time(k - 1) * B + r0) * H, nc * H * sizeof(S));
      if (n > nc) std::memcpy(cprevp + nc * H, c0p + (r0 + nc) * H, (n - nc) * H * sizeof(S));
      S* dzt = dz_p + row * GH;
      const bool parallel = blocks.size() == 1;
      for_rows(parallel, n, GH, block, [&](int64_t b0, int64_t b1, int64_t slot) {
        backward_rows<S, V>(b1 - b0, H, gates_p + (row + b0) * GH, cells_p + (row + b0) * H, cprevp + b0 * H,
                            dmp + b0 * H, dcp + b0 * H, dzt + b0 * GH,
                            w.proj() ? hcell_p + (row + b0) * H : nullptr, cptr<S>(w.w_ch), ptr(dpeep, slot, 3 * H),
                            cptr<S>(w.ln_c), cptr<S>(w.ln_c_bias), ptr(dlnc_w, slot, H), ptr(dlnc_b, slot, H),
                            V == kLayerNorm ? stats_p + (row + b0) * kStats : nullptr, scratch.data() + slot * 3 * H);
      });
      if constexpr (V == kLayerNorm) {
        // d of the recurrent part before its normalisation, in place of ah[t]
        const S* st = stats_p + row * kStats;
        S* at_ = ah_p + row * GH;
        for_rows(parallel, n, GH, block, [&](int64_t b0, int64_t b1, int64_t slot) {
          S* xh = xhat_row.data() + slot * GH;
          for (int64_t b = b0; b < b1; ++b) {
            S* a = at_ + b * GH;
            normalized_copy<S>(GH, a, st[b * kStats + 2], st[b * kStats + 3], xh);
            layer_norm_backward_row<S>(dzt + b * GH, xh, cptr<S>(w.ln_hh), st[b * kStats + 3], GH, a,
                                       ptr(dln_hh, slot, GH));
          }
        });
        recurrent_t(at_, n, dhp, P, false);  // dh_{t-1} = da W_hh
      } else {
        recurrent_t(dzt, n, dhp, P, false);  // dh_{t-1} = dz W_hh
      }
    }
  });
  auto reduce = [](Tensor& t) { return t.defined() ? t.sum(0) : t; };
  dpeep = reduce(dpeep);
  dlnc_w = reduce(dlnc_w);
  dlnc_b = reduce(dlnc_b);
  dln_hh = reduce(dln_hh);

  Tensor dz2 = dz.view({T * B, GH});
  Tensor db = w.bias() ? dz2.sum(0) : Tensor();
  Tensor dw_hh = at::mm((V == kLayerNorm ? ah.view({T * B, GH}) : dz2).t(), hprev2);
  Tensor dln_ih;
  Tensor dx_pre = dz2;  // gradient w.r.t. x W_ih^T
  if constexpr (V == kLayerNorm) {
    // input part: recompute x W_ih^T, then the layer-norm backward row by row
    Tensor ax = at::mm(x2, w.w_ih.t());
    const int64_t threads = at::get_num_threads();
    Tensor dln_ih_slots = at::zeros({threads, GH}, opts);
    std::vector<S> xhat_rows(threads * GH);
    const S* st = stats.data_ptr<S>();
    at::parallel_for(0, T * B, std::max<int64_t>(1, 8192 / GH), [&](int64_t r0, int64_t r1) {
      const int64_t slot = at::get_thread_num();
      S* xh = xhat_rows.data() + slot * GH;
      for (int64_t r = r0; r < r1; ++r) {
        S* a = ax.data_ptr<S>() + r * GH;
        const S rstd = st[r * kStats + 1];
        normalized_copy<S>(GH, a, st[r * kStats], rstd, xh);
        layer_norm_backward_row<S>(dz2.data_ptr<S>() + r * GH, xh, cptr<S>(w.ln_ih), rstd, GH, a,
                                   dln_ih_slots.data_ptr<S>() + slot * GH);
      }
    });
    dln_ih = dln_ih_slots.sum(0);
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
