// Variable-length self-attention for packed BERT rows on x86-64 CPUs: bf16 on AMX tiles, fp32 on AVX-512 FMA.
//
// Why: with head size 32 (all-MiniLM-L6-v2, e5-small) torch's CPU flash kernel spends most of its time in the
// online softmax; attention took a third of a bf16 forward for a tenth of its FLOPs. Here every text's scores fit
// in a small buffer (a block of queries x its length), so the softmax needs no rescaling passes, and there is no
// padding: texts are read straight from the packed (N, 3H) QKV rows and written to packed (N, H) rows.
//
// bf16 (needs amx_bf16, amx_tile, avx512_bf16): per (text, head), K is repacked into AMX's pair layout (K^T), V
// into pairs of keys; then for each 32 queries: scores = Q K^T on AMX tiles (fp32), exact row max, exp
// (exp2_nonpositive below), probabilities rounded to bf16 as torch's kernel does, P V on AMX tiles, divided by
// the fp32 row sum.
// fp32 (needs avx512f, avx512dq): the same steps with FMA on register blocks of queries, fp32 probabilities and
// a degree-5 exp, so results differ from torch's only in summation order (~1e-6).
// Head sizes 32 and 64.
//
// Built at first use by e5kit/model/native_attention.py; it links no OpenMP runtime of its own, so its GOMP calls
// bind to the one torch has loaded and its threads are torch's threads.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// ---- baseline x86-64: buffers and the OpenMP driver; nothing here may use AVX (see the regions below) ----

struct Scratch {
  std::vector<uint32_t> kt, vp;
  std::vector<float> scores, acc;
  std::vector<uint16_t> probs, qpad;
  Scratch(int64_t d, int64_t l32)
      : kt(d / 2 * l32), vp(l32 / 2 * d), scores(32 * l32), acc(32 * d), probs(32 * l32), qpad(32 * d) {}
};

// Queries per register block: R x 32 keys of scores, then R x D outputs, all in the 32 zmm registers.
constexpr int kMaxRows32 = 8;

struct Scratch32 {
  std::vector<float> kt, scores;
  Scratch32(int64_t d, int64_t l32) : kt(d * l32), scores(kMaxRows32 * l32) {}
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,fma")

// ---- AVX-512 (and AMX for bf16): runs only where the CPU reports these flags ----


struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
  constexpr TileConfig() {
    for (int t = 0; t < 8; ++t) {
      colsb[t] = 64;
      rows[t] = 16;
    }
  }
};
// Every tile is 16 rows x 64 bytes: 16 x 32 bf16 operands, 16 x 16 fp32 accumulators. A constant, not a stack
// object: GCC 12 drops stores to a local config that only LDTILECFG reads (seen here: a #GP on garbage bytes).
alignas(64) constexpr TileConfig kTileConfig;

void configure_tiles() { _tile_loadconfig(&kTileConfig); }

void release_tiles() { _tile_release(); }

// 2^t for t <= 0 (log2 units): 2^round(t) * p(f), f = t - round(t) in [-0.5, 0.5] from one VREDUCEPS, p a
// degree-3 fit of 2^f (relative error 7.5e-5, 25x below the bf16 rounding the probabilities then get);
// VSCALEFPS applies 2^round(t) and underflows to 0 for very negative t, so no clamp is needed.
inline __m512 exp2_nonpositive(__m512 t) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT);
  __m512 p = _mm512_set1_ps(5.517159692e-02f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.426111750e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.932610038e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999280708e-01f));
  return _mm512_scalef_ps(p, _mm512_sub_ps(t, f));
}

inline void zero_accumulators() {  // tiles 0-3 hold fp32 results in both stages
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

inline __mmask16 first_lanes(int64_t n) {  // lanes [0, n) of 16
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

// Index tables for the in-register 16 x 16 transpose below: round b swaps the off-diagonal b x b blocks.
// constexpr, so no initializer runs when the library loads (on a CPU without AVX-512 too).
struct TransposeIndex {
  alignas(64) int32_t lo[4][16] = {};
  alignas(64) int32_t hi[4][16] = {};
  constexpr TransposeIndex() {
    for (int round = 0, b = 8; b >= 1; ++round, b >>= 1)
      for (int c = 0; c < 16; ++c) {
        lo[round][c] = (c & b) ? 16 + c - b : c;
        hi[round][c] = (c & b) ? 16 + c : c + b;
      }
  }
};
constexpr TransposeIndex kTranspose;

template <int B, int Round>
inline void transpose_round(__m512i r[16]) {
  const __m512i ilo = _mm512_load_si512(kTranspose.lo[Round]), ihi = _mm512_load_si512(kTranspose.hi[Round]);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i & B) continue;
    const __m512i a = r[i], c = r[i + B];
    r[i] = _mm512_permutex2var_epi32(a, ilo, c);
    r[i + B] = _mm512_permutex2var_epi32(a, ihi, c);
  }
}

inline void transpose16(__m512i r[16]) {  // 16 x 16 32-bit elements
  transpose_round<8, 0>(r);
  transpose_round<4, 1>(r);
  transpose_round<2, 2>(r);
  transpose_round<1, 3>(r);
}

// Rows [0, rows) of the (n x l32) fp32 scores -> bf16 probabilities (unnormalised) and 1 / row sums.
inline void softmax_rows(const float* scores, uint16_t* probs, float* inv_sum, int rows, int64_t len, int64_t l32,
                         float log2_scale) {
  const __m512 vscale = _mm512_set1_ps(log2_scale);
  for (int r = 0; r < rows; ++r) {
    const float* sr = scores + r * l32;
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(sr + j));
    if (j < len) m = _mm512_mask_max_ps(m, first_lanes(len - j), m, _mm512_loadu_ps(sr + j));
    const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(m) * log2_scale);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    uint16_t* pr = probs + r * l32;
    for (j = 0; j + 32 <= len; j += 32) {
      const __m512 e0 = exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), vscale, shift));
      const __m512 e1 = exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j + 16), vscale, shift));
      sum0 = _mm512_add_ps(sum0, e0);
      sum1 = _mm512_add_ps(sum1, e1);
      _mm512_storeu_si512(pr + j, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
    }
    if (j < l32) {  // the ragged end: keys past len get probability 0
      const __m512 e0 = _mm512_maskz_mov_ps(
          first_lanes(len - j), exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), vscale, shift)));
      const __m512 e1 = _mm512_maskz_mov_ps(
          first_lanes(len - j - 16), exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j + 16), vscale, shift)));
      sum0 = _mm512_add_ps(sum0, e0);
      sum1 = _mm512_add_ps(sum1, e1);
      _mm512_storeu_si512(pr + j, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
    }
    inv_sum[r] = 1.0f / _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
  }
}

// `rows` query rows starting at q -> a 16 x D tile-ready block (rows past `rows` zero) when short, else q itself.
inline const uint16_t* query_block(const uint16_t* q, int64_t in_stride, int rows, int d, uint16_t* pad,
                                   int64_t* stride_bytes) {
  if (rows == 16) {
    *stride_bytes = in_stride * 2;
    return q;
  }
  std::memset(pad, 0, sizeof(uint16_t) * 16 * d);
  for (int r = 0; r < rows; ++r) std::memcpy(pad + r * d, q + r * in_stride, sizeof(uint16_t) * d);
  *stride_bytes = d * 2;
  return pad;
}

// (16 x D fp32 accumulators, row sums) -> bf16 output rows.
inline void write_rows(const float* acc, const float* inv_sum, int rows, int d, uint16_t* out, int64_t out_stride) {
  for (int r = 0; r < rows; ++r) {
    const __m512 iv = _mm512_set1_ps(inv_sum[r]);
    for (int c = 0; c < d; c += 32) {
      const __m512 a = _mm512_mul_ps(_mm512_loadu_ps(acc + r * d + c), iv);
      const __m512 b = _mm512_mul_ps(_mm512_loadu_ps(acc + r * d + c + 16), iv);
      _mm512_storeu_si512(out + r * out_stride + c, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
  }
}

template <int D>
void one_head(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t len, int64_t in_stride,
              uint16_t* out, int64_t out_stride, float scale, Scratch& s) {
  const int64_t l32 = (len + 31) & ~int64_t(31);
  uint32_t* kt = s.kt.data();
  uint32_t* vp = s.vp.data();
  float* scores = s.scores.data();
  uint16_t* probs = s.probs.data();
  float* acc = s.acc.data();
  // K^T in bf16 pairs: kt[p][j] = (K[j][2p], K[j][2p + 1]); keys past len are zero.
  for (int64_t j0 = 0; j0 < l32; j0 += 16) {
    for (int half = 0; half < D / 32; ++half) {
      __m512i r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < len ? _mm512_loadu_si512(k + (j0 + i) * in_stride + 32 * half) : _mm512_setzero_si512();
      transpose16(r);
#pragma GCC unroll 16
      for (int p = 0; p < 16; ++p) _mm512_storeu_si512(kt + (16 * half + p) * l32 + j0, r[p]);
    }
  }
  // V in pairs of keys: vp[kp][c] = (V[2kp][c], V[2kp + 1][c]); keys past len are zero.
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                      37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54,
                                      22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
  for (int64_t kp = 0; kp < l32 / 2; ++kp) {
    for (int c = 0; c < D; c += 32) {
      const __m512i a = 2 * kp < len ? _mm512_loadu_si512(v + 2 * kp * in_stride + c) : _mm512_setzero_si512();
      const __m512i b =
          2 * kp + 1 < len ? _mm512_loadu_si512(v + (2 * kp + 1) * in_stride + c) : _mm512_setzero_si512();
      _mm512_storeu_si512(vp + kp * D + c, _mm512_permutex2var_epi16(a, lo, b));
      _mm512_storeu_si512(vp + kp * D + c + 16, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
  const float log2_scale = scale * 1.44269504088896341f;
  float inv_sum[32];
  int64_t stride0, stride1;
  if constexpr (D == 32) {
    // Two blocks of 16 queries at a time: four independent accumulators keep the AMX unit busy.
    for (int64_t qb = 0; qb < len; qb += 32) {
      const int rows0 = (int)std::min<int64_t>(16, len - qb), rows1 = (int)std::clamp<int64_t>(len - qb - 16, 0, 16);
      const uint16_t* q0 = query_block(q + qb * in_stride, in_stride, rows0, D, s.qpad.data(), &stride0);
      _tile_loadd(4, q0, stride0);
      if (rows1 > 0) {
        const uint16_t* q1 = query_block(q + (qb + 16) * in_stride, in_stride, rows1, D, s.qpad.data() + 16 * D, &stride1);
        _tile_loadd(5, q1, stride1);
      } else {
        _tile_zero(5);
      }
      for (int64_t jb = 0; jb < l32; jb += 32) {
        zero_accumulators();
        _tile_loadd(6, kt + jb, l32 * 4);
        _tile_loadd(7, kt + jb + 16, l32 * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 5, 6);
        _tile_dpbf16ps(2, 4, 7);
        _tile_dpbf16ps(3, 5, 7);
        _tile_stored(0, scores + jb, l32 * 4);
        _tile_stored(2, scores + jb + 16, l32 * 4);
        _tile_stored(1, scores + 16 * l32 + jb, l32 * 4);
        _tile_stored(3, scores + 16 * l32 + jb + 16, l32 * 4);
      }
      softmax_rows(scores, probs, inv_sum, rows0, len, l32, log2_scale);
      softmax_rows(scores + 16 * l32, probs + 16 * l32, inv_sum + 16, rows1, len, l32, log2_scale);
      zero_accumulators();
      for (int64_t kb = 0; kb < l32; kb += 32) {
        _tile_loadd(4, probs + kb, l32 * 2);
        _tile_loadd(5, probs + 16 * l32 + kb, l32 * 2);  // rows past len: stale but finite, never written out
        _tile_loadd(6, vp + (kb / 2) * D, D * 4);
        _tile_loadd(7, vp + (kb / 2) * D + 16, D * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, acc, D * 4);
      _tile_stored(1, acc + 16, D * 4);
      _tile_stored(2, acc + 16 * D, D * 4);
      _tile_stored(3, acc + 16 * D + 16, D * 4);
      write_rows(acc, inv_sum, rows0, D, out + qb * out_stride, out_stride);
      write_rows(acc + 16 * D, inv_sum + 16, rows1, D, out + (qb + 16) * out_stride, out_stride);
    }
  } else {
    for (int64_t qb = 0; qb < len; qb += 16) {
      const int rows = (int)std::min<int64_t>(16, len - qb);
      const uint16_t* q0 = query_block(q + qb * in_stride, in_stride, rows, D, s.qpad.data(), &stride0);
      _tile_loadd(4, q0, stride0);
      _tile_loadd(5, q0 + 32, stride0);
      for (int64_t jb = 0; jb < l32; jb += 32) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_loadd(6, kt + jb, l32 * 4);
        _tile_loadd(7, kt + 16 * l32 + jb, l32 * 4);
        _tile_loadd(2, kt + jb + 16, l32 * 4);
        _tile_loadd(3, kt + 16 * l32 + jb + 16, l32 * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 2);
        _tile_dpbf16ps(0, 5, 7);
        _tile_dpbf16ps(1, 5, 3);
        _tile_stored(0, scores + jb, l32 * 4);
        _tile_stored(1, scores + jb + 16, l32 * 4);
      }
      softmax_rows(scores, probs, inv_sum, rows, len, l32, log2_scale);
      zero_accumulators();
      for (int64_t kb = 0; kb < l32; kb += 32) {
        _tile_loadd(4, probs + kb, l32 * 2);
        _tile_loadd(5, vp + (kb / 2) * D, D * 4);
        _tile_loadd(6, vp + (kb / 2) * D + 16, D * 4);
        _tile_loadd(7, vp + (kb / 2) * D + 32, D * 4);
        _tile_dpbf16ps(0, 4, 5);
        _tile_dpbf16ps(1, 4, 6);
        _tile_dpbf16ps(2, 4, 7);
        _tile_loadd(5, vp + (kb / 2) * D + 48, D * 4);
        _tile_dpbf16ps(3, 4, 5);
      }
      _tile_stored(0, acc, D * 4);
      _tile_stored(1, acc + 16, D * 4);
      _tile_stored(2, acc + 32, D * 4);
      _tile_stored(3, acc + 48, D * 4);
      write_rows(acc, inv_sum, rows, D, out + qb * out_stride, out_stride);
    }
  }
}


// ---- fp32: AVX-512 FMA, exact to ~1e-6 (fp32 products and sums, a degree-5 exp) ----

// 2^t for t <= 0, fp32-accurate: as exp2_nonpositive with a degree-5 fit (relative error 7.5e-8).
inline __m512 exp2_accurate(__m512 t) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT);
  __m512 p = _mm512_set1_ps(1.327646373e-03f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.675542195e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550713307e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402211971e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931469670e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.000000072e+00f));
  return _mm512_scalef_ps(p, _mm512_sub_ps(t, f));
}

template <int D, int kRows32 = (D == 32 ? 8 : 4)>
void one_head_fp32(const float* q, const float* k, const float* v, int64_t len, int64_t in_stride, float* out,
                   int64_t out_stride, float scale, Scratch32& s) {
  const int64_t l32 = (len + 31) & ~int64_t(31);
  float* kt = s.kt.data();
  float* scores = s.scores.data();
  // K^T: kt[c][j] = K[j][c]; keys past len are zero.
  for (int64_t j0 = 0; j0 < l32; j0 += 16) {
    for (int c0 = 0; c0 < D; c0 += 16) {
      __m512i r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = j0 + i < len ? _mm512_castps_si512(_mm512_loadu_ps(k + (j0 + i) * in_stride + c0))
                            : _mm512_setzero_si512();
      transpose16(r);
#pragma GCC unroll 16
      for (int c = 0; c < 16; ++c) _mm512_storeu_si512(kt + (c0 + c) * l32 + j0, r[c]);
    }
  }
  const float log2_scale = scale * 1.44269504088896341f;
  const __m512 vscale = _mm512_set1_ps(log2_scale);
  for (int64_t qb = 0; qb < len; qb += kRows32) {
    const int rows = (int)std::min<int64_t>(kRows32, len - qb);
    const float* qr[kRows32];
    for (int r = 0; r < kRows32; ++r) qr[r] = q + (qb + std::min(r, rows - 1)) * in_stride;  // short block: repeat
    // scores[r][j] = q_r . k_j
    for (int64_t jb = 0; jb < l32; jb += 32) {
      __m512 acc[kRows32][2];
      for (int r = 0; r < kRows32; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
      for (int c = 0; c < D; ++c) {
        const __m512 k0 = _mm512_loadu_ps(kt + c * l32 + jb), k1 = _mm512_loadu_ps(kt + c * l32 + jb + 16);
#pragma GCC unroll 8
        for (int r = 0; r < kRows32; ++r) {
          const __m512 qv = _mm512_set1_ps(qr[r][c]);
          acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
        }
      }
      for (int r = 0; r < kRows32; ++r) {
        _mm512_storeu_ps(scores + r * l32 + jb, acc[r][0]);
        _mm512_storeu_ps(scores + r * l32 + jb + 16, acc[r][1]);
      }
    }
    // probabilities in place (unnormalised, zero past len) and their sums
    float inv_sum[kRows32];
    for (int r = 0; r < kRows32; ++r) {
      float* sr = scores + r * l32;
      __m512 m = _mm512_set1_ps(-INFINITY);
      for (int64_t j = 0; j < len; j += 16) m = _mm512_mask_max_ps(m, first_lanes(len - j), m, _mm512_loadu_ps(sr + j));
      const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(m) * log2_scale);
      __m512 sum = _mm512_setzero_ps();
      for (int64_t j = 0; j < l32; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(first_lanes(len - j),
                                             exp2_accurate(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), vscale, shift)));
        sum = _mm512_add_ps(sum, e);
        _mm512_storeu_ps(sr + j, e);
      }
      inv_sum[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    // out[r] = sum_j p[r][j] v_j / sum
    __m512 acc[kRows32][D / 16];
    for (int r = 0; r < kRows32; ++r)
      for (int c = 0; c < D / 16; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < len; ++j) {
      __m512 vv[D / 16];
      for (int c = 0; c < D / 16; ++c) vv[c] = _mm512_loadu_ps(v + j * in_stride + 16 * c);
#pragma GCC unroll 8
      for (int r = 0; r < kRows32; ++r) {
        const __m512 p = _mm512_set1_ps(scores[r * l32 + j]);
        for (int c = 0; c < D / 16; ++c) acc[r][c] = _mm512_fmadd_ps(p, vv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const __m512 iv = _mm512_set1_ps(inv_sum[r]);
      for (int c = 0; c < D / 16; ++c)
        _mm512_storeu_ps(out + (qb + r) * out_stride + 16 * c, _mm512_mul_ps(acc[r][c], iv));
    }
  }
}



#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// ---- AVX2 + FMA fp32: CPUs without AVX-512; 8 lanes, otherwise the steps of one_head_fp32 ----

inline __m256 lanes8(int64_t n) {  // lanes [0, n) of 8 set
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)std::clamp<int64_t>(n, 0, 8)), idx));
}

inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline float hsum8(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
}

// 2^t for t <= 0: the degree-5 fit of exp2_accurate; t is clamped at -126 (2^-126 ~ 1e-38 stands in for 0).
inline __m256 exp2_accurate8(__m256 t) {
  t = _mm256_max_ps(t, _mm256_set1_ps(-126.0f));
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(t, n);
  __m256 p = _mm256_set1_ps(1.327646373e-03f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.675542195e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550713307e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402211971e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931469670e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.000000072e+00f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline void transpose8(__m256 r[8]) {  // 8 x 8 fp32
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

constexpr int kRowsAvx2 = 4;  // queries per register block (16 ymm registers: 8 accumulators + operands)

template <int D>
void one_head_fp32_avx2(const float* q, const float* k, const float* v, int64_t len, int64_t in_stride, float* out,
                        int64_t out_stride, float scale, Scratch32& s) {
  const int64_t l16 = (len + 15) & ~int64_t(15);
  float* kt = s.kt.data();
  float* scores = s.scores.data();
  for (int64_t j0 = 0; j0 < l16; j0 += 8) {  // K^T: kt[c][j] = K[j][c]; keys past len are zero
    for (int c0 = 0; c0 < D; c0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = j0 + i < len ? _mm256_loadu_ps(k + (j0 + i) * in_stride + c0) : _mm256_setzero_ps();
      transpose8(r);
      for (int c = 0; c < 8; ++c) _mm256_storeu_ps(kt + (c0 + c) * l16 + j0, r[c]);
    }
  }
  const float log2_scale = scale * 1.44269504088896341f;
  const __m256 vscale = _mm256_set1_ps(log2_scale);
  for (int64_t qb = 0; qb < len; qb += kRowsAvx2) {
    const int rows = (int)std::min<int64_t>(kRowsAvx2, len - qb);
    const float* qr[kRowsAvx2];
    for (int r = 0; r < kRowsAvx2; ++r) qr[r] = q + (qb + std::min(r, rows - 1)) * in_stride;
    for (int64_t jb = 0; jb < l16; jb += 16) {  // scores[r][j] = q_r . k_j
      __m256 acc[kRowsAvx2][2];
      for (int r = 0; r < kRowsAvx2; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
      for (int c = 0; c < D; ++c) {
        const __m256 k0 = _mm256_loadu_ps(kt + c * l16 + jb), k1 = _mm256_loadu_ps(kt + c * l16 + jb + 8);
        for (int r = 0; r < kRowsAvx2; ++r) {
          const __m256 qv = _mm256_broadcast_ss(qr[r] + c);
          acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
        }
      }
      for (int r = 0; r < kRowsAvx2; ++r) {
        _mm256_storeu_ps(scores + r * l16 + jb, acc[r][0]);
        _mm256_storeu_ps(scores + r * l16 + jb + 8, acc[r][1]);
      }
    }
    float inv_sum[kRowsAvx2];
    for (int r = 0; r < kRowsAvx2; ++r) {  // probabilities in place, zero past len
      float* sr = scores + r * l16;
      __m256 m = _mm256_set1_ps(-INFINITY);
      for (int64_t j = 0; j < len; j += 8)
        m = _mm256_max_ps(m, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(sr + j), lanes8(len - j)));
      const __m256 shift = _mm256_set1_ps(hmax8(m) * log2_scale);
      __m256 sum = _mm256_setzero_ps();
      for (int64_t j = 0; j < l16; j += 8) {
        const __m256 e = _mm256_and_ps(lanes8(len - j),
                                       exp2_accurate8(_mm256_fmsub_ps(_mm256_loadu_ps(sr + j), vscale, shift)));
        sum = _mm256_add_ps(sum, e);
        _mm256_storeu_ps(sr + j, e);
      }
      inv_sum[r] = 1.0f / hsum8(sum);
    }
    for (int c0 = 0; c0 < D; c0 += 16) {  // out[r] = sum_j p[r][j] v_j / sum, 16 columns at a time
      __m256 acc[kRowsAvx2][2];
      for (int r = 0; r < kRowsAvx2; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
      for (int64_t j = 0; j < len; ++j) {
        const __m256 v0 = _mm256_loadu_ps(v + j * in_stride + c0), v1 = _mm256_loadu_ps(v + j * in_stride + c0 + 8);
        for (int r = 0; r < kRowsAvx2; ++r) {
          const __m256 p = _mm256_broadcast_ss(scores + r * l16 + j);
          acc[r][0] = _mm256_fmadd_ps(p, v0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(p, v1, acc[r][1]);
        }
      }
      for (int r = 0; r < rows; ++r) {
        const __m256 iv = _mm256_set1_ps(inv_sum[r]);
        _mm256_storeu_ps(out + (qb + r) * out_stride + c0, _mm256_mul_ps(acc[r][0], iv));
        _mm256_storeu_ps(out + (qb + r) * out_stride + c0 + 8, _mm256_mul_ps(acc[r][1], iv));
      }
    }
  }
}


#pragma GCC pop_options

// ---- baseline again ----

// One (text, head): Q, K, V rows (stride in_stride), its length, output rows (stride out_stride), scale, scratch.
template <typename T, typename Work>
using HeadFn = void (*)(const T*, const T*, const T*, int64_t, int64_t, T*, int64_t, float, Work&);

// Checks the arguments, then runs every (text, head) on OpenMP threads, each with its own scratch and, where the
// path needs it, its own setup (AMX tile configuration) and teardown. Plain x86-64: the kernels it calls carry
// their own instruction sets.
template <typename T, typename Work>
int run_all(const T* qkv, const int64_t* offsets, int64_t nseq, int64_t heads, int64_t d, T* out, float scale,
            int threads, HeadFn<T, Work> head32, HeadFn<T, Work> head64, void (*begin)() = nullptr,
            void (*end)() = nullptr) {
  if (d != 32 && d != 64) return 1;
  int64_t longest = 0;
  for (int64_t i = 0; i < nseq; ++i) {
    const int64_t len = offsets[i + 1] - offsets[i];
    if (len < 1) return 2;
    longest = std::max(longest, len);
  }
  const int64_t l32 = (longest + 31) & ~int64_t(31), hidden = heads * d, in_stride = 3 * hidden;
  const HeadFn<T, Work> head = d == 32 ? head32 : head64;
#pragma omp parallel num_threads(std::max(threads, 1))
  {
    if (begin) begin();
    Work work(d, l32);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < nseq * heads; ++task) {
      const int64_t i = task / heads, h = task % heads, len = offsets[i + 1] - offsets[i];
      const T* base = qkv + offsets[i] * in_stride + h * d;
      head(base, base + hidden, base + 2 * hidden, len, in_stride, out + offsets[i] * hidden + h * d, hidden, scale,
           work);
    }
    if (end) end();
  }
  return 0;
}

}  // namespace

extern "C" {

// Asks Linux for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); 0 on success.
int e5kit_amx_request(void) { return (int)syscall(SYS_arch_prctl, 0x1023, 18); }

// qkv: (N, 3 * heads * d) bf16 rows, texts packed back to back as `offsets` (nseq + 1 entries) says;
// out: (N, heads * d) bf16; threads: how many OpenMP threads (torch's count).
// Returns 0, or 1 for an unsupported head size, 2 for bad offsets.
int e5kit_attention_bf16(const uint16_t* qkv, const int64_t* offsets, int64_t nseq, int64_t heads, int64_t d,
                         uint16_t* out, float scale, int threads) {
  return run_all<uint16_t, Scratch>(qkv, offsets, nseq, heads, d, out, scale, threads, one_head<32>, one_head<64>,
                                      configure_tiles, release_tiles);
}

// The same for fp32 rows (AVX-512F and DQ only: no AMX, no BF16 needed).
int e5kit_attention_fp32(const float* qkv, const int64_t* offsets, int64_t nseq, int64_t heads, int64_t d,
                         float* out, float scale, int threads) {
  return run_all<float, Scratch32>(qkv, offsets, nseq, heads, d, out, scale, threads, one_head_fp32<32>,
                                    one_head_fp32<64>);
}

// The same for fp32 rows on AVX2 + FMA (CPUs without AVX-512).
int e5kit_attention_fp32_avx2(const float* qkv, const int64_t* offsets, int64_t nseq, int64_t heads, int64_t d,
                              float* out, float scale, int threads) {
  return run_all<float, Scratch32>(qkv, offsets, nseq, heads, d, out, scale, threads, one_head_fp32_avx2<32>,
                                    one_head_fp32_avx2<64>);
}

}  // extern "C"
