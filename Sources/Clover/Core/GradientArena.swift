import CloverRuntime

// Gradients that land where the optimiser reads them. A `GradientArena` is
// one flat device buffer with a slice per leaf; each leaf's
// `gradientDestination` is a view of its slice. `backward` writes a leaf's
// first gradient after `zeroGrad()` into that view (directly, when autograd
// offers the slice to the op's vjp and the vjp writes there, otherwise with
// one copy) and adds
// later ones in place, so the fused optimiser step reads the arena with no
// gather. A nil `grad` is what marks a slice stale: nothing is zero-filled
// up front, and only leaves that got no gradient at all are zeroed, by
// `collect`, one fill per run of adjacent slices.

/// A flat device buffer holding the gradients of several leaf tensors back
/// to back, which ``Tensor/backward(_:)`` accumulates into directly.
///
/// Binding a leaf sets its gradient destination to a view of its slice. After
/// a backward pass the leaf's ``Tensor/grad`` is that view; ``collect(_:)``
/// then makes the arena complete (zeros for leaves without a gradient, a copy
/// for a gradient assigned by hand) before an optimiser reads ``gradients``.
public final class GradientArena {
    /// The flat gradients, `[total]`.
    public let gradients: Tensor
    /// Each leaf's slice, shaped like the leaf.
    let destinations: [Tensor]
    /// Element offset of each slice in ``gradients``.
    let offsets: [Int]

    /// Allocates the arena on the leaves' OpenCL device and binds each leaf's
    /// gradient destination to its slice, in order.
    ///
    /// - Throws: when the leaves are not all on one OpenCL device.
    public init(binding leaves: [Tensor]) throws {
        guard let device = leaves.first?.device, let context = device.openCL else {
            throw CloverError.invalidArgument(op: "gradient arena", reason: "needs leaves on an OpenCL device")
        }
        if leaves.contains(where: { $0.device !== device }) {
            throw CloverError.deviceMismatch(op: "gradient arena", devices: leaves.map { $0.device.description })
        }
        var running = 0
        offsets = leaves.map { leaf in defer { running += leaf.count }; return running }
        let arena = try context.allocateView(count: running, resident: true)
        gradients = try Tensor(shape: [running], view: arena, on: device)
        destinations = try zip(leaves, offsets).map { leaf, offset in
            try Tensor(shape: leaf.shape, view: arena.slice(offset: offset, count: leaf.count), on: device)
        }
        for (leaf, destination) in zip(leaves, destinations) {
            leaf.grad = nil
            leaf.gradientDestination = destination
        }
    }

    /// Completes the arena from `leaves` (the bound leaves, in binding order,
    /// or tensors that replaced them): a gradient already in its slice costs
    /// nothing, one held elsewhere is copied in, and slices of leaves without
    /// a gradient are zero-filled, one fill per run of adjacent slices.
    public func collect(_ leaves: [Tensor]) throws {
        guard leaves.count == destinations.count, let context = gradients.device.openCL else {
            throw CloverError.invalidArgument(op: "gradient arena", reason: "\(leaves.count) leaves for \(destinations.count) slices")
        }
        let arena = gradients.view
        var zeroStart: Int?
        func flushZeros(upTo end: Int) throws {
            guard let start = zeroStart else { return }
            try fill(arena.slice(offset: start, count: end - start), with: 0, on: context)
            zeroStart = nil
        }
        for (i, leaf) in leaves.enumerated() {
            guard leaf.count == destinations[i].count else {
                throw CloverError.shapeMismatch(op: "gradient arena", shapes: [destinations[i].shape, leaf.shape],
                                                reason: "leaf \(i) does not fit its slice")
            }
            if let g = leaf.grad {
                try flushZeros(upTo: offsets[i])
                if !g.sharesData(with: destinations[i]) {
                    try context.copy(from: g.view, to: destinations[i].view, count: g.count)
                }
            } else if zeroStart == nil {
                zeroStart = offsets[i]
            }
        }
        try flushZeros(upTo: gradients.count)
    }
}

extension Tensor {
    /// Whether both tensors view the same elements (same storage and start).
    func sharesData(with other: Tensor) -> Bool {
        switch (storage, other.storage) {
        case let (.buffer(a), .buffer(b)): return a.buffer === b.buffer && a.offset == b.offset
        case let (.host(a), .host(b)): return a === b
        default: return false
        }
    }

    /// Adds `g` to this leaf's gradient: into its arena slice when it has
    /// one (a copy for the first gradient after ``zeroGrad()`` unless `g` was
    /// written there already, an in-place add after), else out of place.
    func accumulateGrad(_ g: Tensor) throws {
        let g = g.shape == shape ? g : try g.reshaped(shape)
        guard let destination = gradientDestination, grad == nil || grad === destination else {
            grad = try grad.map { try add($0, g) } ?? g
            return
        }
        if g.sharesData(with: destination) {
            grad = destination
        } else if grad == nil {
            try copyElements(of: g, into: destination)
            grad = destination
        } else {
            _ = try apply(BinaryElementwise(.add), [destination, g], into: [destination])
        }
    }

    /// Whether this tensor is a ``zerosForReading(_:on:)`` placeholder (the
    /// cotangent autograd fills in for an output nothing used), so that a
    /// gradient can skip adding it.
    var isSharedZeros: Bool {
        guard case let .buffer(view) = storage, let context = device.openCL else { return false }
        return context[attachment: SharedZeros.self].view?.buffer === view.buffer
    }

    /// A zero tensor for a missing cotangent, which vjps only read. On
    /// OpenCL it is a view of one zero buffer per context, filled when it
    /// grows, so a backward pass in steady state fills nothing.
    static func zerosForReading(_ shape: [Int], on device: Device) throws -> Tensor {
        guard let context = device.openCL else { return try Tensor.zeros(shape, on: device) }
        try validate(shape: shape, op: "zeros")
        let view = try SharedZeros.view(count: shape.reduce(1, *), on: context)
        return Tensor(shape: shape, device: device, storage: .buffer(view))
    }
}

/// Copies `source`'s elements into `destination` (same count).
private func copyElements(of source: Tensor, into destination: Tensor) throws {
    switch (source.storage, destination.storage) {
    case (.buffer, .buffer):
        try destination.device.openCL!.copy(from: source.view, to: destination.view, count: source.count)
    case (.host, .host):
        destination.hostValues = source.hostValues
    default:
        break
    }
}

/// The read-only zero buffer of one context, grown on demand (held by the
/// context, so it goes with it).
private struct SharedZeros: ContextAttachment {
    var view: BufferView?

    static var defaultValue: SharedZeros { SharedZeros() }

    static func view(count: Int, on context: OpenCLContext) throws -> BufferView {
        if let view = context[attachment: SharedZeros.self].view, view.count >= count {
            return view.slice(offset: 0, count: count)
        }
        let view = try context.allocateView(count: count, resident: true)
        try fill(view, with: 0, on: context)
        context[attachment: SharedZeros.self].view = view
        return view
    }
}
