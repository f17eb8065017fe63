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
        return "precision: " + context.precisionInForce
    }
}
