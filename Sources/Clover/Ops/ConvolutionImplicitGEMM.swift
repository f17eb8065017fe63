import CloverKernels
import CloverRuntime

// The implicit-GEMM convolution path (Kernels/convgemm.cl): forward, data gradient and weight
// gradient as GEMMs whose operands the kernels gather from the NCHW tensors on the fly, so there
// is no column buffer and no transpose back. It covers every geometry the op accepts (any kernel
// size, stride, padding, dilation and groups); the kernels are compiled per parameter set, kernel
// size and stride. Launches per pass are fixed whatever the batch: forward 1 (bias fused), data
// gradient 1, weight gradient 2 (split-K partial products, then a reduction in a fixed order; 1
// where one split suffices, written straight into dw); the row-padded vector form (CPUs) adds its
// operand copies: forward 2 (pad, product), data gradient 2 (pad dy, the stride phases'
// products), weight gradient 3 or 2 (pad dy and x in one launch, partials, sum).

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
    /// Which kernels of the file the set compiles.
    public var form: Form

    /// The three kernel forms of `Kernels/convgemm.cl`.
    public enum Form: String, Codable, Sendable {
        /// Work-group tiles staged in local memory (GPUs).
        case tiled
        /// The barrier-free kernels (`DIRECT`, CPUs): `tileN` items per group
        /// along the columns (`LX`), each with `workM` × `workN` outputs;
        /// `tileM` and `tileK` are unused.
        case direct
        /// The row-padded explicit-vector kernels (`VECTOR`, CPUs): `tileN`
        /// items per group, each with `workM` rows × `workN` float16 vectors
        /// of columns (forward and data gradient) or `workM` rows × `workN`
        /// weight columns (weight gradient).
        case vector
        /// The tiled kernels on TF32 tensor cores (`MMA`, NVIDIA compute
        /// capability 8.0 or later; emulated elsewhere): `workM` × `workN`
        /// warps of 32 items, each a (`tileM`/`workM`) × (`tileN`/`workN`)
        /// warp tile of m16n8k8 products.
        case tensorCore
    }

    /// The barrier-free form.
    public var direct: Bool { form == .direct }

    public init(tileM: Int, tileN: Int, workM: Int, workN: Int, tileK: Int) {
        self.tileM = tileM
        self.tileN = tileN
        self.workM = workM
        self.workN = workN
        self.tileK = tileK
        form = .tiled
    }

    /// A tensor-core set: a `tileM` × `tileN` work-group tile staged `tileK`
    /// deep, on `warpsM` × `warpsN` warps.
    public init(tensorCoreTileM tileM: Int, tileN: Int, tileK: Int, warpsM: Int, warpsN: Int) {
        self.init(tileM: tileM, tileN: tileN, workM: warpsM, workN: warpsN, tileK: tileK)
        form = .tensorCore
    }

    /// A barrier-free set: `items` work-items per group, `workM` × `workN` outputs each.
    public init(directItems items: Int, workM: Int, workN: Int) {
        self.init(tileM: workM, tileN: items, workM: workM, workN: workN, tileK: 1)
        form = .direct
    }

    /// A row-padded vector set: `items` work-items per group, `workM` rows ×
    /// `workN` vectors (or weight columns) each.
    public init(vectorItems items: Int, workM: Int, workN: Int) {
        self.init(tileM: workM, tileN: items, workM: workM, workN: workN, tileK: 1)
        form = .vector
    }

    /// Work-items per group along rows (dimension 1) and columns (dimension 0).
    var itemsM: Int {
        switch form {
        case .tiled: return tileM / workM
        case .tensorCore: return workM
        case .direct, .vector: return 1
        }
    }
    var itemsN: Int {
        switch form {
        case .tiled: return tileN / workN
        case .tensorCore: return 32 * workN
        case .direct, .vector: return tileN
        }
    }
    var workGroupSize: Int { itemsM * itemsN }
    /// The tiled sets' register budget per work-item: two work-groups per SM
    /// of a 65,536-register file (NVIDIA's, since sm_30), in steps of 8.
    /// Left to itself, NVIDIA's assembler gives the 128×128 sets' 8×8
    /// accumulators 147–168 registers (one resident work-group of 256 items);
    /// at 128 it keeps them without spilling (scripts/nvidia_static.sh checks
    /// that, and the occupancy it buys). Nil where the budget is no tighter than the 255 a work-item may
    /// have anyway, and for the CPU forms.
    var registerLimit: Int? {
        guard form == .tiled || form == .tensorCore else { return nil }
        let limit = 65536 / (2 * workGroupSize) / 8 * 8
        return limit < 255 ? limit : nil
    }
    /// The tiled kernels' two staged tiles, double-buffered (each row padded
    /// by one word: `LPAD` in convgemm.cl), or the direct weight gradient's reduction.
    var localMemoryBytes: Int {
        switch form {
        case .tiled: return 2 * 4 * tileK * (tileM + tileN + 2)
        // Rows padded by 8 words (gemm_tile.h); the emulation's scratch (192
        // floats per warp) counted too, so a set fits wherever it may run.
        case .tensorCore: return 2 * 4 * tileK * (tileM + tileN + 16) + 4 * 192 * workM * workN
        case .direct: return 4 * workM * workN * tileN
        case .vector: return 0
        }
    }

    public var description: String {
        switch form {
        case .tiled: return "\(tileM)x\(tileN)x\(tileK)/\(workM)x\(workN)"
        case .direct: return "direct \(tileN)/\(workM)x\(workN)"
        case .vector: return "vector \(tileN)/\(workM)x\(workN)"
        case .tensorCore: return "tf32 \(tileM)x\(tileN)x\(tileK)/\(workM)x\(workN) warps"
        }
    }

    /// The constraints `convgemm.cl` states, broken ones described.
    public var violations: [String] {
        var problems: [String] = []
        if [tileM, tileN, workM, workN, tileK].contains(where: { $0 <= 0 }) { return ["every size must be positive"] }
        if form == .vector {
            if tileN > LaunchProfile.portable.maxWorkGroupSize || tileN & (tileN - 1) != 0 {
                problems.append("vector work-group of \(tileN) items must be a power of two up to 256")
            }
            if workM * workN > 32 { problems.append("\(workM * workN) float16 accumulators per item exceed 32") }
            return problems
        }
        if direct {
            if tileN > LaunchProfile.portable.maxWorkGroupSize || tileN & (tileN - 1) != 0 {
                problems.append("direct work-group of \(tileN) items must be a power of two up to 256")
            }
            if localMemoryBytes > LaunchProfile.portable.maxLocalMemoryBytes {
                problems.append("\(localMemoryBytes) bytes of local memory exceed 48 KiB")
            }
            return problems
        }
        if form == .tensorCore {
            if tileM % (16 * workM) != 0 || tileN % (8 * workN) != 0 {
                problems.append("warp tiles \(tileM)/\(workM) x \(tileN)/\(workN) must be multiples of 16 x 8")
            }
            if tileK % 8 != 0 { problems.append("TK \(tileK) must be a multiple of 8") }
        } else if tileM % workM != 0 || tileN % workN != 0 {
            problems.append("tiles must be multiples of the work per item")
        }
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
    /// by the conformance cases. The row-padded vector sets first (CPUs):
    /// float16 accumulators, 8 rows x 2 vectors for the forward
    /// pass and data gradient, 4 rows x 6 weight columns for the weight
    /// gradient, and 1 row x 4 vectors for depthwise convolutions (one
    /// channel per group), sized for 32 registers of 16 floats (AVX-512);
    /// then narrower sets for 16 registers of 8 floats (AVX2), where a
    /// float16 takes two registers: 4 rows x 1 vector, 2 x 2 and 1 x 2
    /// (``vectorRoles(vectorWidth:)`` says which role takes which). Then the
    /// barrier-free (direct) sets, for CPUs:
    /// POCL vectorises across dimension 0, 16 items per AVX-512 register.
    /// Then the tiled sets; the last two are the GPU shapes (64x64 and
    /// 128x128 tiles on 256 items, K-tiles 16 and 8, 8 KiB each of local
    /// memory). The 128x128 set stages K-tiles of 8, not 16: half the loads
    /// in flight per item is what lets NVIDIA's assembler keep its 8x8
    /// accumulators, loads and addresses in 128 registers without spilling
    /// (at 16 the 1x1 sets spilled), so that two work-groups fit an SM.
    public static let searchSpace: [ConvGemmParameters] = [
        ConvGemmParameters(vectorItems: 4, workM: 8, workN: 2),
        ConvGemmParameters(vectorItems: 4, workM: 4, workN: 6),
        ConvGemmParameters(vectorItems: 1, workM: 8, workN: 3),
        ConvGemmParameters(vectorItems: 4, workM: 1, workN: 4),
        ConvGemmParameters(vectorItems: 4, workM: 4, workN: 1),
        ConvGemmParameters(vectorItems: 4, workM: 2, workN: 2),
        ConvGemmParameters(vectorItems: 4, workM: 1, workN: 2),
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
        ConvGemmParameters(tileM: 128, tileN: 128, workM: 8, workN: 8, tileK: 8),
        ConvGemmParameters(tensorCoreTileM: 64, tileN: 64, tileK: 16, warpsM: 2, warpsN: 2),
        ConvGemmParameters(tensorCoreTileM: 128, tileN: 128, tileK: 8, warpsM: 2, warpsN: 4),
    ]

    /// The CPU vector sets of one register file: the forward pass's, the
    /// data gradient's, the weight gradient's, and the one for convolutions
    /// with at most two rows per group (depthwise, the RegNet cell's pairs).
    struct VectorRoles {
        let forward, backwardData, backwardWeight, depthwise: ConvGemmParameters

        func product(for pass: ConvPass) -> ConvGemmParameters {
            switch pass {
            case .forward: forward
            case .backwardData: backwardData
            case .backwardWeight: backwardWeight
            }
        }
    }

    /// The vector sets for a CPU whose native vectors hold `vectorWidth`
    /// floats (``OpenCLDevice/nativeFloatVectorWidth``). At 16 or more
    /// (AVX-512: 32 registers of 16 floats) the wide sets. Below (AVX2: 16
    /// registers of 8 floats, a float16 two of them), the sets measured best
    /// over ResNet-20's 3x3 geometries (batch 64) and EfficientNet-B0's 1x1 and
    /// depthwise ones (batch 8) on a 2-core EPYC (`clover tune conv`, POCL
    /// pthread-haswell), summed over each pass's geometries: 4 rows x 1
    /// vector for the forward (35.4 + 93.3 ms against 50.8 + 113.8 for the
    /// wide 8 x 2) and the data gradient (27.6 + 92.1 against 34.2 + 117.2),
    /// 2 x 2 weight columns for the weight gradient (45.8 + 103.9 against
    /// 50.3 + 112.4 for the wide 4 x 6), and 1 x 2 for depthwise convolutions
    /// (67.5, 69.6 and 43.9 over the three passes against 74.3, 65.9 and 46.3
    /// for the wide 1 x 4).
    static func vectorRoles(vectorWidth: Int) -> VectorRoles {
        vectorWidth >= 16
            ? VectorRoles(forward: searchSpace[0], backwardData: searchSpace[0], backwardWeight: searchSpace[1],
                          depthwise: searchSpace[3])
            : VectorRoles(forward: searchSpace[4], backwardData: searchSpace[4], backwardWeight: searchSpace[5],
                          depthwise: searchSpace[6])
    }

    /// The GPU's tiled sets: 64x64 and 128x128 tiles.
    private static var gpuTiled: (small: ConvGemmParameters, large: ConvGemmParameters) {
        let tiled = searchSpace.filter { $0.form == .tiled }
        return (tiled[tiled.count - 2], tiled[tiled.count - 1])
    }

    /// The GPU's tensor-core sets: 64x64 on 4 warps and 128x128 on 8.
    private static var gpuTensorCore: (small: ConvGemmParameters, large: ConvGemmParameters) {
        let sets = searchSpace.filter { $0.form == .tensorCore }
        return (sets[0], sets[1])
    }

    /// The set an unmeasured geometry uses on `kind` of device: on CPUs the
    /// vector form sized for `vectorWidth`-float registers, on GPUs the tiled
    /// 64x64 or 128x128 set.
    /// With `tensorCores`, the GPU's sets are the tensor-core ones of the same
    /// tiles (64x64 on 4 warps, 128x128 on 8).
    static func heuristicDefault(for kind: DeviceKind, pass: ConvPass, geometry g: Convolution2DGeometry,
                                 tensorCores: Bool = false, vectorWidth: Int = 16) -> ConvGemmParameters {
        if kind == .cpu {
            return vectorRoles(vectorWidth: vectorWidth).product(for: pass)
        }
        let rows = pass == .backwardData ? g.cg : g.og
        if tensorCores { return rows <= 64 ? gpuTensorCore.small : gpuTensorCore.large }
        return rows <= 64 ? gpuTiled.small : gpuTiled.large
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

    /// The runtime geometry every tiled and direct convgemm kernel starts
    /// with (their `N` … `DW` parameters).
    fileprivate var implicitGemmSizes: ImplicitGemmSizes {
        let s = parameters
        return ImplicitGemmSizes(N: Int32(n), C: Int32(c), H: Int32(h), W: Int32(w), O: Int32(o), OH: Int32(oh),
                                 OW: Int32(ow), G: Int32(groups), PH: Int32(s.paddingH), PW: Int32(s.paddingW),
                                 DH: Int32(s.dilationH), DW: Int32(s.dilationW))
    }
}

/// The geometry parameters shared by the tiled and direct convgemm kernels,
/// in their order.
private struct ImplicitGemmSizes {
    let N, C, H, W, O, OH, OW, G, PH, PW, DH, DW: Int32
}

/// A kernel of `Kernels/convgemm.cl` for `set`, the geometry's kernel size and strides.
func convGemmKernel(_ context: OpenCLContext, _ name: KernelName, _ g: Convolution2DGeometry,
                    _ set: ConvGemmParameters, activation: ConvActivation = .none,
                    statistics: Bool = false) throws -> Kernel {
    let problems = set.violations
    guard problems.isEmpty else {
        throw CloverError.invalidArgument(op: "conv2d", reason: "implicit-GEMM parameters \(set): "
                                              + problems.joined(separator: "; "))
    }
    // `MMA` for a tensor-core set, with `MMA_EMULATE` where the device has no TF32 tensor
    // cores (POCL's conformance sweep; a planning context too, whose device builds what it
    // plans: the static NVIDIA check compiles these programs without it, as a device with
    // tensor cores gets them).
    let tensorCore = set.form == .tensorCore
    let defines = ConvgemmDefines(
        tm: set.tileM, tn: set.tileN, wm: set.workM, wn: set.workN, tk: set.tileK,
        kh: g.kh, kw: g.kw, sh: g.parameters.strideH, sw: g.parameters.strideW,
        rw: convGemmReduceGroupSize, direct: set.direct, epi: activation.macro, stats: statistics,
        mma: tensorCore ? true : nil, vector: set.form == .vector, lx: set.tileN,
        mmaEmulate: tensorCore && !context.device.hasTF32TensorCores ? true : nil)
    return try context.kernel(name, defines, registerLimit: set.registerLimit)
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
///
/// With `statistics` (the vector form, no activation) the kernel also writes
/// the per-channel partials of batch norm's statistics and returns them.
@discardableResult
func implicitGemmForward(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                         x: BufferView, w: BufferView, bias: BufferView?, y: BufferView,
                         activation: ConvActivation = .none, preActivation: BufferView? = nil,
                         statistics: Bool = false) throws -> ChannelStatistics? {
    // Without a SiLU epilogue the kernels never write `pre`: y stands in.
    let pre = activation == .silu ? try requirePreActivation(preActivation, op: "conv2d") : y
    if set.form == .vector {
        return try vectorForward(context, g, set, x: x, w: w, bias: bias, y: y, activation: activation, pre: pre,
                                 statistics: statistics && activation == .none)
    }
    let kernel = try convGemmKernel(context, set.direct ? .convgemmForwardDirect : .convgemmForward, g, set,
                                    activation: activation)
    let range = gemmRange(set, rows: g.og, columns: g.n * g.p, depth: g.groups)
    let b = bias ?? w   // never read when has_bias = 0
    let a = g.implicitGemmSizes, hasBias = Int32(bias == nil ? 0 : 1)
    if set.direct {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmForwardDirectArguments(N: a.N,
            C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH, DW: a.DW,
            x: x, w: w, bias: b, hasBias: hasBias, y: y, pre: pre))
    } else {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmForwardArguments(N: a.N,
            C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH, DW: a.DW,
            x: x, w: w, bias: b, hasBias: hasBias, y: y, pre: pre))
    }
    return nil
}

/// `dx = convᵀ(dy, w)` in one launch; every dx entry is written.
func implicitGemmBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                              dy: BufferView, w: BufferView, dx: BufferView) throws {
    if set.form == .vector {
        return try vectorBackwardData(context, g, set, dy: dy, w: w, dx: dx)
    }
    let kernel = try convGemmKernel(context, set.direct ? .convgemmBackwardDataDirect : .convgemmBackwardData, g, set)
    let range = gemmRange(set, rows: g.cg, columns: g.n * g.h * g.w, depth: g.groups)
    let a = g.implicitGemmSizes
    if set.direct {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmBackwardDataDirectArguments(
            N: a.N, C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH,
            DW: a.DW, dy: dy, w: w, dx: dx))
    } else {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmBackwardDataArguments(N: a.N,
            C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH, DW: a.DW,
            dy: dy, w: w, dx: dx))
    }
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
    if set.form == .vector {
        return try vectorBackwardWeight(context, g, set, dy: dy, x: x, dw: dw)
    }
    let splits = implicitGemmWeightSplits(g, set, computeUnits: context.device.computeUnits)
    let positions = g.n * g.p
    let perSplit = (positions + splits - 1) / splits
    let chunk = (perSplit + set.tileK - 1) / set.tileK * set.tileK
    let count = g.o * g.k
    // One split's partial block is dw itself: no scratch and no sum.
    let partial = splits == 1 ? dw : try context.allocateView(count: splits * count)
    let divP = fastDivisionConstants(g.p), divOW = fastDivisionConstants(g.ow)
    let kernel = try convGemmKernel(context, set.direct ? .convgemmBackwardWeightDirect : .convgemmBackwardWeight,
                                    g, set)
    let range = set.direct
        ? (global: [splits * set.tileN, (g.og + set.workM - 1) / set.workM, g.groups * ((g.k + set.workN - 1) / set.workN)],
           local: [set.tileN, 1, 1])
        : gemmRange(set, rows: g.og, columns: g.k, depth: g.groups * splits)
    let a = g.implicitGemmSizes
    if set.direct {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmBackwardWeightDirectArguments(
            N: a.N, C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH,
            DW: a.DW, S: Int32(splits), chunk: Int32(chunk), pMul: divP.mul, pShr: divP.shift, owMul: divOW.mul,
            owShr: divOW.shift, dy: dy, x: x, partial: partial))
    } else {
        try context.launch(kernel, global: range.global, local: range.local, ConvgemmBackwardWeightArguments(
            N: a.N, C: a.C, H: a.H, W: a.W, O: a.O, OH: a.OH, OW: a.OW, G: a.G, PH: a.PH, PW: a.PW, DH: a.DH,
            DW: a.DW, S: Int32(splits), chunk: Int32(chunk), pMul: divP.mul, pShr: divP.shift, owMul: divOW.mul,
            owShr: divOW.shift, dy: dy, x: x, partial: partial))
    }
    guard splits > 1 else { return }
    let reduce = try convGemmKernel(context, .convgemmReduce, g, set)
    try context.launch(reduce, global: [count], local: [convGemmReduceGroupSize],
                       ConvgemmReduceArguments(count: Int32(count), S: Int32(splits), partial: partial, dw: dw))
}

// MARK: The row-padded vector form (CPUs)

/// A padded, stride-phase-split copy of `planes` planes of `height` ×
/// `width`: each placed at (`top`, `left`) of a zero grid whose row
/// `sh·i + ph` and column `sw·j + pw` go to row `i`, column `j` of phase
/// plane (ph, pw), `rows` × `columns` each; planes `stride` apart (≥ sh·sw·
/// rows·columns, the tail zero), and `slack` zeros after the last plane for
/// the vector kernels' reads past it.
private struct PaddedPlanes {
    var planes: Int, height: Int, width: Int, top: Int, left: Int
    var sh = 1, sw = 1
    var rows: Int, columns: Int, stride: Int, slack: Int
    var phaseStride: Int { rows * columns }
    var count: Int { planes * stride + slack }
    /// Destination rows: one padding item each.
    var rowCount: Int { planes * sh * sw * rows }

    /// `convgemm_pad_planes`' arguments for this layout.
    func arguments(_ source: BufferView, _ padded: BufferView) -> ConvgemmPadPlanesArguments {
        ConvgemmPadPlanesArguments(planes: Int32(planes), H: Int32(height), W: Int32(width), top: Int32(top),
                                   left: Int32(left), sh: Int32(sh), sw: Int32(sw), HD: Int32(rows),
                                   WD: Int32(columns), DS: Int32(stride), slack: Int32(slack), src: source,
                                   dst: padded)
    }
}

extension ConvgemmPadPlanes2Arguments {
    /// Two layouts' arguments side by side (`convgemm_pad_planes2` takes
    /// `convgemm_pad_planes`' parameters twice, `_a` then `_b`).
    init(_ a: ConvgemmPadPlanesArguments, _ b: ConvgemmPadPlanesArguments) {
        self.init(planesA: a.planes, HA: a.H, WA: a.W, topA: a.top, leftA: a.left, shA: a.sh, swA: a.sw, HDA: a.HD,
                  WDA: a.WD, DSA: a.DS, slackA: a.slack, srcA: a.src, dstA: a.dst, planesB: b.planes, HB: b.H,
                  WB: b.W, topB: b.top, leftB: b.left, shB: b.sh, swB: b.sw, HDB: b.HD, WDB: b.WD, DSB: b.DS,
                  slackB: b.slack, srcB: b.src, dstB: b.dst)
    }
}

/// Values the vector kernels may read past the last padded plane: an item's
/// last vectors and a tap's column offset (see `convgemm.cl`).
private func vectorSlack(_ g: Convolution2DGeometry, _ set: ConvGemmParameters, columns: Int) -> Int {
    16 * max(set.workN, 2) + 2 * columns + (g.kw - 1) * g.parameters.dilationW + 16
}

private func padPlanes(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                       _ layout: PaddedPlanes, from source: BufferView, op: String) throws -> BufferView {
    guard layout.count < Int(Int32.max) else {
        throw CloverError.unsupported(op: op, shapes: [[g.n, g.c, g.h, g.w], [g.o, g.cg, g.kh, g.kw]],
                                      device: context.device.description,
                                      reason: "the padded operand of the vector kernels exceeds 32-bit indexing")
    }
    let padded = try context.allocateView(count: layout.count)
    let kernel = try convGemmKernel(context, .convgemmPadPlanes, g, set)
    try context.launch(kernel, global: [(layout.rowCount + 63) / 64 * 64], local: [64],
                       layout.arguments(source, padded))
    return padded
}

/// Two padded copies in one launch (`convgemm_pad_planes2`).
private func padPlanes(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                       _ a: PaddedPlanes, from sourceA: BufferView, _ b: PaddedPlanes, from sourceB: BufferView,
                       op: String) throws -> (BufferView, BufferView) {
    guard a.count < Int(Int32.max), b.count < Int(Int32.max), a.rowCount + b.rowCount < Int(Int32.max) else {
        throw CloverError.unsupported(op: op, shapes: [[g.n, g.c, g.h, g.w], [g.o, g.cg, g.kh, g.kw]],
                                      device: context.device.description,
                                      reason: "the padded operands of the vector kernels exceed 32-bit indexing")
    }
    let paddedA = try context.allocateView(count: a.count), paddedB = try context.allocateView(count: b.count)
    let kernel = try convGemmKernel(context, .convgemmPadPlanes2, g, set)
    try context.launch(kernel, global: [(a.rowCount + b.rowCount + 63) / 64 * 64], local: [64],
                       ConvgemmPadPlanes2Arguments(a.arguments(sourceA, paddedA), b.arguments(sourceB, paddedB)))
    return (paddedA, paddedB)
}

/// The forward's input, padded and split by stride phase: `[N·C]` planes of
/// SH·SW phase planes of ⌈(H + 2·PH)/SH⌉ × ⌈(W + 2·PW)/SW⌉.
private func paddedInput(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                         _ x: BufferView, op: String) throws -> (view: BufferView, layout: PaddedPlanes) {
    let layout = inputLayout(g, set)
    return (try padPlanes(context, g, set, layout, from: x, op: op), layout)
}

/// The layout of ``paddedInput``.
private func inputLayout(_ g: Convolution2DGeometry, _ set: ConvGemmParameters) -> PaddedPlanes {
    let s = g.parameters
    let rows = (g.h + 2 * s.paddingH + s.strideH - 1) / s.strideH
    let columns = (g.w + 2 * s.paddingW + s.strideW - 1) / s.strideW
    return PaddedPlanes(planes: g.n * g.c, height: g.h, width: g.w, top: s.paddingH, left: s.paddingW,
                        sh: s.strideH, sw: s.strideW, rows: rows, columns: columns,
                        stride: s.strideH * s.strideW * rows * columns, slack: vectorSlack(g, set, columns: columns))
}

/// The vector kernels index their items in 32 bits along dimension 0.
private func checkItems(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ items: Int, op: String) throws {
    guard items < Int(Int32.max) else {
        throw CloverError.unsupported(op: op, shapes: [[g.n, g.c, g.h, g.w], [g.o, g.cg, g.kh, g.kw]],
                                      device: context.device.description,
                                      reason: "\(items) work-items exceed the vector kernels' 32-bit item index")
    }
}

/// Forward: pad x, then the vector product on the output grid (2 launches).
private func vectorForward(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                           x: BufferView, w: BufferView, bias: BufferView?, y: BufferView,
                           activation: ConvActivation, pre: BufferView, statistics: Bool) throws -> ChannelStatistics? {
    let (padded, layout) = try paddedInput(context, g, set, x, op: "conv2d")
    let kernel = try convGemmKernel(context, .convgemmForwardVector, g, set, activation: activation,
                                    statistics: statistics)
    let blocks = (g.oh * layout.columns + 16 * set.workN - 1) / (16 * set.workN)
    // One (count, mean, M2) per output channel and 16-lane vector of the grid.
    let chunks = g.n * blocks * set.workN
    let stats = statistics ? ChannelStatistics(partial: try context.allocateView(count: g.o * chunks * 3),
                                               chunks: chunks) : nil
    let statsView = stats?.partial ?? y   // never written without STATS
    let b = bias ?? w   // never read when has_bias = 0
    let s = g.parameters
    let paddedBlocks = (blocks + set.tileN - 1) / set.tileN * set.tileN
    try checkItems(context, g, paddedBlocks * g.n * g.groups, op: "conv2d")
    try context.launch(kernel, global: [paddedBlocks * g.n * g.groups, (g.og + set.workM - 1) / set.workM],
                       local: [set.tileN, 1],
                       ConvgemmForwardVectorArguments(
                           C: Int32(g.c), O: Int32(g.o), G: Int32(g.groups), OH: Int32(g.oh), OW: Int32(g.ow),
                           WQ: Int32(layout.columns), XS: Int32(layout.phaseStride), CS: Int32(layout.stride),
                           DH: Int32(s.dilationH), DW: Int32(s.dilationW), blocks: Int32(blocks),
                           BP: Int32(paddedBlocks), xp: padded, w: w, bias: b, hasBias: Int32(bias == nil ? 0 : 1),
                           y: y, pre: pre, stats: statsView, chunks: Int32(stats?.chunks ?? 0)))
    return stats
}

/// Where the data gradient places dy: at (`top`, `left`) of a zero grid of
/// `rows` × `columns`, so that every stride phase of dx reads its taps'
/// pixels of dy (kernel row kh reaches phase row i of phase rh at dy row
/// i + (rh + PH − kh·DH)/SH where that is whole) inside the grid.
func vectorDataGradientGrid(_ g: Convolution2DGeometry) -> (top: Int, left: Int, rows: Int, columns: Int) {
    let s = g.parameters
    func axis(size: Int, out: Int, kernel: Int, stride: Int, padding: Int, dilation: Int) -> (Int, Int) {
        var before = 0, after = out
        for phase in 0..<stride {
            let phaseRows = (size - phase + stride - 1) / stride
            guard phaseRows > 0 else { continue }
            for k in 0..<kernel {
                let t = phase + padding - k * dilation
                guard (t % stride + stride) % stride == 0 else { continue }
                let e = t / stride
                before = max(before, -e)
                after = max(after, phaseRows + e)
            }
        }
        return (before, before + after)
    }
    let (top, rows) = axis(size: g.h, out: g.oh, kernel: g.kh, stride: s.strideH, padding: s.paddingH, dilation: s.dilationH)
    let (left, columns) = axis(size: g.w, out: g.ow, kernel: g.kw, stride: s.strideW, padding: s.paddingW, dilation: s.dilationW)
    // The grid must also hold every valid column of a phase of dx.
    return (top, left, rows, max(columns, (g.w + s.strideW - 1) / s.strideW))
}

/// Data gradient: pad dy, then one stride-1 product per stride phase of dx,
/// each with only that phase's taps, in one launch (2 launches).
private func vectorBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                                dy: BufferView, w: BufferView, dx: BufferView) throws {
    let op = "conv2d_backward_data"
    let s = g.parameters
    let grid = vectorDataGradientGrid(g)
    let layout = PaddedPlanes(planes: g.n * g.o, height: g.oh, width: g.ow, top: grid.top, left: grid.left,
                              rows: grid.rows, columns: grid.columns, stride: grid.rows * grid.columns,
                              slack: vectorSlack(g, set, columns: grid.columns))
    let phases = s.strideH * s.strideW
    let phaseRows = (g.h + s.strideH - 1) / s.strideH
    let blocks = (phaseRows * layout.columns + 16 * set.workN - 1) / (16 * set.workN)
    let paddedBlocks = (blocks + set.tileN - 1) / set.tileN * set.tileN
    try checkItems(context, g, paddedBlocks * g.n * g.groups * phases, op: op)
    let padded = try padPlanes(context, g, set, layout, from: dy, op: op)
    let kernel = try convGemmKernel(context, .convgemmBackwardDataVector, g, set)
    try context.launch(kernel, global: [paddedBlocks * g.n * g.groups * phases, (g.cg + set.workM - 1) / set.workM],
                       local: [set.tileN, 1],
                       ConvgemmBackwardDataVectorArguments(
                           C: Int32(g.c), H: Int32(g.h), W: Int32(g.w), O: Int32(g.o), G: Int32(g.groups),
                           PH: Int32(s.paddingH), PW: Int32(s.paddingW), DH: Int32(s.dilationH), DW: Int32(s.dilationW),
                           E: Int32(layout.top), F: Int32(layout.left), WD: Int32(layout.columns),
                           DS: Int32(layout.stride), blocks: Int32(blocks), BP: Int32(paddedBlocks), dyp: padded, w: w,
                           dx: dx))
}

/// How many sample splits the vector weight gradient uses: about 8 items per
/// compute unit, at most one split per sample, the partial products within
/// 64 MiB and G·S within a grid dimension.
func vectorWeightSplits(_ g: Convolution2DGeometry, _ set: ConvGemmParameters, computeUnits: Int) -> Int {
    let items = ((g.k + set.workN - 1) / set.workN) * ((g.og + set.workM - 1) / set.workM) * g.groups
    let wanted = (8 * max(1, computeUnits) + items - 1) / items
    let byMemory = max(1, (64 << 20) / max(1, 4 * g.o * g.k))
    return max(1, min(wanted, g.n, byMemory, 65_535 / g.groups))
}

/// Weight gradient: pad x as the forward does and dy onto the forward's
/// output grid (one launch), then split partial products over samples and
/// their sum in split order (3 launches; 2 where one split suffices).
private func vectorBackwardWeight(_ context: OpenCLContext, _ g: Convolution2DGeometry, _ set: ConvGemmParameters,
                                  dy: BufferView, x: BufferView, dw: BufferView) throws {
    let op = "conv2d_backward_weight"
    let xLayout = inputLayout(g, set)
    let gridW = xLayout.columns
    let dyLayout = PaddedPlanes(planes: g.n * g.o, height: g.oh, width: g.ow, top: 0, left: 0, rows: g.oh,
                                columns: gridW, stride: (g.oh * gridW + 15) / 16 * 16, slack: 0)
    let (xp, dyp) = try padPlanes(context, g, set, xLayout, from: x, dyLayout, from: dy, op: op)
    let splits = vectorWeightSplits(g, set, computeUnits: context.device.computeUnits)
    let count = g.o * g.k
    // One split's partial block is dw itself: no scratch and no sum.
    let partial = splits == 1 ? dw : try context.allocateView(count: splits * count)
    let kblocks = (g.k + set.workN - 1) / set.workN
    let kernel = try convGemmKernel(context, .convgemmBackwardWeightVector, g, set)
    let s = g.parameters
    try context.launch(kernel, global: [(kblocks + set.tileN - 1) / set.tileN * set.tileN,
                                        (g.og + set.workM - 1) / set.workM, g.groups * splits],
                       local: [set.tileN, 1, 1],
                       ConvgemmBackwardWeightVectorArguments(
                           N: Int32(g.n), C: Int32(g.c), O: Int32(g.o), G: Int32(g.groups), WQ: Int32(gridW),
                           XS: Int32(xLayout.phaseStride), CS: Int32(xLayout.stride), DY: Int32(dyLayout.stride),
                           DH: Int32(s.dilationH), DW: Int32(s.dilationW), S: Int32(splits), kblocks: Int32(kblocks),
                           dyp: dyp, xp: xp, partial: partial))
    guard splits > 1 else { return }
    let reduce = try convGemmKernel(context, .convgemmReduce, g, set)
    try context.launch(reduce, global: [(count + convGemmReduceGroupSize - 1) / convGemmReduceGroupSize * convGemmReduceGroupSize],
                       local: [convGemmReduceGroupSize],
                       ConvgemmReduceArguments(count: Int32(count), S: Int32(splits), partial: partial, dw: dw))
}
