#ifndef CKERNELS_H
#define CKERNELS_H

/// Row-wise softmax in place with AVX2 (8 float lanes per instruction), the same operations in
/// the same order as GSASRTensor's portable `Kernels.softmaxRows` (its SIMD8 lanes are this
/// code's AVX lanes), so the results are the same bits. Returns 1 when it ran, 0 when the CPU
/// has no AVX2 (then nothing was written and the caller runs the portable version).
int gsasr_softmax_rows_avx2(float *p, long rows, long n);

/// One Adam step over n elements with AVX2 + FMA (GSASRTensor's `Kernels.adamUpdate` documents the
/// arithmetic): m = fma(w1, g − m, m), v = fma(w2·g, g, v·b2), p += (step·m) / (sqrt(v)/bc2sqrt + eps).
/// Returns 1 when it ran, 0 when the CPU lacks AVX2 or FMA (nothing written).
int gsasr_adam_fma(float *p, const float *g, float *m, float *v, long n, float w1, float b2, float w2, float step,
                   float bc2sqrt, float eps);

/// e = fma(p, w, e·d) over n elements with AVX2 + FMA; 1 when it ran, 0 otherwise.
int gsasr_ema_fma(float *e, const float *p, long n, float d, float w);

#endif
