import CloverRuntime

// The convolution's engines: one per ``ConvAlgorithm``, each saying which
// geometries it computes, which launch limits it checks and how it encodes
// each of the three passes. The passes dispatch through
// `ConvPassSetting.engine()`, over the one registry (`ConvAlgorithm.engine`),
// so no pass switches over algorithms, and an algorithm is added as an engine
// and a registry entry (plus its kernels and its candidates in the selection).

/// What every pass of one convolution needs besides its buffers: where it
/// runs, its geometry and engine choice, and how its errors name it.
struct ConvPassSetting {
    let context: OpenCLContext
    let geometry: Convolution2DGeometry
    let choice: ConvChoice
    /// The op's name and operand shapes, for errors.
    let op: String
    let shapes: [[Int]]
    /// The most bytes a column buffer (im2col) may take.
    let columnBufferLimitBytes: Int

    /// The chosen algorithm's engine, or an error naming the op and shapes
    /// when it does not compute this geometry (a forced choice, or a tuning
    /// file's entry, that does not fit): never a silent fallback to another.
    func engine() throws -> ConvolutionEngine {
        let engine = choice.algorithm.engine
        guard engine.supports(geometry) else {
            throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                          reason: "the \(choice.algorithm) kernels do not compute \(geometry.parameters)"
                                              + " with a \(geometry.kh)x\(geometry.kw) kernel")
        }
        return engine
    }
}

/// How far an engine's forward pass went.
enum ConvForwardOutcome {
    /// Bias and activation are applied (in the engine's store), with
    /// batch norm's partial statistics of y where the engine writes them.
    case complete(ChannelStatistics?)
    /// The convolution is in z; the bias too when `bias` is true. The caller
    /// adds what is missing and the activation.
    case convolved(bias: Bool)
}

/// One way to run a convolution's passes on OpenCL.
protocol ConvolutionEngine {
    /// Whether the engine's kernels compute this geometry at all (launch
    /// limits, which depend on the device, are checked by each pass).
    func supports(_ g: Convolution2DGeometry) -> Bool
    /// The forward pass into `z` (y, or the pre-activation buffer under a
    /// SiLU epilogue). Engines whose store fuses the epilogue write y (and
    /// `preActivation`) themselves and return `.complete`.
    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome
    /// dx from dy and the weight.
    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws
    /// dw from dy and the input.
    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws
}

extension ConvAlgorithm {
    /// The engine that runs this algorithm (the registry).
    var engine: ConvolutionEngine {
        switch self {
        case .pointwiseGEMM: PointwiseEngine()
        case .depthwise: DepthwiseEngine()
        case .groupedDirect: GroupedDirectEngine()
        case .im2colGEMM: Im2colEngine()
        case .implicitGEMM: ImplicitGemmEngine()
        }
    }
}

/// Implicit GEMM (`convgemm.cl`): operands gathered from the tensors, the
/// bias, activation and batch-norm partials fused into the store.
struct ImplicitGemmEngine: ConvolutionEngine {
    func supports(_ g: Convolution2DGeometry) -> Bool { true }

    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome {
        try s.geometry.checkImplicitGemmLimits(op: s.op, shapes: s.shapes, on: s.context)
        return .complete(try implicitGemmForward(s.context, s.geometry, try s.choice.gemmParameters(), x: x, w: w,
                                                 bias: bias, y: y, activation: activation,
                                                 preActivation: preActivation, statistics: statistics))
    }

    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws {
        try s.geometry.checkImplicitGemmLimits(op: s.op, shapes: s.shapes, on: s.context)
        try implicitGemmBackwardData(s.context, s.geometry, try s.choice.gemmParameters(), dy: dy, w: w, dx: dx)
    }

    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws {
        try s.geometry.checkImplicitGemmLimits(op: s.op, shapes: s.shapes, on: s.context)
        try implicitGemmBackwardWeight(s.context, s.geometry, try s.choice.gemmParameters(), dy: dy, x: x, dw: dw)
    }
}

/// One filter per channel (`depthwise.cl`); the bias in the forward store.
struct DepthwiseEngine: ConvolutionEngine {
    func supports(_ g: Convolution2DGeometry) -> Bool { g.fitsDepthwiseKernels }

    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try depthwiseForward(s.context, s.geometry, x: x, w: w, bias: bias, y: z)
        return .convolved(bias: true)
    }

    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try depthwiseBackwardData(s.context, s.geometry, dy: dy, w: w, dx: dx)
    }

    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try depthwiseBackwardWeight(s.context, s.geometry, dy: dy, x: x, dw: dw)
    }
}

/// Small groups by direct kernels (`grouped.cl`); the bias in the forward store.
struct GroupedDirectEngine: ConvolutionEngine {
    func supports(_ g: Convolution2DGeometry) -> Bool { g.fitsGroupedKernels }

    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try groupedForward(s.context, s.geometry, x: x, w: w, bias: bias, y: z)
        return .convolved(bias: true)
    }

    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try groupedBackwardData(s.context, s.geometry, dy: dy, w: w, dx: dx)
    }

    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws {
        try s.geometry.checkDirectKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try groupedBackwardWeight(s.context, s.geometry, dy: dy, x: x, dw: dw)
    }
}

/// 1x1, stride 1, padding 0: CLBlast GEMMs straight on the NCHW tensors.
/// The gradients' GEMMs index in CLBlast's own sizes, so only the forward's
/// separate bias kernel has 32-bit limits to check.
struct PointwiseEngine: ConvolutionEngine {
    func supports(_ g: Convolution2DGeometry) -> Bool { g.isPointwise }

    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome {
        try s.geometry.checkKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try pointwiseForward(s.context, s.geometry, x: x, w: w, y: z)
        return .convolved(bias: false)
    }

    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws {
        try pointwiseBackwardData(s.context, s.geometry, dy: dy, w: w, dx: dx)
    }

    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws {
        try pointwiseBackwardWeight(s.context, s.geometry, dy: dy, x: x, dw: dw)
    }
}

/// The general path: im2col/col2im (`conv.cl`) of chunks of samples and one
/// CLBlast GEMM per group for each chunk.
struct Im2colEngine: ConvolutionEngine {
    func supports(_ g: Convolution2DGeometry) -> Bool { true }

    func forward(_ s: ConvPassSetting, x: BufferView, w: BufferView, bias: BufferView?, y: BufferView, z: BufferView,
                 activation: ConvActivation, preActivation: BufferView?, statistics: Bool) throws -> ConvForwardOutcome {
        try s.geometry.checkKernelLimits(op: s.op, shapes: s.shapes, on: s.context)
        try im2colForward(s.context, s.geometry, x: x, w: w, y: z, columnBufferLimitBytes: s.columnBufferLimitBytes)
        return .convolved(bias: false)
    }

    func backwardData(_ s: ConvPassSetting, dy: BufferView, w: BufferView, dx: BufferView) throws {
        let (context, g) = (s.context, s.geometry)
        try g.checkKernelLimits(op: s.op, shapes: s.shapes, on: context)
        let chunk = g.samplesPerChunk(limitBytes: s.columnBufferLimitBytes)
        let dcol = try context.allocateView(count: chunk * g.columnPerSample)
        let wide = try context.allocateView(count: chunk * g.outputPerSample)
        var n0 = 0
        while n0 < g.n {
            let nb = min(chunk, g.n - n0)
            let cols = nb * g.p
            // dy's chunk [nb, O, P] as the wide [O, nb·P] operand.
            try transposeMiddleAxes(dy.slice(offset: n0 * g.outputPerSample, count: nb * g.outputPerSample),
                                    dims: [1, nb, g.o, g.p], into: wide.slice(offset: 0, count: nb * g.outputPerSample),
                                    on: context)
            try clblastGemm(context, transposeA: true, transposeB: false, m: g.k, n: cols, k: g.og, alpha: 1,
                            a: w, lda: g.k, strideA: g.og * g.k,
                            b: wide, ldb: cols, strideB: g.og * cols,
                            beta: 0, c: dcol, ldc: cols, strideC: g.k * cols, batch: g.groups)
            // col2im writes every element of dx, including pixels no tap reads.
            try convCol2im(context, g, col: dcol, samples: nb,
                           dx: dx.slice(offset: n0 * g.inputPerSample, count: nb * g.inputPerSample))
            n0 += nb
        }
    }

    func backwardWeight(_ s: ConvPassSetting, dy: BufferView, x: BufferView, dw: BufferView) throws {
        let (context, g) = (s.context, s.geometry)
        try g.checkKernelLimits(op: s.op, shapes: s.shapes, on: context)
        let chunk = g.samplesPerChunk(limitBytes: s.columnBufferLimitBytes)
        let col = try context.allocateView(count: chunk * g.columnPerSample)
        let wide = try context.allocateView(count: chunk * g.outputPerSample)
        var n0 = 0
        while n0 < g.n {
            let nb = min(chunk, g.n - n0)
            let cols = nb * g.p
            try convIm2col(context, g, x: x.slice(offset: n0 * g.inputPerSample, count: nb * g.inputPerSample),
                           samples: nb, col: col)
            try transposeMiddleAxes(dy.slice(offset: n0 * g.outputPerSample, count: nb * g.outputPerSample),
                                    dims: [1, nb, g.o, g.p], into: wide.slice(offset: 0, count: nb * g.outputPerSample),
                                    on: context)
            // The first chunk overwrites dw (beta = 0, so CLBlast never reads
            // the recycled buffer); later chunks accumulate.
            try clblastGemm(context, transposeA: false, transposeB: true, m: g.og, n: g.k, k: cols, alpha: 1,
                            a: wide, lda: cols, strideA: g.og * cols,
                            b: col, ldb: cols, strideB: g.k * cols,
                            beta: n0 == 0 ? 0 : 1, c: dw, ldc: g.k, strideC: g.og * g.k, batch: g.groups)
            n0 += nb
        }
    }
}
