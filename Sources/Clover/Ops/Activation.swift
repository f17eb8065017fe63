import CloverKernels
import CloverRuntime

// Smooth activations and their gradients. Kernels: Kernels/activation.cl, one program per kind
// (specialised with -DACT=...). ReLU lives with the elementwise ops.

/// The smooth activation functions.
public enum ActivationKind: String, CaseIterable, Sendable {
    /// `x · sigmoid(x)` (SiLU, also called swish).
    case silu
    /// `1 / (1 + exp(−x))`.
    case sigmoid
    /// The hyperbolic tangent.
    case tanh
    /// `x/2 · (1 + erf(x/√2))`: the exact GELU (PyTorch's `approximate='none'`).
    case gelu

    /// The `ACT` macro value of `activation.cl`.
    var macro: String {
        switch self {
        case .silu: return "ACT_SILU"
        case .sigmoid: return "ACT_SIGMOID"
        case .tanh: return "ACT_TANH"
        case .gelu: return "ACT_GELU"
        }
    }

    /// f(x) in Double: the textbook formulas, which are safe in Double for
    /// every finite float input (exp(−x) overflows to +inf only past
    /// x = −709, where 1/(1 + inf) is the right limit anyway).
    func referenceValue(_ x: Double) -> Double {
        switch self {
        case .silu: return x / (1 + _exp(-x))
        case .sigmoid: return 1 / (1 + _exp(-x))
        case .tanh: return _tanh(x)
        case .gelu: return 0.5 * x * (1 + _erf(x / 2.0.squareRoot()))
        }
    }

    /// f'(x) in Double.
    func referenceDerivative(_ x: Double) -> Double {
        switch self {
        case .silu:
            let s = 1 / (1 + _exp(-x))
            return s + x * s * (1 - s)
        case .sigmoid:
            let s = 1 / (1 + _exp(-x))
            return s * (1 - s)
        case .tanh:
            let t = _tanh(x)
            return 1 - t * t
        case .gelu:
            let cdf = 0.5 * (1 + _erf(x / 2.0.squareRoot()))
            let pdf = _exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
            return cdf + x * pdf
        }
    }
}

/// A smooth activation applied elementwise; see ``ActivationKind``.
///
/// Large inputs saturate without overflow: `sigmoid(±100)` is exactly 1 or
/// 0 on every device.
public struct Activation: Primitive {
    public let kind: ActivationKind
    public init(_ kind: ActivationKind) { self.kind = kind }
    public var name: String { kind.rawValue }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0]
        var y = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count { y[i] = Float(kind.referenceValue(Double(x[i]))) }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.activationForward, ActivationDefines(act: kind.macro))
        let x = inputs[0].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ActivationForwardArguments(n: UInt64(y.count), x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(ActivationBackward(kind), [cotangents[0], inputs[0]])]
    }
}

/// The gradient of ``Activation``: `dy · f'(x)`. Inputs: `dy`, `x`.
///
/// The gradient takes `x` rather than the forward output for every kind:
/// recomputing `f'` from `x` keeps the saturated tails accurate (from the
/// output, `sigmoid'` would be `y(1 − y)`, which rounds to 0 long before the
/// true derivative does) and gives all kinds one signature.
public struct ActivationBackward: Primitive {
    public let kind: ActivationKind
    public init(_ kind: ActivationKind) { self.kind = kind }
    public var name: String { kind.rawValue + "_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "dy and x must have the same shape")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], x = inputs[1]
        var dx = [Float](repeating: 0, count: dy.count)
        for i in 0..<dy.count { dx[i] = Float(Double(dy[i]) * kind.referenceDerivative(Double(x[i]))) }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.activationBackward, ActivationDefines(act: kind.macro))
        let dy = inputs[0].view, x = inputs[1].view, dx = outputs[0].view
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize],
                           ActivationBackwardArguments(n: UInt64(dx.count), dy: dy, x: x, dx: dx))
    }
}

/// SiLU (swish), `x · sigmoid(x)`, elementwise.
public func silu(_ x: Tensor) throws -> Tensor { try apply1(Activation(.silu), [x]) }
/// The logistic sigmoid elementwise.
public func sigmoid(_ x: Tensor) throws -> Tensor { try apply1(Activation(.sigmoid), [x]) }
/// The hyperbolic tangent elementwise.
public func tanh(_ x: Tensor) throws -> Tensor { try apply1(Activation(.tanh), [x]) }
/// The exact (erf) GELU elementwise.
public func gelu(_ x: Tensor) throws -> Tensor { try apply1(Activation(.gelu), [x]) }
