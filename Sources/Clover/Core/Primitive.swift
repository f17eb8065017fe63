import CloverRuntime

/// One op: its shape rule, CPU reference, OpenCL dispatch and gradient,
/// side by side (the MLX pattern). Every op family's file defines its
/// primitives as types conforming to this protocol.
///
/// Non-tensor parameters (strides, labels, transposes) are stored
/// properties of the conforming type; tensor inputs are passed to the
/// methods.
public protocol Primitive {
    /// A short op name used in errors and reports, e.g. `conv2d`.
    var name: String { get }

    /// The shape rule: output shapes for input shapes, or a thrown
    /// ``CloverError`` naming the op and shapes.
    func outputShapes(for inputs: [[Int]]) throws -> [[Int]]

    /// The CPU reference: plain loops with Double accumulation, sharing no
    /// code with the OpenCL path.
    func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]]

    /// The OpenCL path: enqueues kernels (or CLBlast calls) that fill the
    /// preallocated `outputs`.
    func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws

    /// The vector-Jacobian product: gradients with respect to each input
    /// given cotangents of each output, expressed with other ops so that it
    /// runs on whichever device the tensors live on. `nil` marks an input
    /// that has no gradient.
    func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?]

    /// The vector-Jacobian product for only the inputs whose
    /// `needsGradient` entry is true (one entry per input); the others may
    /// come back `nil`, and their gradient kernels are then not launched
    /// (the first convolution's input gradient, gradients towards data,
    /// labels and targets). Autograd calls this form. The default computes
    /// every gradient with ``vjp(inputs:outputs:cotangents:)`` and drops the
    /// unneeded ones; primitives with expensive gradients implement it.
    func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], needsGradient: [Bool]) throws -> [Tensor?]
}

extension Primitive {
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        throw CloverError.notDifferentiable(op: name)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], needsGradient: [Bool]) throws -> [Tensor?] {
        let grads = try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents)
        return grads.enumerated().map { i, g in i < needsGradient.count && !needsGradient[i] ? nil : g }
    }
}

extension Array where Element == Bool {
    /// Every one of `count` inputs needs a gradient: what the plain
    /// ``Primitive/vjp(inputs:outputs:cotangents:)`` of a primitive that
    /// implements the selective form asks for.
    static func all(_ count: Int) -> [Bool] { [Bool](repeating: true, count: count) }

    /// Whether input `i` needs a gradient (inputs beyond the flags do).
    func needs(_ i: Int) -> Bool { i >= count || self[i] }
}

/// Runs a primitive on its inputs' device and returns its outputs.
///
/// Checks what every op shares (one device, no empty tensors), applies the
/// shape rule, then dispatches to the CPU reference or the OpenCL path.
public func apply(_ primitive: Primitive, _ inputs: [Tensor]) throws -> [Tensor] {
    try apply(primitive, inputs, into: [])
}

/// ``apply(_:_:)`` writing output `k` into `destinations[k]` where one is
/// given (an existing tensor of the output's element count, e.g. a slice of
/// a gradient arena) instead of a fresh allocation; the returned output
/// shares that tensor's data. Missing or nil entries allocate as usual.
func apply(_ primitive: Primitive, _ inputs: [Tensor], into destinations: [Tensor?]) throws -> [Tensor] {
    guard let device = inputs.first?.device else {
        throw CloverError.invalidArgument(op: primitive.name, reason: "no inputs")
    }
    if inputs.contains(where: { $0.device !== device }) {
        throw CloverError.deviceMismatch(op: primitive.name, devices: inputs.map { $0.device.description })
    }
    for input in inputs where input.shape.contains(where: { $0 <= 0 }) {
        throw CloverError.emptyTensor(op: primitive.name, shape: input.shape)
    }
    let shapes = inputs.map(\.shape)
    let outShapes = try primitive.outputShapes(for: shapes)
    for shape in outShapes where shape.contains(where: { $0 <= 0 }) {
        throw CloverError.emptyTensor(op: primitive.name, shape: shape)
    }
    let targets = try outShapes.indices.map { k -> Tensor? in
        guard k < destinations.count, let target = destinations[k] else { return nil }
        guard target.device === device, target.count == outShapes[k].reduce(1, *) else {
            throw CloverError.shapeMismatch(op: primitive.name, shapes: [outShapes[k], target.shape],
                                            reason: "output \(k) does not fit its destination")
        }
        return target
    }
    let outputs: [Tensor]
    switch device.backend {
    case .meta:
        outputs = outShapes.map { Tensor(shape: $0, device: device, storage: .none) }
    case .reference:
        let values = try primitive.evalReference(inputs.map(\.hostValues), shapes: shapes)
        precondition(values.count == outShapes.count, "\(primitive.name): reference returned \(values.count) outputs")
        outputs = zip(outShapes, values).enumerated().map { k, pair in
            let (shape, data) = pair
            precondition(data.count == shape.reduce(1, *), "\(primitive.name): reference output size")
            if let target = targets[k] {
                target.hostValues = data
                return Tensor(shape: shape, device: device, storage: target.storage)
            }
            return Tensor(shape: shape, device: device, storage: .host(Tensor.HostStorage(data)))
        }
    case let .openCL(ctx):
        outputs = try outShapes.enumerated().map { k, shape in
            if let target = targets[k] { return Tensor(shape: shape, device: device, storage: .buffer(target.view)) }
            return Tensor(shape: shape, device: device, storage: .buffer(try ctx.allocateView(count: shape.reduce(1, *))))
        }
        try primitive.evalOpenCL(inputs, outputs: outputs, on: ctx)
    }
    recordIfNeeded(primitive, inputs: inputs, outputs: outputs)
    MultiplyAdds.record(primitive, on: device, inputs: shapes, outputs: outShapes)
    return outputs
}

/// Runs a single-output primitive.
public func apply1(_ primitive: Primitive, _ inputs: [Tensor]) throws -> Tensor {
    try apply(primitive, inputs)[0]
}
