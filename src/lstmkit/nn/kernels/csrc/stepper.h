#pragma once
// Streaming inference: one time step of a stacked LSTM (any variant), GRU or Elman RNN for a
// small batch, with the weights laid out for matrix-vector products and every buffer allocated
// once. A step does no allocation and calls no ATen operator: only the loops below.

#include <vector>

#include "common.h"
#include "lstm_rows.h"
#include "vmath.h"

namespace lstmkit {

// Field order of lstmkit.nn.cells.RecurrentWeights
enum Field { kWih = 0, kWhh, kBih, kBhh, kWhr, kWch, kLnIh, kLnHh, kLnC, kLnCBias, kFields };
// Modes 0..4 are the LSTM variants (lstm_rows.h); these are the others
enum Mode : int64_t { kGru = 10, kRnnTanh = 11, kRnnRelu = 12 };

// z[N] += Wt[K, N]^T v[K]: axpy form, so the inner loop runs over contiguous memory. `reverse`
// walks the rows backwards: alternating the direction from step to step keeps the most recently
// read weights in cache when a layer's weights are a little larger than the cache (with the same
// direction every step, an LRU cache smaller than the weights would hit nothing).
template <typename S>
inline void matvec_acc(const S* __restrict__ v, int64_t K, const S* __restrict__ wt, int64_t N, S* __restrict__ z,
                       bool reverse = false) {
  for (int64_t i = 0; i < K; ++i) {
    const int64_t k = reverse ? K - 1 - i : i;
    const S a = v[k];
    const S* __restrict__ w = wt + k * N;
    for (int64_t j = 0; j < N; ++j) z[j] += a * w[j];
  }
}

class Stepper {
 public:
  Stepper(int64_t mode, const std::vector<std::vector<OptTensor>>& layers, int64_t batch)
      : mode_(mode), batch_(batch) {
    TORCH_CHECK(!layers.empty() && batch >= 1, "Stepper needs at least one layer and batch >= 1");
    const Tensor& w0 = *layers[0][kWih];
    const auto opts = w0.options();
    const bool lstm = mode < kGru;
    for (const auto& f : layers) {
      Layer l;
      const Tensor w_ih = f[kWih]->detach(), w_hh = f[kWhh]->detach();
      l.in = w_ih.size(1);
      l.gh = w_ih.size(0);
      l.out = w_hh.size(1);
      l.wt_ih = w_ih.t().contiguous();
      l.wt_hh = w_hh.t().contiguous();
      const bool ln = mode == kLayerNorm;
      const int64_t gates = !lstm ? (mode == kGru ? 3 : 1) : ((mode == kVanilla || mode == kCifg) ? 3 : 4);
      l.hidden = l.gh / gates;
      // the two biases are added together except where something stands between them
      const bool separate = ln || mode == kGru;
      if (present(f[kBih])) {
        if (separate) {
          l.b_ih = f[kBih]->detach().contiguous();
          l.b_hh = f[kBhh]->detach().contiguous();
        } else {
          l.b_ih = (*f[kBih] + *f[kBhh]).detach().contiguous();
        }
      }
      if (present(f[kWhr])) l.wt_hr = f[kWhr]->detach().t().contiguous();
      if (present(f[kWch])) l.w_ch = f[kWch]->detach().contiguous();
      if (ln) {
        l.ln_ih = f[kLnIh]->detach().contiguous();
        l.ln_hh = f[kLnHh]->detach().contiguous();
        l.ln_c = f[kLnC]->detach().contiguous();
        if (present(f[kLnCBias])) l.ln_c_bias = f[kLnCBias]->detach().contiguous();
      }
      layers_.push_back(l);
    }
    const int64_t L = layers_.size();
    int64_t max_gh = 0, max_h = 0;
    for (const auto& l : layers_) {
      max_gh = std::max(max_gh, l.gh);
      max_h = std::max(max_h, l.hidden);
    }
    h_ = at::zeros({L, batch, layers_[0].out}, opts);
    if (lstm) c_ = at::zeros({L, batch, max_h}, opts);
    z_ = at::empty({batch, max_gh}, opts);
    a_ = at::empty({batch, max_gh}, opts);
    hcell_ = at::empty({batch, max_h}, opts);
    stats_ = at::empty({batch, kStats}, opts);
    out_ = h_[L - 1];
    if (batch == 1) out_row_ = out_[0];
  }

  // One step; the result goes into `out` when given (no allocation at all), else into a new tensor.
  Tensor step(const Tensor& x_in, const OptTensor& out) {
    const Tensor x = x_in.is_contiguous() ? x_in : x_in.contiguous();
    TORCH_CHECK(x.device().is_cpu(), "Stepper: input must be on the CPU");
    TORCH_CHECK(x.scalar_type() == h_.scalar_type(), "Stepper: dtype mismatch");
    TORCH_CHECK(x.numel() == batch_ * layers_[0].in, "Stepper: expected ", batch_, " x ", layers_[0].in,
                " inputs, got ", x.sizes());
    TORCH_CHECK(x.dim() == 2 || (x.dim() == 1 && batch_ == 1), "Stepper: expected (B, I) or (I,) input");
    AT_DISPATCH_FLOATING_TYPES(h_.scalar_type(), "lstmkit_stepper", [&] { step_impl<scalar_t>(x.data_ptr<scalar_t>()); });
    flip_ = !flip_;
    const Tensor& result = x.dim() == 1 ? out_row_ : out_;
    if (!present(out)) return result.clone();
    TORCH_CHECK(out->is_contiguous() && out->sizes() == result.sizes() && out->scalar_type() == result.scalar_type(),
                "Stepper: out must be a contiguous ", result.sizes(), " tensor of ", result.scalar_type());
    std::memcpy(out->data_ptr(), result.data_ptr(), result.numel() * result.element_size());
    return *out;
  }

  std::vector<Tensor> state() const {
    if (c_.defined()) return {h_, c_};
    return {h_};
  }

 private:
  struct Layer {
    int64_t in = 0, gh = 0, out = 0, hidden = 0;
    Tensor wt_ih, wt_hh, b_ih, b_hh, wt_hr, w_ch, ln_ih, ln_hh, ln_c, ln_c_bias;
  };

  template <typename S>
  static const S* p(const Tensor& t) {
    return t.defined() ? t.data_ptr<S>() : nullptr;
  }

  template <typename S>
  void step_impl(const S* x) {
    const int64_t L = layers_.size(), B = batch_;
    S* h_all = h_.data_ptr<S>();
    S* c_all = c_.defined() ? c_.data_ptr<S>() : nullptr;
    const S* in = x;
    int64_t in_stride = layers_[0].in;
    for (int64_t k = 0; k < L; ++k) {
      const Layer& l = layers_[k];
      S* h = h_all + k * B * l.out;
      S* z = z_.data_ptr<S>();
      S* a = a_.data_ptr<S>();
      for (int64_t b = 0; b < B; ++b) {
        S* zb = z + b * l.gh;
        S* ab = a + b * l.gh;
        const S* xb = in + b * in_stride;
        const S* hb = h + b * l.out;
        if (mode_ == kLayerNorm || mode_ == kGru) {
          // input and recurrent parts apart: z = x part, a = recurrent part
          std::fill(zb, zb + l.gh, S(0));
          std::fill(ab, ab + l.gh, S(0));
          if (flip_) {
            matvec_acc(hb, l.out, p<S>(l.wt_hh), l.gh, ab, true);
            matvec_acc(xb, l.in, p<S>(l.wt_ih), l.gh, zb, true);
          } else {
            matvec_acc(xb, l.in, p<S>(l.wt_ih), l.gh, zb);
            matvec_acc(hb, l.out, p<S>(l.wt_hh), l.gh, ab);
          }
        } else {
          if (l.b_ih.defined()) {
            std::memcpy(zb, p<S>(l.b_ih), l.gh * sizeof(S));
          } else {
            std::fill(zb, zb + l.gh, S(0));
          }
          if (flip_) {
            matvec_acc(hb, l.out, p<S>(l.wt_hh), l.gh, zb, true);
            matvec_acc(xb, l.in, p<S>(l.wt_ih), l.gh, zb, true);
          } else {
            matvec_acc(xb, l.in, p<S>(l.wt_ih), l.gh, zb);
            matvec_acc(hb, l.out, p<S>(l.wt_hh), l.gh, zb);
          }
        }
      }
      if (mode_ < kGru) {
        lstm_layer<S>(l, z, a, h, c_all + k * B * c_.size(2));
      } else if (mode_ == kGru) {
        gru_layer<S>(l, z, a, h);
      } else {
        for (int64_t i = 0; i < B * l.gh; ++i) {
          const S v = z[i];
          h[i] = mode_ == kRnnTanh ? tanh(v) : (v > S(0) ? v : S(0));
        }
      }
      in = h;
      in_stride = l.out;
    }
  }

  template <typename S>
  void lstm_layer(const Layer& l, S* z, S* a, S* h, S* c) {
    const int64_t B = batch_, H = l.hidden;
    S* hcell = l.wt_hr.defined() ? hcell_.data_ptr<S>() : h;
    S* stats = stats_.data_ptr<S>();
    if (mode_ == kLayerNorm) {
      normalize_rows<S>(z, B, l.gh, l.gh, stats, kStats);
      normalize_rows<S>(a, B, l.gh, l.gh, stats + 2, kStats);
      const S* gi = p<S>(l.ln_ih);
      const S* gh = p<S>(l.ln_hh);
      const S* bi = p<S>(l.b_ih);
      const S* bh = p<S>(l.b_hh);
      for (int64_t b = 0; b < B; ++b) {
        S* zb = z + b * l.gh;
        const S* ab = a + b * l.gh;
        for (int64_t j = 0; j < l.gh; ++j) {
          zb[j] = zb[j] * gi[j] + ab[j] * gh[j] + (bi ? bi[j] + bh[j] : S(0));
        }
      }
    }
    switch (mode_) {
      case kStandard: forward_rows<S, kStandard>(B, H, z, nullptr, c, nullptr, hcell, nullptr, nullptr, nullptr, nullptr); break;
      case kVanilla: forward_rows<S, kVanilla>(B, H, z, nullptr, c, nullptr, hcell, nullptr, nullptr, nullptr, nullptr); break;
      case kPeephole: forward_rows<S, kPeephole>(B, H, z, nullptr, c, nullptr, hcell, p<S>(l.w_ch), nullptr, nullptr, nullptr); break;
      case kCifg: forward_rows<S, kCifg>(B, H, z, nullptr, c, nullptr, hcell, nullptr, nullptr, nullptr, nullptr); break;
      default: forward_rows<S, kLayerNorm>(B, H, z, nullptr, c, nullptr, hcell, nullptr, p<S>(l.ln_c), p<S>(l.ln_c_bias), stats); break;
    }
    if (l.wt_hr.defined()) {
      for (int64_t b = 0; b < B; ++b) {
        S* hb = h + b * l.out;
        std::fill(hb, hb + l.out, S(0));
        matvec_acc(hcell + b * H, H, p<S>(l.wt_hr), l.out, hb);
      }
    }
  }

  template <typename S>
  void gru_layer(const Layer& l, S* zx, S* zh, S* h) {
    const int64_t B = batch_, H = l.hidden;
    const S* bi = p<S>(l.b_ih);
    const S* bh = p<S>(l.b_hh);
    for (int64_t b = 0; b < B; ++b) {
      const S* __restrict__ x = zx + b * 3 * H;
      const S* __restrict__ r_ = zh + b * 3 * H;
      S* __restrict__ hb = h + b * H;
      for (int64_t j = 0; j < H; ++j) {
        const S bir = bi ? bi[j] + bh[j] : S(0), biz = bi ? bi[H + j] + bh[H + j] : S(0);
        const S bin = bi ? bi[2 * H + j] : S(0), bhn = bh ? bh[2 * H + j] : S(0);
        const S r = sigmoid(x[j] + r_[j] + bir);
        const S z = sigmoid(x[H + j] + r_[H + j] + biz);
        const S n = tanh(x[2 * H + j] + bin + r * (r_[2 * H + j] + bhn));
        hb[j] = (S(1) - z) * n + z * hb[j];
      }
    }
  }

  int64_t mode_, batch_;
  bool flip_ = false;  // the direction of this step's weight reads (see matvec_acc)
  std::vector<Layer> layers_;
  Tensor h_, c_, z_, a_, hcell_, stats_, out_, out_row_;
};

}  // namespace lstmkit
