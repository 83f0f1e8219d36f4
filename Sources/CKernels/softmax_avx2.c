// AVX2 softmax rows for GSASRTensor (see ckernels.h). The Swift package is compiled for the
// x86-64 baseline (SSE2), where one SIMD8<Float> operation is two SSE instructions; this file
// compiles only its AVX2 function with the avx2 target attribute and checks the CPU at run time.
// No FMA: the target is "avx2" alone, so every multiply and add rounds separately, as in the
// Swift code (FastMath.exp), and the results are identical bit for bit.
#include "ckernels.h"

// Every multiply and add rounds on its own (no a·b + c contracted into an FMA), as in the
// portable Swift code this file must match bit for bit (was -ffp-contract=off in Package.swift).
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

// FastMath.exp, lane for lane.
static inline AVX2 __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    const __m256 xc = _mm256_or_ps(_mm256_and_ps(lo, under), _mm256_andnot_ps(under, x));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps((float)1.44269504088896341)), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127)),
        23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

static inline AVX2 float exp1(float x) { return _mm256_cvtss_f32(exp8(_mm256_set1_ps(x))); }

// Swift's SIMD sum(): lane 0 to 7 in order, starting from -0.
static inline AVX2 float lane_sum(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    float s = -0.0f;
    for (int i = 0; i < 8; i++) s += l[i];
    return s;
}

static AVX2 void softmax_rows_avx2(float *p, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        float *row = p + r * n;
        // Max: the larger lane by the sign of v - max (as the Swift code); exact.
        __m256 mv = _mm256_set1_ps(-__builtin_inff());
        long j = 0;
        for (; j + 8 <= n; j += 8) {
            const __m256 v = _mm256_loadu_ps(row + j);
            const __m256 less = _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_castps_si256(_mm256_sub_ps(v, mv)), 31));
            mv = _mm256_or_ps(_mm256_and_ps(mv, less), _mm256_andnot_ps(less, v));
        }
        float l[8];
        _mm256_storeu_ps(l, mv);
        float m = l[0];
        for (int i = 1; i < 8; i++) m = l[i] >= m ? l[i] : m;
        for (; j < n; j++) m = row[j] >= m ? row[j] : m;
        const __m256 mb = _mm256_set1_ps(m);
        __m256 sv = _mm256_setzero_ps();
        j = 0;
        for (; j + 8 <= n; j += 8) {
            const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), mb));
            _mm256_storeu_ps(row + j, e);
            sv = _mm256_add_ps(sv, e);
        }
        float s = lane_sum(sv);
        for (; j < n; j++) {
            const float e = exp1(row[j] - m);
            row[j] = e;
            s += e;
        }
        const __m256 sb = _mm256_set1_ps(s);
        j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(row + j, _mm256_div_ps(_mm256_loadu_ps(row + j), sb));
        for (; j < n; j++) row[j] /= s;
    }
}

int gsasr_softmax_rows_avx2(float *p, long rows, long n) {
    static int available = -1;  // read and written atomically: callers run on many threads
    int a = __atomic_load_n(&available, __ATOMIC_RELAXED);
    if (a < 0) {
        __builtin_cpu_init();
        a = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&available, a, __ATOMIC_RELAXED);
    }
    if (!a) return 0;
    softmax_rows_avx2(p, rows, n);
    return 1;
}

#else
int gsasr_softmax_rows_avx2(float *p, long rows, long n) {
    (void)p; (void)rows; (void)n;
    return 0;
}
#endif
