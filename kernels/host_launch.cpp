// Host build of roi_align.cu: a launcher that walks the whole grid like the GPU would, one (block, thread) at
// a time, and a C entry point that ctypes calls with cuLaunchKernel-style arguments (an array of pointers to
// each kernel argument), so Python drives both backends from the same argument list.
#include "host_shim.h"
// clang-format off
#include "roi_align.cu"
// clang-format on

#include <cstddef>
#include <utility>

namespace {

template <typename... Args, std::size_t... I>
void call_kernel(void (*kernel)(Args...), void** argv, std::index_sequence<I...>) {
  kernel(*static_cast<Args*>(argv[I])...);
}

template <typename... Args>
void run_grid(void (*kernel)(Args...), dim3 grid, dim3 block, void** argv) {
  gridDim = grid;
  blockDim = block;
  for (unsigned int bz = 0; bz < grid.z; bz++)
    for (unsigned int by = 0; by < grid.y; by++)
      for (unsigned int bx = 0; bx < grid.x; bx++)
        for (unsigned int tz = 0; tz < block.z; tz++)
          for (unsigned int ty = 0; ty < block.y; ty++)
            for (unsigned int tx = 0; tx < block.x; tx++) {
              blockIdx = dim3{bx, by, bz};
              threadIdx = dim3{tx, ty, tz};
              call_kernel(kernel, argv, std::index_sequence_for<Args...>{});
            }
}

struct Entry {
  const char* name;
  void (*launch)(dim3, dim3, void**);
};

#define MS_HOST_ENTRY(kernel) {#kernel, [](dim3 g, dim3 b, void** a) { run_grid(kernel, g, b, a); }},
#define MS_HOST_ENTRIES(SUFFIX, TR)                      \
  MS_HOST_ENTRY(roi_align_forward_##SUFFIX)              \
  MS_HOST_ENTRY(roi_align_backward_##SUFFIX)             \
  MS_HOST_ENTRY(roi_align_multilevel_forward_##SUFFIX)   \
  MS_HOST_ENTRY(roi_align_multilevel_backward_##SUFFIX)

const Entry kEntries[] = {MS_FOR_EACH_DTYPE(MS_HOST_ENTRIES)};

}  // namespace

// Returns 0 on success, -1 for an unknown kernel name.
extern "C" int maskstream_host_launch(const char* name, unsigned int gx, unsigned int gy, unsigned int gz,
                                      unsigned int bx, unsigned int by, unsigned int bz, void** argv) {
  for (const Entry& entry : kEntries) {
    if (std::strcmp(entry.name, name) == 0) {
      entry.launch(dim3{gx, gy, gz}, dim3{bx, by, bz}, argv);
      return 0;
    }
  }
  return -1;
}
