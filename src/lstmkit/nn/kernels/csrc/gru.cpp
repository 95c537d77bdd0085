// Fused forward and backward (BPTT) of one GRU layer-direction (torch.nn.GRU's math, gates r, z, n).
//
//   r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h
// where x_* = W_i* x + b_i* (all steps in one GEMM) and h_* = W_h* h + b_h* (one GEMM per step).
// Saved: the activations r, z, n (T, B, 3H) and h_n (T, B, H), which the backward of n needs.

#include <vector>

#include "common.h"
#include "lstm_rows.h"
#include "vmath.h"

namespace lstmkit {

// One row of the GRU step: x holds x_r, x_z, x_n and is overwritten by r, z, n; rec holds h_r,
// h_z, h_n (with b_hh); hp is h_{t-1}; h is h_t.
template <typename S>
inline void gru_forward_row(int64_t H, S* __restrict__ x, const S* __restrict__ rec, const S* __restrict__ hp,
                            S* __restrict__ h) {
  for (int64_t j = 0; j < H; ++j) {
    const S r = sigmoid(x[j] + rec[j]);
    const S z = sigmoid(x[H + j] + rec[H + j]);
    const S n = tanh(x[2 * H + j] + r * rec[2 * H + j]);
    x[j] = r;
    x[H + j] = z;
    x[2 * H + j] = n;
    h[j] = (S(1) - z) * n + z * hp[j];
  }
}

// One row of the GRU backward: from dh (dL/dh_t) to the gradients of the input part (dx), of the
// recurrent part (dr) and the direct path to h_{t-1} (direct = dh * z).
template <typename S>
inline void gru_backward_row(int64_t H, const S* __restrict__ act, const S* __restrict__ hn, const S* __restrict__ hp,
                             const S* __restrict__ dh, S* __restrict__ dx, S* __restrict__ dr,
                             S* __restrict__ direct) {
  for (int64_t j = 0; j < H; ++j) {
    const S r = act[j], z = act[H + j], n = act[2 * H + j], d = dh[j];
    const S dn = d * (S(1) - z) * (S(1) - n * n);
    const S dz = d * (hp[j] - n) * z * (S(1) - z);
    const S drr = dn * hn[j] * r * (S(1) - r);
    dx[j] = drr;
    dx[H + j] = dz;
    dx[2 * H + j] = dn;
    dr[j] = drr;
    dr[H + j] = dz;
    dr[2 * H + j] = dn * r;
    direct[j] = d * z;
  }
}

template <typename S>
std::vector<Tensor> gru_forward_impl(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                     const OptTensor& b_ih, const OptTensor& b_hh, const Schedule& sched,
                                     bool train, bool padded) {
  const int64_t T = x.size(0), B = x.size(1), H = h0.size(1);
  const auto opts = x.options();
  const SerialBlas serial(T * B * 3 * H * (x.size(2) + H) < kSerialCallSize);
  Tensor x2 = x.reshape({T * B, x.size(2)});
  Tensor gates = at::empty({T, B, 3 * H}, opts);
  Tensor gates2 = gates.view({T * B, 3 * H});
  if (present(b_ih)) {
    at::addmm_out(gates2, *b_ih, x2, w_ih.t());
  } else {
    at::mm_out(gates2, x2, w_ih.t());
  }
  Tensor out = padded ? at::zeros({T, B, H}, opts) : at::empty({T, B, H}, opts);
  Tensor hn_all = train ? at::empty({T, B, H}, opts) : Tensor();
  Tensor h = h0.clone();
  const S* bhh = cptr<S>(b_hh);
  S* gates_p = gates.data_ptr<S>();
  S* out_p = out.data_ptr<S>();
  S* hn_p = train ? hn_all.data_ptr<S>() : nullptr;
  const StepLinear<S> recurrent(w_hh, B);  // h W_hh^T
  const RowBlocks blocks(sched, B, kMinBlockRows, B * 3 * H * H < kSerialGemmSize, recurrent.threaded());
  blocks.run([&](int64_t, int64_t r0, int64_t r1) {
    const Schedule s = sched.rows(r0, r1);
    std::vector<S> rec((r1 - r0) * 3 * H);
    S* rp = rec.data();
    S* hptr = h.data_ptr<S>() + r0 * H;
    for (int64_t k = 0; k < s.steps; ++k) {
      const int64_t t = s.time(k), n = s.sizes[t], row = t * B + r0;
      if (n == 0) continue;
      recurrent(hptr, n, rp, 3 * H, false);
      S* g = gates_p + row * 3 * H;
      S* optr = out_p + row * H;
      for (int64_t b = 0; b < n; ++b) {
        if (bhh != nullptr) add_to<S>(3 * H, rp + b * 3 * H, bhh);
        gru_forward_row<S>(H, g + b * 3 * H, rp + b * 3 * H, hptr + b * H, optr + b * H);
        if (hn_p) std::memcpy(hn_p + (row + b) * H, rp + b * 3 * H + 2 * H, H * sizeof(S));
      }
      std::memcpy(hptr, optr, n * H * sizeof(S));
    }
  });
  return {out, h, train ? gates : Tensor(), hn_all};
}

template <typename S>
std::vector<Tensor> gru_backward_impl(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& x,
                                      const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh, bool bias,
                                      const Tensor& out, const Tensor& gates, const Tensor& hn_all,
                                      const Schedule& sched) {
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = h0.size(1);
  const auto opts = x.options();
  const SerialBlas serial(T * B * 3 * H * (I + H) < kSerialCallSize);
  Tensor hprev = previous_outputs(out, h0, sched);
  Tensor dzx = at::zeros({T, B, 3 * H}, opts);  // d of the input part x_*
  Tensor dzh = at::zeros({T, B, 3 * H}, opts);  // d of the recurrent part h_*
  Tensor dh = grad_hn.clone();
  const S* gop = grad_out.data_ptr<S>();
  const S* gates_p = gates.data_ptr<S>();
  const S* hn_p = hn_all.data_ptr<S>();
  const S* hprev_p = hprev.data_ptr<S>();
  S* dzx_p = dzx.data_ptr<S>();
  S* dzh_p = dzh.data_ptr<S>();
  const StepLinear<S> recurrent_t(w_hh.t(), B);  // dzh W_hh
  const RowBlocks blocks(sched, B, kMinBlockRows, B * 3 * H * H < kSerialGemmSize, recurrent_t.threaded());
  blocks.run([&](int64_t, int64_t r0, int64_t r1) {
    const Schedule s = sched.rows(r0, r1);
    std::vector<S> direct((r1 - r0) * H);  // dh_t * z, the path that skips the weights
    S* dd = direct.data();
    S* dhp = dh.data_ptr<S>() + r0 * H;
    for (int64_t k = s.steps - 1; k >= 0; --k) {
      const int64_t t = s.time(k), n = s.sizes[t], row = t * B + r0;
      if (n == 0) continue;
      add_to<S>(n * H, dhp, gop + row * H);
      for (int64_t b = 0; b < n; ++b) {
        gru_backward_row<S>(H, gates_p + (row + b) * 3 * H, hn_p + (row + b) * H, hprev_p + (row + b) * H,
                            dhp + b * H, dzx_p + (row + b) * 3 * H, dzh_p + (row + b) * 3 * H, dd + b * H);
      }
      std::memcpy(dhp, dd, n * H * sizeof(S));
      recurrent_t(dzh_p + row * 3 * H, n, dhp, H, true);  // dh_{t-1} += dzh W_hh
    }
  });
  Tensor dzx2 = dzx.view({T * B, 3 * H}), dzh2 = dzh.view({T * B, 3 * H});
  Tensor x2 = x.reshape({T * B, I});
  Tensor dw_ih = at::mm(dzx2.t(), x2);
  Tensor dw_hh = at::mm(dzh2.t(), hprev.view({T * B, H}));
  Tensor dx = at::mm(dzx2, w_ih).view({T, B, I});
  Tensor db_ih = bias ? dzx2.sum(0) : Tensor();
  Tensor db_hh = bias ? dzh2.sum(0) : Tensor();
  return {dx, dh, dw_ih, dw_hh, db_ih, db_hh};
}

std::vector<Tensor> gru_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                const OptTensor& b_ih, const OptTensor& b_hh, const std::vector<int64_t>& batch_sizes,
                                bool reverse, bool train) {
  const Schedule sched(x.size(0), x.size(1), batch_sizes, reverse);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_forward", [&] {
    result = gru_forward_impl<scalar_t>(x.contiguous(), h0.contiguous(), w_ih.contiguous(), w_hh.contiguous(),
                                        b_ih, b_hh, sched, train, !batch_sizes.empty());
  });
  return result;
}

std::vector<Tensor> gru_backward(const Tensor& grad_out, const Tensor& grad_hn, const Tensor& x, const Tensor& h0,
                                 const Tensor& w_ih, const Tensor& w_hh, bool bias, const Tensor& out,
                                 const Tensor& gates, const Tensor& hn_all, const std::vector<int64_t>& batch_sizes,
                                 bool reverse) {
  const Schedule sched(x.size(0), x.size(1), batch_sizes, reverse);
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstmkit_gru_backward", [&] {
    result = gru_backward_impl<scalar_t>(grad_out.contiguous(), grad_hn.contiguous(), x.contiguous(),
                                         h0.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bias, out, gates,
                                         hn_all, sched);
  });
  return result;
}

}  // namespace lstmkit
