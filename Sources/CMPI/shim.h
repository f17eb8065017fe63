// Open MPI's C API (pkg-config ompi-c). Its predefined handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over casts of global
// objects, which Swift cannot import; CMPIShim exports them as functions.
#ifndef CLOVER_CMPI_SHIM_H
#define CLOVER_CMPI_SHIM_H
#include <mpi.h>
#endif
