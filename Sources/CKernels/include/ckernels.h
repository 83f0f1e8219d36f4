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

/// Winograd F(4×4, 3×3) (winograd43.c; GSASRTensor's Winograd43.swift documents the algorithm).
/// U_ξ = (G g Gᵀ)_ξ for output channels co0 ..< co1, from the weight in im2col layout
/// (cout × 9·cin): u holds 36 planes of cout × cin.
void gsasr_wino43_weights(const float *w, long cin, long cout, long co0, long co1, float *u);

/// V_ξ = (Bᵀ d B)_ξ of the 6 × 6 input patches of tiles t0 ..< t1 of a block of tile rows that
/// starts at tile row ty0 (tile t is tile (ty0 + t / tilesW, t % tilesW); x: h × w × cin
/// channels-last; `zeros` holds cin zeros, read outside the image): tile t's channels go to
/// v + ξ·stride + t·cin.
void gsasr_wino43_input(const float *x, long h, long w, long cin, long tilesW, long ty0, long t0, long t1,
                        long stride, float *v, const float *zeros);

/// Picks the transforms' instruction set: 0 the baseline build, 1 AVX2 where the CPU has it (the
/// default). Returns 1 when AVX2 is in use. Both give the same bits; tests compare them.
int gsasr_wino43_prefer_avx2(int yes);

/// Y = Aᵀ M A + bias of tiles t0 ..< t1 of a block that starts at tile row ty0 (tile t's M_ξ at
/// m + ξ·stride + t·cout), written to the pixels of y (h × w × cout) inside the image.
void gsasr_wino43_output(const float *m, long h, long w, long cout, long tilesW, long ty0, long t0, long t1,
                         long stride, const float *bias, float *y);

#endif
