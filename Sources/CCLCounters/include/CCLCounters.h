// Process-wide counts of the OpenCL calls that cost a GPU step time: kernel
// launches, buffer creations and copies, reads, writes and host waits.
//
// They are counted by interposition, not by Clover's wrappers, so that the
// kernels, buffers and waits of libraries that call OpenCL themselves
// (CLBlast's pad, transpose and GEMM kernels and its temporary buffers) are
// counted too. See CLCounters.c for the mechanism.
#ifndef CLOVER_CCLCOUNTERS_H
#define CLOVER_CCLCOUNTERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Totals since the process started. Every field only grows.
typedef struct CloverCLCounters {
    /// clEnqueueNDRangeKernel calls, whoever made them.
    uint64_t kernelLaunches;
    /// External library routines Clover called (CLBlast GEMMs), as noted by
    /// clover_cl_counters_note_library_call.
    uint64_t libraryCalls;
    /// clCreateBuffer calls that returned a buffer, and their bytes.
    uint64_t bufferCreations;
    uint64_t bytesAllocated;
    /// clEnqueueCopyBuffer calls.
    uint64_t bufferCopies;
    /// clEnqueueReadBuffer calls, and those of them that block the host.
    uint64_t reads;
    uint64_t blockingReads;
    /// clEnqueueWriteBuffer calls, and those of them that block the host.
    uint64_t writes;
    uint64_t blockingWrites;
    /// clFinish calls.
    uint64_t finishes;
    /// clWaitForEvents calls.
    uint64_t eventWaits;
    /// clCreateKernel calls that created a kernel object.
    uint64_t kernelCreations;
    /// clCreateKernel calls from CLBlast (which asks for its kernels on every
    /// routine call) answered with an object it released earlier (CLCounters.c).
    uint64_t kernelReuses;
} CloverCLCounters;

/// Copies the current totals into `out`.
void clover_cl_counters_read(CloverCLCounters *out);

/// Counts one call of an external routine (e.g. a CLBlast GEMM).
void clover_cl_counters_note_library_call(void);

/// 1 when the process resolves `clEnqueueNDRangeKernel` to the counting
/// definition, so that shared libraries' launches are counted too; 0 when
/// only calls from the executable itself can be seen (another platform, or
/// an executable that does not export the symbol).
int clover_cl_counters_interposing(void);

#ifdef __cplusplus
}
#endif

#endif
