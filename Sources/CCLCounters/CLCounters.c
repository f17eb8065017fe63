// Counting OpenCL calls by interposition.
//
// Mechanism (Linux/ELF). This file defines clEnqueueNDRangeKernel,
// clCreateBuffer, clEnqueueCopyBuffer, clEnqueueReadBuffer,
// clEnqueueWriteBuffer, clFinish, clWaitForEvents, clCreateKernel and clReleaseKernel with
// CL/cl.h's signatures. Each counts the call with a relaxed atomic and
// forwards to the next definition in the symbol search order, found once with
// dlsym(RTLD_NEXT, name): the ICD loader's (libOpenCL.so).
//
// - Clover's own calls bind to these definitions when the executable is
//   linked, since the object is part of it (CloverRuntime depends on this
//   target, so every executable and test bundle that links the runtime holds
//   it).
// - CLBlast's calls are the point: libclblast.so imports the same names
//   (versioned clEnqueueNDRangeKernel@OPENCL_1.0). The static linker puts a
//   symbol that the executable defines into the executable's dynamic symbol
//   table when a shared library on the link line references it, and
//   libclblast.so is on every link line that has Clover in it. The dynamic
//   linker searches the executable first, and an unversioned definition
//   satisfies a versioned reference, so CLBlast's launches, temporary
//   buffers and waits land here as well. No LD_PRELOAD is needed.
//   clover_cl_counters_interposing() checks the outcome at run time (a global
//   dlsym lookup must find this file's definition), and a test counts the
//   internal kernels of a CLBlast GEMM on POCL.
// - Drivers do not call these names themselves (POCL and the ICD loader
//   dispatch internally), so nothing is counted twice.
//
// Built with -DCLOVER_CL_COUNTERS_PRELOAD (scripts/count_cl_calls.sh) the same
// file is an LD_PRELOAD library that prints its totals when the process exits,
// so that a binary without this target (an older build) is measured by the
// very same code.
//
// Elsewhere (macOS: two-level namespaces, the OpenCL framework) only the
// counter of library calls works and clover_cl_counters_interposing() is 0.
#define _GNU_SOURCE
#include "CCLCounters.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#if defined(__linux__)
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#endif

#if defined(CLOVER_CL_COUNTERS_PRELOAD)
#define CLOVER_INTERNAL __attribute__((visibility("hidden")))
#else
#define CLOVER_INTERNAL
#endif

enum {
    kernelLaunches, libraryCalls, bufferCreations, bytesAllocated, bufferCopies, reads, blockingReads,
    writes, blockingWrites, finishes, eventWaits, kernelCreations, kernelReuses, counterCount
};

static _Atomic uint64_t counters[counterCount];

static inline void count(int which, uint64_t amount) {
    atomic_fetch_add_explicit(&counters[which], amount, memory_order_relaxed);
}

CLOVER_INTERNAL void clover_cl_counters_read(CloverCLCounters *out) {
    uint64_t v[counterCount];
    for (int i = 0; i < counterCount; i++) v[i] = atomic_load_explicit(&counters[i], memory_order_relaxed);
    out->kernelLaunches = v[kernelLaunches];
    out->libraryCalls = v[libraryCalls];
    out->bufferCreations = v[bufferCreations];
    out->bytesAllocated = v[bytesAllocated];
    out->bufferCopies = v[bufferCopies];
    out->reads = v[reads];
    out->blockingReads = v[blockingReads];
    out->writes = v[writes];
    out->blockingWrites = v[blockingWrites];
    out->finishes = v[finishes];
    out->eventWaits = v[eventWaits];
    out->kernelCreations = v[kernelCreations];
    out->kernelReuses = v[kernelReuses];
}

CLOVER_INTERNAL void clover_cl_counters_note_library_call(void) {
    count(libraryCalls, 1);
}

#if !defined(__linux__)

int clover_cl_counters_interposing(void) { return 0; }

#else

// The next definition of `name` after this object: the ICD loader's. Failing
// to find it means no OpenCL library is loaded, where no OpenCL call could
// work at all, so the process stops with the reason rather than returning a
// status the caller would misread.
static void *next(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        fprintf(stderr, "clover: OpenCL call counters: no definition of %s after the counting one (%s)\n", name,
                dlerror());
        abort();
    }
    return f;
}

// Resolves once per name; racing threads store the same pointer.
#define FORWARD(type, name) \
    static _Atomic(type) real; \
    type f = atomic_load_explicit(&real, memory_order_acquire); \
    if (f == NULL) { \
        f = (type)next(name); \
        atomic_store_explicit(&real, f, memory_order_release); \
    }

typedef cl_int (*EnqueueNDRangeKernel)(cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *,
                                       const size_t *, cl_uint, const cl_event *, cl_event *);
typedef cl_mem (*CreateBuffer)(cl_context, cl_mem_flags, size_t, void *, cl_int *);
typedef cl_int (*EnqueueCopyBuffer)(cl_command_queue, cl_mem, cl_mem, size_t, size_t, size_t, cl_uint,
                                    const cl_event *, cl_event *);
typedef cl_int (*EnqueueReadBuffer)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, cl_uint,
                                    const cl_event *, cl_event *);
typedef cl_int (*EnqueueWriteBuffer)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *, cl_uint,
                                     const cl_event *, cl_event *);
typedef cl_int (*Finish)(cl_command_queue);
typedef cl_int (*WaitForEvents)(cl_uint, const cl_event *);
typedef cl_kernel (*CreateKernel)(cl_program, const char *, cl_int *);
typedef cl_int (*ReleaseKernel)(cl_kernel);

CL_API_ENTRY cl_int CL_API_CALL
clEnqueueNDRangeKernel(cl_command_queue command_queue, cl_kernel kernel, cl_uint work_dim,
                       const size_t *global_work_offset, const size_t *global_work_size,
                       const size_t *local_work_size, cl_uint num_events_in_wait_list,
                       const cl_event *event_wait_list, cl_event *event) {
    FORWARD(EnqueueNDRangeKernel, "clEnqueueNDRangeKernel")
    count(kernelLaunches, 1);
    return f(command_queue, kernel, work_dim, global_work_offset, global_work_size, local_work_size,
             num_events_in_wait_list, event_wait_list, event);
}

CL_API_ENTRY cl_mem CL_API_CALL
clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size, void *host_ptr, cl_int *errcode_ret) {
    FORWARD(CreateBuffer, "clCreateBuffer")
    cl_mem buffer = f(context, flags, size, host_ptr, errcode_ret);
    // Only buffers that exist count: a failed creation allocates nothing.
    if (buffer != NULL) {
        count(bufferCreations, 1);
        count(bytesAllocated, size);
    }
    return buffer;
}

CL_API_ENTRY cl_int CL_API_CALL
clEnqueueCopyBuffer(cl_command_queue command_queue, cl_mem src_buffer, cl_mem dst_buffer, size_t src_offset,
                    size_t dst_offset, size_t size, cl_uint num_events_in_wait_list,
                    const cl_event *event_wait_list, cl_event *event) {
    FORWARD(EnqueueCopyBuffer, "clEnqueueCopyBuffer")
    count(bufferCopies, 1);
    return f(command_queue, src_buffer, dst_buffer, src_offset, dst_offset, size, num_events_in_wait_list,
             event_wait_list, event);
}

CL_API_ENTRY cl_int CL_API_CALL
clEnqueueReadBuffer(cl_command_queue command_queue, cl_mem buffer, cl_bool blocking_read, size_t offset,
                    size_t size, void *ptr, cl_uint num_events_in_wait_list, const cl_event *event_wait_list,
                    cl_event *event) {
    FORWARD(EnqueueReadBuffer, "clEnqueueReadBuffer")
    count(reads, 1);
    if (blocking_read) count(blockingReads, 1);
    return f(command_queue, buffer, blocking_read, offset, size, ptr, num_events_in_wait_list, event_wait_list,
             event);
}

CL_API_ENTRY cl_int CL_API_CALL
clEnqueueWriteBuffer(cl_command_queue command_queue, cl_mem buffer, cl_bool blocking_write, size_t offset,
                     size_t size, const void *ptr, cl_uint num_events_in_wait_list,
                     const cl_event *event_wait_list, cl_event *event) {
    FORWARD(EnqueueWriteBuffer, "clEnqueueWriteBuffer")
    count(writes, 1);
    if (blocking_write) count(blockingWrites, 1);
    return f(command_queue, buffer, blocking_write, offset, size, ptr, num_events_in_wait_list, event_wait_list,
             event);
}

CL_API_ENTRY cl_int CL_API_CALL
clFinish(cl_command_queue command_queue) {
    FORWARD(Finish, "clFinish")
    count(finishes, 1);
    return f(command_queue);
}

CL_API_ENTRY cl_int CL_API_CALL
clWaitForEvents(cl_uint num_events, const cl_event *event_list) {
    FORWARD(WaitForEvents, "clWaitForEvents")
    count(eventWaits, 1);
    return f(num_events, event_list);
}

// CLBlast's kernel objects, kept for reuse.
//
// CLBlast (1.5) creates a kernel object with clCreateKernel on every routine
// call and releases it when the call returns: EfficientNet-B0 paid 99
// creations per training step, each a driver call that allocates (and on POCL
// takes the program's lock). A kernel object carries nothing but its argument
// values, and CLBlast sets every argument before each launch, so a released
// object serves the next call for the same program and kernel name as well as
// a new one would. The OpenCL rules make that safe: a launch keeps the
// arguments it was enqueued with, and a pooled object retains its program, so
// no later program can take its address. Only calls made from inside
// libclblast are pooled (told by the caller's address, dladdr), so Clover's
// own kernels, created once per program, keep the ordinary semantics. A
// CLBlast linked statically into the executable is not recognised and keeps
// creating its kernels.
enum { kernelPoolCapacity = 1024, kernelNameCapacity = 128 };
static struct PooledKernel {
    cl_kernel kernel;
    cl_program program;
    char name[kernelNameCapacity];
} kernelPool[kernelPoolCapacity];
static int kernelPoolCount;
static pthread_mutex_t kernelPoolLock = PTHREAD_MUTEX_INITIALIZER;

// Whether `address` (a caller's return address) lies in a shared library
// whose file name contains "libclblast".
static int inCLBlast(const void *address) {
    Dl_info info;
    if (dladdr(address, &info) == 0 || info.dli_fname == NULL) return 0;
    const char *slash = strrchr(info.dli_fname, '/');
    return strstr(slash != NULL ? slash + 1 : info.dli_fname, "libclblast") != NULL;
}

CL_API_ENTRY cl_kernel CL_API_CALL
clCreateKernel(cl_program program, const char *kernel_name, cl_int *errcode_ret) {
    FORWARD(CreateKernel, "clCreateKernel")
    if (kernel_name != NULL && inCLBlast(__builtin_return_address(0))) {
        pthread_mutex_lock(&kernelPoolLock);
        for (int i = 0; i < kernelPoolCount; i++) {
            if (kernelPool[i].program == program && strcmp(kernelPool[i].name, kernel_name) == 0) {
                cl_kernel kernel = kernelPool[i].kernel;
                kernelPool[i] = kernelPool[--kernelPoolCount];
                pthread_mutex_unlock(&kernelPoolLock);
                count(kernelReuses, 1);
                if (errcode_ret != NULL) *errcode_ret = CL_SUCCESS;
                return kernel;
            }
        }
        pthread_mutex_unlock(&kernelPoolLock);
    }
    count(kernelCreations, 1);
    return f(program, kernel_name, errcode_ret);
}

CL_API_ENTRY cl_int CL_API_CALL
clReleaseKernel(cl_kernel kernel) {
    FORWARD(ReleaseKernel, "clReleaseKernel")
    if (kernel != NULL && inCLBlast(__builtin_return_address(0))) {
        struct PooledKernel entry = {kernel, NULL, {0}};
        size_t length = 0;
        // The reference count is not consulted: a launch still in the queue
        // holds one of its own (CLBlast releases right after enqueueing), and
        // the pool's keeping CLBlast's reference changes nothing for it.
        if (clGetKernelInfo(kernel, CL_KERNEL_PROGRAM, sizeof entry.program, &entry.program, NULL) == CL_SUCCESS &&
            clGetKernelInfo(kernel, CL_KERNEL_FUNCTION_NAME, sizeof entry.name, entry.name, &length) == CL_SUCCESS &&
            length > 0 && length <= sizeof entry.name) {
            pthread_mutex_lock(&kernelPoolLock);
            if (kernelPoolCount < kernelPoolCapacity) {
                kernelPool[kernelPoolCount++] = entry;
                pthread_mutex_unlock(&kernelPoolLock);
                return CL_SUCCESS;
            }
            pthread_mutex_unlock(&kernelPoolLock);
        }
    }
    return f(kernel);
}

CLOVER_INTERNAL int clover_cl_counters_interposing(void) {
    // The global lookup is the one libclblast.so's references go through.
    void *global = dlsym(RTLD_DEFAULT, "clEnqueueNDRangeKernel");
    return global == (void *)&clEnqueueNDRangeKernel;
}

#if defined(CLOVER_CL_COUNTERS_PRELOAD)
// The preloaded library's report: one line of `name=value` pairs on standard
// error (or appended to $CLOVER_CL_COUNTS_FILE), when the process exits.
__attribute__((destructor)) static void report(void) {
    CloverCLCounters c;
    clover_cl_counters_read(&c);
    const char *path = getenv("CLOVER_CL_COUNTS_FILE");
    FILE *out = path != NULL && path[0] != 0 ? fopen(path, "a") : stderr;
    if (out == NULL) out = stderr;
    fprintf(out,
            "cl-counts kernel_launches=%llu buffer_creations=%llu bytes_allocated=%llu buffer_copies=%llu "
            "reads=%llu blocking_reads=%llu writes=%llu blocking_writes=%llu finishes=%llu event_waits=%llu "
            "kernel_creations=%llu kernel_reuses=%llu\n",
            (unsigned long long)c.kernelLaunches, (unsigned long long)c.bufferCreations,
            (unsigned long long)c.bytesAllocated, (unsigned long long)c.bufferCopies, (unsigned long long)c.reads,
            (unsigned long long)c.blockingReads, (unsigned long long)c.writes, (unsigned long long)c.blockingWrites,
            (unsigned long long)c.finishes, (unsigned long long)c.eventWaits, (unsigned long long)c.kernelCreations,
            (unsigned long long)c.kernelReuses);
    if (out != stderr) fclose(out);
}
#endif

#endif
