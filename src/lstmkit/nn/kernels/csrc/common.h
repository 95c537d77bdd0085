// Shared pieces of the fused kernels: the time-step schedule and small helpers.
#pragma once

// ATen only, not <torch/extension.h>: the full torch API's headers take 20 s of every build's
// 50 s on two cores, and these kernels need tensors, a few operators, threads and the dispatcher.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

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
// MKL's by-value C entry point (the lower-case name in torch's build is the by-reference Fortran one)
int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
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
  // the same schedule seen by the rows [r0, r1) alone, renumbered from 0
  Schedule rows(int64_t r0, int64_t r1) const {
    Schedule s = *this;
    for (auto& n : s.sizes) n = std::clamp<int64_t>(n - r0, 0, r1 - r0);
    return s;
  }
  // rows of the k-th processed step whose previous state is the (k-1)-th step's output; the
  // others start from the initial state
  int64_t carried(int64_t k) const { return k == 0 ? 0 : std::min(sizes[time(k - 1)], sizes[time(k)]); }
};

// Rows are independent sequences, so the time loop runs as one task per block of rows, in
// parallel, each with single-threaded BLAS calls (BLAS threads would only add per-step overhead
// at these sizes). Blocks are balanced by their number of active steps.
class RowBlocks {
 public:
  // min_rows: the fewest rows worth a block of their own; serial_blas: single-threaded BLAS even
  // when there is one block (for per-step products too small to gain from threads)
  // one_block: the per-step products bring their own threads (see StepLinear)
  RowBlocks(const Schedule& sched, int64_t B, int64_t min_rows, bool serial_blas, bool one_block = false)
      : serial_blas_(serial_blas) {
    const int64_t blocks =
        one_block ? 1 : std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B / min_rows));
    std::vector<int64_t> work(B, 0);  // steps of each row
    for (int64_t n : sched.sizes) for (int64_t b = 0; b < n; ++b) ++work[b];
    int64_t total = 0;
    for (int64_t w : work) total += w;
    bounds_.push_back(0);
    int64_t acc = 0;
    for (int64_t b = 0; b < B && static_cast<int64_t>(bounds_.size()) < blocks; ++b) {
      acc += work[b];
      if (acc * blocks >= total * static_cast<int64_t>(bounds_.size())) bounds_.push_back(b + 1);
    }
    bounds_.push_back(B);
  }
  int64_t size() const { return bounds_.size() - 1; }

  // fn(block, r0, r1) for every block, in parallel
  template <typename F>
  void run(const F& fn) const {
    at::parallel_for(0, size(), 1, [&](int64_t begin, int64_t end) {
      const bool serial = MKL_Set_Num_Threads_Local != nullptr && (serial_blas_ || size() > 1);
      const int previous = serial ? MKL_Set_Num_Threads_Local(1) : 0;
      for (int64_t i = begin; i < end; ++i) fn(i, bounds_[i], bounds_[i + 1]);
      if (serial) MKL_Set_Num_Threads_Local(previous);
    });
  }

 private:
  std::vector<int64_t> bounds_;
  bool serial_blas_;
};

// y (n x N) = x (n x K) W^T for a weight W (N x K) fixed for a whole sequence: the per-step
// product of a recurrence. Large float products go to oneDNN's inner-product primitive with the
// weight reordered once (torch's private mkldnn::_linear_pointwise, the kernel inductor uses on
// CPU: on the machines we measured it runs these shapes about twice as fast as MKL's sgemm);
// everything else goes to gemm() above.
template <typename S>
class StepLinear {
 public:
  StepLinear(const Tensor& w, int64_t rows) : w_(w.contiguous()), n_(w.size(0)), k_(w.size(1)) {
    if constexpr (std::is_same_v<S, float>) {
      if (rows * n_ * k_ >= kOneDnnSize && onednn() != nullptr) {
        torch::jit::Stack stack{w_, c10::IValue(rows)};
        reorder()->callBoxed(&stack);
        packed_ = stack[0].toTensor();
      }
    }
  }
  // whether the product runs on oneDNN (which brings its own threads)
  bool threaded() const { return packed_.defined(); }

  // y = x W^T, or y += x W^T with accumulate; x rows are contiguous (ld K), y has leading dim ldy
  void operator()(const S* x, int64_t n, S* y, int64_t ldy, bool accumulate) const {
    if (n == 0) return;
    if (!packed_.defined()) {
      gemm<S>(false, true, n, n_, k_, x, k_, w_.data_ptr<S>(), k_, accumulate ? S(1) : S(0), y, ldy);
      return;
    }
    Tensor xt = at::from_blob(const_cast<S*>(x), {n, k_}, w_.options());
    torch::jit::Stack stack{xt, packed_, c10::IValue(), c10::IValue("none"), c10::List<std::optional<c10::Scalar>>(),
                            c10::IValue()};
    onednn()->callBoxed(&stack);
    const Tensor r = stack[0].toTensor();
    const S* rp = r.data_ptr<S>();
    for (int64_t b = 0; b < n; ++b) {
      S* yb = y + b * ldy;
      const S* rb = rp + b * n_;
      if (accumulate) {
        for (int64_t j = 0; j < n_; ++j) yb[j] += rb[j];
      } else {
        std::memcpy(yb, rb, n_ * sizeof(S));
      }
    }
  }

 private:
  static constexpr int64_t kOneDnnSize = int64_t(1) << 23;
  static const c10::OperatorHandle* find(const char* name) {
    if (!at::hasMKLDNN()) return nullptr;
    auto handle = c10::Dispatcher::singleton().findSchema({name, ""});
    return handle.has_value() ? new c10::OperatorHandle(*handle) : nullptr;  // lives as long as the process
  }
  static const c10::OperatorHandle* onednn() {
    static const c10::OperatorHandle* handle = find("mkldnn::_linear_pointwise");
    return handle != nullptr && reorder() != nullptr ? handle : nullptr;
  }
  static const c10::OperatorHandle* reorder() {
    static const c10::OperatorHandle* handle = find("mkldnn::_reorder_linear_weight");
    return handle;
  }
  Tensor w_, packed_;
  int64_t n_, k_;
};

// fn(b0, b1, slot) over the rows [0, n) of one step: split across torch's threads when `parallel`
// (the caller is not itself one of several parallel blocks) and there is enough work, else one
// call with `slot`. `slot` indexes per-thread accumulators.
template <typename F>
inline void for_rows(bool parallel, int64_t n, int64_t width, int64_t slot, const F& fn) {
  constexpr int64_t kGrain = int64_t(1) << 13;  // elements per task
  if (!parallel || n < 2 || n * width < 2 * kGrain || at::get_num_threads() < 2) {
    fn(0, n, slot);
    return;
  }
  at::parallel_for(0, n, std::max<int64_t>(1, kGrain / width),
                   [&](int64_t b0, int64_t b1) { fn(b0, b1, at::get_thread_num()); });
}

// Single-threaded BLAS in this scope (restored after). For tiny products, waking BLAS threads costs
// far more than the product: on a 2-vCPU machine a sleeping thread can take milliseconds to wake.
class SerialBlas {
 public:
  explicit SerialBlas(bool enable) : active_(enable && MKL_Set_Num_Threads_Local != nullptr) {
    if (active_) previous_ = MKL_Set_Num_Threads_Local(1);
  }
  ~SerialBlas() {
    if (active_) MKL_Set_Num_Threads_Local(previous_);
  }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  bool active_;
  int previous_ = 0;
};

// Below this many multiply-adds for a whole layer call, the kernels keep BLAS single-threaded.
constexpr int64_t kSerialCallSize = int64_t(1) << 22;

// The fewest rows per parallel block, and the size (rows x outputs x inputs) of a per-step
// product below which BLAS threads cost more than they save.
constexpr int64_t kMinBlockRows = 4;
constexpr int64_t kSerialGemmSize = int64_t(1) << 20;

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
