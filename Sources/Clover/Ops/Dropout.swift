import CloverKernels
import CloverRuntime

// Dropout and stochastic depth with counter-based (Philox4x32-10) masks. Kernels: Kernels/dropout.cl.
//
// The mask is a pure function of (seed, element or sample index), computed independently here and
// in OpenCL C, so a seed reproduces the same mask on every device and the backward pass regenerates
// it instead of storing it.

/// The Philox4x32-10 counter-based generator (Salmon, Moraes, Dror and Shaw,
/// "Parallel Random Numbers: As Easy as 1, 2, 3", SC11), with the Random123
/// constants: the host twin of `philox4x32_10` in `dropout.cl`.
public enum Philox {
    static let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
    static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

    /// Ten rounds of Philox4x32 on `counter` with `key`.
    public static func philox4x32_10(_ counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        var c = counter, k = key
        for round in 0..<10 {
            if round > 0 {
                k.x &+= w0
                k.y &+= w1
            }
            let p0 = UInt64(m0) * UInt64(c.x), p1 = UInt64(m1) * UInt64(c.z)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            c = SIMD4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0)
        }
        return c
    }

    /// Draw `index` of `stream` under `seed`: word `index % 4` of the block at
    /// counter `(index / 4 lo, index / 4 hi, stream, 0)`, key `(seed lo, seed hi)`.
    public static func draw(seed: UInt64, stream: UInt32, index: UInt64) -> UInt32 {
        let block = index / 4
        let r = philox4x32_10(SIMD4(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32), stream, 0),
                              key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        return r[Int(index % 4)]
    }

    /// The Philox stream of dropout masks (one draw per element).
    public static let dropoutStream: UInt32 = 0
    /// The Philox stream of stochastic-depth masks (one draw per sample).
    public static let stochasticDepthStream: UInt32 = 1
}

/// What dropout and stochastic depth share: the keep rule and the scale.
struct DropMask {
    let probability: Float
    let seed: UInt64

    func validate(op: String) throws {
        guard probability >= 0, probability < 1 else {
            throw CloverError.invalidArgument(op: op, reason: "drop probability \(probability) is outside [0, 1)")
        }
    }

    /// A draw at or above this keeps its element: `round(p · 2^32)`, so the
    /// keep probability is `1 − p` to within 2^-33.
    var threshold: UInt32 {
        UInt32(min((Double(probability) * 4_294_967_296).rounded(), 4_294_967_295))
    }

    /// `1 / (1 − p)` rounded to float, as the kernels multiply by it.
    var deviceScale: Float { Float(1 / (1 - Double(probability))) }

    /// The seed's low and high 32-bit words, as the kernels take it.
    var seedLo: UInt32 { UInt32(truncatingIfNeeded: seed) }
    var seedHi: UInt32 { UInt32(truncatingIfNeeded: seed >> 32) }
}

/// Training-mode dropout: `y = x · mask / (1 − p)` with `mask[i]` drawn from
/// Philox(seed, i) (see ``Philox/draw(seed:stream:index:)``), keeping each
/// element with probability `1 − p`. Dropped elements are exactly 0.
///
/// The op is linear in `x` for a fixed mask, so its gradient is the same op
/// applied to `dy`. `p` must lie in `[0, 1)`; `p = 0` is the identity.
public struct InvertedDropout: Primitive {
    /// The drop probability `p`, in `[0, 1)`.
    public let probability: Float
    /// The Philox key: one seed gives one mask on every device.
    public let seed: UInt64
    public init(probability: Float, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }
    public var name: String { "dropout" }
    var mask: DropMask { DropMask(probability: probability, seed: seed) }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        try mask.validate(op: name)
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0]
        let threshold = mask.threshold
        let keepScale = 1 / (1 - Double(probability))
        var y = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count where Philox.draw(seed: seed, stream: Philox.dropoutStream, index: UInt64(i)) >= threshold {
            y[i] = Float(Double(x[i]) * keepScale)
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.dropoutForward)
        let x = inputs[0].view, y = outputs[0].view
        // One work item per element (dropout.cl says why).
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], DropoutForwardArguments(
            n: UInt64(y.count), threshold: mask.threshold, scale: mask.deviceScale,
            seedLo: mask.seedLo, seedHi: mask.seedHi, x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(self, [cotangents[0]])]
    }
}

/// Stochastic depth (torchvision's `mode="row"`): drops the whole residual
/// branch of each sample. For `x` `[N, ...]`, sample `n` is kept when
/// Philox(seed, n) says so (probability `1 − p`) and scaled by `1 / (1 − p)`;
/// dropped samples are exactly 0.
///
/// Linear in `x` for a fixed mask, so its gradient is the same op applied to
/// `dy`. `p` must lie in `[0, 1)`.
public struct DropPath: Primitive {
    /// The drop probability `p`, in `[0, 1)`.
    public let probability: Float
    /// The Philox key: one seed gives one mask on every device.
    public let seed: UInt64
    public init(probability: Float, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }
    public var name: String { "stochastic_depth" }
    var mask: DropMask { DropMask(probability: probability, seed: seed) }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, !inputs[0].isEmpty else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects one input of shape [N, ...]")
        }
        try mask.validate(op: name)
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0]
        let samples = shapes[0][0], perSample = x.count / samples
        let threshold = mask.threshold
        let keepScale = 1 / (1 - Double(probability))
        var y = [Float](repeating: 0, count: x.count)
        for n in 0..<samples
        where Philox.draw(seed: seed, stream: Philox.stochasticDepthStream, index: UInt64(n)) >= threshold {
            for j in 0..<perSample { y[n * perSample + j] = Float(Double(x[n * perSample + j]) * keepScale) }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.stochasticDepthForward)
        let x = inputs[0].view, y = outputs[0].view
        let perSample = y.count / inputs[0].shape[0]
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], StochasticDepthForwardArguments(
            n: UInt64(y.count), perSample: UInt64(perSample), threshold: mask.threshold, scale: mask.deviceScale,
            seedLo: mask.seedLo, seedHi: mask.seedHi, x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(self, [cotangents[0]])]
    }
}

/// Dropout with drop probability `probability`: in training, `x · mask /
/// (1 − p)` with the mask drawn from `seed` (see ``InvertedDropout``); in inference,
/// or when `p = 0`, `x` itself.
public func dropout(_ x: Tensor, probability: Float, seed: UInt64, training: Bool) throws -> Tensor {
    try DropMask(probability: probability, seed: seed).validate(op: "dropout")
    guard training, probability != 0 else { return x }
    return try apply1(InvertedDropout(probability: probability, seed: seed), [x])
}

/// Stochastic depth of a residual branch `x` `[N, ...]`: in training, each
/// sample's branch is dropped with probability `p` and kept ones scaled by
/// `1 / (1 − p)` (see ``DropPath``); in inference, or when `p = 0`, `x`.
public func stochasticDepth(_ x: Tensor, probability: Float, seed: UInt64, training: Bool) throws -> Tensor {
    try DropMask(probability: probability, seed: seed).validate(op: "stochastic_depth")
    guard training, probability != 0 else { return x }
    return try apply1(DropPath(probability: probability, seed: seed), [x])
}
