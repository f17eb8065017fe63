/// Errors raised by Clover's ops: each names the op and the shapes or
/// devices involved, so a bad call never crashes or computes garbage.
public enum CloverError: Error, CustomStringConvertible, Equatable {
    /// Input shapes that the op's shape rule rejects.
    case shapeMismatch(op: String, shapes: [[Int]], reason: String)
    /// A parameter outside the op's domain (stride 0, label out of range...).
    case invalidArgument(op: String, reason: String)
    /// Inputs on different devices.
    case deviceMismatch(op: String, devices: [String])
    /// A tensor with no elements: every Clover op rejects them.
    case emptyTensor(op: String, shape: [Int])
    /// The op has no implementation for these shapes on this device.
    case unsupported(op: String, shapes: [[Int]], device: String, reason: String)
    /// The op's gradient is not defined (e.g. a backward primitive).
    case notDifferentiable(op: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, shapes, reason):
            return "\(op): shape mismatch \(shapes.map(formatShape).joined(separator: ", ")): \(reason)"
        case let .invalidArgument(op, reason):
            return "\(op): invalid argument: \(reason)"
        case let .deviceMismatch(op, devices):
            return "\(op): inputs live on different devices: \(devices.joined(separator: ", "))"
        case let .emptyTensor(op, shape):
            return "\(op): zero-size tensor \(formatShape(shape)) is not supported"
        case let .unsupported(op, shapes, device, reason):
            return "\(op): shapes \(shapes.map(formatShape).joined(separator: ", ")) cannot run on \(device): \(reason)"
        case let .notDifferentiable(op):
            return "\(op): no gradient is defined"
        }
    }
}

/// `[2, 3, 4]` as `2x3x4`.
public func formatShape(_ shape: [Int]) -> String {
    shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
}
