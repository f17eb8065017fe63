#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Double-precision libm entry points for the CPU reference paths.
@inline(__always) func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { log(x) }
@inline(__always) func _tanh(_ x: Double) -> Double { tanh(x) }
@inline(__always) func _erf(_ x: Double) -> Double { erf(x) }
@inline(__always) func _sqrt(_ x: Double) -> Double { sqrt(x) }
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
@inline(__always) func _cos(_ x: Double) -> Double { cos(x) }
