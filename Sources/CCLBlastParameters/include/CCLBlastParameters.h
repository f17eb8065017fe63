// CLBlast's C API can override tuning parameters but not read them back; its
// C++ API can (clblast::RetrieveParameters). This C wrapper over the C++ call
// lets Clover record the parameters in force before it overrides any, so
// they can be restored exactly (CLBlast has no "unset").
#ifndef CLOVER_CCLBLAST_PARAMETERS_H
#define CLOVER_CCLBLAST_PARAMETERS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Reads the tuning parameters CLBlast currently uses for `kernel_name` at
/// `precision` (a CLBlastPrecision value, e.g. 32 for single) on `device`
/// (a cl_device_id): the database entry for the device, or the last override.
///
/// Writes the parameter names, each terminated by a NUL, into `names`
/// (`names_capacity` bytes) and the values into `values` (`values_capacity`
/// entries), sorted by name; `*count` receives the number of parameters.
/// Returns a CLBlastStatusCode: 0 on success, -2040 (CLBlastUnknownError)
/// when the buffers are too small.
int clover_clblast_retrieve_parameters(void *device, const char *kernel_name, int precision,
                                       char *names, size_t names_capacity,
                                       size_t *values, size_t values_capacity, size_t *count);

#ifdef __cplusplus
}
#endif

#endif
