// RoIAlign (Mask R-CNN) forward and backward, single-level and fused multi-level (FPN).
//
// Semantics follow torchvision.ops.roi_align operation for operation, so that a build without FMA contraction
// (NVRTC --fmad=false, g++ -ffp-contract=off) gives the same fp32 bits as torchvision's CPU op:
//   * `aligned` shifts box corners by -0.5 pixel and no longer clamps the RoI size to >= 1;
//   * sampling_ratio <= 0 means an adaptive grid of ceil(roi_size / pooled_size) samples per bin;
//   * samples outside [-1, H] x [-1, W] contribute zero, samples inside are clamped to the border;
//   * a bin is the mean of its samples.
// Every value is accumulated in fp32; fp16/bf16 are converted once on load and once on store.
//
// The fused multi-level kernels assign each RoI to its FPN level themselves (torchvision's LevelMapper:
// floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6) clamped to [k_min, k_max]), so one
// launch writes every output element: no zero fill, no per-level gather/scatter, no host synchronisation.
//
// Entry points take only ints, floats and pointers. RoIs are always fp32 rows [batch_index, x1, y1, x2, y2].
// Gradients are accumulated into fp32 buffers (atomicAdd on float) whatever the input dtype.
//
// This file also builds on the host with g++ through host_shim.h (MASKSTREAM_HOST), which supplies the CUDA
// built-ins used here (threadIdx/blockIdx/blockDim/gridDim, atomicAdd, __ldg, __launch_bounds__) and the fp16
// conversions; nothing else differs. No shared memory or __syncthreads: the host runs one thread at a time.

#define MS_MAX_LEVELS 5

// 256-thread blocks (kernels/launch.py) and at least 4 resident blocks per SM: caps registers at 64 per thread
// (ptxas reports no spills) for 1024 resident threads per SM, to hide the latency of the gathered loads.
#define MS_THREADS_PER_BLOCK 256
#define MS_LAUNCH_BOUNDS __launch_bounds__(MS_THREADS_PER_BLOCK, 4)

// ---------------------------------------------------------------------------------------------------------
// Storage types: fp16 and bf16 travel as their 16 raw bits so that no CUDA header is needed (NVRTC has no
// include path by default) and the host build can supply bit-exact software conversions.
#ifndef MASKSTREAM_HOST
__device__ __forceinline__ float ms_half_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ unsigned short ms_float_to_half(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif

// bf16 <-> fp32 with round-to-nearest-even, the same rule as torch's c10::BFloat16 (NaN -> 0x7FC0).
__device__ __forceinline__ float ms_bf16_to_float(unsigned short b) {
  return __uint_as_float(static_cast<unsigned int>(b) << 16);
}
__device__ __forceinline__ unsigned short ms_float_to_bf16(float f) {
  if (f != f) return 0x7FC0;
  unsigned int bits = __float_as_uint(f);
  unsigned int rounding_bias = ((bits >> 16) & 1u) + 0x7FFFu;
  return static_cast<unsigned short>((bits + rounding_bias) >> 16);
}

struct F32 {
  typedef float storage;
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};
struct F16 {
  typedef unsigned short storage;
  static __device__ __forceinline__ float load(unsigned short v) { return ms_half_to_float(v); }
  static __device__ __forceinline__ unsigned short store(float v) { return ms_float_to_half(v); }
};
struct BF16 {
  typedef unsigned short storage;
  static __device__ __forceinline__ float load(unsigned short v) { return ms_bf16_to_float(v); }
  static __device__ __forceinline__ unsigned short store(float v) { return ms_float_to_bf16(v); }
};

// ---------------------------------------------------------------------------------------------------------
// Geometry of one RoI on one feature map, computed exactly as torchvision does.
struct RoiGeometry {
  float start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;
  float count;
};

__device__ __forceinline__ RoiGeometry roi_geometry(const float* roi, float spatial_scale, int pooled_height,
                                                    int pooled_width, int sampling_ratio, int aligned) {
  RoiGeometry g;
  const float offset = aligned ? 0.5f : 0.0f;
  const float start_w = roi[1] * spatial_scale - offset;
  const float start_h = roi[2] * spatial_scale - offset;
  const float end_w = roi[3] * spatial_scale - offset;
  const float end_h = roi[4] * spatial_scale - offset;
  float roi_width = end_w - start_w;
  float roi_height = end_h - start_h;
  if (!aligned) {
    // Written as std::max(a, 1) is, so a NaN box behaves as in torchvision's CPU op.
    roi_width = roi_width < 1.0f ? 1.0f : roi_width;
    roi_height = roi_height < 1.0f ? 1.0f : roi_height;
  }
  g.start_h = start_h;
  g.start_w = start_w;
  g.bin_h = roi_height / static_cast<float>(pooled_height);
  g.bin_w = roi_width / static_cast<float>(pooled_width);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceilf(roi_height / pooled_height));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceilf(roi_width / pooled_width));
  const int n = g.grid_h * g.grid_w;
  g.count = static_cast<float>(n > 1 ? n : 1);
  return g;
}

// Bilinear taps of one sample point; valid == false when the point lies outside [-1, H] x [-1, W].
struct Taps {
  int y_low, y_high, x_low, x_high;
  float w1, w2, w3, w4;
  bool valid;
};

__device__ __forceinline__ Taps bilinear_taps(int height, int width, float y, float x) {
  Taps t;
  if (y < -1.0f || y > height || x < -1.0f || x > width) {
    t.valid = false;
    return t;
  }
  t.valid = true;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  t.y_low = static_cast<int>(y);
  t.x_low = static_cast<int>(x);
  if (t.y_low >= height - 1) {
    t.y_high = t.y_low = height - 1;
    y = static_cast<float>(t.y_low);
  } else {
    t.y_high = t.y_low + 1;
  }
  if (t.x_low >= width - 1) {
    t.x_high = t.x_low = width - 1;
    x = static_cast<float>(t.x_low);
  } else {
    t.x_high = t.x_low + 1;
  }
  const float ly = y - t.y_low;
  const float lx = x - t.x_low;
  const float hy = 1.0f - ly;
  const float hx = 1.0f - lx;
  t.w1 = hy * hx;
  t.w2 = hy * lx;
  t.w3 = ly * hx;
  t.w4 = ly * lx;
  return t;
}

__device__ __forceinline__ float sample_y(const RoiGeometry& g, int ph, int iy) {
  return g.start_h + ph * g.bin_h + static_cast<float>(iy + .5f) * g.bin_h / static_cast<float>(g.grid_h);
}
__device__ __forceinline__ float sample_x(const RoiGeometry& g, int pw, int ix) {
  return g.start_w + pw * g.bin_w + static_cast<float>(ix + .5f) * g.bin_w / static_cast<float>(g.grid_w);
}

// One output bin: the mean of the bin's bilinear samples on one channel plane.
template <typename TR>
__device__ __forceinline__ float pool_bin(const typename TR::storage* __restrict__ plane, int height, int width,
                                          const RoiGeometry& g, int ph, int pw) {
  float acc = 0.0f;
  for (int iy = 0; iy < g.grid_h; iy++) {
    const float y = sample_y(g, ph, iy);
    for (int ix = 0; ix < g.grid_w; ix++) {
      const float x = sample_x(g, pw, ix);
      const Taps t = bilinear_taps(height, width, y, x);
      if (!t.valid) continue;
      const float v1 = TR::load(__ldg(plane + t.y_low * width + t.x_low));
      const float v2 = TR::load(__ldg(plane + t.y_low * width + t.x_high));
      const float v3 = TR::load(__ldg(plane + t.y_high * width + t.x_low));
      const float v4 = TR::load(__ldg(plane + t.y_high * width + t.x_high));
      acc += t.w1 * v1 + t.w2 * v2 + t.w3 * v3 + t.w4 * v4;
    }
  }
  return acc / g.count;
}

// Scatter one bin's gradient back onto its samples' taps (fp32 accumulation buffer).
__device__ __forceinline__ void unpool_bin(float* __restrict__ grad_plane, int height, int width,
                                           const RoiGeometry& g, int ph, int pw, float grad) {
  for (int iy = 0; iy < g.grid_h; iy++) {
    const float y = sample_y(g, ph, iy);
    for (int ix = 0; ix < g.grid_w; ix++) {
      const float x = sample_x(g, pw, ix);
      const Taps t = bilinear_taps(height, width, y, x);
      if (!t.valid) continue;
      atomicAdd(grad_plane + t.y_low * width + t.x_low, grad * t.w1 / g.count);
      atomicAdd(grad_plane + t.y_low * width + t.x_high, grad * t.w2 / g.count);
      atomicAdd(grad_plane + t.y_high * width + t.x_low, grad * t.w3 / g.count);
      atomicAdd(grad_plane + t.y_high * width + t.x_high, grad * t.w4 / g.count);
    }
  }
}

// torchvision's LevelMapper for one RoI, in the same fp32 operation order. Returns the level index relative
// to k_min, or -1 when the area is negative (NaN level: torchvision pools such a RoI from no level).
__device__ __forceinline__ int fpn_level(const float* roi, int k_min, int k_max, float canonical_scale,
                                         int canonical_level) {
  const float area = (roi[3] - roi[1]) * (roi[4] - roi[2]);
  float level = static_cast<float>(canonical_level) + log2f(sqrtf(area) / canonical_scale);
  level = floorf(level + 1e-6f);
  if (level != level) return -1;
  if (level < k_min) level = static_cast<float>(k_min);
  if (level > k_max) level = static_cast<float>(k_max);
  return static_cast<int>(level) - k_min;
}

// Output element i = ((n * channels + c) * pooled_height + ph) * pooled_width + pw, as in torchvision.
struct OutputIndex {
  int n, c, ph, pw;
};
__device__ __forceinline__ OutputIndex decompose(int i, int channels, int pooled_height, int pooled_width) {
  OutputIndex o;
  o.pw = i % pooled_width;
  o.ph = (i / pooled_width) % pooled_height;
  o.c = (i / pooled_width / pooled_height) % channels;
  o.n = i / pooled_width / pooled_height / channels;
  return o;
}

// NaN as an fp32 bit pattern (no <cmath> NAN macro under NVRTC).
__device__ __forceinline__ float ms_nan() { return __uint_as_float(0x7FC00000u); }

#define MS_GRID_STRIDE_LOOP(i, n)                                                                  \
  for (long long i##_wide = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i##_wide < (n); \
       i##_wide += static_cast<long long>(blockDim.x) * gridDim.x)

// ---------------------------------------------------------------------------------------------------------
// Single level.
template <typename TR>
__device__ __forceinline__ void forward_single(const typename TR::storage* __restrict__ input,
                                               const float* __restrict__ rois,
                                               typename TR::storage* __restrict__ output, int num_rois,
                                               int channels, int height, int width, int batch, int pooled_height,
                                               int pooled_width, float spatial_scale, int sampling_ratio,
                                               int aligned) {
  const int total = num_rois * channels * pooled_height * pooled_width;
  MS_GRID_STRIDE_LOOP(i, total) {
    const OutputIndex o = decompose(static_cast<int>(i_wide), channels, pooled_height, pooled_width);
    const float* roi = rois + o.n * 5;
    const int b = static_cast<int>(roi[0]);
    if (b < 0 || b >= batch) {  // an index we cannot read from: make it visible instead of reading garbage
      output[i_wide] = TR::store(ms_nan());
      continue;
    }
    const RoiGeometry g = roi_geometry(roi, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    const typename TR::storage* plane = input + (b * channels + o.c) * height * width;
    output[i_wide] = TR::store(pool_bin<TR>(plane, height, width, g, o.ph, o.pw));
  }
}

template <typename TR>
__device__ __forceinline__ void backward_single(const typename TR::storage* __restrict__ grad_output,
                                                const float* __restrict__ rois, float* __restrict__ grad_input,
                                                int num_rois, int channels, int height, int width, int batch,
                                                int pooled_height, int pooled_width, float spatial_scale,
                                                int sampling_ratio, int aligned) {
  const int total = num_rois * channels * pooled_height * pooled_width;
  MS_GRID_STRIDE_LOOP(i, total) {
    const OutputIndex o = decompose(static_cast<int>(i_wide), channels, pooled_height, pooled_width);
    const float* roi = rois + o.n * 5;
    const int b = static_cast<int>(roi[0]);
    if (b < 0 || b >= batch) continue;
    const RoiGeometry g = roi_geometry(roi, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    float* plane = grad_input + (b * channels + o.c) * height * width;
    unpool_bin(plane, height, width, g, o.ph, o.pw, TR::load(grad_output[i_wide]));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Fused multi-level: up to MS_MAX_LEVELS feature maps passed as separate (pointer, height, width, scale)
// arguments; unused levels get null pointers. Selecting by chained conditionals keeps the arguments in
// registers (a dynamically indexed array would spill to local memory).
template <typename P>
__device__ __forceinline__ P pick(int level, P a0, P a1, P a2, P a3, P a4) {
  return level == 0 ? a0 : level == 1 ? a1 : level == 2 ? a2 : level == 3 ? a3 : a4;
}

template <typename TR>
__device__ __forceinline__ void forward_multilevel(
    const float* __restrict__ rois, typename TR::storage* __restrict__ output, int num_rois, int channels,
    int batch, int pooled_height, int pooled_width, int sampling_ratio, int aligned, int num_levels, int k_min,
    int k_max, float canonical_scale, int canonical_level, const typename TR::storage* f0, int h0, int w0, float s0,
    const typename TR::storage* f1, int h1, int w1, float s1, const typename TR::storage* f2, int h2, int w2,
    float s2, const typename TR::storage* f3, int h3, int w3, float s3, const typename TR::storage* f4, int h4,
    int w4, float s4) {
  const int total = num_rois * channels * pooled_height * pooled_width;
  MS_GRID_STRIDE_LOOP(i, total) {
    const OutputIndex o = decompose(static_cast<int>(i_wide), channels, pooled_height, pooled_width);
    const float* roi = rois + o.n * 5;
    const int b = static_cast<int>(roi[0]);
    if (b < 0 || b >= batch) {
      output[i_wide] = TR::store(ms_nan());
      continue;
    }
    const int level = fpn_level(roi, k_min, k_max, canonical_scale, canonical_level);
    // No level (NaN area, or a gap in non-consecutive levels): zero, like torchvision's zero-filled result.
    if (level < 0 || level >= num_levels) {
      output[i_wide] = TR::store(0.0f);
      continue;
    }
    const int height = pick(level, h0, h1, h2, h3, h4);
    const int width = pick(level, w0, w1, w2, w3, w4);
    const float scale = pick(level, s0, s1, s2, s3, s4);
    const typename TR::storage* feature = pick(level, f0, f1, f2, f3, f4);
    const RoiGeometry g = roi_geometry(roi, scale, pooled_height, pooled_width, sampling_ratio, aligned);
    const typename TR::storage* plane = feature + (b * channels + o.c) * height * width;
    output[i_wide] = TR::store(pool_bin<TR>(plane, height, width, g, o.ph, o.pw));
  }
}

template <typename TR>
__device__ __forceinline__ void backward_multilevel(
    const typename TR::storage* __restrict__ grad_output, const float* __restrict__ rois, int num_rois,
    int channels, int batch, int pooled_height, int pooled_width, int sampling_ratio, int aligned, int num_levels,
    int k_min, int k_max, float canonical_scale, int canonical_level, float* g0, int h0, int w0, float s0, float* g1, int h1,
    int w1, float s1, float* g2, int h2, int w2, float s2, float* g3, int h3, int w3, float s3, float* g4, int h4,
    int w4, float s4) {
  const int total = num_rois * channels * pooled_height * pooled_width;
  MS_GRID_STRIDE_LOOP(i, total) {
    const OutputIndex o = decompose(static_cast<int>(i_wide), channels, pooled_height, pooled_width);
    const float* roi = rois + o.n * 5;
    const int b = static_cast<int>(roi[0]);
    if (b < 0 || b >= batch) continue;
    const int level = fpn_level(roi, k_min, k_max, canonical_scale, canonical_level);
    if (level < 0 || level >= num_levels) continue;
    const int height = pick(level, h0, h1, h2, h3, h4);
    const int width = pick(level, w0, w1, w2, w3, w4);
    const float scale = pick(level, s0, s1, s2, s3, s4);
    float* grad = pick(level, g0, g1, g2, g3, g4);
    const RoiGeometry g = roi_geometry(roi, scale, pooled_height, pooled_width, sampling_ratio, aligned);
    float* plane = grad + (b * channels + o.c) * height * width;
    unpool_bin(plane, height, width, g, o.ph, o.pw, TR::load(grad_output[i_wide]));
  }
}

// ---------------------------------------------------------------------------------------------------------
// extern "C" entry points, one set per dtype: roi_align_{forward,backward,multilevel_forward,
// multilevel_backward}_{f32,f16,bf16}. The argument lists here are mirrored by kernels/launch.py.
#define MS_LEVEL_PARAMS(T)                                                                                   \
  const T *f0, int h0, int w0, float s0, const T *f1, int h1, int w1, float s1, const T *f2, int h2, int w2, \
      float s2, const T *f3, int h3, int w3, float s3, const T *f4, int h4, int w4, float s4
#define MS_GRAD_LEVEL_PARAMS                                                                                \
  float *g0, int h0, int w0, float s0, float *g1, int h1, int w1, float s1, float *g2, int h2, int w2, float s2, \
      float *g3, int h3, int w3, float s3, float *g4, int h4, int w4, float s4
#define MS_LEVEL_ARGS f0, h0, w0, s0, f1, h1, w1, s1, f2, h2, w2, s2, f3, h3, w3, s3, f4, h4, w4, s4
#define MS_GRAD_LEVEL_ARGS g0, h0, w0, s0, g1, h1, w1, s1, g2, h2, w2, s2, g3, h3, w3, s3, g4, h4, w4, s4

#define MS_DEFINE_KERNELS(SUFFIX, TR)                                                                           \
  extern "C" __global__ void MS_LAUNCH_BOUNDS roi_align_forward_##SUFFIX( \
      const TR::storage* input, const float* rois, TR::storage* output, int num_rois, int channels, int height, \
      int width, int batch, int pooled_height, int pooled_width, float spatial_scale, int sampling_ratio,       \
      int aligned) {                                                                                            \
    forward_single<TR>(input, rois, output, num_rois, channels, height, width, batch, pooled_height,          \
                       pooled_width, spatial_scale, sampling_ratio, aligned);                                   \
  }                                                                                                             \
  extern "C" __global__ void MS_LAUNCH_BOUNDS roi_align_backward_##SUFFIX( \
      const TR::storage* grad_output, const float* rois, float* grad_input, int num_rois, int channels,         \
      int height, int width, int batch, int pooled_height, int pooled_width, float spatial_scale,               \
      int sampling_ratio, int aligned) {                                                                        \
    backward_single<TR>(grad_output, rois, grad_input, num_rois, channels, height, width, batch,              \
                        pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned);                  \
  }                                                                                                             \
  extern "C" __global__ void MS_LAUNCH_BOUNDS roi_align_multilevel_forward_##SUFFIX( \
      const float* rois, TR::storage* output, int num_rois, int channels, int batch, int pooled_height,         \
      int pooled_width, int sampling_ratio, int aligned, int num_levels, int k_min, int k_max, float canonical_scale,      \
      int canonical_level, MS_LEVEL_PARAMS(TR::storage)) {                                                      \
    forward_multilevel<TR>(rois, output, num_rois, channels, batch, pooled_height, pooled_width,              \
                           sampling_ratio, aligned, num_levels, k_min, k_max, canonical_scale, canonical_level,        \
                           MS_LEVEL_ARGS);                                                                      \
  }                                                                                                             \
  extern "C" __global__ void MS_LAUNCH_BOUNDS roi_align_multilevel_backward_##SUFFIX( \
      const TR::storage* grad_output, const float* rois, int num_rois, int channels, int batch,                 \
      int pooled_height, int pooled_width, int sampling_ratio, int aligned, int num_levels, int k_min,          \
      int k_max, float canonical_scale, int canonical_level, MS_GRAD_LEVEL_PARAMS) {                                       \
    backward_multilevel<TR>(grad_output, rois, num_rois, channels, batch, pooled_height, pooled_width,        \
                            sampling_ratio, aligned, num_levels, k_min, k_max, canonical_scale, canonical_level,       \
                            MS_GRAD_LEVEL_ARGS);                                                                \
  }

// The dtype list, also used by the host launcher to register every entry point.
#define MS_FOR_EACH_DTYPE(X) X(f32, F32) X(f16, F16) X(bf16, BF16)
MS_FOR_EACH_DTYPE(MS_DEFINE_KERNELS)
