// See cbf16.h.
#include "cbf16.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// OpenMP's team size (libgomp, which Debian's libdnnl links). Weak: a oneDNN built on another
// threading runtime (TBB, a thread pool) has none, and then its own default applies.
void omp_set_num_threads(int) __attribute__((weak));

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success) engine_status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

struct cbf16_matmul {
    dnnl_primitive_t primitive;
    dnnl_memory_t src, weights, dst;
};

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

void cbf16_set_threads(int threads) {
    if (omp_set_num_threads != NULL) omp_set_num_threads(threads < 1 ? 1 : threads);
}

static void fail(char *message, size_t size, const char *what, dnnl_status_t s) {
    if (message != NULL && size > 0) snprintf(message, size, "oneDNN: %s failed (status %d)", what, (int)s);
}

void cbf16_matmul_destroy(cbf16_matmul *m) {
    if (m == NULL) return;
    if (m->primitive) dnnl_primitive_destroy(m->primitive);
    if (m->src) dnnl_memory_destroy(m->src);
    if (m->weights) dnnl_memory_destroy(m->weights);
    if (m->dst) dnnl_memory_destroy(m->dst);
    free(m);
}

cbf16_matmul *cbf16_matmul_create(int64_t m, int64_t k, int64_t n, const float *weights, char *message,
                                  size_t message_size) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success) {
        fail(message, message_size, "engine creation", engine_status);
        return NULL;
    }
    cbf16_matmul *mm = (cbf16_matmul *)calloc(1, sizeof *mm);
    if (mm == NULL) return NULL;
    dnnl_memory_desc_t src_md, wei_md, dst_md, user_wei_md;
    dnnl_dims_t src_dims = {m, k}, wei_dims = {k, n}, dst_dims = {m, n};
    dnnl_status_t s;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t user_wei = NULL;
#define CHECK(call, what)                        \
    do {                                         \
        s = (call);                              \
        if (s != dnnl_success) {                 \
            fail(message, message_size, what, s); \
            goto failed;                         \
        }                                        \
    } while (0)
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, dnnl_bf16, dnnl_ab), "source descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wei_dims, dnnl_bf16, dnnl_format_tag_any), "weights descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab), "destination descriptor");
    // PyTorch's N x K row-major weights are the K x N matrix in "ba" order.
    CHECK(dnnl_memory_desc_init_by_tag(&user_wei_md, 2, wei_dims, dnnl_f32, dnnl_ba), "user weights descriptor");
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md), "matmul descriptor");
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL), "matmul primitive descriptor");
    const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_memory_create(&mm->weights, chosen, engine, DNNL_MEMORY_ALLOCATE), "weights memory");
    CHECK(dnnl_memory_create(&user_wei, &user_wei_md, engine, (void *)weights), "user weights memory");
    CHECK(dnnl_reorder_primitive_desc_create(&reorder_pd, &user_wei_md, engine, chosen, engine, NULL), "reorder descriptor");
    CHECK(dnnl_primitive_create(&reorder, reorder_pd), "reorder");
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user_wei}, {DNNL_ARG_TO, mm->weights}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, rargs), "weights reorder");
    CHECK(dnnl_stream_wait(stream), "stream wait");
    CHECK(dnnl_primitive_create(&mm->primitive, pd), "matmul primitive");
    CHECK(dnnl_memory_create(&mm->src, &src_md, engine, DNNL_MEMORY_NONE), "source memory");
    CHECK(dnnl_memory_create(&mm->dst, &dst_md, engine, DNNL_MEMORY_NONE), "destination memory");
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(user_wei);
    dnnl_primitive_desc_destroy(pd);
    return mm;
failed:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (user_wei) dnnl_memory_destroy(user_wei);
    if (pd) dnnl_primitive_desc_destroy(pd);
    cbf16_matmul_destroy(mm);
    return NULL;
#undef CHECK
}

int cbf16_matmul_run(cbf16_matmul *mm, const uint16_t *a, float *c) {
    if (dnnl_memory_set_data_handle(mm->src, (void *)a) != dnnl_success) return -1;
    if (dnnl_memory_set_data_handle(mm->dst, c) != dnnl_success) return -1;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, mm->weights}, {DNNL_ARG_DST, mm->dst}};
    if (dnnl_primitive_execute(mm->primitive, stream, 3, args) != dnnl_success) return -1;
    return dnnl_stream_wait(stream) == dnnl_success ? 0 : -1;
}

void cbf16_from_float(const float *x, uint16_t *y, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        if ((bits & 0x7fffffffu) > 0x7f800000u) {
            y[i] = (uint16_t)((bits >> 16) | 0x0040u);  // quiet NaN
        } else {
            bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
            y[i] = (uint16_t)(bits >> 16);
        }
    }
}
