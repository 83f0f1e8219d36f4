// bf16 matrix products through oneDNN (Debian's libdnnl 2.6), for CPUs that multiply bf16
// natively (AVX512_BF16, AMX). C = A · Bᵀ with A (M x K) in bf16, B (N x K, PyTorch's Linear
// layout) converted once to bf16 in the blocked layout oneDNN's kernel asks for, C (M x N) in
// float32; oneDNN accumulates in float32. One primitive per shape, created once.
//
// Threads: oneDNN here runs on OpenMP (libgomp); `cbf16_set_threads` sets its team size. Callers
// run these products from one thread while their own workers are idle, so the two thread pools
// never nest and never add up to more than the cores.
#ifndef CBF16_H
#define CBF16_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbf16_matmul cbf16_matmul;

/// 1 when oneDNN's best instruction set on this CPU multiplies bf16 natively (AVX512_BF16 or
/// AMX), else 0. `isa_name` receives a short name of that instruction set.
int cbf16_native(char *isa_name, size_t isa_name_size);

/// Sets the number of OpenMP threads oneDNN uses (at least 1).
void cbf16_set_threads(int threads);

/// A product of shape M x K times (N x K)ᵀ. `weights` (N x K floats, row-major) is converted to
/// bf16 and reordered now; it is not kept. NULL on failure, with a one-line reason.
cbf16_matmul *cbf16_matmul_create(int64_t m, int64_t k, int64_t n, const float *weights, char *message,
                                  size_t message_size);

/// C (M x N floats) = A (M x K bf16) · Bᵀ. Returns 0, or -1.
int cbf16_matmul_run(cbf16_matmul *matmul, const uint16_t *a, float *c);

void cbf16_matmul_destroy(cbf16_matmul *matmul);

/// bf16 of each float, rounded to nearest even (NaN stays a quiet NaN).
void cbf16_from_float(const float *x, uint16_t *y, size_t count);

#ifdef __cplusplus
}
#endif

#endif
