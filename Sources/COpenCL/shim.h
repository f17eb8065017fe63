// Clover targets the OpenCL 1.2 API so that NVIDIA's driver (OpenCL C 1.2) and
// POCL expose the same surface; the define must precede the header.
#ifndef CLOVER_COPENCL_SHIM_H
#define CLOVER_COPENCL_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif
