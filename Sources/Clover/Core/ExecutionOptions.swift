import CloverRuntime

/// How ops choose among their implementations on one OpenCL context.
///
/// Each choice is normally the device's (CPU devices take the forms POCL
/// vectorises, GPUs the coalesced ones); setting one forces that form on this
/// context only, which is how tests check every form on whatever device CI
/// has. Nothing here is process-wide: two contexts never see each other's
/// options.
///
/// ```swift
/// device.openCL?.executionOptions.im2colRowLoop = false  // the GPU im2col form on a CPU device
/// ```
public struct ExecutionOptions: ContextAttachment, Equatable, Sendable {
    /// im2col and col2im with one work item per row (a plain loop), or one
    /// per pixel; nil: per row on CPU devices, per pixel on GPUs.
    public var im2colRowLoop: Bool?
    /// Positions per work item of the elementwise batch-norm kernels
    /// (normalization.cl's `VW`); nil: 16 on CPU devices, 1 on GPUs.
    public var batchNormVectorWidth: Int?
    /// 1x1 convolutions with several samples as one GEMM per group
    /// strided-batched over the samples (true) or through the wide `[R, N·P]`
    /// relayout (false); nil: the shape rule decides.
    public var pointwiseSampleBatch: Bool?
    /// Whether the vector convolution kernels write batch norm's partial
    /// channel statistics as they store their output (turned off to compare
    /// against the separate statistics pass).
    public var fusesBatchNormStatistics = true

    public init(im2colRowLoop: Bool? = nil, batchNormVectorWidth: Int? = nil, pointwiseSampleBatch: Bool? = nil,
                fusesBatchNormStatistics: Bool = true) {
        self.im2colRowLoop = im2colRowLoop
        self.batchNormVectorWidth = batchNormVectorWidth
        self.pointwiseSampleBatch = pointwiseSampleBatch
        self.fusesBatchNormStatistics = fusesBatchNormStatistics
    }

    public static var defaultValue: ExecutionOptions { ExecutionOptions() }
}

extension OpenCLContext {
    /// The ops' choices on this context (``ExecutionOptions``); the device's
    /// own until set.
    public var executionOptions: ExecutionOptions {
        get { self[attachment: ExecutionOptions.self] }
        set { self[attachment: ExecutionOptions.self] = newValue }
    }
}
