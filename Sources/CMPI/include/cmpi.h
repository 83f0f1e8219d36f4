// Open MPI, loaded at run time (dlopen), for data-parallel training.
//
// Why at run time: a build that links libmpi needs libopenmpi-dev on every machine that builds
// gsasr and libmpi (with hwloc, PMIx and the rest) on every machine that runs it, even for a
// photo upscale. Loaded only when mpirun started the process, the one binary works everywhere
// and trains over MPI where Open MPI is installed. Swift cannot use mpi.h's handles either:
// MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM are macros over Open MPI's global objects
// (&ompi_mpi_comm_world, ...), which this file looks up by name.
//
// Assumption: Open MPI's ABI (libmpi.so.40: Open MPI 3.0 to 5.x). MPICH and its derivatives
// name their handles differently and are not supported. Every function returns 0 or an MPI
// error code (-1 when MPI is not loaded).
#ifndef CMPI_H
#define CMPI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads `path` (NULL: libmpi.so.40) and resolves the functions and handles used here. Returns 0,
/// or -1 with a one-line reason in `message`.
int cmpi_load(const char *path, char *message, size_t message_size);

/// MPI_Init (the process's threads never call MPI concurrently: MPI_THREAD_SINGLE semantics are
/// enough, as only the training loop's thread communicates).
int cmpi_init(void);
int cmpi_rank(int *rank);
int cmpi_size(int *size);

/// Blocking point-to-point of `count` floats on MPI_COMM_WORLD (split into messages of at most
/// 2^26 floats, since MPI counts are int).
int cmpi_send_floats(const float *buffer, size_t count, int destination, int tag);
int cmpi_recv_floats(float *buffer, size_t count, int source, int tag);

int cmpi_barrier(void);
int cmpi_finalize(void);

/// MPI_Abort on MPI_COMM_WORLD: ends every rank.
void cmpi_abort(int code);

#ifdef __cplusplus
}
#endif

#endif
