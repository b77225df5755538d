// Multi-step LIF neuron (hard reset), forward and BPTT backward, on the CPU.
//
// Neurons are independent: threads take blocks of neurons and run the whole time loop for
// a block with its state (membrane potential, or the gradient carried back in time) held in
// a small local array, so each element of x, spikes, H, grad and grad x is touched once.
// MSG's keep bits are regenerated in the backward from the mask stream (docs/design.md §8):
// one Philox4x32-10 call per group of 8 neurons and timestep, eight 16-bit lanes compared
// with round(p * 65536), so no mask is ever stored.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "mask_stream.h"

namespace {

// Outputs (spikes, H, grad x) come from a small cache of freed buffers. Fresh large
// allocations are mapped by the OS page by page on first touch, which costs more than the
// kernel itself at [32, 32, 64, 16, 16]; buffers of a training step recur with the same sizes.
class BufferCache {
 public:
  static constexpr size_t kMinBytes = size_t(1) << 20;  // smaller ones: plain torch::empty
  static constexpr size_t kMaxCached = size_t(2) << 30;

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* ptr = it->second;
        free_.erase(it);
        cached_ -= bytes;
        return ptr;
      }
    }
    void* ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    TORCH_CHECK(ptr != nullptr, "lif_cpu: out of memory allocating ", bytes, " bytes");
    return ptr;
  }

  void give_back(void* ptr, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_ + bytes > kMaxCached) {
      std::free(ptr);
      return;
    }
    free_.emplace(bytes, ptr);
    cached_ += bytes;
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache();  // never destroyed: tensors may outlive exit
  return *cache;
}

torch::Tensor empty_like_cached(const torch::Tensor& like) {
  const size_t bytes = static_cast<size_t>(like.numel()) * like.element_size();
  if (bytes < BufferCache::kMinBytes) return torch::empty_like(like);
  void* ptr = buffer_cache().take(bytes);
  return torch::from_blob(
      ptr, like.sizes(), [bytes](void* p) { buffer_cache().give_back(p, bytes); },
      like.options());
}

constexpr int64_t kBlock = 1024;  // neurons per block: 4 KiB of float32 per timestep

// Blocks per task: at least ~64k elements, so that small layers do not pay a fork/join.
inline int64_t grain(int64_t steps) {
  return std::max<int64_t>(1, (int64_t(1) << 16) / (kBlock * std::max<int64_t>(steps, 1)));
}

// The surrogates' kernel ids: sparsegrad.surrogate.KERNEL_SURROGATES owns them, and a test
// checks these against it (exported as SURROGATE_IDS).
enum SurrogateId : int64_t {
  kAtan = 0,
  kPiecewiseLinear = 1,
  kSigmoid = 2,
  kRectangular = 3,
  kPiecewiseExp = 4,
  kFastSigmoid = 5,
};

// MSG's mask modes.
enum MaskMode : int64_t { kNoMask = 0, kElementMask = 1, kNeuronMask = 2 };

// The pseudo-derivatives, written as sparsegrad.surrogate computes them in torch; c is the
// table's constant for the surrogate (see KERNEL_SURROGATES).
template <typename T, int64_t kId>
inline T surrogate(T x, T alpha, T c) {
  const T ax = std::abs(x);
  if constexpr (kId == kAtan) {  // c = (pi/2 alpha)^2
    return (T(1) / (x * x * c + T(1))) * alpha;
  } else if constexpr (kId == kPiecewiseLinear) {  // c = -alpha^2
    return std::max(ax * c + alpha, T(0));
  } else if constexpr (kId == kSigmoid) {
    const T s = T(1) / (T(1) + std::exp(-(alpha * x)));
    return (s - s * s) * alpha;
  } else if constexpr (kId == kRectangular) {  // c = 0.5 / alpha
    return ax < c ? alpha : T(0);
  } else if constexpr (kId == kPiecewiseExp) {  // c = 0.5 alpha
    return std::exp(ax * -alpha) * c;
  } else {
    static_assert(kId == kFastSigmoid, "unknown surrogate id");
    const T d = ax * alpha + T(1);
    return T(1) / (d * d);
  }
}

template <typename T>
void forward_kernel(const T* x, T* spikes, T* h_out, int64_t steps, int64_t n, T tau,
                    T v_threshold, T v_reset) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, grain(steps), [&](int64_t first, int64_t last) {
    T v[kBlock];
    for (int64_t b = first; b < last; ++b) {
      const int64_t n0 = b * kBlock, len = std::min(kBlock, n - n0);
      std::fill(v, v + len, v_reset);
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t base = t * n + n0;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          // spikingjelly's charge, operation for operation: H = V + (X - (V - v_reset)) / tau
          const T h = v[j] + (x[base + j] - (v[j] - v_reset)) / tau;
          const bool fire = h >= v_threshold;
          spikes[base + j] = fire ? T(1) : T(0);
          h_out[base + j] = h;
          v[j] = fire ? v_reset : h;
        }
      }
    }
  });
}

struct Params {
  int64_t steps, n, neurons;  // neurons: per (timestep, sample), for kNeuronMask
  double tau, v_threshold, v_reset, alpha, c, scale;
  bool detach_reset;
};

template <typename T>
struct Constants {
  T tau, v_threshold, v_reset, alpha, c, decay;
  bool detach_reset;
};

// One timestep of the backward recurrence over len neurons; factor is SG' already masked
// (kElementMask), the neuron mask times scale (kNeuronMask), or unused.
template <typename T, int64_t kId, int64_t kMode>
inline void step(const T* grad, const T* h, T* grad_x, T* carry, const T* factor, int64_t len,
                 const Constants<T>& k) {
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) {
    const T hh = h[j];
    const T above = hh - k.v_threshold;
    T sg;
    if constexpr (kMode == kElementMask) {
      sg = factor[j];
    } else {
      sg = surrogate<T, kId>(above, k.alpha, k.c);
      if constexpr (kMode == kNeuronMask) sg = sg * factor[j];
    }
    // dV/dH through the hard reset V = H (1 - S) + v_reset S
    T reset_grad = above < T(0) ? T(1) : T(0);
    if (!k.detach_reset) reset_grad = (reset_grad - hh * sg) + k.v_reset * sg;
    const T g = grad[j] * sg + k.decay * carry[j] * reset_grad;
    carry[j] = g;
    grad_x[j] = g / k.tau;
  }
}

// Returns (seen, dropped): the mask's counts (docs/design.md §8).
template <typename T, int64_t kId, int64_t kMode>
std::pair<int64_t, int64_t> backward_kernel(const T* grad, const T* h, T* grad_x, const Params& q,
                                            const mask_stream::Stream& stream) {
  const int64_t steps = q.steps, n = q.n;
  const T tau = T(q.tau), v_threshold = T(q.v_threshold), alpha = T(q.alpha), c = T(q.c);
  const T scale = T(q.scale);
  const Constants<T> k{tau, v_threshold, T(q.v_reset), alpha, c, T(1) - T(1) / tau, q.detach_reset};
  const int64_t blocks = (n + kBlock - 1) / kBlock, groups = (n + mask_stream::kLanes - 1) / mask_stream::kLanes;
  std::vector<uint8_t> keep;
  std::pair<int64_t, int64_t> counts{0, 0};
  if constexpr (kMode == kNeuronMask) {
    keep = mask_stream::neuron_keep(stream, q.neurons);
    const int64_t lost = std::count(keep.begin(), keep.end(), uint8_t(0));
    counts = {n * steps, lost * (n / q.neurons) * steps};
  }
  std::atomic<int64_t> seen{0}, dropped{0};
  at::parallel_for(0, blocks, grain(steps), [&](int64_t first, int64_t last) {
    T carry[kBlock];
    T factor[kBlock];  // the mask of this block's neurons times scale (kNeuronMask), or SG'
    int64_t local_seen = 0, local_dropped = 0;
    for (int64_t b = first; b < last; ++b) {
      const int64_t n0 = b * kBlock, len = std::min(kBlock, n - n0);
      std::fill(carry, carry + len, T(0));
      if constexpr (kMode == kNeuronMask) {
        for (int64_t j = 0; j < len; ++j) factor[j] = keep[(n0 + j) % q.neurons] ? scale : T(0);
      }
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t base = t * n + n0;
        if constexpr (kMode == kElementMask) {
          // A tile at a time: SG', its mask (registers), then the recurrence, all in L1.
          const uint64_t counter = stream.offset + static_cast<uint64_t>(t * groups + n0 / mask_stream::kLanes);
          for (int64_t j0 = 0; j0 < len; j0 += mask_stream::kTile) {
            const int64_t size = std::min(mask_stream::kTile, len - j0);
            T* sg = factor + j0;
            // The recurrence reads grad and writes grad x of this tile: ask for them now, so
            // that their misses overlap those of H here instead of following them.
            for (int64_t j = 0; j < size; j += 64 / static_cast<int64_t>(sizeof(T))) {
              __builtin_prefetch(grad + base + j0 + j, 0, 3);
              __builtin_prefetch(grad_x + base + j0 + j, 1, 3);
            }
#pragma omp simd
            for (int64_t j = 0; j < size; ++j) sg[j] = surrogate<T, kId>(h[base + j0 + j] - v_threshold, alpha, c);
            mask_stream::mask_span(stream, counter + j0 / mask_stream::kLanes, size, scale, sg, local_seen, local_dropped);
            step<T, kId, kMode>(grad + base + j0, h + base + j0, grad_x + base + j0, carry + j0, sg, size, k);
          }
        } else {
          step<T, kId, kMode>(grad + base, h + base, grad_x + base, carry, factor, len, k);
        }
      }
    }
    seen += local_seen;
    dropped += local_dropped;
  });
  if constexpr (kMode == kElementMask) counts = {seen.load(), dropped.load()};
  return counts;
}

void check_input(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "lif_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble,
              "lif_cpu: ", name, " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK(t.dim() >= 1 && t.size(0) >= 1, "lif_cpu: ", name, " must be [T, ...] with T >= 1");
}

std::vector<torch::Tensor> forward(torch::Tensor x, double tau, double v_threshold, double v_reset) {
  check_input(x, "x");
  x = x.contiguous();
  auto spikes = empty_like_cached(x);
  auto h = empty_like_cached(x);
  const int64_t steps = x.size(0), n = x.numel() / steps;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lif_cpu_forward", [&] {
    forward_kernel<scalar_t>(x.data_ptr<scalar_t>(), spikes.data_ptr<scalar_t>(),
                             h.data_ptr<scalar_t>(), steps, n, static_cast<scalar_t>(tau),
                             static_cast<scalar_t>(v_threshold), static_cast<scalar_t>(v_reset));
  });
  return {spikes, h};
}

template <typename T, int64_t kId>
std::pair<int64_t, int64_t> run_mode(int64_t mode, const T* grad, const T* h, T* grad_x,
                                     const Params& q, const mask_stream::Stream& stream) {
  switch (mode) {
    case kNoMask: return backward_kernel<T, kId, kNoMask>(grad, h, grad_x, q, stream);
    case kElementMask: return backward_kernel<T, kId, kElementMask>(grad, h, grad_x, q, stream);
    default: return backward_kernel<T, kId, kNeuronMask>(grad, h, grad_x, q, stream);
  }
}

// Returns grad x and the mask's counts, int64 (seen, dropped).
std::vector<torch::Tensor> backward(torch::Tensor grad, torch::Tensor h, double tau,
                                    double v_threshold, double v_reset, int64_t surrogate_id,
                                    double alpha, double c, bool detach_reset, int64_t mode,
                                    int64_t cut, double scale, int64_t neurons, int64_t key,
                                    int64_t offset) {
  check_input(h, "h");
  TORCH_CHECK(mode >= kNoMask && mode <= kNeuronMask, "lif_cpu: unknown mask mode ", mode);
  TORCH_CHECK(cut >= 0 && cut <= mask_stream::kLevels, "lif_cpu: cut must be in [0, 65536], got ", cut);
  grad = grad.to(h.scalar_type()).contiguous();
  TORCH_CHECK(grad.sizes() == h.sizes(), "lif_cpu: grad and h shapes differ");
  auto grad_x = empty_like_cached(h);
  const int64_t steps = h.size(0), n = h.numel() / steps;
  neurons = std::max<int64_t>(neurons, 1);
  TORCH_CHECK(mode != kNeuronMask || n % neurons == 0, "lif_cpu: neurons must divide n");
  const Params q{steps, n, neurons, tau, v_threshold, v_reset, alpha, c, scale, detach_reset};
  const mask_stream::Stream stream{static_cast<uint64_t>(key), static_cast<uint64_t>(offset), cut};
  std::pair<int64_t, int64_t> counts;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "lif_cpu_backward", [&] {
    using T = scalar_t;
    const T* g = grad.data_ptr<T>();
    const T* hp = h.data_ptr<T>();
    T* out = grad_x.data_ptr<T>();
    switch (surrogate_id) {
      case kAtan: counts = run_mode<T, kAtan>(mode, g, hp, out, q, stream); break;
      case kPiecewiseLinear: counts = run_mode<T, kPiecewiseLinear>(mode, g, hp, out, q, stream); break;
      case kSigmoid: counts = run_mode<T, kSigmoid>(mode, g, hp, out, q, stream); break;
      case kRectangular: counts = run_mode<T, kRectangular>(mode, g, hp, out, q, stream); break;
      case kPiecewiseExp: counts = run_mode<T, kPiecewiseExp>(mode, g, hp, out, q, stream); break;
      case kFastSigmoid: counts = run_mode<T, kFastSigmoid>(mode, g, hp, out, q, stream); break;
      default: TORCH_CHECK(false, "lif_cpu: unknown surrogate id ", surrogate_id);
    }
  });
  return {grad_x, torch::tensor({counts.first, counts.second}, torch::kInt64)};
}

// Multiply grad (any shape, flattened) in place by the mask stream's keep bits: element i
// reads lane i % 8 of counter offset + i / 8; kept entries times scale. Returns the number
// dropped (int64), every element counted.
torch::Tensor mask_(torch::Tensor grad, int64_t cut, double scale, int64_t key, int64_t offset) {
  check_input(grad, "grad");
  TORCH_CHECK(grad.is_contiguous(), "lif_cpu: mask_ needs a contiguous grad");
  TORCH_CHECK(cut >= 0 && cut <= mask_stream::kLevels, "lif_cpu: cut must be in [0, 65536], got ", cut);
  const mask_stream::Stream stream{static_cast<uint64_t>(key), static_cast<uint64_t>(offset), cut};
  const int64_t n = grad.numel(), tiles = (n + mask_stream::kTile - 1) / mask_stream::kTile;
  std::atomic<int64_t> dropped{0};
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "lif_cpu_mask", [&] {
    scalar_t* x = grad.data_ptr<scalar_t>();
    at::parallel_for(0, tiles, 512, [&](int64_t first, int64_t last) {
      const int64_t start = first * mask_stream::kTile, stop = std::min(last * mask_stream::kTile, n);
      const uint64_t counter = stream.offset + static_cast<uint64_t>(start / mask_stream::kLanes);
      dropped += mask_stream::mask_all(stream, counter, stop - start, static_cast<scalar_t>(scale), x + start);
    });
  });
  return torch::tensor(dropped.load(), torch::kInt64);
}

// The stream's 16-bit lanes of counters first .. first + groups - 1, in neuron order (for
// tests: simd=false forces the scalar path).
torch::Tensor mask_lanes(int64_t key, int64_t first, int64_t groups, bool simd) {
  std::vector<uint16_t> lane(static_cast<size_t>(groups * mask_stream::kLanes));
  mask_stream::lanes(static_cast<uint64_t>(key), static_cast<uint64_t>(first), groups, lane.data(), simd);
  auto out = torch::empty({groups * mask_stream::kLanes}, torch::kInt32);
  std::copy(lane.begin(), lane.end(), out.data_ptr<int32_t>());
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "LIF forward: (spikes, H)");
  m.def("backward", &backward, "LIF BPTT backward: (grad x, mask counts (seen, dropped))");
  m.def("mask_", &mask_, "multiply a gradient in place by the mask stream's keep bits: dropped");
  m.def("mask_lanes", &mask_lanes, "the mask stream's 16-bit lanes, in neuron order");
  pybind11::dict ids;
  ids["atan"] = int64_t(kAtan);
  ids["pl"] = int64_t(kPiecewiseLinear);
  ids["sigmoid"] = int64_t(kSigmoid);
  ids["rect"] = int64_t(kRectangular);
  ids["pexp"] = int64_t(kPiecewiseExp);
  ids["fast_sigmoid"] = int64_t(kFastSigmoid);
  m.attr("SURROGATE_IDS") = ids;
  m.attr("SIMD") = pybind11::bool_(
#if defined(SPARSEGRAD_AVX512)
      true
#else
      false
#endif
  );
}
