import Clover
import CloverRuntime

/// A function of several ops checked as if it were one primitive: its
/// forward runs the ops on each device, and its gradient is autograd over
/// them. This lets the same harness compare whole blocks (the RegNet cell,
/// attention, a residual block) with the CPU reference, forward and
/// backward, and check the reference's gradients by finite differences.
public struct Composite: Primitive {
    public let name: String
    public let outputShapesRule: ([[Int]]) throws -> [[Int]]
    public let body: ([Tensor]) throws -> [Tensor]

    public init(name: String, outputShapes: @escaping ([[Int]]) throws -> [[Int]],
                body: @escaping ([Tensor]) throws -> [Tensor]) {
        self.name = name
        outputShapesRule = outputShapes
        self.body = body
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] { try outputShapesRule(inputs) }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let tensors = try zip(shapes, inputs).map { try Tensor(shape: $0, values: $1, on: .reference) }
        return try withoutGradients { try body(tensors).map { try $0.toArray() } }
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let results = try withoutGradients { try body(inputs) }
        for (r, o) in zip(results, outputs) {
            try context.copy(from: r.deviceView!, to: o.deviceView!, count: o.count)
        }
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let leaves = inputs.map { $0.detached() }
        for leaf in leaves { leaf.requiresGrad = true }
        let results = try body(leaves)
        for (r, c) in zip(results, cotangents) where r.hasGradientHistory {
            try r.backward(c)
        }
        return leaves.map(\.grad)
    }
}
