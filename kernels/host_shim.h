// Host (CPU) shim that lets g++ compile roi_align.cu unchanged, for verification without a GPU.
//
// The CUDA built-ins become thread-local globals that host_launch.cpp sets before calling a kernel once per
// (block, thread); the kernels must therefore not use __syncthreads or shared memory (they do not).
// nvcc cannot compile this (it predefines threadIdx); g++ with -ffp-contract=off keeps fp32 arithmetic
// unfused, matching the GPU build's --fmad=false.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

#define MASKSTREAM_HOST 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// The host launcher runs one thread at a time, so a plain read-modify-write is atomic here.
inline float atomicAdd(float* address, float value) {
  const float old = *address;
  *address = old + value;
  return old;
}

// Read-only cached load on the device; a plain load here.
template <typename T>
inline T __ldg(const T* pointer) {
  return *pointer;
}

inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 <-> binary32, round-to-nearest-even: what the PTX cvt instructions do on the device.
inline float ms_half_to_float(unsigned short h) {
  const unsigned int sign = static_cast<unsigned int>(h & 0x8000u) << 16;
  const unsigned int exponent = (h >> 10) & 0x1Fu;
  unsigned int mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return __uint_as_float(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  if (exponent != 0) return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return __uint_as_float(sign);  // signed zero
  int e = -1;  // subnormal: normalise
  do {
    e++;
    mantissa <<= 1;
  } while ((mantissa & 0x400u) == 0);
  return __uint_as_float(sign | (static_cast<unsigned int>(112 - e) << 23) | ((mantissa & 0x3FFu) << 13));
}

inline unsigned short ms_float_to_half(float f) {
  const unsigned int bits = __float_as_uint(f);
  const unsigned short sign = static_cast<unsigned short>((bits >> 16) & 0x8000u);
  const unsigned int abs = bits & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<unsigned short>(sign | 0x7E00u);  // NaN
  if (abs >= 0x477FF000u) return static_cast<unsigned short>(sign | 0x7C00u);  // rounds to inf
  if (abs >= 0x38800000u) {  // normal half
    const unsigned int rounded = abs + 0xFFFu + ((abs >> 13) & 1u);
    return static_cast<unsigned short>(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (abs < 0x33000000u) return sign;  // below half the smallest subnormal: rounds to zero
  // Subnormal half: shift the full significand, round to nearest even on the dropped bits.
  const unsigned int exponent = abs >> 23;
  const unsigned int significand = (abs & 0x7FFFFFu) | 0x800000u;
  const unsigned int shift = 126u - exponent;  // 14..24
  const unsigned int half_bits = significand >> shift;
  const unsigned int remainder = significand & ((1u << shift) - 1u);
  const unsigned int halfway = 1u << (shift - 1u);
  const unsigned int round_up = (remainder > halfway || (remainder == halfway && (half_bits & 1u))) ? 1u : 0u;
  return static_cast<unsigned short>(sign | (half_bits + round_up));
}
