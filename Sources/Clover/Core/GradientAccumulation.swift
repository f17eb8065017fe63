import CloverRuntime

// How backward adds a gradient to a leaf: into the leaf's gradient
// destination when an optimiser's arena gave it one (CloverNN's
// `GradientArena`; autograd offers the destination to the vjp in its
// `GradientRequest`, and takes the slice as it is when the vjp wrote there),
// else out of place; and the shared zero buffer for missing cotangents.

extension Tensor {
    /// Whether both tensors view the same elements (same storage and start).
    package func sharesData(with other: Tensor) -> Bool {
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
