#include "CMPIShim.h"

MPI_Comm clover_mpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Comm clover_mpi_comm_null(void) { return MPI_COMM_NULL; }
MPI_Datatype clover_mpi_float(void) { return MPI_FLOAT; }
MPI_Datatype clover_mpi_double(void) { return MPI_DOUBLE; }
MPI_Datatype clover_mpi_byte(void) { return MPI_BYTE; }
MPI_Datatype clover_mpi_int64(void) { return MPI_INT64_T; }
MPI_Op clover_mpi_sum(void) { return MPI_SUM; }
MPI_Op clover_mpi_max(void) { return MPI_MAX; }
MPI_Op clover_mpi_min(void) { return MPI_MIN; }
MPI_Info clover_mpi_info_null(void) { return MPI_INFO_NULL; }
MPI_Errhandler clover_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
void *clover_mpi_in_place(void) { return MPI_IN_PLACE; }
int clover_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
int clover_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
int clover_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
int clover_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
int clover_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
int clover_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
