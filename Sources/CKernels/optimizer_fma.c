// Adam and EMA updates for GSASRTensor (see ckernels.h) with AVX2 and FMA. The Swift package is
// compiled for the x86-64 baseline, which has no FMA instruction, so Swift's `addingProduct`
// becomes a call to libm's fmaf per element (per lane of a SIMD8): about 0.15 s of the paper
// config's step. Here the fused multiply-adds are instructions. fma, sqrt and division are
// correctly rounded IEEE operations either way, so the results are the same bits as the Swift
// form (`Kernels.adamUpdatePortable`), which stays the fallback and is checked against this.
#include "ckernels.h"

// Every multiply and add rounds on its own (no a·b + c contracted into an FMA), as in the
// portable Swift code this file must match bit for bit (was -ffp-contract=off in Package.swift).
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#include <math.h>

#define AVX2FMA __attribute__((target("avx2,fma")))

static int has_avx2_fma(void) {
    static int available = -1;  // read and written atomically: callers run on many threads
    int a = __atomic_load_n(&available, __ATOMIC_RELAXED);
    if (a < 0) {
        __builtin_cpu_init();
        a = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
        __atomic_store_n(&available, a, __ATOMIC_RELAXED);
    }
    return a;
}

static AVX2FMA void adam_fma(float *p, const float *g, float *m, float *v, long n, float w1, float b2, float w2,
                             float step, float bc2sqrt, float eps) {
    const __m256 w1v = _mm256_set1_ps(w1), b2v = _mm256_set1_ps(b2), w2v = _mm256_set1_ps(w2);
    const __m256 sv = _mm256_set1_ps(step), bv = _mm256_set1_ps(bc2sqrt), ev = _mm256_set1_ps(eps);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i), mi = _mm256_loadu_ps(m + i), vi = _mm256_loadu_ps(v + i);
        const __m256 mn = _mm256_fmadd_ps(w1v, _mm256_sub_ps(gi, mi), mi);            // m + w1·(g − m)
        const __m256 vn = _mm256_fmadd_ps(_mm256_mul_ps(w2v, gi), gi, _mm256_mul_ps(vi, b2v));  // (w2·g)·g + v·β2
        _mm256_storeu_ps(m + i, mn);
        _mm256_storeu_ps(v + i, vn);
        const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vn), bv), ev);
        _mm256_storeu_ps(p + i, _mm256_add_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(sv, mn), den)));
    }
    for (; i < n; i++) {
        const float mn = fmaf(w1, g[i] - m[i], m[i]);
        const float vn = fmaf(w2 * g[i], g[i], v[i] * b2);
        m[i] = mn;
        v[i] = vn;
        const float den = sqrtf(vn) / bc2sqrt + eps;
        p[i] = p[i] + (step * mn) / den;
    }
}

static AVX2FMA void ema_fma(float *e, const float *p, long n, float d, float w) {
    const __m256 dv = _mm256_set1_ps(d), wv = _mm256_set1_ps(w);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(e + i, _mm256_fmadd_ps(_mm256_loadu_ps(p + i), wv, _mm256_mul_ps(_mm256_loadu_ps(e + i), dv)));
    for (; i < n; i++) e[i] = fmaf(p[i], w, e[i] * d);
}

int gsasr_adam_fma(float *p, const float *g, float *m, float *v, long n, float w1, float b2, float w2, float step,
                   float bc2sqrt, float eps) {
    if (!has_avx2_fma()) return 0;
    adam_fma(p, g, m, v, n, w1, b2, w2, step, bc2sqrt, eps);
    return 1;
}

int gsasr_ema_fma(float *e, const float *p, long n, float d, float w) {
    if (!has_avx2_fma()) return 0;
    ema_fma(e, p, n, d, w);
    return 1;
}

#else
int gsasr_adam_fma(float *p, const float *g, float *m, float *v, long n, float w1, float b2, float w2, float step,
                   float bc2sqrt, float eps) {
    (void)p; (void)g; (void)m; (void)v; (void)n; (void)w1; (void)b2; (void)w2; (void)step; (void)bc2sqrt; (void)eps;
    return 0;
}
int gsasr_ema_fma(float *e, const float *p, long n, float d, float w) {
    (void)e; (void)p; (void)n; (void)d; (void)w;
    return 0;
}
#endif
