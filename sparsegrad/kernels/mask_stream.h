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
// The high and low 32 bits of a * b in each of 16 lanes (b the same in every lane). The
// 64-bit products of the even and odd lanes are interleaved back with one masked shuffle
// each (swap neighbours, keep the other half): 5 vector ops, where shifts and blends took 7.
inline void mul_wide(__m512i a, __m512i b, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, b);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), b);
  hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_CDAB);
  lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, _MM_PERM_CDAB);
}

// The lanes of counters first .. first + 15, in neuron order: out[k] holds lanes of
// counters 4k .. 4k + 3 (32 lanes, 16 bits each), as lanes_scalar lays them out.
inline void philox16(uint64_t key, uint64_t first, __m512i out[4]) {
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
  out[0] = _mm512_shuffle_i32x4(u0, u1, 0x88);
  out[1] = _mm512_shuffle_i32x4(u0, u1, 0xDD);
  out[2] = _mm512_shuffle_i32x4(u2, u3, 0x88);
  out[3] = _mm512_shuffle_i32x4(u2, u3, 0xDD);
}

inline void lanes16(uint64_t key, uint64_t first, uint16_t* lanes) {
  __m512i out[4];
  philox16(key, first, out);
  for (int k = 0; k < 4; ++k) _mm512_storeu_si512(lanes + 32 * k, out[k]);
}

// Bit j of keep[j / 32] (as 64-bit words: bit j % 64 of keep[j / 64]): neuron j of the tile is kept.
inline void keep_bits(const Stream& s, uint64_t first, uint64_t keep[2]) {
  if (s.cut >= kLevels) {
    keep[0] = keep[1] = 0;
    return;
  }
  __m512i out[4];
  philox16(s.key, first, out);
  const __m512i cut = _mm512_set1_epi16(static_cast<short>(static_cast<uint16_t>(s.cut)));
  uint64_t bits[4];
  for (int k = 0; k < 4; ++k) bits[k] = static_cast<uint32_t>(_mm512_cmpge_epu16_mask(out[k], cut));
  keep[0] = bits[0] | bits[1] << 32;
  keep[1] = bits[2] | bits[3] << 32;
}

// 0xFF in each byte of w that is not zero, 0x00 in the others.
inline uint64_t nonzero_bytes(uint64_t w) {
  w |= w >> 4;
  w |= w >> 2;
  w |= w >> 1;
  return (w & 0x0101010101010101ull) * 0xFF;
}

// One whole tile (128 neurons) of mask_span in registers. nz: bit j set where SG' of neuron j
// is not 0, as two 64-bit words; a byte of it is one group of 8.
inline void count_tile(const uint64_t nz[2], const uint64_t keep[2], int64_t& seen, int64_t& dropped) {
  const uint64_t on0 = nonzero_bytes(nz[0]), on1 = nonzero_bytes(nz[1]);  // lanes of live groups
  const int64_t live = __builtin_popcountll(on0) + __builtin_popcountll(on1);
  seen += live;
  dropped += live - __builtin_popcountll(on0 & keep[0]) - __builtin_popcountll(on1 & keep[1]);
}

inline void mask_tile(const Stream& s, uint64_t first, float scale, float* x, int64_t& seen,
                      int64_t& dropped) {
  __m512 v[8];
  uint64_t nz[2] = {0, 0};
  for (int k = 0; k < 8; ++k) {
    v[k] = _mm512_loadu_ps(x + 16 * k);
    nz[k / 4] |= uint64_t(_mm512_cmp_ps_mask(v[k], _mm512_setzero_ps(), _CMP_NEQ_UQ)) << (16 * (k % 4));
  }
  if ((nz[0] | nz[1]) == 0) return;
  uint64_t keep[2];
  keep_bits(s, first, keep);
  const __m512 factor = _mm512_set1_ps(scale);
  for (int k = 0; k < 8; ++k) {
    const __mmask16 kept = static_cast<__mmask16>(keep[k / 4] >> (16 * (k % 4)));
    _mm512_storeu_ps(x + 16 * k, _mm512_maskz_mul_ps(kept, v[k], factor));
  }
  count_tile(nz, keep, seen, dropped);
}

inline void mask_tile(const Stream& s, uint64_t first, double scale, double* x, int64_t& seen,
                      int64_t& dropped) {
  __m512d v[16];
  uint64_t nz[2] = {0, 0};
  for (int k = 0; k < 16; ++k) {
    v[k] = _mm512_loadu_pd(x + 8 * k);
    nz[k / 8] |= uint64_t(_mm512_cmp_pd_mask(v[k], _mm512_setzero_pd(), _CMP_NEQ_UQ)) << (8 * (k % 8));
  }
  if ((nz[0] | nz[1]) == 0) return;
  uint64_t keep[2];
  keep_bits(s, first, keep);
  const __m512d factor = _mm512_set1_pd(scale);
  for (int k = 0; k < 16; ++k) {
    const __mmask8 kept = static_cast<__mmask8>(keep[k / 8] >> (8 * (k % 8)));
    _mm512_storeu_pd(x + 8 * k, _mm512_maskz_mul_pd(kept, v[k], factor));
  }
  count_tile(nz, keep, seen, dropped);
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
    const uint64_t counter = first + static_cast<uint64_t>(start / kLanes);
#if defined(SPARSEGRAD_AVX512)
    if (size == kTile) {
      mask_tile(s, counter, scale, x, seen, dropped);
      continue;
    }
#endif
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

// Multiply x[0 .. len) in place by the stream's keep bits, element j reading lane j % 8 of
// counter first + j / 8 (first: the tile's counter, so len from a multiple of 8): kept
// entries times scale, dropped ones 0. Every element is drawn and counted, zero or not
// (the materialised masks' stats count every element). Returns how many were dropped.
template <typename T>
int64_t mask_all(const Stream& s, uint64_t first, int64_t len, T scale, T* x) {
  int64_t dropped = 0;
  const int32_t cut = static_cast<int32_t>(s.cut);
  for (int64_t start = 0; start < len; start += kTile) {
    const int64_t size = std::min(kTile, len - start), groups = (size + kLanes - 1) / kLanes;
    uint16_t lane[kTile];
    if (s.cut >= kLevels) {
      std::memset(lane, 0, sizeof lane);
    } else {
      lanes(s.key, first + static_cast<uint64_t>(start / kLanes), groups, lane);
    }
    T* y = x + start;
    int64_t local = 0;
#pragma omp simd reduction(+ : local)
    for (int64_t j = 0; j < size; ++j) {
      const bool keep = static_cast<int32_t>(lane[j]) >= cut;
      local += !keep;
      y[j] = keep ? y[j] * scale : T(0);
    }
    dropped += local;
  }
  return dropped;
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
