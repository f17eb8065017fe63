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

    /// The vector-Jacobian product autograd calls: gradients for only the
    /// inputs the request says need one (the others may come back `nil`,
    /// and their gradient kernels are then not launched: the first
    /// convolution's input gradient, gradients towards data, labels and
    /// targets), written where the request offers a destination when the
    /// primitive can (a parameter's slice of the optimiser's gradient arena).
    /// The default computes every gradient with
    /// ``vjp(inputs:outputs:cotangents:)`` and drops the unneeded ones;
    /// primitives with expensive gradients implement it.
    func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?]
}

extension Primitive {
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        throw CloverError.notDifferentiable(op: name)
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let grads = try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents)
        return grads.enumerated().map { i, g in request.needs(i) ? g : nil }
    }
}

/// What autograd asks of one ``Primitive/vjp(inputs:outputs:cotangents:request:)``:
/// which inputs need a gradient, and where an input's whole gradient may be
/// written.
///
/// The destinations are the fusion of the backward pass with the optimiser:
/// autograd offers a leaf's gradient-arena slice when the slice is stale (no
/// gradient since ``Tensor/zeroGrad()``) and the leaf appears first among
/// the node's inputs; a vjp that writes the gradient there returns a tensor
/// sharing its data, and autograd then records the slice as the gradient
/// with no copy. A vjp that ignores the offer costs one copy, never a wrong
/// result. The vjp never reaches into the arena itself.
public struct GradientRequest {
    /// One flag per input: whether it needs a gradient. Inputs beyond the
    /// flags do.
    public var needsGradient: [Bool]
    /// One entry per input: the tensor to write its whole gradient into, or
    /// nil to allocate as usual.
    var destinations: [Tensor?]

    /// A request for the flagged gradients, with no destinations.
    public init(needsGradient: [Bool]) {
        self.needsGradient = needsGradient
        destinations = []
    }

    init(needsGradient: [Bool], destinations: [Tensor?]) {
        self.needsGradient = needsGradient
        self.destinations = destinations
    }

    /// Every one of `count` inputs needs a gradient, with no destinations:
    /// what the plain ``Primitive/vjp(inputs:outputs:cotangents:)`` of a
    /// primitive that implements the selective form asks for.
    public static func all(_ count: Int) -> GradientRequest {
        GradientRequest(needsGradient: [Bool](repeating: true, count: count))
    }

    /// Whether input `i` needs a gradient (inputs beyond the flags do).
    public func needs(_ i: Int) -> Bool { i >= needsGradient.count || needsGradient[i] }

    /// Where input `i`'s gradient may be written, for ``apply(_:_:into:)``;
    /// nil when none is offered.
    func destination(_ i: Int) -> Tensor? { i < destinations.count ? destinations[i] : nil }
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
