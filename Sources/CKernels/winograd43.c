// Winograd F(4×4, 3×3) transforms for GSASRTensor's Winograd43.swift (see ckernels.h). The Swift
// package is built for the x86-64 baseline; this file compiles the same transforms twice, for
// AVX2 (chosen at run time) and for the baseline, from winograd43_impl.h. The matrices (Lavin &
// Gray 2016, interpolation points 0, ±1, ±2, ∞):
//
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
#include "ckernels.h"

// No a·b + c contracted into an FMA: the AVX2 and baseline versions give the same bits.
#pragma STDC FP_CONTRACT OFF

// The helpers pass 32-byte vectors by value. They are static and always inlined, so no such call
// crosses an ABI boundary; without the pragma the baseline build warns that the ABI of such a call
// would differ with AVX enabled (-Wpsabi).
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));
#define V8(s) ((v8){(s), (s), (s), (s), (s), (s), (s), (s)})

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define NAME(f) f##_avx2
#include "winograd43_impl.h"
#undef NAME
#pragma clang attribute pop

static int available = -1;  // read and written atomically: callers run on many threads

static int wino43_avx2(void) {
    int a = __atomic_load_n(&available, __ATOMIC_RELAXED);
    if (a < 0) {
        __builtin_cpu_init();
        a = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&available, a, __ATOMIC_RELAXED);
    }
    return a;
}
int gsasr_wino43_prefer_avx2(int yes) {
    if (!yes) {
        __atomic_store_n(&available, 0, __ATOMIC_RELAXED);
        return 0;
    }
    __atomic_store_n(&available, -1, __ATOMIC_RELAXED);
    return wino43_avx2();
}
#else
static int wino43_avx2(void) { return 0; }
int gsasr_wino43_prefer_avx2(int yes) {
    (void)yes;
    return 0;
}
#endif

#define NAME(f) f##_base
#include "winograd43_impl.h"
#undef NAME

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define DISPATCH(f, ...) (wino43_avx2() ? f##_avx2(__VA_ARGS__) : f##_base(__VA_ARGS__))
#else
#define DISPATCH(f, ...) f##_base(__VA_ARGS__)
#endif

void gsasr_wino43_weights(const float *w, long cin, long cout, long co0, long co1, float *u) {
    DISPATCH(weights, w, cin, cout, co0, co1, u);
}

void gsasr_wino43_input(const float *x, long h, long w, long cin, long tilesW, long ty0, long t0, long t1,
                        long stride, float *v, const float *zeros) {
    DISPATCH(input, x, h, w, cin, tilesW, ty0, t0, t1, stride, v, zeros);
}

void gsasr_wino43_output(const float *m, long h, long w, long cout, long tilesW, long ty0, long t0, long t1,
                         long stride, const float *bias, float *y) {
    DISPATCH(output, m, h, w, cout, tilesW, ty0, t0, t1, stride, bias, y);
}
