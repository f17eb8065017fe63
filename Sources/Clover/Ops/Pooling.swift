import CloverKernels
import CloverRuntime

// Max, average and global average pooling over NCHW images, and the squeeze-and-excitation
// channel scale. Kernels: Kernels/pooling.cl.

/// The work-group size of the per-plane reductions (`RWG` in pooling.cl).
let planeReductionGroupSize = 64

/// The window of a 2-D pooling op: kernel size, stride and zero padding per
/// spatial axis. The output size is `⌊(H + 2·padding − kernel) / stride⌋ + 1`
/// (PyTorch's `ceil_mode=False`).
public struct PoolWindow: Equatable, Sendable, CustomStringConvertible {
    /// Window size along H and W (each ≥ 1).
    public let kernelHeight: Int, kernelWidth: Int
    /// Step between windows along H and W (each ≥ 1).
    public let strideHeight: Int, strideWidth: Int
    /// Implicit padding on each side along H and W, at most half the kernel
    /// size (so every window holds a real element).
    public let paddingHeight: Int, paddingWidth: Int

    /// A window with separate sizes per axis.
    public init(kernelHeight: Int, kernelWidth: Int, strideHeight: Int, strideWidth: Int,
                paddingHeight: Int = 0, paddingWidth: Int = 0) {
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight
        self.paddingWidth = paddingWidth
    }

    /// A square window; `stride` defaults to `kernel` (as in PyTorch).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(kernelHeight: kernel, kernelWidth: kernel, strideHeight: stride ?? kernel,
                  strideWidth: stride ?? kernel, paddingHeight: padding, paddingWidth: padding)
    }

    /// `k3x3 s2x2 p1x1` style.
    public var description: String {
        "k\(kernelHeight)x\(kernelWidth) s\(strideHeight)x\(strideWidth) p\(paddingHeight)x\(paddingWidth)"
    }

    /// Checks the window and an `[N, C, H, W]` input; returns `[N, C, OH, OW]`.
    func outputShape(op: String, input: [Int], all shapes: [[Int]]) throws -> [Int] {
        guard kernelHeight >= 1, kernelWidth >= 1, strideHeight >= 1, strideWidth >= 1,
              paddingHeight >= 0, paddingWidth >= 0 else {
            throw CloverError.invalidArgument(op: op, reason: "window \(description): kernel and stride must be ≥ 1, padding ≥ 0")
        }
        // Every window then holds at least one real element, so a max is
        // always defined and padding never produces −inf outputs.
        guard paddingHeight <= kernelHeight / 2, paddingWidth <= kernelWidth / 2 else {
            throw CloverError.invalidArgument(op: op, reason: "window \(description): padding must be at most half the kernel size")
        }
        guard input.count == 4 else {
            throw CloverError.shapeMismatch(op: op, shapes: shapes, reason: "expects an NCHW input of rank 4")
        }
        let h = input[2] + 2 * paddingHeight - kernelHeight
        let w = input[3] + 2 * paddingWidth - kernelWidth
        guard h >= 0, w >= 0 else {
            throw CloverError.shapeMismatch(op: op, shapes: shapes,
                                            reason: "the padded input is smaller than the \(description) window")
        }
        return [input[0], input[1], h / strideHeight + 1, w / strideWidth + 1]
    }

    /// The int arguments of the pooling kernels: the item count `n` (the
    /// elements of `output` for forward kernels, of `input` for backward
    /// ones), then H, W, OH, OW, KH, KW, SH, SW, PH, PW.
    ///
    /// - Throws: when a tensor is too large for the kernels' `int` indexing.
    func kernelGeometry(op: String, items: Int, input: [Int], output: [Int]) throws -> PoolKernelGeometry {
        try checkPlaneSize(op: op, input, output)
        return PoolKernelGeometry(n: Int32(items), H: Int32(input[2]), W: Int32(input[3]),
                                  OH: Int32(output[2]), OW: Int32(output[3]),
                                  KH: Int32(kernelHeight), KW: Int32(kernelWidth),
                                  SH: Int32(strideHeight), SW: Int32(strideWidth),
                                  PH: Int32(paddingHeight), PW: Int32(paddingWidth))
    }
}

/// The int arguments the four windowed pooling kernels share, named as
/// `Kernels/pooling.cl` names them (`PoolWindow.kernelGeometry` builds them).
struct PoolKernelGeometry {
    let n, H, W, OH, OW, KH, KW, SH, SW, PH, PW: Int32
}

/// Throws unless every NCHW shape has fewer than 2^31 elements: the pooling
/// kernels index with 32-bit `int`s, so no work item divides in 64 bits.
func checkPlaneSize(op: String, _ shapes: [Int]...) throws {
    guard shapes.allSatisfy({ $0.reduce(1, *) <= Int(Int32.max) }) else {
        throw CloverError.unsupported(op: op, shapes: shapes, device: "OpenCL",
                                      reason: "the pooling kernels index with 32-bit integers (at most 2^31-1 elements per tensor)")
    }
}

/// The geometry the forward shape rule produced for a backward primitive's
/// `dy`, checked against the input size the backward op was built for.
private func checkBackwardShapes(op: String, window: PoolWindow, dy: [Int], input: [Int], all: [[Int]]) throws {
    let expected = try window.outputShape(op: op, input: input, all: all)
    guard dy == expected else {
        throw CloverError.shapeMismatch(op: op, shapes: all,
                                        reason: "dy must be \(formatShape(expected)) for input \(formatShape(input))")
    }
}

// MARK: Max pooling

/// 2-D max pooling over an `[N, C, H, W]` input.
///
/// Padding counts as −∞. Ties go to the first maximum in window scan order
/// (rows top to bottom, each row left to right), which is also where the
/// gradient goes; a NaN in a window makes the output NaN.
public struct MaxPooling2D: Primitive {
    public let window: PoolWindow
    public init(_ window: PoolWindow) { self.window = window }
    /// A square window; `stride` defaults to `kernel`.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(PoolWindow(kernel: kernel, stride: stride, padding: padding))
    }
    public var name: String { "maxpool2d" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return [try window.outputShape(op: name, input: inputs[0], all: inputs)]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let out = try window.outputShape(op: name, input: shapes[0], all: shapes)
        let argmax = referenceMaxPoolArgmax(inputs[0], input: shapes[0], output: out, window: window)
        return [argmax.map { inputs[0][$0] }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.maxpool2dForward)
        let x = inputs[0].view, y = outputs[0].view
        let g = try window.kernelGeometry(op: name, items: y.count, input: inputs[0].shape, output: outputs[0].shape)
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], Maxpool2dForwardArguments(
            n: g.n, H: g.H, W: g.W, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW, SH: g.SH, SW: g.SW, PH: g.PH, PW: g.PW,
            x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(MaxPooling2DBackward(window), [cotangents[0], inputs[0]])]
    }
}

/// For each output of a max pooling, the flat input index of its window's
/// first maximum (the scan order documented on ``MaxPooling2D``).
private func referenceMaxPoolArgmax(_ x: [Float], input: [Int], output: [Int], window: PoolWindow) -> [Int] {
    let (n, c, h, w) = (input[0], input[1], input[2], input[3])
    let (oh, ow) = (output[2], output[3])
    var result = [Int](repeating: 0, count: n * c * oh * ow)
    for plane in 0..<(n * c) {
        for i in 0..<oh {
            for j in 0..<ow {
                var best = -Float.infinity
                var bestIndex = -1
                for ki in 0..<window.kernelHeight {
                    let r = i * window.strideHeight - window.paddingHeight + ki
                    if r < 0 || r >= h { continue }
                    for kj in 0..<window.kernelWidth {
                        let col = j * window.strideWidth - window.paddingWidth + kj
                        if col < 0 || col >= w { continue }
                        let index = plane * h * w + r * w + col
                        let v = x[index]
                        if bestIndex < 0 || v > best || v.isNaN {
                            best = v
                            bestIndex = index
                        }
                    }
                }
                result[plane * oh * ow + i * ow + j] = bestIndex
            }
        }
    }
    return result
}

/// The gradient of ``MaxPooling2D``: each `dy` goes to its window's first
/// maximum. Inputs: `dy` `[N, C, OH, OW]` and the forward input `x`.
///
/// The OpenCL kernel gathers: each input element re-scans the windows that
/// cover it, so no indices are saved and no atomics are needed. Its program
/// is built per window and stride, so that its loops have constant bounds.
public struct MaxPooling2DBackward: Primitive {
    public let window: PoolWindow
    public init(_ window: PoolWindow) { self.window = window }
    public var name: String { "maxpool2d_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dy and x")
        }
        try checkBackwardShapes(op: name, window: window, dy: inputs[0], input: inputs[1], all: inputs)
        return [inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], x = inputs[1]
        let argmax = referenceMaxPoolArgmax(x, input: shapes[1], output: shapes[0], window: window)
        var dx = [Double](repeating: 0, count: x.count)
        for (o, i) in argmax.enumerated() { dx[i] += Double(dy[o]) }
        return [dx.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        // The window at compile time, so the kernel's loops unroll and POCL vectorises it
        // (pooling.cl); one program per window shape.
        let kernel = try context.kernel(.maxpool2dBackward, PoolingDefines(
            poolKh: window.kernelHeight, poolKw: window.kernelWidth,
            poolSh: window.strideHeight, poolSw: window.strideWidth))
        let dy = inputs[0].view, x = inputs[1].view, dx = outputs[0].view
        let g = try window.kernelGeometry(op: name, items: dx.count, input: inputs[1].shape, output: inputs[0].shape)
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize], Maxpool2dBackwardArguments(
            n: g.n, H: g.H, W: g.W, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW, SH: g.SH, SW: g.SW, PH: g.PH, PW: g.PW,
            dy: dy, x: x, dx: dx))
    }
}

// MARK: Average pooling

/// 2-D average pooling over an `[N, C, H, W]` input. Padded positions count
/// as zeros and the divisor is always the window area (PyTorch's
/// `count_include_pad=True`).
public struct AveragePooling2D: Primitive {
    public let window: PoolWindow
    public init(_ window: PoolWindow) { self.window = window }
    /// A square window; `stride` defaults to `kernel`.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(PoolWindow(kernel: kernel, stride: stride, padding: padding))
    }
    public var name: String { "avgpool2d" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "one input") }
        return [try window.outputShape(op: name, input: inputs[0], all: inputs)]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], s = shapes[0]
        let out = try window.outputShape(op: name, input: s, all: shapes)
        let (h, w, oh, ow) = (s[2], s[3], out[2], out[3])
        let area = Double(window.kernelHeight * window.kernelWidth)
        var y = [Float](repeating: 0, count: out.reduce(1, *))
        for plane in 0..<(s[0] * s[1]) {
            for i in 0..<oh {
                for j in 0..<ow {
                    var sum = 0.0
                    for ki in 0..<window.kernelHeight {
                        for kj in 0..<window.kernelWidth {
                            let r = i * window.strideHeight - window.paddingHeight + ki
                            let col = j * window.strideWidth - window.paddingWidth + kj
                            if r >= 0 && r < h && col >= 0 && col < w { sum += Double(x[plane * h * w + r * w + col]) }
                        }
                    }
                    y[plane * oh * ow + i * ow + j] = Float(sum / area)
                }
            }
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.avgpool2dForward)
        let x = inputs[0].view, y = outputs[0].view
        let g = try window.kernelGeometry(op: name, items: y.count, input: inputs[0].shape, output: outputs[0].shape)
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize], Avgpool2dForwardArguments(
            n: g.n, H: g.H, W: g.W, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW, SH: g.SH, SW: g.SW, PH: g.PH, PW: g.PW,
            x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(AveragePooling2DBackward(window, inputShape: inputs[0].shape), [cotangents[0]])]
    }
}

/// The gradient of ``AveragePooling2D``: each `dy` spread evenly over its window.
/// Input: `dy` `[N, C, OH, OW]`; the forward input's shape is a parameter
/// because several input sizes pool to the same output size.
public struct AveragePooling2DBackward: Primitive {
    public let window: PoolWindow
    /// The forward input's shape `[N, C, H, W]`.
    public let inputShape: [Int]
    public init(_ window: PoolWindow, inputShape: [Int]) {
        self.window = window
        self.inputShape = inputShape
    }
    public var name: String { "avgpool2d_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dy") }
        try checkBackwardShapes(op: name, window: window, dy: inputs[0], input: inputShape, all: inputs + [inputShape])
        return [inputShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], out = shapes[0]
        let (h, w, oh, ow) = (inputShape[2], inputShape[3], out[2], out[3])
        let area = Double(window.kernelHeight * window.kernelWidth)
        var dx = [Double](repeating: 0, count: inputShape.reduce(1, *))
        for plane in 0..<(out[0] * out[1]) {
            for i in 0..<oh {
                for j in 0..<ow {
                    let g = Double(dy[plane * oh * ow + i * ow + j]) / area
                    for ki in 0..<window.kernelHeight {
                        for kj in 0..<window.kernelWidth {
                            let r = i * window.strideHeight - window.paddingHeight + ki
                            let col = j * window.strideWidth - window.paddingWidth + kj
                            if r >= 0 && r < h && col >= 0 && col < w { dx[plane * h * w + r * w + col] += g }
                        }
                    }
                }
            }
        }
        return [dx.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let kernel = try context.kernel(.avgpool2dBackward)
        let dy = inputs[0].view, dx = outputs[0].view
        let g = try window.kernelGeometry(op: name, items: dx.count, input: inputShape, output: inputs[0].shape)
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize], Avgpool2dBackwardArguments(
            n: g.n, H: g.H, W: g.W, OH: g.OH, OW: g.OW, KH: g.KH, KW: g.KW, SH: g.SH, SW: g.SW, PH: g.PH, PW: g.PW,
            dy: dy, dx: dx))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        // Linear in dy, and the exact transpose of the forward pooling.
        [try apply1(AveragePooling2D(window), [cotangents[0]])]
    }
}

// MARK: Global average pooling

/// The mean over each `(n, c)` plane: `[N, C, H, W]` → `[N, C, 1, 1]`
/// (PyTorch's `AdaptiveAvgPool2d(1)`).
public struct GlobalAveragePooling2D: Primitive {
    public init() {}
    public var name: String { "global_avgpool" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 4 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects one NCHW input of rank 4")
        }
        return [[inputs[0][0], inputs[0][1], 1, 1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], s = shapes[0]
        let planes = s[0] * s[1], hw = s[2] * s[3]
        var y = [Float](repeating: 0, count: planes)
        for p in 0..<planes {
            var sum = 0.0
            for j in 0..<hw { sum += Double(x[p * hw + j]) }
            y[p] = Float(sum / Double(hw))
        }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[0].shape
        try checkPlaneSize(op: name, s)
        let planes = s[0] * s[1], hw = s[2] * s[3]
        let kernel = try context.kernel(.globalAvgpoolForward)
        let x = inputs[0].view, y = outputs[0].view
        try context.launch(kernel, global: [planes * planeReductionGroupSize], local: [planeReductionGroupSize],
                           GlobalAvgpoolForwardArguments(planes: Int32(planes), HW: Int32(hw), x: x, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(GlobalAveragePooling2DBackward(inputShape: inputs[0].shape), [cotangents[0]])]
    }
}

/// The gradient of ``GlobalAveragePooling2D``: `dx[n, c, h, w] = dy[n, c] / (H·W)`.
/// Input: `dy` `[N, C, 1, 1]`; the forward input's shape is a parameter.
public struct GlobalAveragePooling2DBackward: Primitive {
    /// The forward input's shape `[N, C, H, W]`.
    public let inputShape: [Int]
    public init(inputShape: [Int]) { self.inputShape = inputShape }
    public var name: String { "global_avgpool_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputShape.count == 4, inputShape.allSatisfy({ $0 > 0 }),
              inputs[0] == [inputShape[0], inputShape[1], 1, 1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs + [inputShape],
                                            reason: "dy must be [N, C, 1, 1] for an NCHW input")
        }
        return [inputShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0]
        let hw = inputShape[2] * inputShape[3]
        var dx = [Float](repeating: 0, count: inputShape.reduce(1, *))
        for i in 0..<dx.count { dx[i] = Float(Double(dy[i / hw]) / Double(hw)) }
        return [dx]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try checkPlaneSize(op: name, inputShape)
        let hw = inputShape[2] * inputShape[3]
        let kernel = try context.kernel(.globalAvgpoolBackward)
        let dy = inputs[0].view, dx = outputs[0].view
        try context.launch(kernel, global: [dx.count], local: [pointwiseGroupSize],
                           GlobalAvgpoolBackwardArguments(n: Int32(dx.count), HW: Int32(hw), dy: dy, dx: dx))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        [try apply1(GlobalAveragePooling2D(), [cotangents[0]])]
    }
}

// MARK: Squeeze-and-excitation channel scale

/// `y[n, c, h, w] = x[n, c, h, w] · s[n, c]`: the squeeze-and-excitation
/// rescaling. Inputs: `x` `[N, C, H, W]` and `s` `[N, C, 1, 1]`.
public struct ChannelScale: Primitive {
    public init() {}
    public var name: String { "channel_scale" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0].count == 4, inputs[1] == [inputs[0][0], inputs[0][1], 1, 1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects x [N, C, H, W] and s [N, C, 1, 1]")
        }
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let x = inputs[0], s = inputs[1]
        let hw = shapes[0][2] * shapes[0][3]
        var y = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count { y[i] = Float(Double(x[i]) * Double(s[i / hw])) }
        return [y]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        try checkPlaneSize(op: name, inputs[0].shape)
        let hw = inputs[0].shape[2] * inputs[0].shape[3]
        let kernel = try context.kernel(.channelScaleForward)
        let x = inputs[0].view, s = inputs[1].view, y = outputs[0].view
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ChannelScaleForwardArguments(n: Int32(y.count), HW: Int32(hw), x: x, s: s, y: y))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        let dy = cotangents[0]
        return [try apply1(ChannelScale(), [dy, inputs[1]]),
                try apply1(ChannelScaleBackward(), [dy, inputs[0]])]
    }
}

/// The scale gradient of ``ChannelScale``: `ds[n, c] = Σ_{h,w} dy · x`.
/// Inputs: `dy` and `x`, both `[N, C, H, W]`; output `[N, C, 1, 1]`.
public struct ChannelScaleBackward: Primitive {
    public init() {}
    public var name: String { "channel_scale_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2, inputs[0].count == 4, inputs[0] == inputs[1] else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dy and x of the same NCHW shape")
        }
        return [[inputs[0][0], inputs[0][1], 1, 1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0], x = inputs[1], s = shapes[0]
        let planes = s[0] * s[1], hw = s[2] * s[3]
        var ds = [Float](repeating: 0, count: planes)
        for p in 0..<planes {
            var sum = 0.0
            for j in 0..<hw { sum += Double(dy[p * hw + j]) * Double(x[p * hw + j]) }
            ds[p] = Float(sum)
        }
        return [ds]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[0].shape
        try checkPlaneSize(op: name, s)
        let planes = s[0] * s[1], hw = s[2] * s[3]
        let kernel = try context.kernel(.channelScaleBackwardScale)
        let dy = inputs[0].view, x = inputs[1].view, ds = outputs[0].view
        try context.launch(kernel, global: [planes * planeReductionGroupSize], local: [planeReductionGroupSize],
                           ChannelScaleBackwardScaleArguments(planes: Int32(planes), HW: Int32(hw),
                                                              dy: dy, x: x, ds: ds))
    }
}

/// 2-D max pooling with a square window; see ``MaxPooling2D``.
public func maxPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
    try apply1(MaxPooling2D(kernel: kernel, stride: stride, padding: padding), [x])
}
/// 2-D average pooling with a square window; see ``AveragePooling2D``.
public func avgPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
    try apply1(AveragePooling2D(kernel: kernel, stride: stride, padding: padding), [x])
}
/// The mean of each `(n, c)` plane, as `[N, C, 1, 1]`.
public func globalAvgPool2d(_ x: Tensor) throws -> Tensor { try apply1(GlobalAveragePooling2D(), [x]) }
/// `x · s` with `s` `[N, C, 1, 1]` broadcast over each plane (squeeze-and-excitation).
public func channelScale(_ x: Tensor, by s: Tensor) throws -> Tensor { try apply1(ChannelScale(), [x, s]) }
