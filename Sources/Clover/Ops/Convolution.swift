import CloverKernels
import CloverRuntime

// 2-D convolution over NCHW tensors, forward and backward.
// Kernels: Kernels/conv.cl (im2col, col2im, bias), Kernels/depthwise.cl and Kernels/grouped.cl (the
// direct paths); every GEMM goes through CLBlast.
//
// Each OpenCL pass runs the algorithm ConvAlgorithmSelection (ConvolutionSelection.swift) chooses for
// its geometry: measured, or a heuristic default. The candidates are the shape class's specialised
// path where it has one (`Convolution2DGeometry.algorithm`, documented on
// `Convolution2DParameters.algorithm(input:weight:)`, in ConvolutionKernels.swift): pointwiseGEMM
// (1x1 stride 1 padding 0, GEMM on the tensors or their [C, N·P] relayout, a fixed number of
// launches per pass), depthwise or groupedDirect (few channels per group); implicit GEMM
// (ConvolutionImplicitGEMM.swift, any geometry); and the general im2col path below.
//
// The general path lowers each convolution to GEMMs over column matrices:
//   forward          Y[n, g]    = W_g (O/G × K)  ·  col[n, g] (K × P)
//   backward data    dcol[n, g] = W_gᵀ (K × O/G) ·  dY[n, g] (O/G × P),  then col2im
//   backward weight  dW_g      += dY[n, g] (O/G × P) · col[n, g]ᵀ (P × K)
// with K = C/G·KH·KW and P = OH·OW. Each sample is one CLBlast call, strided-batched over the
// groups (the group blocks of W, col and Y are evenly spaced, so no stride is ever 0). Samples are
// processed in chunks whose column matrices fit in `columnBufferLimitBytes`.

/// Stride, padding, dilation and groups of a 2-D convolution, with PyTorch's
/// semantics: `OH = (H + 2·padH − dilH·(KH − 1) − 1) / strideH + 1`.
public struct Convolution2DParameters: Equatable, Sendable, CustomStringConvertible {
    public var strideH: Int
    public var strideW: Int
    public var paddingH: Int
    public var paddingW: Int
    public var dilationH: Int
    public var dilationW: Int
    /// Input and output channels are split into this many groups; group `g`
    /// of the output sees only group `g` of the input (`groups == C` is a
    /// depthwise convolution).
    public var groups: Int

    /// Parameters given as (height, width) pairs.
    public init(stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                groups: Int = 1) {
        (strideH, strideW) = stride
        (paddingH, paddingW) = padding
        (dilationH, dilationW) = dilation
        self.groups = groups
    }

    /// The same value for height and width.
    public init(stride: Int, padding: Int = 0, dilation: Int = 1, groups: Int = 1) {
        self.init(stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation), groups: groups)
    }

    public var description: String {
        "stride \(strideH)x\(strideW) padding \(paddingH)x\(paddingW) dilation \(dilationH)x\(dilationW) groups \(groups)"
    }

    /// The output shape `[N, O, OH, OW]` of a convolution of an input
    /// `[N, C, H, W]` with a weight `[O, C/groups, KH, KW]`.
    ///
    /// - Throws: a ``CloverError`` naming `conv2d` and both shapes when the
    ///   parameters or shapes are invalid.
    public func outputShape(input: [Int], weight: [Int]) throws -> [Int] {
        let g = try geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
        return [g.n, g.o, g.oh, g.ow]
    }

    /// Throws unless stride and dilation are positive, padding non-negative
    /// and groups positive.
    func validate(op: String, shapes: [[Int]]) throws {
        let context = "(shapes \(shapes.map(formatShape).joined(separator: ", ")))"
        guard strideH > 0, strideW > 0 else {
            throw CloverError.invalidArgument(op: op, reason: "stride must be positive, got \(strideH)x\(strideW) \(context)")
        }
        guard dilationH > 0, dilationW > 0 else {
            throw CloverError.invalidArgument(op: op, reason: "dilation must be positive, got \(dilationH)x\(dilationW) \(context)")
        }
        guard paddingH >= 0, paddingW >= 0 else {
            throw CloverError.invalidArgument(op: op, reason: "padding must be non-negative, got \(paddingH)x\(paddingW) \(context)")
        }
        guard groups > 0 else {
            throw CloverError.invalidArgument(op: op, reason: "groups must be positive, got \(groups) \(context)")
        }
    }

    /// The sizes of a convolution of `input` with `weight`, or an error
    /// naming `op` and `shapes` (the caller's full input list).
    func geometry(input x: [Int], weight w: [Int], op: String, shapes: [[Int]]) throws -> Convolution2DGeometry {
        func mismatch(_ reason: String) -> CloverError { .shapeMismatch(op: op, shapes: shapes, reason: reason) }
        try validate(op: op, shapes: shapes)
        guard x.count == 4 else { throw mismatch("input must be rank 4 [N, C, H, W], got rank \(x.count)") }
        guard w.count == 4 else { throw mismatch("weight must be rank 4 [O, C/groups, KH, KW], got rank \(w.count)") }
        guard (x + w).allSatisfy({ $0 > 0 }) else { throw mismatch("every dimension must be positive") }
        let c = x[1], o = w[0], perGroup = w[1], kh = w[2], kw = w[3]
        guard c % groups == 0 else { throw mismatch("input channels \(c) are not divisible by groups \(groups)") }
        guard perGroup * groups == c else {
            throw mismatch("weight takes \(perGroup) input channels per group, but \(c) input channels / \(groups) groups = \(c / groups)")
        }
        guard o % groups == 0 else { throw mismatch("output channels \(o) are not divisible by groups \(groups)") }
        let extentH = dilationH * (kh - 1) + 1, extentW = dilationW * (kw - 1) + 1
        let paddedH = x[2] + 2 * paddingH, paddedW = x[3] + 2 * paddingW
        // Checked explicitly: with a negative numerator, integer division
        // would truncate towards zero and report a bogus 1-pixel output.
        guard extentH <= paddedH, extentW <= paddedW else {
            throw mismatch("kernel \(kh)x\(kw) with dilation \(dilationH)x\(dilationW) spans \(extentH)x\(extentW), "
                           + "larger than the padded input \(paddedH)x\(paddedW)")
        }
        return Convolution2DGeometry(n: x[0], c: c, h: x[2], w: x[3], o: o, kh: kh, kw: kw,
                              oh: (paddedH - extentH) / strideH + 1, ow: (paddedW - extentW) / strideW + 1,
                              parameters: self)
    }
}

/// The sizes of one convolution, derived once by the shape rule.
struct Convolution2DGeometry {
    let n, c, h, w: Int
    let o, kh, kw: Int
    let oh, ow: Int
    let parameters: Convolution2DParameters

    var groups: Int { parameters.groups }
    /// Input and output channels per group.
    var cg: Int { c / groups }
    var og: Int { o / groups }
    /// GEMM inner size per group: rows of a group's column block.
    var k: Int { cg * kh * kw }
    /// Output pixels per channel: columns of the column matrix.
    var p: Int { oh * ow }
    var inputPerSample: Int { c * h * w }
    var outputPerSample: Int { o * p }
    var columnPerSample: Int { c * kh * kw * p }
}

/// The default cap on one column buffer (elements of im2col for a chunk of
/// samples): large enough that big batches need few chunks, small enough to
/// fit beside the activations on an 8 GiB card.
public let defaultConvColumnBufferLimitBytes = 256 << 20

/// An activation fused into a convolution's output (`Kernels/convgemm.cl`'s
/// `EPI` epilogue on the implicit-GEMM path; a separate elementwise pass on
/// the others).
public enum ConvActivation: String, Sendable, CaseIterable {
    case none, relu, silu

    /// The `EPI` macro value of `convgemm.cl`.
    var macro: String {
        switch self {
        case .none: return "EPI_NONE"
        case .relu: return "EPI_RELU"
        case .silu: return "EPI_SILU"
        }
    }
}

/// 2-D cross-correlation (what deep-learning frameworks call convolution),
/// optionally followed by a fused ``ConvActivation``.
///
/// Inputs: `x` `[N, C, H, W]`, `weight` `[O, C/groups, KH, KW]` and
/// optionally `bias` `[O]`; output `[N, O, OH, OW]` (with
/// ``ConvActivation/silu``, a second output of the same shape: the
/// pre-activation).
///
/// On OpenCL each pass — forward, data gradient and weight gradient — runs
/// the algorithm ``ConvAlgorithmSelection`` chooses for its geometry (shapes,
/// stride, padding, dilation and groups), so one pass of one shape always
/// takes the same path:
///
/// - a measured choice, from `clover tune conv` or `clover train --autotune`,
///   persisted per device;
/// - else the heuristic default: on GPUs, the specialised path of the shape's
///   class (``Convolution2DParameters/algorithm(input:weight:)``: CLBlast GEMM
///   straight on the tensors for 1x1 kernels, direct kernels for depthwise and
///   thin grouped convolutions) where it has one, and implicit GEMM
///   (``ConvAlgorithm/implicitGEMM``) with a tiled parameter set for every
///   other geometry; on CPUs, implicit GEMM's vector kernels for nearly every
///   geometry.
///
/// The candidates measured are the class's specialised path,
/// im2col + CLBlast GEMM (``ConvAlgorithm/im2colGEMM``) and implicit GEMM
/// with each parameter set of ``ConvGemmParameters/searchSpace`` the device
/// can use. ``Convolution2D/forcedChoice`` overrides the selection.
public struct Convolution2D: Primitive {
    public let parameters: Convolution2DParameters
    /// Applied to the output (after the bias) in the same pass. With
    /// ``ConvActivation/silu`` the primitive has a second output, the
    /// pre-activation, which its gradient reads (`f'` needs `z`; ReLU's mask
    /// can be read from the output itself).
    public var activation: ConvActivation = .none
    /// Upper bound on the im2col buffer of the OpenCL path; the batch is
    /// processed in chunks of samples that fit (at least one sample). Only
    /// the ``ConvAlgorithm/im2colGEMM`` path has a column buffer.
    public var columnBufferLimitBytes: Int
    /// Runs every pass (and the gradients `vjp` makes) on this algorithm
    /// instead of the measured or heuristic choice; conformance cases sweep
    /// ``ConvAlgorithm/im2colGEMM`` and every implicit-GEMM parameter set,
    /// which cover every geometry.
    public var forcedChoice: ConvChoice?
    /// The convolution → batch-norm fusion this convolution feeds: where its
    /// kernels can, it writes its output's per-channel batch-norm partials
    /// into the link as it stores the output (see ``ChannelStatisticsLink``).
    public var statisticsLink: ChannelStatisticsLink?

    public init(_ parameters: Convolution2DParameters = Convolution2DParameters(), activation: ConvActivation = .none,
                columnBufferLimitBytes: Int = defaultConvColumnBufferLimitBytes, forcedChoice: ConvChoice? = nil,
                statisticsLink: ChannelStatisticsLink? = nil) {
        self.parameters = parameters
        self.activation = activation
        self.columnBufferLimitBytes = columnBufferLimitBytes
        self.forcedChoice = forcedChoice
        self.statisticsLink = statisticsLink
    }

    public var name: String { activation == .none ? "conv2d" : "conv2d_\(activation.rawValue)" }

    func geometry(_ shapes: [[Int]]) throws -> Convolution2DGeometry {
        guard shapes.count == 2 || shapes.count == 3 else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "expects x, weight and optionally bias")
        }
        let g = try parameters.geometry(input: shapes[0], weight: shapes[1], op: name, shapes: shapes)
        if shapes.count == 3 && shapes[2] != [g.o] {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "bias must be [\(g.o)], one per output channel")
        }
        return g
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        let g = try geometry(inputs)
        let y = [g.n, g.o, g.oh, g.ow]
        return activation == .silu ? [y, y] : [y]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let z = try convolutionReference(inputs, shapes: shapes)
        switch activation {
        case .none: return [z]
        case .relu: return [z.map { Float(max(Double($0), 0)) }]
        case .silu: return [z.map { Float(ActivationKind.silu.referenceValue(Double($0))) }, z]
        }
    }

    /// The convolution itself (bias included), before any activation.
    private func convolutionReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [Float] {
        let outShape = try outputShapes(for: shapes)[0]
        // A tensor-core choice multiplies TF32 operands: the reference rounds its inputs alike.
        let tf32 = forcedChoice?.roundsToTF32 == true
        let x = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let wt = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
        let bias: [Float]? = inputs.count == 3 ? inputs[2] : nil
        let (batch, channels, height, width) = (shapes[0][0], shapes[0][1], shapes[0][2], shapes[0][3])
        let (outChannels, perGroup, kernelH, kernelW) = (shapes[1][0], shapes[1][1], shapes[1][2], shapes[1][3])
        let (outH, outW) = (outShape[2], outShape[3])
        let p = parameters
        let outPerGroup = outChannels / p.groups
        var y = [Float](repeating: 0, count: outShape.reduce(1, *))
        for n in 0..<batch {
            for oc in 0..<outChannels {
                let group = oc / outPerGroup
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        var sum = bias.map { Double($0[oc]) } ?? 0
                        for ci in 0..<perGroup {
                            let ic = group * perGroup + ci
                            for ky in 0..<kernelH {
                                let iy = oy * p.strideH - p.paddingH + ky * p.dilationH
                                if iy < 0 || iy >= height { continue }
                                for kx in 0..<kernelW {
                                    let ix = ox * p.strideW - p.paddingW + kx * p.dilationW
                                    if ix < 0 || ix >= width { continue }
                                    let xv = x[((n * channels + ic) * height + iy) * width + ix]
                                    let wv = wt[((oc * perGroup + ci) * kernelH + ky) * kernelW + kx]
                                    sum += Double(xv) * Double(wv)
                                }
                            }
                        }
                        y[((n * outChannels + oc) * outH + oy) * outW + ox] = Float(sum)
                    }
                }
            }
        }
        return y
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let g = try geometry(inputs.map(\.shape))
        let x = inputs[0].view, w = inputs[1].view, y = outputs[0].view
        let bias = inputs.count == 3 ? inputs[2].view : nil
        let choice = try forcedChoice ?? ConvAlgorithmSelection.choice(context, g, .forward)
        // Under a declared fusion the vector kernels write batch norm's partial statistics as they
        // store y, and the batch norm given the same link takes them instead of a pass over y.
        let statistics = try convForwardPass(
            context, g, choice, op: name, shapes: inputs.map(\.shape), x: x, w: w, bias: bias, y: y,
            activation: activation, preActivation: activation == .silu ? outputs[1].view : nil,
            statistics: statisticsLink != nil && context.executionOptions.fusesBatchNormStatistics,
            columnBufferLimitBytes: columnBufferLimitBytes)
        statisticsLink?.deposit(statistics, for: y)
    }
}

/// The forward pass on `choice`'s path, bias and `activation` included:
/// fused into the implicit-GEMM kernels' store, else a pass over the output
/// after it (with ``ConvActivation/silu``, `preActivation` receives z).
/// With `statistics`, the path's batch-norm partials of y where it writes
/// them (the vector kernels without an activation), else nil.
@discardableResult
func convForwardPass(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ choice: ConvChoice, op name: String,
                     shapes: [[Int]], x: BufferView, w: BufferView, bias: BufferView?, y: BufferView,
                     activation: ConvActivation = .none, preActivation: BufferView? = nil, statistics: Bool = false,
                     columnBufferLimitBytes: Int) throws -> ChannelStatistics? {
    // The convolution's own output: y, unless an activation's input must be kept.
    let z = activation == .silu ? try requirePreActivation(preActivation, op: name) : y
    let setting = ConvPassSetting(context: context, geometry: g, choice: choice, op: name, shapes: shapes,
                                  columnBufferLimitBytes: columnBufferLimitBytes)
    let biasApplied: Bool
    switch try setting.engine().forward(setting, x: x, w: w, bias: bias, y: y, z: z, activation: activation,
                                               preActivation: preActivation, statistics: statistics) {
    case .complete(let partials):
        // The engine's store applied the bias and the activation.
        return partials
    case .convolved(let withBias):
        biasApplied = withBias
    }
    if let bias, !biasApplied {
        guard z.count <= Int(Int32.max) else {
            throw CloverError.unsupported(op: name, shapes: shapes, device: context.device.description,
                                          reason: "the bias kernel indexes the output in 32 bits")
        }
        let kernel = try convKernel(context, .convBiasForward)
        try context.launch(kernel, global: [z.count], local: [pointwiseGroupSize],
                           ConvBiasForwardArguments(total: UInt32(z.count), O: Int32(g.o), P: Int32(g.p), bias: bias, y: z))
    }
    switch activation {
    case .none: break
    case .relu:
        // In place: each item reads its element before writing it.
        let kernel = try context.kernel(.reluForward)
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ReluForwardArguments(n: UInt64(y.count), x: y, y: y))
    case .silu:
        let kernel = try context.kernel(.activationForward, ActivationDefines(act: ActivationKind.silu.macro))
        try context.launch(kernel, global: [y.count], local: [pointwiseGroupSize],
                           ActivationForwardArguments(n: UInt64(y.count), x: z, y: y))
    }
    return nil
}

func requirePreActivation(_ view: BufferView?, op: String) throws -> BufferView {
    guard let view else {
        throw CloverError.invalidArgument(op: op, reason: "a SiLU epilogue needs the pre-activation output")
    }
    return view
}

    /// The general path: im2col of a chunk of samples into one wide column
    /// matrix [C·KH·KW, nb·P], one GEMM per group for the whole chunk, then a
    /// transpose of the [O, nb, P] result into NCHW. Few large GEMMs instead
    /// of one per sample: CLBlast is efficient only on large matrices.
func im2colForward(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                   x: BufferView, w: BufferView, y: BufferView, columnBufferLimitBytes: Int) throws {
        let chunk = g.samplesPerChunk(limitBytes: columnBufferLimitBytes)
        let col = try context.allocateView(count: chunk * g.columnPerSample)
        let wide = try context.allocateView(count: chunk * g.outputPerSample)
        var n0 = 0
        while n0 < g.n {
            let nb = min(chunk, g.n - n0)
            let cols = nb * g.p
            try convIm2col(context, g, x: x.slice(offset: n0 * g.inputPerSample, count: nb * g.inputPerSample),
                           samples: nb, col: col)
            // beta = 0: CLBlast then never reads C, so a recycled buffer's
            // garbage (even NaN) cannot leak into y.
            try clblastGemm(context, transposeA: false, transposeB: false, m: g.og, n: cols, k: g.k, alpha: 1,
                            a: w, lda: g.k, strideA: g.og * g.k,
                            b: col, ldb: cols, strideB: g.k * cols,
                            beta: 0, c: wide, ldc: cols, strideC: g.og * cols, batch: g.groups)
            try transposeMiddleAxes(wide.slice(offset: 0, count: nb * g.outputPerSample), dims: [1, g.o, nb, g.p],
                                    into: y.slice(offset: n0 * g.outputPerSample, count: nb * g.outputPerSample),
                                    on: context)
            n0 += nb
        }
    }

extension Convolution2D {
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try vjp(inputs: inputs, outputs: outputs, cotangents: cotangents, request: .all(inputs.count))
    }

    /// Runs only the gradient primitives whose inputs need one: a network's
    /// first convolution, whose input is data, skips its data gradient.
    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor], request: GradientRequest) throws -> [Tensor?] {
        let x = inputs[0], weight = inputs[1]
        // The cotangent of the convolution's own output z: through the activation's derivative
        // (ReLU's mask from the output, SiLU's from the saved pre-activation), plus whatever
        // reached z directly.
        let dy: Tensor
        switch activation {
        case .none: dy = cotangents[0]
        case .relu: dy = try apply1(ReLUBackward(), [cotangents[0], outputs[0]])
        case .silu:
            let through = try apply1(ActivationBackward(.silu), [cotangents[0], outputs[1]])
            dy = cotangents[1].isSharedZeros ? through : try add(through, cotangents[1])
        }
        let dx = request.needs(0)
            ? try apply1(Convolution2DBackwardData(parameters, inputShape: x.shape,
                                                   columnBufferLimitBytes: columnBufferLimitBytes, forcedChoice: forcedChoice),
                         [dy, weight])
            : nil
        let dw = request.needs(1)
            ? try apply(Convolution2DBackwardWeight(parameters, weightShape: weight.shape,
                                             columnBufferLimitBytes: columnBufferLimitBytes, forcedChoice: forcedChoice), [dy, x],
                        into: [request.destination(1)])[0]
            : nil
        var grads: [Tensor?] = [dx, dw]
        if inputs.count == 3 {
            grads.append(request.needs(2)
                ? try apply(Convolution2DBackwardBias(), [dy], into: [request.destination(2)])[0] : nil)
        }
        return grads
    }
}

/// Gradient of ``Convolution2D`` with respect to its input: inputs `dy`
/// `[N, O, OH, OW]` and `weight`; output `dx` of the stored input shape.
public struct Convolution2DBackwardData: Primitive {
    public let parameters: Convolution2DParameters
    /// The forward input's shape `[N, C, H, W]`: several input sizes map to
    /// the same output size when the stride exceeds 1, so it cannot be inferred.
    public let inputShape: [Int]
    public var columnBufferLimitBytes: Int
    /// See ``Convolution2D/forcedChoice``.
    public var forcedChoice: ConvChoice?

    public init(_ parameters: Convolution2DParameters, inputShape: [Int],
                columnBufferLimitBytes: Int = defaultConvColumnBufferLimitBytes, forcedChoice: ConvChoice? = nil) {
        self.parameters = parameters
        self.inputShape = inputShape
        self.columnBufferLimitBytes = columnBufferLimitBytes
        self.forcedChoice = forcedChoice
    }

    public var name: String { "conv2d_backward_data" }

    func geometry(_ shapes: [[Int]]) throws -> Convolution2DGeometry {
        guard shapes.count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "expects dy and weight")
        }
        let g = try parameters.geometry(input: inputShape, weight: shapes[1], op: name, shapes: [inputShape] + shapes)
        guard shapes[0] == [g.n, g.o, g.oh, g.ow] else {
            throw CloverError.shapeMismatch(op: name, shapes: [inputShape] + shapes,
                                            reason: "dy must be \(formatShape([g.n, g.o, g.oh, g.ow])), the forward output shape")
        }
        return g
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        _ = try geometry(inputs)
        return [inputShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        _ = try outputShapes(for: shapes)
        let tf32 = forcedChoice?.roundsToTF32 == true
        let dy = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let wt = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
        let (batch, channels, height, width) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        let (outChannels, outH, outW) = (shapes[0][1], shapes[0][2], shapes[0][3])
        let (perGroup, kernelH, kernelW) = (shapes[1][1], shapes[1][2], shapes[1][3])
        let p = parameters
        let outPerGroup = outChannels / p.groups
        // Scatter form: every (output pixel, tap) pair adds its share to the
        // input pixel it read in the forward pass.
        var dx = [Double](repeating: 0, count: inputShape.reduce(1, *))
        for n in 0..<batch {
            for oc in 0..<outChannels {
                let group = oc / outPerGroup
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        let g = Double(dy[((n * outChannels + oc) * outH + oy) * outW + ox])
                        for ci in 0..<perGroup {
                            let ic = group * perGroup + ci
                            for ky in 0..<kernelH {
                                let iy = oy * p.strideH - p.paddingH + ky * p.dilationH
                                if iy < 0 || iy >= height { continue }
                                for kx in 0..<kernelW {
                                    let ix = ox * p.strideW - p.paddingW + kx * p.dilationW
                                    if ix < 0 || ix >= width { continue }
                                    let wv = wt[((oc * perGroup + ci) * kernelH + ky) * kernelW + kx]
                                    dx[((n * channels + ic) * height + iy) * width + ix] += g * Double(wv)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [dx.map { Float($0) }]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let g = try geometry(inputs.map(\.shape))
        let shapes = [inputShape] + inputs.map(\.shape)
        let dy = inputs[0].view, w = inputs[1].view, dx = outputs[0].view
        let choice = try forcedChoice ?? ConvAlgorithmSelection.choice(context, g, .backwardData)
        try convBackwardDataPass(context, g, choice, op: name, shapes: shapes, dy: dy, w: w, dx: dx,
                                 columnBufferLimitBytes: columnBufferLimitBytes)
    }
}

/// The data gradient on `choice`'s path (its engine's `backwardData`).
func convBackwardDataPass(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ choice: ConvChoice, op name: String,
                          shapes: [[Int]], dy: BufferView, w: BufferView, dx: BufferView,
                          columnBufferLimitBytes: Int) throws {
    let setting = ConvPassSetting(context: context, geometry: g, choice: choice, op: name, shapes: shapes,
                                  columnBufferLimitBytes: columnBufferLimitBytes)
    try setting.engine().backwardData(setting, dy: dy, w: w, dx: dx)
}

/// Gradient of ``Convolution2D`` with respect to its weight: inputs `dy`
/// `[N, O, OH, OW]` and `x`; output `dw` of the stored weight shape.
public struct Convolution2DBackwardWeight: Primitive {
    public let parameters: Convolution2DParameters
    /// The forward weight's shape `[O, C/groups, KH, KW]`.
    public let weightShape: [Int]
    public var columnBufferLimitBytes: Int
    /// See ``Convolution2D/forcedChoice``.
    public var forcedChoice: ConvChoice?

    public init(_ parameters: Convolution2DParameters, weightShape: [Int],
                columnBufferLimitBytes: Int = defaultConvColumnBufferLimitBytes, forcedChoice: ConvChoice? = nil) {
        self.parameters = parameters
        self.weightShape = weightShape
        self.columnBufferLimitBytes = columnBufferLimitBytes
        self.forcedChoice = forcedChoice
    }

    public var name: String { "conv2d_backward_weight" }

    func geometry(_ shapes: [[Int]]) throws -> Convolution2DGeometry {
        guard shapes.count == 2 else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes, reason: "expects dy and x")
        }
        let g = try parameters.geometry(input: shapes[1], weight: weightShape, op: name, shapes: shapes + [weightShape])
        guard shapes[0] == [g.n, g.o, g.oh, g.ow] else {
            throw CloverError.shapeMismatch(op: name, shapes: shapes + [weightShape],
                                            reason: "dy must be \(formatShape([g.n, g.o, g.oh, g.ow])), the forward output shape")
        }
        return g
    }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        _ = try geometry(inputs)
        return [weightShape]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        _ = try outputShapes(for: shapes)
        let tf32 = forcedChoice?.roundsToTF32 == true
        let dy = tf32 ? inputs[0].map(\.roundedToTF32) : inputs[0]
        let x = tf32 ? inputs[1].map(\.roundedToTF32) : inputs[1]
        let (batch, channels, height, width) = (shapes[1][0], shapes[1][1], shapes[1][2], shapes[1][3])
        let (outChannels, outH, outW) = (shapes[0][1], shapes[0][2], shapes[0][3])
        let (perGroup, kernelH, kernelW) = (weightShape[1], weightShape[2], weightShape[3])
        let p = parameters
        let outPerGroup = outChannels / p.groups
        var dw = [Float](repeating: 0, count: weightShape.reduce(1, *))
        for oc in 0..<outChannels {
            let group = oc / outPerGroup
            for ci in 0..<perGroup {
                let ic = group * perGroup + ci
                for ky in 0..<kernelH {
                    for kx in 0..<kernelW {
                        var sum = 0.0
                        for n in 0..<batch {
                            for oy in 0..<outH {
                                let iy = oy * p.strideH - p.paddingH + ky * p.dilationH
                                if iy < 0 || iy >= height { continue }
                                for ox in 0..<outW {
                                    let ix = ox * p.strideW - p.paddingW + kx * p.dilationW
                                    if ix < 0 || ix >= width { continue }
                                    let g = dy[((n * outChannels + oc) * outH + oy) * outW + ox]
                                    let xv = x[((n * channels + ic) * height + iy) * width + ix]
                                    sum += Double(g) * Double(xv)
                                }
                            }
                        }
                        dw[((oc * perGroup + ci) * kernelH + ky) * kernelW + kx] = Float(sum)
                    }
                }
            }
        }
        return [dw]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let g = try geometry(inputs.map(\.shape))
        let shapes = inputs.map(\.shape) + [weightShape]
        let dy = inputs[0].view, x = inputs[1].view, dw = outputs[0].view
        let choice = try forcedChoice ?? ConvAlgorithmSelection.choice(context, g, .backwardWeight)
        try convBackwardWeightPass(context, g, choice, op: name, shapes: shapes, dy: dy, x: x, dw: dw,
                                   columnBufferLimitBytes: columnBufferLimitBytes)
    }
}

/// The weight gradient on `choice`'s path (its engine's `backwardWeight`).
func convBackwardWeightPass(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ choice: ConvChoice, op name: String,
                            shapes: [[Int]], dy: BufferView, x: BufferView, dw: BufferView,
                            columnBufferLimitBytes: Int) throws {
    let setting = ConvPassSetting(context: context, geometry: g, choice: choice, op: name, shapes: shapes,
                                  columnBufferLimitBytes: columnBufferLimitBytes)
    try setting.engine().backwardWeight(setting, dy: dy, x: x, dw: dw)
}

/// Gradient of ``Convolution2D`` with respect to its bias: input `dy`
/// `[N, O, OH, OW]`, output `db` `[O]` (the sum over N, OH and OW).
public struct Convolution2DBackwardBias: Primitive {
    public init() {}
    public var name: String { "conv2d_backward_bias" }

    /// Work-group size of the per-channel reduction (the `WG` macro).
    static let groupSize = 256

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 1, inputs[0].count == 4 else {
            throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects one dy of rank 4 [N, O, OH, OW]")
        }
        return [[inputs[0][1]]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dy = inputs[0]
        let (batch, channels, pixels) = (shapes[0][0], shapes[0][1], shapes[0][2] * shapes[0][3])
        var db = [Float](repeating: 0, count: channels)
        for o in 0..<channels {
            var sum = 0.0
            for n in 0..<batch {
                for q in 0..<pixels { sum += Double(dy[(n * channels + o) * pixels + q]) }
            }
            db[o] = Float(sum)
        }
        return [db]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let shape = inputs[0].shape
        let (batch, channels, pixels) = (shape[0], shape[1], shape[2] * shape[3])
        guard [batch, channels, pixels].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw CloverError.unsupported(op: name, shapes: [shape], device: context.device.description,
                                          reason: "a dimension exceeds the kernel's 32-bit sizes")
        }
        let dy = inputs[0].view, db = outputs[0].view
        let wg = Self.groupSize
        let kernel = try convKernel(context, .convBiasBackward)
        try context.launch(kernel, global: [channels * wg], local: [wg],
                           ConvBiasBackwardArguments(N: Int32(batch), O: Int32(channels), P: Int32(pixels), dy: dy, db: db))
    }
}

// MARK: OpenCL helpers (not used by the CPU reference)

/// A kernel of `Kernels/conv.cl`. Every conv kernel is built with the same
/// defines, so the family compiles to one program instead of one per define set.
func convKernel(_ context: OpenCLContext, _ name: KernelName) throws -> Kernel {
    try context.kernel(name, ConvDefines(wg: Convolution2DBackwardBias.groupSize, rowLoop: im2colRowLoop(context)))
}

/// CPU OpenCL devices run im2col and col2im faster with one work item per row
/// (a plain loop); GPUs want one item per pixel for coalesced writes.
func im2colRowLoop(_ context: OpenCLContext) -> Bool { context.executionOptions.im2colRowLoop ?? (context.pathKind == .cpu) }

extension Convolution2DGeometry {
    /// Samples per chunk so that the chunk's column matrix fits in
    /// `limitBytes` (at least one, whatever its size).
    func samplesPerChunk(limitBytes: Int) -> Int {
        // CLBlast puts a GEMM's columns (the chunk's nb·P pixels) in grid
        // dimension 1 in tiles of 32 or more: keep them within 65,535 groups.
        let byColumns = maxGemmColumns / max(1, p)
        return max(1, min(n, byColumns, limitBytes / max(1, columnPerSample * MemoryLayout<Float>.stride)))
    }

    /// The most GEMM columns a chunk may have: 65,535 tiles of 32.
    var maxGemmColumns: Int { 65_535 * 32 }

    /// The kernels take sizes as `int` and compute tap coordinates in `int`
    /// (linear indices are `ulong`); refuse shapes where either overflows
    /// rather than read the wrong pixels.
    func checkKernelLimits(op: String, shapes: [[Int]], on context: OpenCLContext) throws {
        let s = parameters
        let values = [c, h, w, kh, kw, oh, ow, p, h * w, n * c * kh * kw, s.strideH, s.strideW, s.paddingH, s.paddingW, s.dilationH,
                      s.dilationW, h + 2 * s.paddingH, w + 2 * s.paddingW, oh * s.strideH + kh * s.dilationH,
                      ow * s.strideW + kw * s.dilationW]
        guard values.allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                          reason: "a size exceeds the kernels' 32-bit int parameters")
        }
    }

}

/// The most work-items im2col and col2im put in dimension 1, which GPU grids
/// limit to 65,535 groups; the kernels stride over the remaining planes.
let maxStridedPlanes = 32_768

/// Fills `col` with the column matrices of `samples` samples starting at `x`.
func convIm2col(_ context: OpenCLContext, _ g: Convolution2DGeometry, x: BufferView, samples: Int, col: BufferView) throws {
    let planes = samples * g.c * g.kh * g.kw, s = g.parameters
    let kernel = try convKernel(context, .im2col)
    let first = im2colRowLoop(context) ? g.oh : g.p
    try context.launch(kernel, global: [first, min(planes, maxStridedPlanes)], local: [min(first, 64), 1],
                       Im2colArguments(planes: Int32(planes), C: Int32(g.c), H: Int32(g.h), W: Int32(g.w),
                                       KH: Int32(g.kh), KW: Int32(g.kw), OH: Int32(g.oh), OW: Int32(g.ow),
                                       strideH: Int32(s.strideH), strideW: Int32(s.strideW), padH: Int32(s.paddingH),
                                       padW: Int32(s.paddingW), dilH: Int32(s.dilationH), dilW: Int32(s.dilationW),
                                       // The wide column layout [C·KH·KW, nb·P]: sample and row strides.
                                       sampleStride: UInt64(g.p), rowStride: UInt64(samples * g.p), x: x, col: col))
}

/// Writes `dx` for `samples` samples from their column-gradient matrices.
func convCol2im(_ context: OpenCLContext, _ g: Convolution2DGeometry, col: BufferView, samples: Int, dx: BufferView) throws {
    let planes = samples * g.c, s = g.parameters
    let kernel = try convKernel(context, .col2im)
    let first = im2colRowLoop(context) ? g.h : g.h * g.w
    try context.launch(kernel, global: [first, min(planes, maxStridedPlanes)], local: [min(first, 64), 1],
                       Col2imArguments(planes: Int32(planes), C: Int32(g.c), H: Int32(g.h), W: Int32(g.w),
                                       KH: Int32(g.kh), KW: Int32(g.kw), OH: Int32(g.oh), OW: Int32(g.ow),
                                       strideH: Int32(s.strideH), strideW: Int32(s.strideW), padH: Int32(s.paddingH),
                                       padW: Int32(s.paddingW), dilH: Int32(s.dilationH), dilW: Int32(s.dilationW),
                                       sampleStride: UInt64(g.p), rowStride: UInt64(samples * g.p), col: col, dx: dx))
}

/// 2-D convolution of `x` `[N, C, H, W]` with `weight` `[O, C/groups, KH, KW]`
/// plus an optional `bias` `[O]`, in PyTorch's `conv2d` style; the same
/// stride, padding and dilation apply to height and width.
public func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil,
                   stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) throws -> Tensor {
    try conv2d(x, weight, bias: bias,
               parameters: Convolution2DParameters(stride: stride, padding: padding, dilation: dilation, groups: groups))
}

/// 2-D convolution with separate height and width parameters; see
/// ``Convolution2DParameters``. `activation` is applied to the output in the
/// same pass where the path allows (``ConvActivation``).
///
/// With `statisticsLink`, the convolution feeds the batch norm given the same
/// link (see ``ChannelStatisticsLink``).
public func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor? = nil, parameters: Convolution2DParameters,
                   activation: ConvActivation = .none, statisticsLink: ChannelStatisticsLink? = nil) throws -> Tensor {
    try apply(Convolution2D(parameters, activation: activation, statisticsLink: statisticsLink),
              bias.map { [x, weight, $0] } ?? [x, weight])[0]
}

extension Float {
    /// The value rounded to TF32 as NVIDIA's `cvt.rna.tf32.f32` rounds it:
    /// 10 explicit mantissa bits (the 13 low bits zero), to nearest with ties
    /// away from zero; infinities and NaNs unchanged, values past the largest
    /// TF32 number to infinity. What the tensor-core kernels' operands become
    /// (`tf32_round` in `Kernels/include/mma.h`).
    public var roundedToTF32: Float {
        let bits = bitPattern
        if bits & 0x7f80_0000 == 0x7f80_0000 { return self }
        // Half of the dropped bits added to the magnitude, then truncated; a
        // carry into the exponent is the right rounding up.
        return Float(bitPattern: (bits &+ 0x1000) & 0xffff_e000)
    }
}
