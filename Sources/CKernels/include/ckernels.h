#ifndef CKERNELS_H
#define CKERNELS_H

/// Row-wise softmax in place with AVX2 (8 float lanes per instruction), the same operations in
/// the same order as GSASRTensor's portable `Kernels.softmaxRows` (its SIMD8 lanes are this
/// code's AVX lanes), so the results are the same bits. Returns 1 when it ran, 0 when the CPU
/// has no AVX2 (then nothing was written and the caller runs the portable version).
int gsasr_softmax_rows_avx2(float *p, long rows, long n);

#endif
