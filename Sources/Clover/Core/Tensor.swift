import CloverRuntime

/// A dense float32 tensor in row-major (NCHW for images) layout on one device.
///
/// Tensors are immutable values from the op's point of view: every op
/// returns new tensors. On an OpenCL device the data is a ``BufferView``
/// (buffer + element offset); on the reference device it is a host array.
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let device: Device
    let storage: Storage

    /// Whether gradients with respect to this tensor are wanted: ops that
    /// consume it are recorded, and ``backward(_:)`` accumulates into
    /// ``grad``. Set it on parameters (leaves).
    public var requiresGrad = false
    /// The accumulated gradient of a leaf; accumulates over backward passes
    /// until ``zeroGrad()``.
    public var grad: Tensor?
    /// Where this leaf's gradient lives when an optimiser's arena holds it
    /// (CloverNN's `GradientArena` sets it): backward writes the first
    /// gradient after ``zeroGrad()`` here and adds later ones in place, so
    /// ``grad`` is this tensor instead of a fresh one.
    package var gradientDestination: Tensor?
    /// The recorded op that produced this tensor, and which of its outputs
    /// this is (nil for leaves and for results computed without recording).
    var gradNode: GradNode?
    var outputIndex = 0

    enum Storage {
        /// Host values in a shared box, so reshaped views and in-place
        /// updates (optimiser steps) see the same data, as device views do.
        case host(HostStorage)
        case buffer(BufferView)
        /// No data (the meta device).
        case none
    }

    final class HostStorage {
        var values: [Float]
        init(_ values: [Float]) { self.values = values }
    }

    init(shape: [Int], device: Device, storage: Storage) {
        self.shape = shape
        self.device = device
        self.storage = storage
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// A tensor holding `values` (row-major) on `device`.
    ///
    /// - Throws: when `values.count` does not match `shape`, or the shape has
    ///   a zero or negative dimension.
    public convenience init(shape: [Int], values: [Float], on device: Device = .reference) throws {
        try Tensor.validate(shape: shape, op: "tensor")
        guard values.count == shape.reduce(1, *) else {
            throw CloverError.shapeMismatch(op: "tensor", shapes: [shape],
                                            reason: "\(values.count) values given for \(shape.reduce(1, *)) elements")
        }
        switch device.backend {
        case .meta:
            self.init(shape: shape, device: device, storage: .none)
        case .reference:
            self.init(shape: shape, device: device, storage: .host(HostStorage(values)))
        case let .openCL(ctx):
            let view = try ctx.allocateView(count: values.count)
            try ctx.upload(values, to: view)
            self.init(shape: shape, device: device, storage: .buffer(view))
        }
    }

    /// A tensor whose data is an existing view (no copy), e.g. at an offset
    /// into a larger buffer.
    public convenience init(shape: [Int], view: BufferView, on device: Device) throws {
        try Tensor.validate(shape: shape, op: "tensor")
        guard device.openCL != nil, view.count >= shape.reduce(1, *) else {
            throw CloverError.shapeMismatch(op: "tensor", shapes: [shape],
                                            reason: "a view of \(view.count) elements on \(device)")
        }
        self.init(shape: shape, device: device, storage: .buffer(view))
    }

    /// A tensor of zeros.
    ///
    /// - Parameter resident: the tensor lives across training steps
    ///   (optimiser state): its buffer is created afresh rather than taken
    ///   from the pool (see ``OpenCLContext/allocate(bytes:resident:)``).
    public static func zeros(_ shape: [Int], on device: Device = .reference, resident: Bool = false) throws -> Tensor {
        try full(shape, value: 0, on: device, resident: resident)
    }

    /// A tensor filled with one value (filled on the device, no upload).
    public static func full(_ shape: [Int], value: Float, on device: Device = .reference,
                            resident: Bool = false) throws -> Tensor {
        try validate(shape: shape, op: "full")
        let count = shape.reduce(1, *)
        if device.isMeta { return Tensor(shape: shape, device: device, storage: .none) }
        guard let context = device.openCL else {
            return try Tensor(shape: shape, values: [Float](repeating: value, count: count), on: device)
        }
        let view = try context.allocateView(count: count, resident: resident)
        try fill(view, with: value, on: context)
        return Tensor(shape: shape, device: device, storage: .buffer(view))
    }

    /// The values, row-major, copied to the host (waits for queued work).
    public func toArray() throws -> [Float] {
        switch storage {
        case let .host(box): return box.values
        case let .buffer(view):
            return try device.openCL!.download(view.slice(offset: 0, count: count), as: Float.self)
        case .none:
            throw CloverError.unsupported(op: "toArray", shapes: [shape], device: "meta", reason: "a meta tensor holds no values")
        }
    }

    /// Overwrites this tensor's values in place (an upload on OpenCL), so
    /// every holder of the tensor, and any arena it is a view of, sees them.
    public func copyValues(_ values: [Float]) throws {
        guard values.count == count else {
            throw CloverError.shapeMismatch(op: "copy values", shapes: [shape, [values.count]], reason: "element counts differ")
        }
        switch storage {
        case let .host(box): box.values = values
        case let .buffer(view): try device.openCL!.upload(values, to: view.slice(offset: 0, count: count))
        case .none: break
        }
    }

    /// This tensor's values on another device.
    public func to(_ other: Device) throws -> Tensor {
        if other === device { return self }
        return try Tensor(shape: shape, values: toArray(), on: other)
    }

    /// The same data seen with another shape of the same element count
    /// (no copy). Recorded for autograd like any op.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        let op = Reshape(newShape)
        _ = try op.outputShapes(for: [shape])
        let result = Tensor(shape: newShape, device: device, storage: storage)
        recordIfNeeded(op, inputs: [self], outputs: [result])
        return result
    }

    /// Copies `tensors` (all on one OpenCL device) into one new flat buffer,
    /// in order, and returns it with a view of each tensor's slice, so that a
    /// fused kernel can treat them as one array (an optimiser's parameters).
    /// Nil on the reference and meta devices, which have no buffers to share.
    ///
    /// - Throws: ``CloverError/deviceMismatch(op:devices:)`` when the tensors
    ///   are not all on one device.
    public static func packed(_ tensors: [Tensor], op: String) throws -> (flat: Tensor, parts: [Tensor])? {
        guard let device = tensors.first?.device, let context = device.openCL else { return nil }
        let total = tensors.reduce(0) { $0 + $1.count }
        // Resident: the arena lives as long as its owner, across steps.
        let flat = try context.allocateView(count: total, resident: true)
        var parts: [Tensor] = []
        var offset = 0
        for t in tensors {
            guard t.device === device, case .buffer = t.storage else {
                throw CloverError.deviceMismatch(op: op, devices: [device.description, t.device.description])
            }
            let slice = flat.slice(offset: offset, count: t.count)
            try context.copy(from: t.view, to: slice, count: t.count)
            parts.append(Tensor(shape: t.shape, device: device, storage: .buffer(slice)))
            offset += t.count
        }
        return (Tensor(shape: [total], device: device, storage: .buffer(flat)), parts)
    }

    /// A tensor sharing this one's data but cut from the autograd graph.
    public func detached() -> Tensor {
        Tensor(shape: shape, device: device, storage: storage)
    }

    public var description: String { "Tensor(\(formatShape(shape)) on \(device))" }

    /// The device data as a buffer view (nil on the reference device); for
    /// primitives defined outside Clover that enqueue their own commands.
    public var deviceView: BufferView? {
        guard case .buffer = storage else { return nil }
        return view
    }

    // MARK: Internal access for op implementations

    /// Host values (reference device only).
    var hostValues: [Float] {
        get {
            guard case let .host(box) = storage else { preconditionFailure("hostValues on \(device)") }
            return box.values
        }
        set {
            guard case let .host(box) = storage else { preconditionFailure("hostValues on \(device)") }
            box.values = newValue
        }
    }

    /// The device view (OpenCL devices only), trimmed to `count` elements.
    package var view: BufferView {
        guard case let .buffer(view) = storage else { preconditionFailure("view on \(device)") }
        return view.count == count ? view : view.slice(offset: 0, count: count)
    }

    static func validate(shape: [Int], op: String) throws {
        if shape.contains(where: { $0 <= 0 }) { throw CloverError.emptyTensor(op: op, shape: shape) }
    }
}
