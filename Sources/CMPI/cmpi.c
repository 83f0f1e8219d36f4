// See cmpi.h. Signatures follow the MPI 3.1 standard, with Open MPI's handles as void pointers.
#include "cmpi.h"

#include <dlfcn.h>
#include <stdio.h>

typedef void *handle;

static int (*p_init)(int *, char ***);
static int (*p_comm_rank)(handle, int *);
static int (*p_comm_size)(handle, int *);
static int (*p_send)(const void *, int, handle, int, int, handle);
static int (*p_recv)(void *, int, handle, int, int, handle, void *);
static int (*p_barrier)(handle);
static int (*p_finalize)(void);
static int (*p_abort)(handle, int);
static handle comm_world;  // &ompi_mpi_comm_world
static handle mpi_float;   // &ompi_mpi_float

static const size_t chunk = (size_t)1 << 26;

int cmpi_load(const char *path, char *message, size_t message_size) {
    const char *name = path != NULL ? path : "libmpi.so.40";
    // RTLD_GLOBAL: Open MPI's components (dlopened by libmpi itself) resolve symbols of libmpi.
    void *lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) {
        snprintf(message, message_size, "cannot load Open MPI (%s): %s", name, dlerror());
        return -1;
    }
#define RESOLVE(var, symbol)                                                                      \
    do {                                                                                          \
        *(void **)(&var) = dlsym(lib, symbol);                                                    \
        if (var == NULL) {                                                                        \
            snprintf(message, message_size, "%s has no symbol %s (not Open MPI?)", name, symbol); \
            return -1;                                                                            \
        }                                                                                         \
    } while (0)
    RESOLVE(p_init, "MPI_Init");
    RESOLVE(p_comm_rank, "MPI_Comm_rank");
    RESOLVE(p_comm_size, "MPI_Comm_size");
    RESOLVE(p_send, "MPI_Send");
    RESOLVE(p_recv, "MPI_Recv");
    RESOLVE(p_barrier, "MPI_Barrier");
    RESOLVE(p_finalize, "MPI_Finalize");
    RESOLVE(p_abort, "MPI_Abort");
    RESOLVE(comm_world, "ompi_mpi_comm_world");
    RESOLVE(mpi_float, "ompi_mpi_float");
#undef RESOLVE
    return 0;
}

int cmpi_init(void) { return p_init ? p_init(NULL, NULL) : -1; }
int cmpi_rank(int *rank) { return p_comm_rank ? p_comm_rank(comm_world, rank) : -1; }
int cmpi_size(int *size) { return p_comm_size ? p_comm_size(comm_world, size) : -1; }

int cmpi_send_floats(const float *buffer, size_t count, int destination, int tag) {
    if (p_send == NULL) return -1;
    for (size_t at = 0; at < count; at += chunk) {
        size_t n = count - at < chunk ? count - at : chunk;
        int rc = p_send(buffer + at, (int)n, mpi_float, destination, tag, comm_world);
        if (rc != 0) return rc;
    }
    return 0;
}

int cmpi_recv_floats(float *buffer, size_t count, int source, int tag) {
    if (p_recv == NULL) return -1;
    for (size_t at = 0; at < count; at += chunk) {
        size_t n = count - at < chunk ? count - at : chunk;
        int rc = p_recv(buffer + at, (int)n, mpi_float, source, tag, comm_world, NULL);  // MPI_STATUS_IGNORE
        if (rc != 0) return rc;
    }
    return 0;
}

int cmpi_barrier(void) { return p_barrier ? p_barrier(comm_world) : -1; }
int cmpi_finalize(void) { return p_finalize ? p_finalize() : -1; }

void cmpi_abort(int code) {
    if (p_abort) p_abort(comm_world, code);
}
