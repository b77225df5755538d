// Multi-step LIF neuron (hard reset), forward and BPTT backward, on the CPU.
//
// Neurons are independent: threads take blocks of neurons and run the whole time loop for
// a block with its state (membrane potential, or the gradient carried back in time) held in
// a small local array, so each element of x, spikes, H, grad and grad x is touched once.
// MSG's keep bit of each element is regenerated in the backward from Philox4x32-10 exactly
// as Triton's tl.rand(key, offset + index) > p, so no mask is ever stored.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

// Philox4x32-10 as Triton's randint(seed, offset): counter (offset lo, offset hi, 0, 0),
// key (seed lo, seed hi); returns the first output word.
inline uint32_t philox_word(uint64_t key, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t pb = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint64_t pa = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint32_t n0 = static_cast<uint32_t>(pb >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(pa >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(pb);
    c3 = static_cast<uint32_t>(pa);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c0;
}

// tl.rand's uint32 -> float in [0, 1): fold the sign, scale in float32.
inline int32_t folded(uint32_t word) {
  const int32_t s = static_cast<int32_t>(word);
  return s < 0 ? ~s : s;
}

inline float uniform_of(int32_t folded_word) {
  return static_cast<float>(folded_word) * 4.6566127342e-10f;
}

// uniform_of is non-decreasing: "uniform > p" is "folded >= cut" for this cut (2^31 when
// no value exceeds p, then nothing is kept: p = 1).
int64_t keep_cut(float p) {
  int64_t lo = 0, hi = int64_t(1) << 31;  // first folded value whose uniform exceeds p
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (uniform_of(static_cast<int32_t>(mid)) > p) hi = mid; else lo = mid + 1;
  }
  return lo;
}

struct Mask {
  bool on;
  bool per_neuron;
  int64_t neurons;  // mask elements per (timestep, sample) under per_neuron
  uint64_t key;
  uint64_t offset;
  int64_t cut;
  double scale;
};

#if defined(__AVX512F__)
// The high 32 bits of a * b in each of 16 lanes.
inline __m512i mulhi32(__m512i a, __m512i b) {
  const __m512i even = _mm512_mul_epu32(a, b);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
  return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// philox_word(key, start + j) for j = 0 .. 15, folded as tl.rand folds it.
inline __m512i folded_words16(uint64_t key, uint64_t start) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i lo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(start)));
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(start >> 32)));
  __m512i c0 = _mm512_add_epi32(lo, lane);
  __m512i c1 = _mm512_mask_add_epi32(hi, _mm512_cmplt_epu32_mask(c0, lo), hi, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  const __m512i a = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i b = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  for (int round = 0; round < 10; ++round) {
    const __m512i n0 = _mm512_ternarylogic_epi32(mulhi32(b, c2), c1, _mm512_set1_epi32(static_cast<int>(k0)), 0x96);
    const __m512i n2 = _mm512_ternarylogic_epi32(mulhi32(a, c0), c3, _mm512_set1_epi32(static_cast<int>(k1)), 0x96);
    c1 = _mm512_mullo_epi32(b, c2);
    c3 = _mm512_mullo_epi32(a, c0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return _mm512_xor_si512(c0, _mm512_srai_epi32(c0, 31));  // s < 0 ? ~s : s
}
#endif

// factor[j] = scale where element first + j is kept, else 0; returns how many were dropped.
// One Philox per element: 16 lanes at a time with AVX-512, else vectorised by the compiler.
template <typename T>
int64_t keep_factors(const Mask& mask, uint64_t first, int64_t len, T scale, T* factor) {
  int64_t dropped = 0;
  const uint64_t key = mask.key, start = mask.offset + first;
  const int64_t cut = mask.cut;
  int64_t j = 0;
#if defined(__AVX512F__)
  if (cut <= INT32_MAX) {
    const __m512i cut16 = _mm512_set1_epi32(static_cast<int>(cut));
    for (; j + 16 <= len; j += 16) {
      const __mmask16 keep = _mm512_cmpge_epi32_mask(folded_words16(key, start + j), cut16);
      if constexpr (std::is_same_v<T, float>) {
        _mm512_storeu_ps(factor + j, _mm512_maskz_mov_ps(keep, _mm512_set1_ps(scale)));
      } else {
        const __m512d value = _mm512_set1_pd(static_cast<double>(scale));
        _mm512_storeu_pd(factor + j, _mm512_maskz_mov_pd(static_cast<__mmask8>(keep), value));
        _mm512_storeu_pd(factor + j + 8, _mm512_maskz_mov_pd(static_cast<__mmask8>(keep >> 8), value));
      }
      dropped += 16 - __builtin_popcount(static_cast<unsigned>(keep));
    }
  }
#endif
#pragma omp simd reduction(+ : dropped)
  for (int64_t i = j; i < len; ++i) {
    const bool keep = static_cast<int64_t>(folded(philox_word(key, start + static_cast<uint64_t>(i)))) >= cut;
    factor[i] = keep ? scale : T(0);
    dropped += keep ? 0 : 1;
  }
  return dropped;
}

// The pseudo-derivatives, written as sparsegrad.surrogate computes them in torch.
template <typename T, int kId>
inline T surrogate(T x, T alpha, T c) {
  const T ax = std::abs(x);
  if constexpr (kId == 0) {         // atan, c = (pi/2 alpha)^2
    return (T(1) / (x * x * c + T(1))) * alpha;
  } else if constexpr (kId == 1) {  // piecewise linear, c = -alpha^2
    return std::max(ax * c + alpha, T(0));
  } else if constexpr (kId == 2) {  // sigmoid
    const T s = T(1) / (T(1) + std::exp(-(alpha * x)));
    return (s - s * s) * alpha;
  } else if constexpr (kId == 3) {  // rectangular, c = 0.5 / alpha
    return ax < c ? alpha : T(0);
  } else if constexpr (kId == 4) {  // piecewise exponential, c = 0.5 alpha
    return std::exp(ax * -alpha) * c;
  } else {                          // fast sigmoid
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

template <typename T, int kId, bool kMasked>
int64_t backward_kernel(const T* grad, const T* h, T* grad_x, int64_t steps, int64_t n, T tau,
                        T v_threshold, T v_reset, T alpha, T c, bool detach_reset,
                        const Mask& mask) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const T decay = T(1) - T(1) / tau;
  const T scale = static_cast<T>(mask.scale);
  std::atomic<int64_t> dropped{0};
  at::parallel_for(0, blocks, grain(steps), [&](int64_t first, int64_t last) {
    T carry[kBlock];
    T factor[kBlock];
    int64_t local_dropped = 0;
    for (int64_t b = first; b < last; ++b) {
      const int64_t n0 = b * kBlock, len = std::min(kBlock, n - n0);
      std::fill(carry, carry + len, T(0));
      int64_t block_dropped = 0;  // per timestep, under per_neuron
      if (kMasked && mask.per_neuron) {
        for (int64_t j = 0; j < len; ++j) {
          const int64_t neuron = (n0 + j) % mask.neurons;
          block_dropped += keep_factors(mask, static_cast<uint64_t>(neuron), 1, scale, factor + j);
        }
      }
      for (int64_t t = steps - 1; t >= 0; --t) {
        const int64_t base = t * n + n0;
        if (kMasked) {
          local_dropped += mask.per_neuron
              ? block_dropped
              : keep_factors(mask, static_cast<uint64_t>(base), len, scale, factor);
        }
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          const T hh = h[base + j];
          const T above = hh - v_threshold;
          T sg = surrogate<T, kId>(above, alpha, c);
          if (kMasked) sg = sg * factor[j];
          // dV/dH through the hard reset V = H (1 - S) + v_reset S
          T reset_grad = above < T(0) ? T(1) : T(0);
          if (!detach_reset) reset_grad = (reset_grad - hh * sg) + v_reset * sg;
          const T g = grad[base + j] * sg + decay * carry[j] * reset_grad;
          carry[j] = g;
          grad_x[base + j] = g / tau;
        }
      }
    }
    dropped += local_dropped;
  });
  return dropped.load();
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

double surrogate_constant(int64_t id, double alpha) {
  switch (id) {
    case 0: return std::pow(M_PI / 2 * alpha, 2);
    case 1: return -alpha * alpha;
    case 3: return 0.5 / alpha;
    case 4: return 0.5 * alpha;
    default: return 0.0;
  }
}

// Returns grad x and the number of surrogate-gradient elements the mask dropped.
std::vector<torch::Tensor> backward(torch::Tensor grad, torch::Tensor h, double tau,
                                    double v_threshold, double v_reset, int64_t surrogate_id,
                                    double alpha, bool detach_reset, bool mask_on, double p,
                                    double scale, bool per_neuron, int64_t neurons, int64_t key,
                                    int64_t offset) {
  check_input(h, "h");
  TORCH_CHECK(surrogate_id >= 0 && surrogate_id <= 5, "lif_cpu: unknown surrogate id ", surrogate_id);
  grad = grad.to(h.scalar_type()).contiguous();
  TORCH_CHECK(grad.sizes() == h.sizes(), "lif_cpu: grad and h shapes differ");
  auto grad_x = empty_like_cached(h);
  const int64_t steps = h.size(0), n = h.numel() / steps;
  const Mask mask{mask_on, per_neuron, std::max<int64_t>(neurons, 1), static_cast<uint64_t>(key),
                  static_cast<uint64_t>(offset), keep_cut(static_cast<float>(p)), scale};
  TORCH_CHECK(!mask_on || !per_neuron || n % mask.neurons == 0, "lif_cpu: neurons must divide n");
  const double c = surrogate_constant(surrogate_id, alpha);
  int64_t dropped = 0;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "lif_cpu_backward", [&] {
    using T = scalar_t;
    auto run = [&](auto id) {
      auto kernel = mask_on ? backward_kernel<T, decltype(id)::value, true>
                            : backward_kernel<T, decltype(id)::value, false>;
      dropped = kernel(grad.data_ptr<T>(), h.data_ptr<T>(), grad_x.data_ptr<T>(), steps, n,
                       static_cast<T>(tau), static_cast<T>(v_threshold),
                       static_cast<T>(v_reset), static_cast<T>(alpha), static_cast<T>(c),
                       detach_reset, mask);
    };
    switch (surrogate_id) {
      case 0: run(std::integral_constant<int, 0>{}); break;
      case 1: run(std::integral_constant<int, 1>{}); break;
      case 2: run(std::integral_constant<int, 2>{}); break;
      case 3: run(std::integral_constant<int, 3>{}); break;
      case 4: run(std::integral_constant<int, 4>{}); break;
      default: run(std::integral_constant<int, 5>{}); break;
    }
  });
  return {grad_x, torch::tensor(dropped, torch::kInt64)};
}

// tl.rand(key, offset + i) for i < n: the uniforms the masks are drawn from (for tests).
torch::Tensor philox_uniform(int64_t key, int64_t offset, int64_t n) {
  auto out = torch::empty({n}, torch::kFloat);
  float* data = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    data[i] = uniform_of(folded(philox_word(static_cast<uint64_t>(key),
                                            static_cast<uint64_t>(offset) + i)));
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "LIF forward: (spikes, H)");
  m.def("backward", &backward, "LIF BPTT backward: (grad x, dropped count)");
  m.def("philox_uniform", &philox_uniform, "tl.rand(key, offset + arange(n))");
}
