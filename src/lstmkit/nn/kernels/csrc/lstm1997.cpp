// The online learner of the 1997 LSTM network (lstmkit/papers/lstm1997.py, Network1997.learn): one
// sequence, a weight change after every step with an error signal, by the paper's truncated RTRL.
//
// The numpy method is the reference and its docstring the specification; this is the same
// computation, step for step and in the same order, on the parameters' and the state's own storage
// (every tensor is updated in place). At batch 1 each step is a few hundred multiply-adds, so
// numpy's per-call overhead (about 60 calls a step) is the whole cost there; here a step takes
// about a microsecond. Results agree with numpy to rounding, not bit for bit (numpy's
// matrix-vector products sum in another order).
#include <cmath>
#include <tuple>

#include "common.h"

namespace lstmkit {
namespace {

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double* data_of(const Tensor& t, const char* name, int64_t numel) {
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.is_contiguous() && t.device().is_cpu(), "lstm1997_learn: ", name,
              " must be a contiguous float64 CPU tensor");
  TORCH_CHECK(t.numel() == numel, "lstm1997_learn: ", name, " has ", t.numel(), " elements, expected ", numel);
  return t.data_ptr<double>();
}

// parameter += lr * step (plain gradient descent) or, with momentum, velocity = momentum * velocity +
// lr * step and parameter += velocity: Network1997.learn's change()
inline void change(double* parameter, double* velocity, double step, double lr, double momentum, int64_t k) {
  if (momentum != 0.0) {
    velocity[k] = velocity[k] * momentum + lr * step;
    parameter[k] += velocity[k];
  } else {
    parameter[k] += lr * step;
  }
}

}  // namespace

// Returns the outputs (T', O) and the steps presented T'. ``flags``: blocks, cells, forget gate,
// peepholes, output gate, g (0: [-2,2], 1: [0,1], 2: identity), h identity, cells present.
std::tuple<Tensor, int64_t, bool> lstm1997_learn(const std::vector<Tensor>& parameters,
                                                 const std::vector<Tensor>& live,
                                                 const std::vector<Tensor>& velocities, const Tensor& x,
                                                 const Tensor& targets, const Tensor& mask,
                                                 const std::vector<Tensor>& state, const std::vector<int64_t>& flags,
                                                 double lr, double momentum, double stop_error) {
  TORCH_CHECK(parameters.size() == 4 && live.size() == 4 && state.size() == 6 && flags.size() == 8,
              "lstm1997_learn: expected 4 parameters, 4 masks, 6 state arrays and 8 flags");
  TORCH_CHECK(momentum == 0.0 || velocities.size() == 4, "lstm1997_learn: momentum needs 4 velocity arrays");
  const int64_t nb = flags[0], cells = flags[1], nc = nb * cells;
  const bool forget = flags[2], peepholes = flags[3], output_gate = flags[4];
  // the squashing functions, as lstmkit.papers.lstm1997 numbers them: g 0 [-2,2], 1 [0,1], 2 the
  // identity, 3 [-1,1]; h 0 [-1,1], 1 the identity, 2 [-2,2]. A range [lo, hi] is (hi - lo) sigmoid + lo.
  const int64_t g_kind = flags[5], h_kind = flags[6];
  TORCH_CHECK(g_kind >= 0 && g_kind <= 3 && h_kind >= 0 && h_kind <= 2, "lstm1997_learn: unknown g or h");
  const bool identity_g = g_kind == 2, identity_h = h_kind == 1;
  const double g_scale = g_kind == 0 ? 4.0 : g_kind == 3 ? 2.0 : 1.0, g_offset = g_kind == 0 ? -2.0 : g_kind == 3 ? -1.0 : 0.0;
  const double h_scale = h_kind == 2 ? 4.0 : 2.0, h_offset = h_kind == 2 ? -2.0 : -1.0;
  const double present = flags[7] ? 1.0 : 0.0;
  TORCH_CHECK(x.dim() == 2 && targets.dim() == 2 && mask.dim() == 1,
              "lstm1997_learn: expected x (T, I), targets (T, O) and mask (T)");
  const int64_t T = x.size(0), I = x.size(1), O = targets.size(1);
  const int64_t U = nc + (forget ? 3 : 2) * nb, S = I + U + 1, F = nc + I;
  TORCH_CHECK(targets.size(0) == T && mask.size(0) == T, "lstm1997_learn: x, targets and mask differ in length");
  double* w = data_of(parameters[0], "weight", U * S);
  double* wo = data_of(parameters[1], "out_weight", O * F);
  double* bo = data_of(parameters[2], "out_bias", O);
  double* wp = data_of(parameters[3], "peephole", 3 * nc);
  const double* lw = data_of(live[0], "live", U * S);
  const double* lwo = data_of(live[1], "live_out", O * F);
  const double* lbo = data_of(live[2], "live_bias", O);
  const double* lwp = data_of(live[3], "live_peep", 3 * nc);
  double *vw = nullptr, *vwo = nullptr, *vbo = nullptr, *vwp = nullptr;
  if (momentum != 0.0) {
    vw = data_of(velocities[0], "velocity_weight", U * S);
    vwo = data_of(velocities[1], "velocity_out_weight", O * F);
    vbo = data_of(velocities[2], "velocity_out_bias", O);
    vwp = data_of(velocities[3], "velocity_peephole", 3 * nc);
  }
  const double* xs = data_of(x, "x", T * I);
  const double* ts = data_of(targets, "targets", T * O);
  const double* ms = data_of(mask, "mask", T);
  double* y = data_of(state[0], "state y", U);
  double* s = data_of(state[1], "state s", nc);
  double* tc = data_of(state[2], "trace_cell", nc * S);
  double* tg = data_of(state[3], "trace_gate", nc * S);
  double* tf = data_of(state[4], "trace_forget", nc * S);
  double* tp = data_of(state[5], "trace_peep", 2 * nb * cells * cells);

  Tensor outputs = at::empty({T, O}, at::kDouble);
  double* out_all = outputs.data_ptr<double>();
  std::vector<double> source(S), net(U), g(nc), g_prime(nc), s_prev(nc), gate_in(nb), gate_out(nb), gate_forget(nb),
      h(nc), h_prime(nc), y_c(nc), features(F), delta(O), back(nc), state_error(nc), out_gate_error(nb),
      peep_step(3 * nc);
  const int64_t cc = cells * cells;
  int64_t presented = T;
  bool stopped = false;
  for (int64_t t = 0; t < T; ++t) {
    // source = [x(t), y(t - 1), 1]; net = weight @ source
    std::copy(xs + t * I, xs + (t + 1) * I, source.begin());
    std::copy(y, y + U, source.begin() + I);
    source[S - 1] = 1.0;
    for (int64_t u = 0; u < U; ++u) {
      const double* row = w + u * S;
      double sum = 0.0;
      for (int64_t k = 0; k < S; ++k) sum += row[k] * source[k];
      net[u] = sum;
    }
    for (int64_t c = 0; c < nc; ++c) {
      if (identity_g) {
        g[c] = net[c];
        g_prime[c] = 1.0;
      } else {  // scaling by 1, 2 or 4 is exact: the same values as the unscaled formulas times them
        const double q = sigmoid(net[c]);
        g[c] = g_scale * q + g_offset;
        g_prime[c] = g_scale * (q * (1 - q));
      }
      s_prev[c] = s[c];
    }
    for (int64_t b = 0; b < nb; ++b) {
      double net_in = net[nc + b];
      if (peepholes) {
        double sum = 0.0;
        for (int64_t i = 0; i < cells; ++i) sum += wp[b * cells + i] * s_prev[b * cells + i];
        net_in = net_in + sum;
      }
      gate_in[b] = sigmoid(net_in);
      if (forget) {
        double net_forget = net[nc + 2 * nb + b];
        if (peepholes) {
          double sum = 0.0;
          for (int64_t i = 0; i < cells; ++i) sum += wp[2 * nc + b * cells + i] * s_prev[b * cells + i];
          net_forget = net_forget + sum;
        }
        gate_forget[b] = sigmoid(net_forget);
      }
    }
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t b = c / cells;
      s[c] = forget ? gate_forget[b] * s_prev[c] + gate_in[b] * g[c] : s_prev[c] + gate_in[b] * g[c];
    }
    for (int64_t b = 0; b < nb; ++b) {
      double net_out = net[nc + nb + b];
      if (peepholes) {
        double sum = 0.0;
        for (int64_t i = 0; i < cells; ++i) sum += wp[nc + b * cells + i] * s[b * cells + i];
        net_out = net_out + sum;
      }
      gate_out[b] = output_gate ? sigmoid(net_out) : 1.0;
    }
    for (int64_t c = 0; c < nc; ++c) {
      if (identity_h) {
        h[c] = s[c];
        h_prime[c] = 1.0;
      } else {
        const double q = sigmoid(s[c]);
        h[c] = h_scale * q + h_offset;
        h_prime[c] = h_scale * q * (1 - q);
      }
      y_c[c] = gate_out[c / cells] * h[c] * present;
      features[c] = y_c[c];
    }
    std::copy(xs + t * I, xs + (t + 1) * I, features.begin() + nc);
    double* out = out_all + t * O;
    for (int64_t o = 0; o < O; ++o) {
      const double* row = wo + o * F;
      double sum = 0.0;
      for (int64_t k = 0; k < F; ++k) sum += row[k] * features[k];
      out[o] = sigmoid(sum + bo[o]);
    }
    // the RTRL traces: decay with the forget gate, then this step's derivatives
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t b = c / cells;
      double* rc = tc + c * S;
      double* rg = tg + c * S;
      double* rf = tf + c * S;
      const double yin = gate_in[b];
      if (forget) {
        const double yf = gate_forget[b];
        for (int64_t k = 0; k < S; ++k) {
          rc[k] *= yf;
          rg[k] *= yf;
          rf[k] *= yf;
        }
        for (int64_t j = 0; j < cells; ++j) {
          tp[(b * cells + c % cells) * cells + j] *= yf;
          tp[nc * cells + (b * cells + c % cells) * cells + j] *= yf;
        }
      }
      const double a_cell = g_prime[c] * yin, a_gate = g[c] * yin * (1 - yin);
      for (int64_t k = 0; k < S; ++k) {
        rc[k] += a_cell * source[k];
        rg[k] += a_gate * source[k];
      }
      if (forget) {
        const double yf = gate_forget[b], a_forget = s_prev[c] * yf * (1 - yf);
        for (int64_t k = 0; k < S; ++k) rf[k] += a_forget * source[k];
      }
      if (peepholes) {  // trace_peep[0 / 1][b][i][j] += (the gate's factor of cell (b, i)) * s_prev(b, j)
        const int64_t i = c % cells;
        for (int64_t j = 0; j < cells; ++j) tp[(b * cells + i) * cells + j] += a_gate * s_prev[b * cells + j];
        if (forget) {
          const double yf = gate_forget[b], a_forget = s_prev[c] * yf * (1 - yf);
          double* row = tp + nb * cc + (b * cells + i) * cells;
          for (int64_t j = 0; j < cells; ++j) row[j] += a_forget * s_prev[b * cells + j];
        }
      }
    }
    if (ms[t] != 0.0) {
      const double* target = ts + t * O;
      for (int64_t o = 0; o < O; ++o) delta[o] = (target[o] - out[o]) * out[o] * (1 - out[o]);
      for (int64_t c = 0; c < nc; ++c) {
        double sum = 0.0;
        for (int64_t o = 0; o < O; ++o) sum += wo[o * F + c] * delta[o];
        back[c] = sum * present;
        state_error[c] = gate_out[c / cells] * h_prime[c] * back[c];
      }
      for (int64_t b = 0; b < nb; ++b) {
        double sum = 0.0;
        for (int64_t i = 0; i < cells; ++i) sum += h[b * cells + i] * back[b * cells + i];
        out_gate_error[b] = gate_out[b] * (1 - gate_out[b]) * sum;
      }
      // the peephole steps read the traces and errors only, so they are made before the weights change
      if (peepholes) {
        for (int64_t b = 0; b < nb; ++b) {
          for (int64_t j = 0; j < cells; ++j) {
            double in_sum = 0.0, forget_sum = 0.0;
            for (int64_t i = 0; i < cells; ++i) {
              in_sum += state_error[b * cells + i] * tp[(b * cells + i) * cells + j];
              forget_sum += state_error[b * cells + i] * tp[nb * cc + (b * cells + i) * cells + j];
            }
            const int64_t c = b * cells + j;
            peep_step[c] = in_sum;
            peep_step[nc + c] = out_gate_error[b] * s[c];
            peep_step[2 * nc + c] = forget_sum;
          }
        }
      }
      for (int64_t c = 0; c < nc; ++c) {  // the cells' rows
        for (int64_t k = 0; k < S; ++k) {
          change(w, vw, state_error[c] * tc[c * S + k] * lw[c * S + k], lr, momentum, c * S + k);
        }
      }
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t in_row = nc + b, out_row = nc + nb + b, forget_row = nc + 2 * nb + b;
        for (int64_t k = 0; k < S; ++k) {
          double in_step = 0.0, forget_step = 0.0;
          for (int64_t i = 0; i < cells; ++i) {
            in_step += state_error[b * cells + i] * tg[(b * cells + i) * S + k];
            if (forget) forget_step += state_error[b * cells + i] * tf[(b * cells + i) * S + k];
          }
          change(w, vw, in_step * lw[in_row * S + k], lr, momentum, in_row * S + k);
          change(w, vw, out_gate_error[b] * source[k] * lw[out_row * S + k], lr, momentum, out_row * S + k);
          if (forget) change(w, vw, forget_step * lw[forget_row * S + k], lr, momentum, forget_row * S + k);
        }
      }
      for (int64_t o = 0; o < O; ++o) {
        for (int64_t k = 0; k < F; ++k) {
          change(wo, vwo, delta[o] * features[k] * lwo[o * F + k], lr, momentum, o * F + k);
        }
        change(bo, vbo, delta[o] * lbo[o], lr, momentum, o);
      }
      if (peepholes) {
        for (int64_t k = 0; k < 3 * nc; ++k) change(wp, vwp, peep_step[k] * lwp[k], lr, momentum, k);
      }
    }
    // y(t) = [y_c, gates]
    std::copy(y_c.begin(), y_c.end(), y);
    for (int64_t b = 0; b < nb; ++b) {
      y[nc + b] = gate_in[b];
      y[nc + nb + b] = gate_out[b];
      if (forget) y[nc + 2 * nb + b] = gate_forget[b];
    }
    if (stop_error > 0 && ms[t] != 0.0) {
      double worst = 0.0;
      for (int64_t o = 0; o < O; ++o) worst = std::max(worst, std::abs(ts[t * O + o] - out[o]));
      if (worst >= stop_error) {
        presented = t + 1;
        stopped = true;
        break;
      }
    }
  }
  return {outputs.narrow(0, 0, presented), presented, stopped};
}

}  // namespace lstmkit
