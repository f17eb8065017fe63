#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CloverKernels
import CloverRuntime

// TF32 tensor cores (Kernels/include/mma.h, Kernels/tensorcore.cl): the one m16n8k8 product the
// convolution kernels' tensor-core form is built from, as a primitive (its reference, its OpenCL
// path, no gradient), and the probe that runs it on a device before any op may use the tensor
// cores there.

/// One warp-level TF32 product `D = C + tf32(A) · tf32(B)` (A 16×8, B 8×8,
/// C and D 16×8, row-major) through the fragment layout of
/// `mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32`, and `R = tf32(X)` for 32
/// values: inputs `[A, B, C, X]`, outputs `[D, R]`.
///
/// On a device with TF32 tensor cores (``OpenCLDevice/hasTF32TensorCores``)
/// the kernel issues the instruction unless `emulated`; elsewhere it runs
/// `mma.h`'s emulation, which computes the same product from the same per-lane
/// fragments: the conformance sweep checks that emulation (and through it the
/// documented layout the convolution kernels rely on) against this reference.
public struct TensorCoreProduct: Primitive {
    /// Forces the emulation even on a device with tensor cores (`true`) or
    /// the PTX instructions (`false`, refused with ``CloverError/unsupported(op:shapes:device:reason:)``
    /// on a device without them); nil: whatever the device has.
    public var emulated: Bool?

    public init(emulated: Bool? = nil) { self.emulated = emulated }

    public var name: String { "tf32_mma" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs == [[16, 8], [8, 8], [16, 8], [32]] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs,
                                            reason: "expects A [16, 8], B [8, 8], C [16, 8] and X [32]")
        }
        return [[16, 8], [32]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        _ = try outputShapes(for: shapes)
        let a = inputs[0].map(\.roundedToTF32), b = inputs[1].map(\.roundedToTF32), c = inputs[2]
        var d = [Float](repeating: 0, count: 128)
        for row in 0..<16 {
            for col in 0..<8 {
                var sum = Double(c[row * 8 + col])
                for k in 0..<8 { sum += Double(a[row * 8 + k]) * Double(b[k * 8 + col]) }
                d[row * 8 + col] = Float(sum)
            }
        }
        return [d, inputs[3].map(\.roundedToTF32)]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let shapes = inputs.map(\.shape)
        _ = try outputShapes(for: shapes)
        let emulate = emulated ?? !context.device.hasTF32TensorCores
        // The PTX form only where it can build: other compilers may abort on it (POCL's LLVM does).
        guard emulate || context.device.hasTF32TensorCores else {
            throw CloverError.unsupported(op: name, shapes: shapes, device: context.device.description,
                                          reason: "the mma.sync instructions need TF32 tensor cores "
                                              + "(NVIDIA compute capability 8.0 or later); use the emulation")
        }
        let kernel = try context.kernel(.tf32MmaProbe, TensorcoreDefines(mmaEmulate: emulate ? true : nil))
        try Self.launch(kernel, inputs.map(\.view), outputs.map(\.view), on: context)
    }

    /// One warp of `tf32_mma_probe` (arguments A, B, C, D, X, R).
    static func launch(_ kernel: Kernel, _ inputs: [BufferView], _ outputs: [BufferView],
                       on context: OpenCLContext) throws {
        let (a, b, c, x, d, r) = (inputs[0], inputs[1], inputs[2], inputs[3], outputs[0], outputs[1])
        try context.launch(kernel, global: [32], local: [32], Tf32MmaProbeArguments(A: a, B: b, C: c, D: d, X: x, R: r))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [nil, nil, nil, nil]
    }
}

/// The tensor-core probe: before any op uses a device's TF32 tensor cores,
/// one ``TensorCoreProduct`` on inputs chosen so that a wrong fragment
/// layout, a missing rounding or a broken instruction shows, compared with
/// the host's product.
public enum TensorCoreProbe {
    /// The probe's inputs: A, B, C not symmetric in any index; X bit patterns
    /// around the rounding boundary (ties, carries into the exponent, the
    /// largest finite value, infinities).
    static var inputs: [[Float]] {
        func value(_ i: Int, period: Int, step: Float, ramp: Float, shift: Float) -> Float {
            let wave = Float(i % period - period / 2) * step
            return wave + Float(i) * ramp + shift
        }
        let a = (0..<128).map { value($0, period: 7, step: 0.375, ramp: 1.0 / 64, shift: 1.0 / 3) }
        let b = (0..<64).map { value($0 * 5, period: 11, step: 0.25, ramp: 1.0 / 160, shift: 0.2) }
        let c = (0..<128).map { value($0, period: 5, step: 1, ramp: 1.0 / 256, shift: 0) }
        let patterns: [UInt32] = [0x3f80_0000, 0x3f80_0fff, 0x3f80_1000, 0x3f80_1001, 0x3f80_3000, 0xbf80_1000,
                                  0x3fff_f000, 0x7f7f_ffff, 0x7f80_0000, 0xff80_0000, 0x0000_1000, 0x4049_0fdb]
        let x = (0..<32).map { i in i < patterns.count ? Float(bitPattern: patterns[i]) : Float(i) / 3 - 5 }
        return [a, b, c, x]
    }

    /// Runs the probe on `context` (the PTX instructions unless `emulated`),
    /// and returns nil when every output matches the host's, else what went
    /// wrong. A program that does not build is a failure, not an error.
    ///
    /// The PTX instructions are only ever built for a device with TF32
    /// tensor cores: other compilers may not fail cleanly on them (POCL's
    /// LLVM aborts the process). `source` replaces `Kernels/tensorcore.cl`
    /// (the tests' broken and mutated probes).
    public static func run(on context: OpenCLContext, emulated: Bool = false, source: String? = nil) -> String? {
        let shapes = [[16, 8], [8, 8], [16, 8], [32]]
        guard emulated || context.device.hasTF32TensorCores else {
            return "\(context.device.description) has no TF32 tensor cores (NVIDIA compute capability 8.0 or later)"
        }
        do {
            let defines = TensorcoreDefines(mmaEmulate: emulated ? true : nil)
            let kernel = try source.map { text in
                // Programs are cached by name and options: each replacement source gets its own name.
                let name = "tensorcore-probe-" + String(ProgramCache.fnv1a64([text]), radix: 16)
                return try context.kernel("tf32_mma_probe", program: name, source: { text }, defines: defines.values)
            } ?? context.kernel(.tf32MmaProbe, defines)
            let device = Device(openCL: context)
            let tensors = try zip(shapes, inputs).map { try Tensor(shape: $0, values: $1, on: device) }
            let outputs = try [[16, 8], [32]].map { try Tensor(shape: $0, values: [Float](repeating: .nan, count: $0.reduce(1, *)), on: device) }
            try TensorCoreProduct.launch(kernel, tensors.map(\.view), outputs.map(\.view), on: context)
            let expected = try TensorCoreProduct().evalReference(inputs, shapes: shapes)
            let d = try outputs[0].toArray(), r = try outputs[1].toArray()
            for (i, (got, want)) in zip(d, expected[0]).enumerated()
            where !(abs(got - want) <= 1e-5 + 1e-5 * abs(want)) {
                return "D[\(i / 8)][\(i % 8)] is \(got), the host's product \(want)"
            }
            for (i, (got, want)) in zip(r, expected[1]).enumerated() where got.bitPattern != want.bitPattern {
                return "tf32(X[\(i)]) is 0x\(String(got.bitPattern, radix: 16)), cvt.rna gives 0x\(String(want.bitPattern, radix: 16))"
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// On a device with TF32 tensor cores, runs the probe once and, when it
    /// fails, turns the tensor-core paths off on `context`
    /// (``OpenCLContext/tensorCoreFailure``) with a warning naming why.
    public static func checkOnce(_ context: OpenCLContext) {
        guard context.device.hasTF32TensorCores, !context.isPlanning, context.tensorCoreFailure == nil,
              !context.tensorCoresProbed else { return }
        context.tensorCoresProbed = true
        if let failure = run(on: context) { turnOff(context, because: failure) }
    }

    /// Turns the tensor-core paths off on `context`, with a warning naming why.
    public static func turnOff(_ context: OpenCLContext, because failure: String) {
        context.tensorCoreFailure = failure
        context.logger.warning("TF32 tensor cores off on \(context.device.description): the probe failed: \(failure)")
    }
}
