import CloverRuntime

// Reverse-mode autograd. Every `apply` whose inputs need gradients records a
// node (the primitive, its inputs, and detached copies of its outputs);
// `backward` walks the nodes in reverse topological order and calls each
// primitive's `vjp`. Nodes hold detached outputs (sharing storage) so that a
// tensor and its node never form a reference cycle: dropping the loss frees
// the graph.

/// A recorded op application.
final class GradNode {
    let primitive: Primitive
    let inputs: [Tensor]
    /// The outputs, detached (same storage, no node), for vjps that need them.
    let outputs: [Tensor]

    init(primitive: Primitive, inputs: [Tensor], outputs: [Tensor]) {
        self.primitive = primitive
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// Whether ops are recorded for autograd (on by default). Clover drives a
/// device from one thread, and so is this switch global.
public enum GradientRecording {
    public internal(set) static var isEnabled = true
}

/// Runs `body` without recording ops (inference, optimiser steps, metrics).
public func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
    let saved = GradientRecording.isEnabled
    GradientRecording.isEnabled = false
    defer { GradientRecording.isEnabled = saved }
    return try body()
}

/// Records `primitive` on `outputs` when recording is on and some input
/// needs a gradient.
func recordIfNeeded(_ primitive: Primitive, inputs: [Tensor], outputs: [Tensor]) {
    guard GradientRecording.isEnabled, inputs.contains(where: { $0.requiresGrad || $0.gradNode != nil }) else { return }
    let node = GradNode(primitive: primitive, inputs: inputs, outputs: outputs.map { $0.detached() })
    for (i, output) in outputs.enumerated() {
        output.gradNode = node
        output.outputIndex = i
    }
}

extension Tensor {
    /// Whether this tensor was produced by a recorded op.
    public var hasGradientHistory: Bool { gradNode != nil }

    /// Back-propagates from this tensor: every leaf with ``requiresGrad``
    /// that it depends on gets its gradient added to ``grad``.
    ///
    /// - Parameter seed: the cotangent of this tensor; defaults to ones
    ///   (a scalar loss).
    public func backward(_ seed: Tensor? = nil) throws {
        let seed = try seed ?? Tensor.full(shape, value: 1, on: device)
        guard seed.shape == shape else {
            throw CloverError.shapeMismatch(op: "backward", shapes: [shape, seed.shape], reason: "seed must match the tensor")
        }
        try withoutGradients {
            guard let root = gradNode else {
                if requiresGrad { try accumulateGrad(seed) }
                return
            }
            var cotangents: [ObjectIdentifier: [Tensor?]] = [:]
            var initial = [Tensor?](repeating: nil, count: root.outputs.count)
            initial[outputIndex] = seed
            cotangents[ObjectIdentifier(root)] = initial
            let order = Array(topologicalOrder(from: root).reversed())
            // With an observer, each leaf is reported after the last node
            // that can add to its gradient (data-parallel training starts
            // reducing a bucket of gradients while backward goes on).
            let observer = device.gradientReadinessObserver
            var finishedAfter: [Int: [Tensor]] = [:]
            if observer != nil {
                var last: [ObjectIdentifier: (Int, Tensor)] = [:]
                for (i, node) in order.enumerated() {
                    for input in node.inputs where input.gradNode == nil && input.requiresGrad {
                        last[ObjectIdentifier(input)] = (i, input)
                    }
                }
                for (i, leaf) in last.values { finishedAfter[i, default: []].append(leaf) }
            }
            for (position, node) in order.enumerated() {
                defer { if let observer, let leaves = finishedAfter[position] { leaves.forEach(observer) } }
                guard let given = cotangents.removeValue(forKey: ObjectIdentifier(node)) else { continue }
                let filled = try given.enumerated().map { i, c in
                    try c ?? Tensor.zerosForReading(node.outputs[i].shape, on: node.outputs[i].device)
                }
                // Inputs that are neither leaves needing a gradient nor results
                // of recorded ops (data, labels) get none: their gradient
                // kernels are never launched.
                let needed = node.inputs.map { $0.requiresGrad || $0.gradNode != nil }
                let grads = try node.primitive.vjp(inputs: node.inputs, outputs: node.outputs, cotangents: filled,
                                                   request: GradientRequest(needsGradient: needed,
                                                                            destinations: gradientDestinations(of: node)))
                for (input, g) in zip(node.inputs, grads) {
                    guard let g else { continue }
                    if let parent = input.gradNode {
                        let key = ObjectIdentifier(parent)
                        var slots = cotangents[key] ?? [Tensor?](repeating: nil, count: parent.outputs.count)
                        slots[input.outputIndex] = try slots[input.outputIndex].map { try add($0, g) } ?? g
                        cotangents[key] = slots
                    } else if input.requiresGrad {
                        try input.accumulateGrad(g)
                    }
                }
            }
        }
    }

    /// Clears the accumulated gradient. A gradient held in an arena
    /// (CloverNN's `GradientArena`) is not zero-filled: its slice is marked
    /// stale, and the next backward pass overwrites it.
    public func zeroGrad() { grad = nil }
}

/// The destinations autograd offers `node`'s vjp: each leaf input's
/// gradient-arena slice while it is stale (no gradient yet in this pass or
/// since ``Tensor/zeroGrad()``), to its first occurrence only, so that a
/// leaf used twice by one op gets its second gradient added, not written
/// over the first. ``Tensor/accumulateGrad(_:)`` recognises a gradient
/// written there and takes the slice as it is.
private func gradientDestinations(of node: GradNode) -> [Tensor?] {
    var offered = Set<ObjectIdentifier>()
    return node.inputs.map { input in
        guard input.gradNode == nil, input.requiresGrad, input.grad == nil, let destination = input.gradientDestination,
              offered.insert(ObjectIdentifier(input)).inserted else { return nil }
        return destination
    }
}

/// Nodes reachable from `root`, each after all nodes it depends on.
private func topologicalOrder(from root: GradNode) -> [GradNode] {
    var order: [GradNode] = []
    var visited = Set<ObjectIdentifier>()
    // Iterative post-order DFS: deep networks would overflow a recursive one.
    var stack: [(GradNode, Int)] = [(root, 0)]
    visited.insert(ObjectIdentifier(root))
    while let (node, next) = stack.popLast() {
        if next < node.inputs.count {
            stack.append((node, next + 1))
            if let parent = node.inputs[next].gradNode, visited.insert(ObjectIdentifier(parent)).inserted {
                stack.append((parent, 0))
            }
        } else {
            order.append(node)
        }
    }
    return order
}

/// A view of the same elements with another shape. Forward shares storage
/// (see ``Tensor/reshaped(_:)``); the primitive's eval paths copy, for
/// completeness and conformance.
public struct Reshape: Primitive {
    public let shape: [Int]
    public init(_ shape: [Int]) { self.shape = shape }
    public var name: String { "reshape" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, !shape.contains(where: { $0 <= 0 }), inputs[0].reduce(1, *) == shape.reduce(1, *) else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs + [shape], reason: "element counts differ")
        }
        return [shape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] { inputs }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try context.copy(from: inputs[0].view, to: outputs[0].view, count: inputs[0].count)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try cotangents[0].reshaped(inputs[0].shape)]
    }
}
