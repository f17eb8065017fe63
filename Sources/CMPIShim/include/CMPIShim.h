// Open MPI's predefined handles as functions Swift can call. In mpi.h they
// are macros such as `OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)`
// (a cast of a global's address), which the Clang importer drops.
#ifndef CLOVER_CMPISHIM_H
#define CLOVER_CMPISHIM_H
#include <mpi.h>

/// MPI_COMM_WORLD.
MPI_Comm clover_mpi_comm_world(void);
/// MPI_COMM_NULL.
MPI_Comm clover_mpi_comm_null(void);
/// MPI_FLOAT.
MPI_Datatype clover_mpi_float(void);
/// MPI_DOUBLE.
MPI_Datatype clover_mpi_double(void);
/// MPI_BYTE.
MPI_Datatype clover_mpi_byte(void);
/// MPI_INT64_T.
MPI_Datatype clover_mpi_int64(void);
/// MPI_SUM.
MPI_Op clover_mpi_sum(void);
/// MPI_MAX.
MPI_Op clover_mpi_max(void);
/// MPI_MIN.
MPI_Op clover_mpi_min(void);
/// MPI_INFO_NULL.
MPI_Info clover_mpi_info_null(void);
/// MPI_ERRORS_RETURN: errors come back as return codes instead of aborting.
MPI_Errhandler clover_mpi_errors_return(void);
/// MPI_IN_PLACE, the send buffer of an in-place collective.
void *clover_mpi_in_place(void);
/// MPI_COMM_TYPE_SHARED: the ranks that share memory (one node).
int clover_mpi_comm_type_shared(void);
/// MPI_MAX_ERROR_STRING.
int clover_mpi_max_error_string(void);
/// MPI_THREAD_SINGLE, MPI_THREAD_FUNNELED, MPI_THREAD_SERIALIZED and
/// MPI_THREAD_MULTIPLE, in that (increasing) order of support.
int clover_mpi_thread_single(void);
int clover_mpi_thread_funneled(void);
int clover_mpi_thread_serialized(void);
int clover_mpi_thread_multiple(void);
#endif
