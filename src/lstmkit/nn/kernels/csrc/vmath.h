// Element-wise math for the fused kernels, written so that GCC vectorises the loops that use it.
//
// float: exp by range reduction and a degree-6 polynomial (Cephes expf, ~1 ulp on [-87, 87]);
// sigmoid and tanh built on it, tanh with the Cephes odd polynomial near zero so that it keeps
// full relative precision for small arguments. No branches, so a loop of them compiles to SIMD.
// double: the C library's functions (double is for verification, not speed).
#pragma once

#include <cmath>
#include <cstdint>

namespace lstmkit {

inline float exp_approx(float x) {
  // ternaries, not fmin/fmax: their NaN rules keep GCC from vectorising the loop
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  // x - n*ln2 with ln2 split in two for accuracy
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);  // 2^n
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

inline float tanh(float x) {
  const float a = std::fabs(x);
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), with the sign of x
  const float big = std::copysign(1.0f - 2.0f / (exp_approx(2.0f * a) + 1.0f), x);
  // |x| < 0.625: x + x^3 P(x^2)
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  return a < 0.625f ? small : big;
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh(double x) { return std::tanh(x); }

}  // namespace lstmkit
