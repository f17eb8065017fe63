import CloverKernels
import CloverRuntime

// Elementwise arithmetic and ReLU. Kernels: Kernels/elementwise.cl.

/// The work-group size used for 1-D pointwise kernels.
let pointwiseGroupSize = 256

/// `a + b`, `a * b` or `max(a + b, 0)` over tensors of identical shape.
public struct BinaryElementwise: Primitive {
    /// `addReLU` is a residual connection's sum and ReLU in one pass (and one
    /// buffer): `relu(add(a, b))` without the intermediate.
    public enum Operation: String { case add, mul, addReLU = "add_relu" }
    public let operation: Operation

    public init(_ operation: Operation) { self.operation = operation }

    public var name: String { operation.rawValue }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "operands must have the same shape")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let a = inputs[0], b = inputs[1]
        var y = [Float](repeating: 0, count: a.count)
        for i in 0..<a.count {
            switch operation {
            case .add: y[i] = Float(Double(a[i]) + Double(b[i]))
            case .mul: y[i] = Float(Double(a[i]) * Double(b[i]))
            case .addReLU: y[i] = Float(max(Double(a[i]) + Double(b[i]), 0))
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let macro: String
        switch operation {
        case .add: macro = "OP_ADD"
        case .mul: macro = "OP_MUL"
        case .addReLU: macro = "OP_ADD_RELU"
        }
        let kernel = try context.kernel(.binaryElementwise, ElementwiseDefines(op: macro))
        let a = inputs[0].view, b = inputs[1].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           BinaryElementwiseArguments(n: UInt64(y.count), a: a, b: b, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let g = cotangents[0]
        switch operation {
        case .add: return [g, g]
        case .mul: return [try mul(g, inputs[1]), try mul(g, inputs[0])]
        case .addReLU:
            // y > 0 exactly where a + b > 0: the ReLU gradient from the output.
            let masked = try apply1(ReLUBackward(), [g, outputs[0]])
            return [masked, masked]
        }
    }
}

/// `max(x, 0)`.
public struct ReLU: Primitive {
    public init() {}
    public var name: String { "relu" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        var y = inputs[0]
        for i in 0..<y.count where !(y[i] > 0) { y[i] = 0 }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.reluForward)
        let x = inputs[0].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ReluForwardArguments(n: UInt64(y.count), x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(ReLUBackward(), [cotangents[0], inputs[0]])]
    }
}

/// The ReLU gradient: `dy` where `x > 0`, else 0. Inputs: `dy`, `x`.
public struct ReLUBackward: Primitive {
    public init() {}
    public var name: String { "relu_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "dy and x must have the same shape")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], x = inputs[1]
        var dx = [Float](repeating: 0, count: dy.count)
        for i in 0..<dy.count where x[i] > 0 { dx[i] = dy[i] }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.reluBackward)
        let dy = inputs[0].view, x = inputs[1].view, dx = outputs[0].view
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize],
                           ReluBackwardArguments(n: UInt64(dx.count), dy: dy, x: x, dx: dx))
    }
}

/// `alpha · x`.
public struct Scale: Primitive {
    public let factor: Float
    public init(_ factor: Float) { self.factor = factor }
    public var name: String { "scale" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        [inputs[0].map { Float(Double(factor) * Double($0)) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.scaleElementwise)
        let x = inputs[0].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ScaleElementwiseArguments(n: UInt64(y.count), alpha: factor, x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try scale(cotangents[0], by: factor)]
    }
}

/// A tensor of `x`'s shape filled with one value (PyTorch's `full_like`).
/// The input only gives the shape and device; it gets no gradient.
public struct FullLike: Primitive {
    public let value: Float
    public init(_ value: Float) { self.value = value }
    public var name: String { "full_like" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return inputs
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        [[Float](repeating: value, count: inputs[0].count)]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try fill(outputs[0].view, with: value, on: context)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] { [nil] }
}

/// Fills a view with one value on the device.
package func fill(_ view: BufferView, with value: Float, on context: OpenCLContext) throws {
    let kernel = try context.kernel(.fillValue)
    try context.launch(kernel, global: [view.count], local: [pointwiseGroupSize],
                       FillValueArguments(n: UInt64(view.count), value: value, y: view))
}

/// `factor · x` elementwise.
public func scale(_ x: Tensor, by factor: Float) throws -> Tensor { try apply1(Scale(factor), [x]) }
/// Elementwise sum of two tensors of the same shape.
public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try apply1(BinaryElementwise(.add), [a, b]) }
/// `max(a + b, 0)`: a residual sum and its ReLU in one kernel; see ``BinaryElementwise``.
public func addReLU(_ a: Tensor, _ b: Tensor) throws -> Tensor { try apply1(BinaryElementwise(.addReLU), [a, b]) }
/// Elementwise product of two tensors of the same shape.
public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try apply1(BinaryElementwise(.mul), [a, b]) }
/// `max(x, 0)` elementwise.
public func relu(_ x: Tensor) throws -> Tensor { try apply1(ReLU(), [x]) }
