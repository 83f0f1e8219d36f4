// See cbf16.h.
#include "cbf16.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CBF16_X86 1
#endif

// OpenMP's team size (libgomp, which Debian's libdnnl links). Weak: a oneDNN built on another
// threading runtime (TBB, a thread pool) has none, and then its own default applies.
void omp_set_num_threads(int) __attribute__((weak));

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

// Per calling thread: a stream and a scratchpad buffer, freed by the key's destructor.
typedef struct {
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_size;
    uint16_t *buffers[2];
    size_t buffer_counts[2];
} thread_state;
static pthread_key_t state_key;

static void free_state(void *p) {
    thread_state *s = (thread_state *)p;
    if (s == NULL) return;
    if (s->stream) dnnl_stream_destroy(s->stream);
    free(s->scratch);
    free(s->buffers[0]);
    free(s->buffers[1]);
    free(s);
}

static void make_engine(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success && pthread_key_create(&state_key, free_state) != 0)
        engine_status = dnnl_out_of_memory;
}

static thread_state *this_thread(void) {
    thread_state *s = (thread_state *)pthread_getspecific(state_key);
    if (s != NULL) return s;
    s = (thread_state *)calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    if (dnnl_stream_create(&s->stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        pthread_setspecific(state_key, s) != 0) {
        free_state(s);
        return NULL;
    }
    return s;
}

uint16_t *cbf16_thread_buffer(int slot, size_t count) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success || slot < 0 || slot > 1) return NULL;
    thread_state *s = this_thread();
    if (s == NULL) return NULL;
    if (s->buffer_counts[slot] < count) {
        free(s->buffers[slot]);
        s->buffers[slot] = (uint16_t *)malloc(count * sizeof(uint16_t));
        s->buffer_counts[slot] = s->buffers[slot] ? count : 0;
    }
    return s->buffers[slot];
}

static void one_thread(void) {
    if (omp_set_num_threads != NULL) omp_set_num_threads(1);
}

int cbf16_native(char *isa_name, size_t isa_name_size) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *name = "other";
    int native = 0;
    if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) {
        name = "avx512_core_amx";
        native = 1;
    } else if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) {
        name = "avx512_core_bf16";
        native = 1;
    } else if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) {
        name = "avx512_core";
    } else if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2) {
        name = "avx2";
    }
    if (isa_name != NULL && isa_name_size > 0) snprintf(isa_name, isa_name_size, "%s", name);
    return native;
}

struct cbf16_gemm {
    int64_t k, n;
    dnnl_primitive_t primitive;
    dnnl_memory_t weights;
    size_t scratch_size;
    const char *impl;
};

static void fail(char *message, size_t size, const char *what, dnnl_status_t s) {
    if (message != NULL && size > 0) snprintf(message, size, "oneDNN: %s failed (status %d)", what, (int)s);
}

// In the create functions: a failing call names itself in `message` and jumps to `failed`.
#define CHECK(call, what)                         \
    do {                                          \
        s = (call);                               \
        if (s != dnnl_success) {                  \
            fail(message, message_size, what, s); \
            goto failed;                          \
        }                                         \
    } while (0)

void cbf16_gemm_destroy(cbf16_gemm *g) {
    if (g == NULL) return;
    if (g->primitive) dnnl_primitive_destroy(g->primitive);
    if (g->weights) dnnl_memory_destroy(g->weights);
    free(g);
}

cbf16_gemm *cbf16_gemm_create(int64_t k, int64_t n, const float *weights, char *message, size_t message_size) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success) {
        fail(message, message_size, "engine creation", engine_status);
        return NULL;
    }
    thread_state *ts = this_thread();
    if (ts == NULL) {
        fail(message, message_size, "stream creation", dnnl_out_of_memory);
        return NULL;
    }
    one_thread();
    cbf16_gemm *g = (cbf16_gemm *)calloc(1, sizeof *g);
    if (g == NULL) return NULL;
    g->k = k;
    g->n = n;
    const dnnl_dim_t rt = DNNL_RUNTIME_DIM_VAL;
    dnnl_memory_desc_t src_md, wei_md, dst_md, user_wei_md;
    dnnl_dims_t src_dims = {rt, k}, src_strides = {rt, 1}, wei_dims = {k, n}, dst_dims = {rt, n}, dst_strides = {rt, 1};
    dnnl_status_t s;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t user_wei = NULL;
    CHECK(dnnl_memory_desc_init_by_strides(&src_md, 2, src_dims, dnnl_bf16, src_strides), "source descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wei_dims, dnnl_bf16, dnnl_format_tag_any), "weights descriptor");
    CHECK(dnnl_memory_desc_init_by_strides(&dst_md, 2, dst_dims, dnnl_f32, dst_strides), "destination descriptor");
    // PyTorch's N x K row-major weights are the K x N matrix in "ba" order.
    CHECK(dnnl_memory_desc_init_by_tag(&user_wei_md, 2, wei_dims, dnnl_f32, dnnl_ba), "user weights descriptor");
    CHECK(dnnl_primitive_attr_create(&attr), "attributes");
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md), "matmul descriptor");
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL), "matmul primitive descriptor");
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl != NULL) {
        // oneDNN's static strings ("gemm:jit", ...) outlive the descriptor.
        g->impl = impl;
    } else {
        g->impl = "unknown";
    }
    g->scratch_size = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_memory_create(&g->weights, chosen, engine, DNNL_MEMORY_ALLOCATE), "weights memory");
    CHECK(dnnl_memory_create(&user_wei, &user_wei_md, engine, (void *)weights), "user weights memory");
    CHECK(dnnl_reorder_primitive_desc_create(&reorder_pd, &user_wei_md, engine, chosen, engine, NULL),
          "reorder descriptor");
    CHECK(dnnl_primitive_create(&reorder, reorder_pd), "reorder");
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user_wei}, {DNNL_ARG_TO, g->weights}};
    CHECK(dnnl_primitive_execute(reorder, ts->stream, 2, rargs), "weights reorder");
    CHECK(dnnl_stream_wait(ts->stream), "stream wait");
    CHECK(dnnl_primitive_create(&g->primitive, pd), "matmul primitive");
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(user_wei);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return g;
failed:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (user_wei) dnnl_memory_destroy(user_wei);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    cbf16_gemm_destroy(g);
    return NULL;
}

const char *cbf16_gemm_implementation(const cbf16_gemm *g) { return g->impl; }

// Runs `primitive` on this thread's stream over src, weights and dst (memories made over the
// caller's buffers with the given descriptors) and a user scratchpad of `scratch_size` bytes
// from this thread's buffer. Returns 0, or -1.
static int execute(dnnl_primitive_t primitive, size_t scratch_size, const dnnl_memory_desc_t *src_md,
                   const void *src_data, dnnl_memory_t weights, const dnnl_memory_desc_t *wei_md,
                   const void *wei_data, const dnnl_memory_desc_t *dst_md, void *dst_data) {
    thread_state *ts = this_thread();
    if (ts == NULL) return -1;
    if (ts->scratch_size < scratch_size) {
        void *p = realloc(ts->scratch, scratch_size);
        if (p == NULL) return -1;
        ts->scratch = p;
        ts->scratch_size = scratch_size;
    }
    one_thread();
    dnnl_memory_desc_t scratch_md;
    dnnl_dims_t scratch_dims = {(dnnl_dim_t)(scratch_size > 0 ? scratch_size : 1)};
    if (dnnl_memory_desc_init_by_tag(&scratch_md, 1, scratch_dims, dnnl_u8, dnnl_a) != dnnl_success) return -1;
    dnnl_memory_t src = NULL, wei = NULL, dst = NULL, scratch = NULL;
    int rc = -1;
    if (dnnl_memory_create(&src, src_md, engine, (void *)src_data) != dnnl_success) goto done;
    if (weights == NULL && dnnl_memory_create(&wei, wei_md, engine, (void *)wei_data) != dnnl_success) goto done;
    if (dnnl_memory_create(&dst, dst_md, engine, dst_data) != dnnl_success) goto done;
    if (scratch_size > 0 && dnnl_memory_create(&scratch, &scratch_md, engine, ts->scratch) != dnnl_success) goto done;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights ? weights : wei}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, scratch}};
    if (dnnl_primitive_execute(primitive, ts->stream, scratch ? 4 : 3, args) != dnnl_success) goto done;
    rc = dnnl_stream_wait(ts->stream) == dnnl_success ? 0 : -1;
done:
    if (src) dnnl_memory_destroy(src);
    if (wei) dnnl_memory_destroy(wei);
    if (dst) dnnl_memory_destroy(dst);
    if (scratch) dnnl_memory_destroy(scratch);
    return rc;
}

int cbf16_gemm_run(const cbf16_gemm *g, int64_t m, const uint16_t *a, int64_t lda, float *c, int64_t ldc) {
    if (m <= 0) return 0;
    if (lda < g->k || ldc < g->n) return -1;
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_dims_t src_dims = {m, g->k}, src_strides = {lda, 1}, dst_dims = {m, g->n}, dst_strides = {ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&src_md, 2, src_dims, dnnl_bf16, src_strides) != dnnl_success) return -1;
    if (dnnl_memory_desc_init_by_strides(&dst_md, 2, dst_dims, dnnl_f32, dst_strides) != dnnl_success) return -1;
    return execute(g->primitive, g->scratch_size, &src_md, a, g->weights, NULL, NULL, &dst_md, c);
}

struct cbf16_batched {
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a_md, b_md, c_md;
    size_t scratch_size;
};

void cbf16_batched_destroy(cbf16_batched *p) {
    if (p == NULL) return;
    if (p->primitive) dnnl_primitive_destroy(p->primitive);
    free(p);
}

cbf16_batched *cbf16_batched_create(int64_t batch, int64_t m, int64_t n, int64_t k, const int64_t a_strides[3],
                                    const int64_t b_strides[3], const int64_t c_strides[3], char *message,
                                    size_t message_size) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success) {
        fail(message, message_size, "engine creation", engine_status);
        return NULL;
    }
    one_thread();
    cbf16_batched *p = (cbf16_batched *)calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    dnnl_dims_t a_dims = {batch, m, k}, b_dims = {batch, k, n}, c_dims = {batch, m, n};
    dnnl_dims_t as = {a_strides[0], a_strides[1], a_strides[2]}, bs = {b_strides[0], b_strides[1], b_strides[2]};
    dnnl_dims_t cs = {c_strides[0], c_strides[1], c_strides[2]};
    dnnl_status_t s;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    CHECK(dnnl_memory_desc_init_by_strides(&p->a_md, 3, a_dims, dnnl_bf16, as), "A descriptor");
    CHECK(dnnl_memory_desc_init_by_strides(&p->b_md, 3, b_dims, dnnl_bf16, bs), "B descriptor");
    CHECK(dnnl_memory_desc_init_by_strides(&p->c_md, 3, c_dims, dnnl_f32, cs), "C descriptor");
    CHECK(dnnl_primitive_attr_create(&attr), "attributes");
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &p->a_md, &p->b_md, NULL, &p->c_md), "batched matmul descriptor");
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL), "batched matmul primitive descriptor");
    p->scratch_size = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    CHECK(dnnl_primitive_create(&p->primitive, pd), "batched matmul primitive");
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return p;
failed:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    cbf16_batched_destroy(p);
    return NULL;
}

int cbf16_batched_run(const cbf16_batched *p, const uint16_t *a, const uint16_t *b, float *c) {
    return execute(p->primitive, p->scratch_size, &p->a_md, a, NULL, &p->b_md, b, &p->c_md, c);
}

static inline uint16_t round_one(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
    return (uint16_t)(bits >> 16);
}

#ifdef CBF16_X86
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void from_float_avx512(const float *x, uint16_t *y,
                                                                                      size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        _mm256_storeu_si256((__m256i *)(y + i), (__m256i)v);
    }
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
        _mm256_mask_storeu_epi16(y + i, mask, (__m256i)v);
    }
}

static int has_avx512bf16(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    return cached;
}
#endif

void cbf16_from_float(const float *x, uint16_t *y, size_t count) {
#ifdef CBF16_X86
    if (has_avx512bf16()) {
        from_float_avx512(x, y, count);
        return;
    }
#endif
    for (size_t i = 0; i < count; i++) y[i] = round_one(x[i]);
}

void cbf16_from_float_rows(const float *x, int64_t ldx, int64_t rows, int64_t cols, uint16_t *y, int64_t ldy) {
    for (int64_t r = 0; r < rows; r++) cbf16_from_float(x + r * ldx, y + r * ldy, (size_t)cols);
}
