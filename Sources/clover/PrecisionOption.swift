import ArgumentParser
import Clover
import CloverRuntime

extension MatmulPrecision: ExpressibleByArgument {}

extension Device {
    /// Sets the convolutions' precision on an OpenCL device (the reference
    /// device computes in Double whatever is asked) and says which is in
    /// force, and why, for a command's header.
    func apply(_ precision: MatmulPrecision) -> String {
        guard let context = openCL else { return "precision: reference (Double)" }
        context.matmulPrecision = precision
        if context.usesTF32TensorCores { return "precision: tf32 (TF32 tensor cores, FP32 accumulation)" }
        if precision == .fp32 { return "precision: fp32 (strict)" }
        if let failure = context.tensorCoreFailure { return "precision: fp32 (tf32 asked; tensor-core probe failed: \(failure))" }
        return "precision: fp32 (tf32 asked; \(context.device.name) has no TF32 tensor cores)"
    }
}
