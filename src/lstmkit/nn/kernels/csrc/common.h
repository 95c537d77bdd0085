// Shared pieces of the fused kernels: the time-step schedule and small helpers.
#pragma once

#include <torch/extension.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

// The Fortran BLAS that torch's CPU build exports (MKL or OpenBLAS). Declared weak: where a torch
// build does not export them, the pointers are null and gemm() below goes through ATen instead.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace lstmkit {

using at::Tensor;

// C (m x n, row-major, leading dimension ldc) = op(A) op(B) + beta * C, beta 0 or 1, where A is
// m x k (k x m when transposed) and B is k x n (n x k when transposed), both row-major. A direct
// BLAS call: the per-step products are small, and ATen's dispatch would cost more than they do.
template <typename S>
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const S* A, int64_t lda, const S* B,
                 int64_t ldb, S beta, S* C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  // row-major C = A B is column-major C^T = B^T A^T: swap the operands
  const char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
  const int mi = n, ni = m, ki = k, la = ldb, lb = lda, lc = ldc;
  const S one = 1;
  if constexpr (std::is_same_v<S, float>) {
    if (sgemm_ != nullptr) return sgemm_(&ta, &tb, &mi, &ni, &ki, &one, B, &la, A, &lb, &beta, C, &lc);
  } else {
    if (dgemm_ != nullptr) return dgemm_(&ta, &tb, &mi, &ni, &ki, &one, B, &la, A, &lb, &beta, C, &lc);
  }
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<S>::value);
  Tensor a = at::from_blob(const_cast<S*>(A), {trans_a ? k : m, trans_a ? m : k}, {lda, 1}, opts);
  Tensor b = at::from_blob(const_cast<S*>(B), {trans_b ? n : k, trans_b ? k : n}, {ldb, 1}, opts);
  Tensor c = at::from_blob(C, {m, n}, {ldc, 1}, opts);
  if (beta == S(0)) {
    at::mm_out(c, trans_a ? a.t() : a, trans_b ? b.t() : b);
  } else {
    c.addmm_(trans_a ? a.t() : a, trans_b ? b.t() : b);
  }
}
using OptTensor = c10::optional<Tensor>;

// The order in which time steps are processed, and which rows are active at each
// (PackedSequence convention: at time t only the first sizes[t] rows are active).
struct Schedule {
  int64_t steps;
  std::vector<int64_t> sizes;
  bool reverse;

  Schedule(int64_t T, int64_t B, const std::vector<int64_t>& batch_sizes, bool rev)
      : steps(T), sizes(batch_sizes.empty() ? std::vector<int64_t>(T, B) : batch_sizes), reverse(rev) {
    TORCH_CHECK(static_cast<int64_t>(sizes.size()) == T, "batch_sizes must have one entry per step");
  }
  int64_t time(int64_t k) const { return reverse ? steps - 1 - k : k; }
  // rows of the k-th processed step whose previous state is the (k-1)-th step's output; the
  // others start from the initial state
  int64_t carried(int64_t k) const { return k == 0 ? 0 : std::min(sizes[time(k - 1)], sizes[time(k)]); }
};

template <typename S>
inline const S* cptr(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<S>() : nullptr;
}

inline bool present(const OptTensor& t) { return t.has_value() && t->defined(); }

inline OptTensor contiguous(const OptTensor& t) { return present(t) ? OptTensor(t->contiguous()) : OptTensor(); }

// h_{t-1} of every step, (T, B, P), assembled from the outputs and h0; zero at padding.
inline Tensor previous_outputs(const Tensor& out, const Tensor& h0, const Schedule& sched) {
  Tensor hprev = at::zeros_like(out);
  const int64_t B = out.size(1), P = out.size(2), row = P * out.element_size();
  auto* dst = static_cast<char*>(hprev.data_ptr());
  const auto* src = static_cast<const char*>(out.data_ptr());
  const auto* init = static_cast<const char*>(h0.data_ptr());
  for (int64_t k = 0; k < sched.steps; ++k) {
    const int64_t t = sched.time(k), n = sched.sizes[t], nc = sched.carried(k);
    char* d = dst + t * B * row;
    if (nc > 0) std::memcpy(d, src + sched.time(k - 1) * B * row, nc * row);
    if (n > nc) std::memcpy(d + nc * row, init + nc * row, (n - nc) * row);
  }
  return hprev;
}

}  // namespace lstmkit
