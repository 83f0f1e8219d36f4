// bf16 matrix products through oneDNN (Debian's libdnnl 2.6), for CPUs that multiply bf16
// natively (AVX512_BF16, AMX). C = A · Wᵀ with A (M x K) in bf16, W (N x K, PyTorch's Linear
// layout) converted once to bf16 in the layout oneDNN's kernel asks for, C (M x N) in float32;
// oneDNN accumulates in float32. One primitive per weight matrix, created once with M and the
// row strides left to run time, so any number of rows and any leading dimensions use it.
//
// Threads: every call runs single-threaded on the calling thread (its OpenMP team is set to
// one thread first); callers split rows over their own workers, as they do for float32, so
// the two thread pools never nest and never add up to more than the cores. Each calling
// thread has its own oneDNN stream and scratchpad (freed when the thread exits), so products
// may run concurrently from several threads.
#ifndef CBF16_H
#define CBF16_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbf16_gemm cbf16_gemm;

/// 1 when oneDNN's best instruction set on this CPU multiplies bf16 natively (AVX512_BF16 or
/// AMX), else 0. `isa_name` receives a short name of that instruction set.
int cbf16_native(char *isa_name, size_t isa_name_size);

/// A product with K inputs and N outputs. `weights` (N x K floats, row-major) is converted to
/// bf16 and reordered now; it is not kept. NULL on failure, with a one-line reason.
cbf16_gemm *cbf16_gemm_create(int64_t k, int64_t n, const float *weights, char *message, size_t message_size);

/// C (M rows of N floats, row stride ldc) = A (M rows of K bf16, row stride lda) · Wᵀ, on the
/// calling thread. Returns 0, or -1.
int cbf16_gemm_run(const cbf16_gemm *gemm, int64_t m, const uint16_t *a, int64_t lda, float *c, int64_t ldc);

/// oneDNN's name of the implementation it chose ("gemm:jit", "brg:avx512_core_bf16", ...).
const char *cbf16_gemm_implementation(const cbf16_gemm *gemm);

void cbf16_gemm_destroy(cbf16_gemm *gemm);

typedef struct cbf16_batched cbf16_batched;

/// A batch of `batch` products C_b (M x N floats) = A_b (M x K bf16) · B_b (K x N bf16), both
/// operands given per call (the attention's scores), every dimension and stride fixed here
/// (strides in elements: batch, row, column). NULL on failure, with a one-line reason.
cbf16_batched *cbf16_batched_create(int64_t batch, int64_t m, int64_t n, int64_t k, const int64_t a_strides[3],
                                    const int64_t b_strides[3], const int64_t c_strides[3], char *message,
                                    size_t message_size);

/// Runs the batch on the calling thread. Returns 0, or -1.
int cbf16_batched_run(const cbf16_batched *p, const uint16_t *a, const uint16_t *b, float *c);

void cbf16_batched_destroy(cbf16_batched *p);

/// This thread's bf16 buffer `slot` (0 or 1) of at least `count` elements, kept and grown
/// from call to call (freed when the thread exits): the activations' bf16 copies, without an
/// allocation (and its page faults) per product. Valid until the next call for the same slot on
/// this thread. NULL when out of memory.
uint16_t *cbf16_thread_buffer(int slot, size_t count);

/// bf16 of each float, rounded to nearest even (NaN stays a quiet NaN). With AVX512_BF16 the
/// instruction VCVTNEPS2BF16 does it (which also flushes subnormal inputs to zero).
void cbf16_from_float(const float *x, uint16_t *y, size_t count);

/// The same for `rows` rows of `cols` floats (row strides ldx, ldy).
void cbf16_from_float_rows(const float *x, int64_t ldx, int64_t rows, int64_t cols, uint16_t *y, int64_t ldy);

#ifdef __cplusplus
}
#endif

#endif
