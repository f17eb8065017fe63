// CLBlast's C API over the same OpenCL 1.2 headers as COpenCL.
#ifndef CLOVER_CCLBLAST_SHIM_H
#define CLOVER_CCLBLAST_SHIM_H
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <clblast_c.h>
#endif
