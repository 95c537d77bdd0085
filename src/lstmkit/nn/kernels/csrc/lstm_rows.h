// One time step of every LSTM variant, element-wise, for n rows: the fused kernels' inner loops.
// The math is that of lstmkit/nn/cells.py; see lstm.cpp for the layout of the buffers.
//
// Each inner loop is its own function with __restrict__ parameters: GCC vectorises loops over
// function parameters it knows do not alias, but not the same loop over pointers computed inside
// an outer loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "vmath.h"

namespace lstmkit {

enum Variant : int64_t { kStandard = 0, kVanilla = 1, kPeephole = 2, kCifg = 3, kLayerNorm = 4 };
constexpr double kLayerNormEps = 1e-5;
// stats columns for layernorm: mean and 1/std of the input part, the recurrent part, the cell
constexpr int64_t kStats = 6;

constexpr bool has_forget_gate(int V) { return V != kVanilla && V != kCifg; }
constexpr int64_t num_gates(int V) { return has_forget_gate(V) ? 4 : 3; }

template <typename S>
inline void add_to(int64_t w, S* __restrict__ x, const S* __restrict__ y) {
  for (int64_t j = 0; j < w; ++j) x[j] += y[j];
}

// mean and 1/sqrt(var + eps) of a row
template <typename S>
inline void row_stats(int64_t w, const S* __restrict__ x, S& mean, S& rstd) {
  S m = 0;
#pragma omp simd reduction(+ : m)
  for (int64_t j = 0; j < w; ++j) m += x[j];
  m /= w;
  S v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < w; ++j) v += (x[j] - m) * (x[j] - m);
  mean = m;
  rstd = S(1) / std::sqrt(v / w + S(kLayerNormEps));
}

template <typename S>
inline void normalize_row(int64_t w, S* __restrict__ x, S mean, S rstd) {
  for (int64_t j = 0; j < w; ++j) x[j] = (x[j] - mean) * rstd;
}

// out = (x - mean) * rstd
template <typename S>
inline void normalized_copy(int64_t w, const S* __restrict__ x, S mean, S rstd, S* __restrict__ out) {
  for (int64_t j = 0; j < w; ++j) out[j] = (x[j] - mean) * rstd;
}

// z += a * gamma + beta (beta may be null)
template <typename S>
inline void scale_shift_add(int64_t w, S* __restrict__ z, const S* __restrict__ a, const S* __restrict__ gamma,
                            const S* __restrict__ beta) {
  if (beta != nullptr) {
    for (int64_t j = 0; j < w; ++j) z[j] += a[j] * gamma[j] + beta[j];
  } else {
    for (int64_t j = 0; j < w; ++j) z[j] += a[j] * gamma[j];
  }
}

// Layer-normalise each of n rows of width w in place: x <- (x - mean) * rstd, saving the stats.
template <typename S>
void normalize_rows(S* x, int64_t n, int64_t w, int64_t ld, S* stats, int64_t stats_ld) {
  for (int64_t b = 0; b < n; ++b) {
    S mean, rstd;
    row_stats<S>(w, x + b * ld, mean, rstd);
    normalize_row<S>(w, x + b * ld, mean, rstd);
    stats[b * stats_ld] = mean;
    stats[b * stats_ld + 1] = rstd;
  }
}

// Backward of y = LN(a) * gamma for one row, given dy and xhat = LN(a): writes da into `out`
// and adds dgamma += dy * xhat.
template <typename S>
void layer_norm_backward_row(const S* __restrict__ dy, const S* __restrict__ xhat, const S* __restrict__ gamma,
                             S rstd, int64_t w, S* __restrict__ out, S* __restrict__ dgamma) {
  S mean_g = 0, mean_gx = 0;
#pragma omp simd reduction(+ : mean_g, mean_gx)
  for (int64_t j = 0; j < w; ++j) {
    const S g = dy[j] * gamma[j];
    mean_g += g;
    mean_gx += g * xhat[j];
    dgamma[j] += dy[j] * xhat[j];
  }
  mean_g /= w;
  mean_gx /= w;
  for (int64_t j = 0; j < w; ++j) out[j] = rstd * (dy[j] * gamma[j] - mean_g - xhat[j] * mean_gx);
}

// ---------------------------------------------------------------------------------------------
// Forward

// Gates and cell of one row: z blocks in, activations out; c_{t-1} in, c_t out; h = o tanh(c_t)
// (not written for layernorm, whose output needs the row's statistics first).
template <typename S, int V>
inline void forward_gates_row(int64_t H, S* __restrict__ zi, S* __restrict__ zf, S* __restrict__ zg,
                              S* __restrict__ zo, S* __restrict__ c, S* __restrict__ h, const S* __restrict__ pi,
                              const S* __restrict__ pf, const S* __restrict__ po) {
  for (int64_t j = 0; j < H; ++j) {
    const S cp = c[j];
    S i, f = S(0), cn, o;
    const S g = tanh(zg[j]);
    if constexpr (V == kPeephole) {
      i = sigmoid(zi[j] + pi[j] * cp);
      f = sigmoid(zf[j] + pf[j] * cp);
      cn = f * cp + i * g;
      o = sigmoid(zo[j] + po[j] * cn);
    } else {
      i = sigmoid(zi[j]);
      o = sigmoid(zo[j]);
      if constexpr (V == kVanilla) {
        cn = cp + i * g;
      } else if constexpr (V == kCifg) {
        cn = (S(1) - i) * cp + i * g;
      } else {
        f = sigmoid(zf[j]);
        cn = f * cp + i * g;
      }
    }
    zi[j] = i;
    if constexpr (has_forget_gate(V)) zf[j] = f;
    zg[j] = g;
    zo[j] = o;
    c[j] = cn;
    if constexpr (V != kLayerNorm) h[j] = o * tanh(cn);
  }
}

// layernorm's output: h = o * tanh(LN(c) * gamma_c + beta_c)
template <typename S>
inline void layernorm_output_row(int64_t H, const S* __restrict__ c, const S* __restrict__ o, const S* __restrict__ w,
                                 const S* __restrict__ bias, S mean, S rstd, S* __restrict__ h) {
  if (bias != nullptr) {
    for (int64_t j = 0; j < H; ++j) h[j] = o[j] * tanh((c[j] - mean) * rstd * w[j] + bias[j]);
  } else {
    for (int64_t j = 0; j < H; ++j) h[j] = o[j] * tanh((c[j] - mean) * rstd * w[j]);
  }
}

// Forward element-wise pass for n rows of one step.
//   z: (n, GH) pre-activations (without b_hh when b_hh is given), overwritten by the activations
//   c: (n, H) carried cell, c_{t-1} in, c_t out;  cell_out: copy of c_t (training) or null
//   hcell: (n, H) o * tanh(c_t) (or of the normalised cell), the output before projection
template <typename S, int V>
void forward_rows(int64_t n, int64_t H, S* z, const S* b_hh, S* c, S* cell_out, S* hcell, const S* peep,
                  const S* lnc_w, const S* lnc_b, S* stats) {
  constexpr int64_t G = num_gates(V);
  const int64_t gi = 0, gf = H, gg = (G - 2) * H, go = (G - 1) * H;
  const S* pi = peep;
  const S* pf = peep ? peep + H : nullptr;
  const S* po = peep ? peep + 2 * H : nullptr;
  for (int64_t b = 0; b < n; ++b) {
    S* zr = z + b * G * H;
    S* cr = c + b * H;
    S* hr = hcell + b * H;
    if (b_hh != nullptr) add_to<S>(G * H, zr, b_hh);
    forward_gates_row<S, V>(H, zr + gi, zr + gf, zr + gg, zr + go, cr, hr, pi, pf, po);
    if constexpr (V == kLayerNorm) {
      S mean, rstd;
      row_stats<S>(H, cr, mean, rstd);
      layernorm_output_row<S>(H, cr, zr + go, lnc_w, lnc_b, mean, rstd, hr);
      stats[b * kStats + 4] = mean;
      stats[b * kStats + 5] = rstd;
    }
    if (cell_out != nullptr) std::memcpy(cell_out + b * H, cr, H * sizeof(S));
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

// Output path of one row: from dm = dL/d(o * tanh(c_t)) to dz_o and to dc_t (plus the carried dc).
template <typename S, bool kStoreH>
inline void backward_output_row(int64_t H, const S* __restrict__ o, const S* __restrict__ c,
                                const S* __restrict__ dm, const S* __restrict__ dc_in, S* __restrict__ dzo,
                                S* __restrict__ dct, S* __restrict__ h) {
  for (int64_t j = 0; j < H; ++j) {
    const S tc = tanh(c[j]);
    if constexpr (kStoreH) h[j] = o[j] * tc;
    dzo[j] = dm[j] * tc * o[j] * (S(1) - o[j]);
    dct[j] = dc_in[j] + dm[j] * o[j] * (S(1) - tc * tc);
  }
}

// layernorm's output path: the same through h = o * tanh(LN(c) * gamma_c + beta_c).
// scratch: 2H values.
template <typename S, bool kStoreH>
inline void backward_layernorm_output_row(int64_t H, const S* __restrict__ o, const S* __restrict__ c,
                                          const S* __restrict__ dm, const S* __restrict__ dc_in,
                                          const S* __restrict__ w, const S* __restrict__ bias, S mean, S rstd,
                                          S* __restrict__ dzo, S* __restrict__ dct, S* __restrict__ h,
                                          S* __restrict__ dw, S* __restrict__ db, S* __restrict__ xhat,
                                          S* __restrict__ dxhat) {
  S mean_g = 0, mean_gx = 0;
#pragma omp simd reduction(+ : mean_g, mean_gx)
  for (int64_t j = 0; j < H; ++j) {
    xhat[j] = (c[j] - mean) * rstd;
    const S tu = tanh(xhat[j] * w[j] + (bias ? bias[j] : S(0)));
    if constexpr (kStoreH) h[j] = o[j] * tu;
    dzo[j] = dm[j] * tu * o[j] * (S(1) - o[j]);
    const S du = dm[j] * o[j] * (S(1) - tu * tu);
    dw[j] += du * xhat[j];
    if (db) db[j] += du;
    dxhat[j] = du * w[j];
    mean_g += dxhat[j];
    mean_gx += dxhat[j] * xhat[j];
  }
  mean_g /= H;
  mean_gx /= H;
  for (int64_t j = 0; j < H; ++j) dct[j] = dc_in[j] + rstd * (dxhat[j] - mean_g - xhat[j] * mean_gx);
}

// Gate path of one row: from dct (dL/dc_t) and dz_o to dz_i, dz_f, dz_g and dc_{t-1}.
template <typename S, int V>
inline void backward_gates_row(int64_t H, const S* __restrict__ ai, const S* __restrict__ af,
                               const S* __restrict__ ag, const S* __restrict__ c, const S* __restrict__ cp,
                               const S* __restrict__ dct, const S* __restrict__ dzo, S* __restrict__ dzi,
                               S* __restrict__ dzf, S* __restrict__ dzg, S* __restrict__ dc_out,
                               const S* __restrict__ pi, const S* __restrict__ pf, const S* __restrict__ po,
                               S* __restrict__ dpi, S* __restrict__ dpf, S* __restrict__ dpo) {
  for (int64_t j = 0; j < H; ++j) {
    const S i = ai[j], g = ag[j], cpj = cp[j];
    S d = dct[j];
    if constexpr (V == kPeephole) {
      d += dzo[j] * po[j];  // o_t sees c_t through its peephole
      dpo[j] += dzo[j] * c[j];
    }
    dzg[j] = d * i * (S(1) - g * g);
    if constexpr (V == kVanilla) {
      dzi[j] = d * g * i * (S(1) - i);
      dc_out[j] = d;
    } else if constexpr (V == kCifg) {
      dzi[j] = d * (g - cpj) * i * (S(1) - i);
      dc_out[j] = d * (S(1) - i);
    } else {
      const S f = af[j];
      const S di = d * g * i * (S(1) - i);
      const S df = d * cpj * f * (S(1) - f);
      dzi[j] = di;
      dzf[j] = df;
      if constexpr (V == kPeephole) {
        dpi[j] += di * cpj;
        dpf[j] += df * cpj;
        dc_out[j] = d * f + di * pi[j] + df * pf[j];
      } else {
        dc_out[j] = d * f;
      }
    }
  }
}

// Backward element-wise pass for n rows of one step.
//   act: (n, GH) gate activations; cell: (n, H) c_t; cprev: (n, H) c_{t-1}
//   dm: (n, H) gradient w.r.t. o * tanh(.) (the pre-projection output)
//   dc: (n, H) carried gradient w.r.t. c_t in, w.r.t. c_{t-1} out
//   dz: (n, GH) gradient w.r.t. the pre-activations z
//   hcell: (n, H) written with o * tanh(.) when not null (for the projection's weight gradient)
//   dpeep (3H), dlnc_w (H), dlnc_b (H): accumulated;  scratch: 3H values
template <typename S, int V>
void backward_rows(int64_t n, int64_t H, const S* act, const S* cell, const S* cprev, const S* dm, S* dc, S* dz,
                   S* hcell, const S* peep, S* dpeep, const S* lnc_w, const S* lnc_b, S* dlnc_w, S* dlnc_b,
                   const S* stats, S* scratch) {
  constexpr int64_t G = num_gates(V);
  const int64_t gi = 0, gf = H, gg = (G - 2) * H, go = (G - 1) * H;
  S* dct = scratch;
  for (int64_t b = 0; b < n; ++b) {
    const S* ar = act + b * G * H;
    const S* cr = cell + b * H;
    S* dzr = dz + b * G * H;
    S* hr = hcell ? hcell + b * H : nullptr;
    if constexpr (V == kLayerNorm) {
      const S mean = stats[b * kStats + 4], rstd = stats[b * kStats + 5];
      if (hr) {
        backward_layernorm_output_row<S, true>(H, ar + go, cr, dm + b * H, dc + b * H, lnc_w, lnc_b, mean, rstd,
                                               dzr + go, dct, hr, dlnc_w, dlnc_b, scratch + H, scratch + 2 * H);
      } else {
        backward_layernorm_output_row<S, false>(H, ar + go, cr, dm + b * H, dc + b * H, lnc_w, lnc_b, mean, rstd,
                                                dzr + go, dct, hr, dlnc_w, dlnc_b, scratch + H, scratch + 2 * H);
      }
    } else if (hr) {
      backward_output_row<S, true>(H, ar + go, cr, dm + b * H, dc + b * H, dzr + go, dct, hr);
    } else {
      backward_output_row<S, false>(H, ar + go, cr, dm + b * H, dc + b * H, dzr + go, dct, hr);
    }
    const S* pi = peep;
    const S* pf = peep ? peep + H : nullptr;
    const S* po = peep ? peep + 2 * H : nullptr;
    S* dpi = dpeep;
    S* dpf = dpeep ? dpeep + H : nullptr;
    S* dpo = dpeep ? dpeep + 2 * H : nullptr;
    backward_gates_row<S, V>(H, ar + gi, ar + gf, ar + gg, cr, cprev + b * H, dct, dzr + go, dzr + gi, dzr + gf,
                             dzr + gg, dc + b * H, pi, pf, po, dpi, dpf, dpo);
  }
}

}  // namespace lstmkit
