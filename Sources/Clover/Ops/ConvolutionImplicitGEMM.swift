import CloverKernels
import CloverRuntime

// The implicit-GEMM convolution path (Kernels/convgemm.cl): forward, data gradient and weight
// gradient as GEMMs whose operands the kernels gather from the NCHW tensors on the fly, so there
// is no column buffer and no transpose back. It covers every geometry the op accepts (any kernel
// size, stride, padding, dilation and groups); the kernels are compiled per parameter set, kernel
// size and stride. Launches per pass are fixed whatever the batch: forward 1 (bias fused), data
// gradient 1, weight gradient 2 (split-K partial products, then a reduction in a fixed order).

/// One parameter set of the implicit-GEMM kernels (`Kernels/convgemm.cl`'s
/// `TM`, `TN`, `WM`, `WN` and `TK` macros).
public struct ConvGemmParameters: Codable, Hashable, Sendable, CustomStringConvertible {
    /// Work-group tile: rows (channels) × columns (pixels or weight columns).
    public var tileM: Int
    public var tileN: Int
    /// Outputs per work-item along rows and columns.
    public var workM: Int
    public var workN: Int
    /// The K-tile staged in local memory per step.
    public var tileK: Int
    /// The barrier-free kernels (`DIRECT`, for CPU devices): `tileN` items per
    /// group along the columns (`LX`), each with `workM` × `workN` outputs;
    /// `tileM` and `tileK` are unused.
    public var direct: Bool

    public init(tileM: Int, tileN: Int, workM: Int, workN: Int, tileK: Int) {
        self.tileM = tileM
        self.tileN = tileN
        self.workM = workM
        self.workN = workN
        self.tileK = tileK
        direct = false
    }

    /// A barrier-free set: `items` work-items per group, `workM` × `workN` outputs each.
    public init(directItems items: Int, workM: Int, workN: Int) {
        self.init(tileM: workM, tileN: items, workM: workM, workN: workN, tileK: 1)
        direct = true
    }

    /// Work-items per group along rows (dimension 1) and columns (dimension 0).
    var itemsM: Int { direct ? 1 : tileM / workM }
    var itemsN: Int { direct ? tileN : tileN / workN }
    var workGroupSize: Int { itemsM * itemsN }
    /// The tiled kernels' two staged tiles, or the direct weight gradient's reduction.
    var localMemoryBytes: Int { direct ? 4 * workM * workN * tileN : 4 * tileK * (tileM + tileN) }

    public var description: String {
        direct ? "direct \(tileN)/\(workM)x\(workN)" : "\(tileM)x\(tileN)x\(tileK)/\(workM)x\(workN)"
    }

    /// The constraints `convgemm.cl` states, broken ones described.
    public var violations: [String] {
        var problems: [String] = []
        if [tileM, tileN, workM, workN, tileK].contains(where: { $0 <= 0 }) { return ["every size must be positive"] }
        if direct {
            if tileN > LaunchProfile.portable.maxWorkGroupSize || tileN & (tileN - 1) != 0 {
                problems.append("direct work-group of \(tileN) items must be a power of two up to 256")
            }
            if localMemoryBytes > LaunchProfile.portable.maxLocalMemoryBytes {
                problems.append("\(localMemoryBytes) bytes of local memory exceed 48 KiB")
            }
            return problems
        }
        if tileM % workM != 0 || tileN % workN != 0 { problems.append("tiles must be multiples of the work per item") }
        let wg = workGroupSize
        if wg > LaunchProfile.portable.maxWorkGroupSize { problems.append("work-group of \(wg) items exceeds 256") }
        if wg % tileN != 0 { problems.append("work-group size \(wg) is not a multiple of TN \(tileN)") }
        if wg % tileK != 0 { problems.append("work-group size \(wg) is not a multiple of TK \(tileK)") }
        if (tileM * tileK) % wg != 0 || (tileN * tileK) % wg != 0 { problems.append("tiles do not split evenly over the work-group") }
        if localMemoryBytes > LaunchProfile.portable.maxLocalMemoryBytes {
            problems.append("\(localMemoryBytes) bytes of local memory exceed 48 KiB")
        }
        return problems
    }

    /// The sets measured per geometry (``ConvAlgorithmSelection``) and swept
    /// by the conformance cases. The barrier-free (direct) sets first, for
    /// CPUs: POCL vectorises across dimension 0, 16 items per AVX-512
    /// register, and keeps their accumulators in registers. Then the tiled
    /// sets; the last two are the GPU shapes (64x64 and 128x128 tiles on 256
    /// items, K-tile 16, 8 KiB and 16 KiB of local memory).
    public static let searchSpace: [ConvGemmParameters] = [
        ConvGemmParameters(directItems: 64, workM: 16, workN: 1),
        ConvGemmParameters(directItems: 64, workM: 8, workN: 2),
        ConvGemmParameters(directItems: 64, workM: 4, workN: 4),
        ConvGemmParameters(directItems: 32, workM: 8, workN: 4),
        ConvGemmParameters(directItems: 32, workM: 8, workN: 8),
        ConvGemmParameters(directItems: 16, workM: 16, workN: 4),
        ConvGemmParameters(tileM: 16, tileN: 64, workM: 2, workN: 4, tileK: 16),
        ConvGemmParameters(tileM: 32, tileN: 64, workM: 4, workN: 4, tileK: 16),
        ConvGemmParameters(tileM: 32, tileN: 128, workM: 4, workN: 8, tileK: 16),
        ConvGemmParameters(tileM: 64, tileN: 64, workM: 4, workN: 4, tileK: 16),
        ConvGemmParameters(tileM: 128, tileN: 128, workM: 8, workN: 8, tileK: 16),
    ]

    /// The set an unmeasured geometry uses on `kind` of device.
    static func heuristicDefault(for kind: DeviceKind, rows: Int) -> ConvGemmParameters {
        if kind == .cpu { return searchSpace[3] }
        return rows <= 64 ? searchSpace[9] : searchSpace[10]
    }
}

/// Work-group size of `convgemm_reduce`.
private let convGemmReduceGroupSize = 64

/// `n / d` as `mul_hi(n, mul) >> shr` for `0 ≤ n < 2³¹` (`fdiv` in
/// convgemm.cl): `mul = ⌈2^(31+l) / d⌉` with `l = ⌈log₂ d⌉`; `mul = 0` for `d = 1`.
func fastDivisionConstants(_ d: Int) -> (mul: UInt32, shift: Int32) {
    precondition(d >= 1 && d <= Int(Int32.max))
    if d == 1 { return (0, 0) }
    var l = 0
    while (1 << l) < d { l += 1 }
    let p = 31 + l
    let mul = ((UInt64(1) << UInt64(p)) + UInt64(d) - 1) / UInt64(d)
    return (UInt32(mul), Int32(p - 32))
}

extension Convolution2DGeometry {
    /// The implicit-GEMM kernels index every tensor in 32-bit `int`.
    func checkImplicitGemmLimits(op: String, shapes: [[Int]], on context: OpenCLContext) throws {
        try checkKernelLimits(op: op, shapes: shapes, on: context)
        let sizes = [n * inputPerSample, n * outputPerSample, o * cg * kh * kw, n * p, n * h * w]
        guard sizes.allSatisfy({ $0 < Int(Int32.max) }) else {
            throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                          reason: "the implicit-GEMM kernels index tensors in 32 bits")
        }
    }

    /// The runtime geometry arguments every convgemm kernel starts with.
    fileprivate var implicitGemmArguments: [KernelArgument] {
        let s = parameters
        return [Int32(n), Int32(c), Int32(h), Int32(w), Int32(o), Int32(oh), Int32(ow), Int32(groups),
                Int32(s.paddingH), Int32(s.paddingW), Int32(s.dilationH), Int32(s.dilationW)]
    }
}

/// A kernel of `Kernels/convgemm.cl` for `set`, the geometry's kernel size and strides.
func convGemmKernel(_ context: OpenCLContext, _ name: KernelName, _ g: Convolution2DGeometry,
                    _ set: ConvGemmParameters) throws -> Kernel {
    let problems = set.violations
    guard problems.isEmpty else {
        throw CloverError.invalidArgument(op: "conv2d", reason: "implicit-GEMM parameters \(set): "
                                              + problems.joined(separator: "; "))
    }
    return try context.kernel(name, defines: [
        "TM": "\(set.tileM)", "TN": "\(set.tileN)", "WM": "\(set.workM)", "WN": "\(set.workN)", "TK": "\(set.tileK)",
        "KH": "\(g.kh)", "KW": "\(g.kw)", "SH": "\(g.parameters.strideH)", "SW": "\(g.parameters.strideW)",
        "RW": "\(convGemmReduceGroupSize)", "DIRECT": set.direct ? "1" : "0", "LX": "\(set.tileN)",
    ])
}

/// The launch range of a GEMM of `rows` × `columns` per group.
private func gemmRange(_ set: ConvGemmParameters, rows: Int, columns: Int, depth: Int) -> (global: [Int], local: [Int]) {
    if set.direct {
        let perGroup = set.tileN * set.workN
        return ([(columns + perGroup - 1) / perGroup * set.tileN, (rows + set.workM - 1) / set.workM, depth],
                [set.tileN, 1, 1])
    }
    let tilesN = (columns + set.tileN - 1) / set.tileN, tilesM = (rows + set.tileM - 1) / set.tileM
    return ([tilesN * set.itemsN, tilesM * set.itemsM, depth], [set.itemsN, set.itemsM, 1])
}

/// `y = conv(x, w) (+ bias)` in one launch.
func implicitGemmForward(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                         x: BufferView, w: BufferView, bias: BufferView?, y: BufferView) throws {
    let kernel = try convGemmKernel(context, set.direct ? .convgemmForwardDirect : .convgemmForward, g, set)
    let range = gemmRange(set, rows: g.og, columns: g.n * g.p, depth: g.groups)
    let b = bias ?? w   // never read when has_bias = 0
    try context.launch(kernel, global: range.global, local: range.local, arguments: g.implicitGemmArguments + [
        x.buffer, x.kernelOffset, w.buffer, w.kernelOffset, b.buffer, b.kernelOffset, Int32(bias == nil ? 0 : 1),
        y.buffer, y.kernelOffset,
    ])
}

/// `dx = convᵀ(dy, w)` in one launch; every dx entry is written.
func implicitGemmBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                              dy: BufferView, w: BufferView, dx: BufferView) throws {
    let kernel = try convGemmKernel(context, set.direct ? .convgemmBackwardDataDirect : .convgemmBackwardData, g, set)
    let range = gemmRange(set, rows: g.cg, columns: g.n * g.h * g.w, depth: g.groups)
    try context.launch(kernel, global: range.global, local: range.local, arguments: g.implicitGemmArguments + [
        dy.buffer, dy.kernelOffset, w.buffer, w.kernelOffset, dx.buffer, dx.kernelOffset,
    ])
}

/// How many splits of the N·OH·OW reduction the weight gradient uses: enough
/// work-groups to fill the device (4 per compute unit), each split at least
/// 256 positions, the partial products within 64 MiB, and G·S within a grid
/// dimension. A function of the geometry and device only, so runs repeat bit for bit.
func implicitGemmWeightSplits(_ g: Convolution2DGeometry, _ set: ConvGemmParameters, computeUnits: Int) -> Int {
    let positions = g.n * g.p
    let tiles = set.direct
        ? ((g.og + set.workM - 1) / set.workM) * ((g.k + set.workN - 1) / set.workN) * g.groups
        : ((g.og + set.tileM - 1) / set.tileM) * ((g.k + set.tileN - 1) / set.tileN) * g.groups
    let wanted = (4 * max(1, computeUnits) + tiles - 1) / tiles
    // A direct group's items should each sum at least 8 positions.
    let byPositions = max(1, positions / (set.direct ? 8 * set.tileN : 256))
    let byMemory = max(1, (64 << 20) / max(1, 4 * g.o * g.k))
    let byGrid = max(1, 65_535 / g.groups)
    return max(1, min(wanted, byPositions, byMemory, byGrid))
}

/// `dw = Σ dy · x~ᵀ` in two launches: split-K partial products, then their
/// sum in split order (deterministic, no atomics).
func implicitGemmBackwardWeight(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                                dy: BufferView, x: BufferView, dw: BufferView) throws {
    let splits = implicitGemmWeightSplits(g, set, computeUnits: context.device.computeUnits)
    let positions = g.n * g.p
    let perSplit = (positions + splits - 1) / splits
    let chunk = (perSplit + set.tileK - 1) / set.tileK * set.tileK
    let count = g.o * g.k
    let partial = try context.allocateView(count: splits * count)
    let divP = fastDivisionConstants(g.p), divOW = fastDivisionConstants(g.ow)
    let kernel = try convGemmKernel(context, set.direct ? .convgemmBackwardWeightDirect : .convgemmBackwardWeight,
                                    g, set)
    let range = set.direct
        ? (global: [splits * set.tileN, (g.og + set.workM - 1) / set.workM, g.groups * ((g.k + set.workN - 1) / set.workN)],
           local: [set.tileN, 1, 1])
        : gemmRange(set, rows: g.og, columns: g.k, depth: g.groups * splits)
    try context.launch(kernel, global: range.global, local: range.local, arguments: g.implicitGemmArguments + [
        Int32(splits), Int32(chunk), divP.mul, divP.shift, divOW.mul, divOW.shift,
        dy.buffer, dy.kernelOffset, x.buffer, x.kernelOffset, partial.buffer, partial.kernelOffset,
    ])
    let reduce = try convGemmKernel(context, .convgemmReduce, g, set)
    try context.launch(reduce, global: [count], local: [convGemmReduceGroupSize], arguments: [
        Int32(count), Int32(splits), partial.buffer, partial.kernelOffset, dw.buffer, dw.kernelOffset,
    ])
}
