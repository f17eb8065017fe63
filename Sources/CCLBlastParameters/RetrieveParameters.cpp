#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include "CCLBlastParameters.h"

#include <algorithm>
#include <clblast.h>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

extern "C" int clover_clblast_retrieve_parameters(void *device, const char *kernel_name, int precision,
                                                  char *names, size_t names_capacity,
                                                  size_t *values, size_t values_capacity, size_t *count) {
    try {
        std::unordered_map<std::string, size_t> parameters;
        const auto status = clblast::RetrieveParameters(static_cast<cl_device_id>(device), kernel_name,
                                                        static_cast<clblast::Precision>(precision), parameters);
        if (status != clblast::StatusCode::kSuccess) { return static_cast<int>(status); }
        // Sorted, so callers see the same order on every run.
        std::vector<std::pair<std::string, size_t>> sorted(parameters.begin(), parameters.end());
        std::sort(sorted.begin(), sorted.end());
        size_t used = 0;
        for (const auto &entry : sorted) { used += entry.first.size() + 1; }
        *count = sorted.size();
        if (used > names_capacity || sorted.size() > values_capacity) {
            return static_cast<int>(clblast::StatusCode::kUnknownError);
        }
        char *cursor = names;
        for (size_t i = 0; i < sorted.size(); ++i) {
            std::memcpy(cursor, sorted[i].first.c_str(), sorted[i].first.size() + 1);
            cursor += sorted[i].first.size() + 1;
            values[i] = sorted[i].second;
        }
        return 0;
    } catch (...) {
        // No C++ exception may cross into Swift.
        return static_cast<int>(clblast::StatusCode::kUnexpectedError);
    }
}
