import ArgumentParser
import Clover

extension MatmulPrecision: ExpressibleByArgument {}

extension Device {
    /// Sets the convolutions' precision on an OpenCL device (the reference
    /// device computes in Double whatever is asked) and says which is in
    /// force, and why, for a command's header.
    func apply(_ precision: MatmulPrecision) -> String {
        useMatmulPrecision(precision)
    }
}
