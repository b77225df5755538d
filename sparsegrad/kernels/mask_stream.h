// MSG's mask stream in C++ (docs/design.md §8, "The mask stream"); the same stream as
// sparsegrad/kernels/mask_stream.py (the torch reference) and lif_triton.py.
//
// One Philox4x32-10 call per group of 8 neurons: counter (c, 0) with c = offset + t * G + i / 8
// for neuron i of timestep t (G = ceil(n / 8) groups per timestep), key = the call's key. Its
// four 32-bit words give eight 16-bit lanes, word w holding lanes 2w (low half) and 2w + 1;
// neuron i reads lane i % 8 and is kept when lane >= cut, cut = round(p * 65536).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define SPARSEGRAD_AVX512 1
#endif

namespace mask_stream {

constexpr int64_t kLanes = 8;       // keep decisions per Philox call
constexpr int64_t kLevels = 65536;  // cut = round(p * kLevels); cut = kLevels keeps nothing
constexpr int64_t kTile = 128;      // neurons per vector call: 16 counters of 8 lanes

struct Stream {
  uint64_t key;
  uint64_t offset;  // the call's first counter
  int64_t cut;
};

constexpr uint32_t kRoundA = 0xD2511F53u, kRoundB = 0xCD9E8D57u;
constexpr uint32_t kKeyA = 0x9E3779B9u, kKeyB = 0xBB67AE85u;

// Philox4x32-10 of counter (counter lo, counter hi, 0, 0), key (key lo, key hi): the four
// words of Triton's randint4x(key, counter).
inline void philox4(uint64_t key, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t pb = static_cast<uint64_t>(kRoundB) * c2;
    const uint64_t pa = static_cast<uint64_t>(kRoundA) * c0;
    const uint32_t n0 = static_cast<uint32_t>(pb >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(pa >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(pb);
    c3 = static_cast<uint32_t>(pa);
    c0 = n0;
    c2 = n2;
    k0 += kKeyA;
    k1 += kKeyB;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// lanes[8 g + l] = lane l of counter first + g, for g < groups.
inline void lanes_scalar(uint64_t key, uint64_t first, int64_t groups, uint16_t* lanes) {
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t word[4];
    philox4(key, first + static_cast<uint64_t>(g), word);
    for (int w = 0; w < 4; ++w) {
      lanes[kLanes * g + 2 * w] = static_cast<uint16_t>(word[w]);
      lanes[kLanes * g + 2 * w + 1] = static_cast<uint16_t>(word[w] >> 16);
    }
  }
}

#if defined(SPARSEGRAD_AVX512)
// The high and low 32 bits of a * b in each of 16 lanes (b the same in every lane).
inline void mul_wide(__m512i a, __m512i b, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, b);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), b);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// lanes_scalar(key, first, 16, lanes) with the 16 counters in the 16 lanes of a vector.
inline void lanes16(uint64_t key, uint64_t first, uint16_t* lanes) {
  const __m512i index = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i lo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first)));
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first >> 32)));
  __m512i c0 = _mm512_add_epi32(lo, index);
  __m512i c1 = _mm512_mask_add_epi32(hi, _mm512_cmplt_epu32_mask(c0, lo), hi, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  const __m512i a = _mm512_set1_epi32(static_cast<int>(kRoundA));
  const __m512i b = _mm512_set1_epi32(static_cast<int>(kRoundB));
  for (int round = 0; round < 10; ++round) {
    __m512i hb, lb, ha, la;
    mul_wide(c2, b, hb, lb);
    mul_wide(c0, a, ha, la);
    c0 = _mm512_ternarylogic_epi32(hb, c1, _mm512_set1_epi32(static_cast<int>(k0)), 0x96);
    c2 = _mm512_ternarylogic_epi32(ha, c3, _mm512_set1_epi32(static_cast<int>(k1)), 0x96);
    c1 = lb;
    c3 = la;
    k0 += kKeyA;
    k1 += kKeyB;
  }
  // Transpose (word, counter) to (counter, word): memory order is then neuron order.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i g0 = _mm512_unpacklo_epi64(t0, t2), g1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i g2 = _mm512_unpacklo_epi64(t1, t3), g3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i u0 = _mm512_shuffle_i32x4(g0, g1, 0x44), u1 = _mm512_shuffle_i32x4(g2, g3, 0x44);
  const __m512i u2 = _mm512_shuffle_i32x4(g0, g1, 0xEE), u3 = _mm512_shuffle_i32x4(g2, g3, 0xEE);
  _mm512_storeu_si512(lanes, _mm512_shuffle_i32x4(u0, u1, 0x88));
  _mm512_storeu_si512(lanes + 32, _mm512_shuffle_i32x4(u0, u1, 0xDD));
  _mm512_storeu_si512(lanes + 64, _mm512_shuffle_i32x4(u2, u3, 0x88));
  _mm512_storeu_si512(lanes + 96, _mm512_shuffle_i32x4(u2, u3, 0xDD));
}
#endif

// The lanes of groups first .. first + groups - 1 (the vector path where it can).
inline void lanes(uint64_t key, uint64_t first, int64_t groups, uint16_t* out, bool simd = true) {
  int64_t g = 0;
#if defined(SPARSEGRAD_AVX512)
  for (; simd && g + 16 <= groups; g += 16) lanes16(key, first + static_cast<uint64_t>(g), out + kLanes * g);
#endif
  lanes_scalar(key, first + static_cast<uint64_t>(g), groups - g, out + kLanes * g);
}

// Mask one timestep's SG' of neurons i0 .. i0 + len - 1 in place (i0 a multiple of 8; the
// stream's counters of that timestep start at `first`): kept entries times scale, dropped
// ones 0. A group whose 8 SG' are all exactly 0 draws nothing and is not counted: `seen`
// gains the entries of the other groups, `dropped` those of them the mask zeroed.
template <typename T>
void mask_span(const Stream& s, uint64_t first, int64_t len, T scale, T* sg, int64_t& seen,
               int64_t& dropped) {
  for (int64_t start = 0; start < len; start += kTile) {
    const int64_t size = std::min(kTile, len - start), groups = (size + kLanes - 1) / kLanes;
    T* x = sg + start;
    uint8_t live[kTile] = {};  // 1 where SG' != 0, then 1 throughout each live group
    for (int64_t j = 0; j < size; ++j) live[j] = x[j] != T(0);
    uint32_t live_groups = 0;
    for (int64_t g = 0; g < groups; ++g) {
      uint64_t word;
      std::memcpy(&word, live + kLanes * g, sizeof word);
      live_groups |= static_cast<uint32_t>(word != 0) << g;
    }
    if (live_groups == 0) continue;
    uint16_t lane[kTile];
    const uint64_t counter = first + static_cast<uint64_t>(start / kLanes);
    if (s.cut >= kLevels) {
      std::memset(lane, 0, sizeof lane);  // p = 1: nothing kept, nothing to draw
    } else if (groups == 16 || __builtin_popcount(live_groups) > 1) {
      lanes(s.key, counter, groups, lane);
    } else {  // one live group: one call
      const int g = __builtin_ctz(live_groups);
      std::memset(lane, 0, sizeof lane);
      lanes_scalar(s.key, counter + g, 1, lane + kLanes * g);
    }
    for (int64_t g = 0; g < groups; ++g) {
      std::memset(live + kLanes * g, (live_groups >> g) & 1, kLanes);
    }
    const int32_t cut = static_cast<int32_t>(s.cut);
    int64_t local_seen = 0, local_dropped = 0;
#pragma omp simd reduction(+ : local_seen, local_dropped)
    for (int64_t j = 0; j < size; ++j) {
      const bool keep = static_cast<int32_t>(lane[j]) >= cut;
      local_seen += live[j];
      local_dropped += live[j] & !keep;
      x[j] = keep ? x[j] * scale : T(0);
    }
    seen += local_seen;
    dropped += local_dropped;
  }
}

// Under "neuron" granularity: keep[j] for neurons j < neurons, lane j % 8 of counter
// offset + j / 8 (one draw per neuron, shared over time and batch).
inline std::vector<uint8_t> neuron_keep(const Stream& s, int64_t neurons) {
  const int64_t groups = (neurons + kLanes - 1) / kLanes;
  std::vector<uint16_t> lane(static_cast<size_t>(groups * kLanes));
  if (s.cut < kLevels) lanes(s.key, s.offset, groups, lane.data());
  std::vector<uint8_t> keep(static_cast<size_t>(neurons));
  for (int64_t j = 0; j < neurons; ++j) keep[j] = s.cut < kLevels && lane[j] >= s.cut;
  return keep;
}

}  // namespace mask_stream
