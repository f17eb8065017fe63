import CCLBlast
import CloverRuntime

/// Throws an ``OpenCLError`` naming the CLBlast routine and the status's
/// name unless `status` is `CLBlastSuccess`.
func checkCLBlast(_ status: CLBlastStatusCode, _ call: String, detail: @autoclosure () -> String? = nil) throws {
    guard status != CLBlastSuccess else { return }
    let code = Int32(status.rawValue)
    throw OpenCLError(call: call, code: code, detail: [clblastStatusName(code), detail()].compactMap { $0 }.joined(separator: ": "))
}

/// CLBlast's own status names; codes above -1000 are OpenCL's.
func clblastStatusName(_ code: Int32) -> String? {
    let names: [Int32: String] = [
        -1024: "CLBlastNotImplemented", -1022: "CLBlastInvalidMatrixA", -1021: "CLBlastInvalidMatrixB",
        -1020: "CLBlastInvalidMatrixC", -1019: "CLBlastInvalidVectorX", -1018: "CLBlastInvalidVectorY",
        -1017: "CLBlastInvalidDimension", -1016: "CLBlastInvalidLeadDimA", -1015: "CLBlastInvalidLeadDimB",
        -1014: "CLBlastInvalidLeadDimC", -1013: "CLBlastInvalidIncrementX", -1012: "CLBlastInvalidIncrementY",
        -1011: "CLBlastInsufficientMemoryA", -1010: "CLBlastInsufficientMemoryB", -1009: "CLBlastInsufficientMemoryC",
        -1008: "CLBlastInsufficientMemoryX", -1007: "CLBlastInsufficientMemoryY",
        -2050: "CLBlastInsufficientMemoryTemp", -2049: "CLBlastInvalidBatchCount",
        -2048: "CLBlastInvalidOverrideKernel", -2047: "CLBlastMissingOverrideParameter",
        -2046: "CLBlastInvalidLocalMemUsage", -2045: "CLBlastNoHalfPrecision", -2044: "CLBlastNoDoublePrecision",
        -2043: "CLBlastInvalidVectorScalar", -2042: "CLBlastInsufficientMemoryScalar",
        -2041: "CLBlastDatabaseError", -2040: "CLBlastUnknownError", -2039: "CLBlastUnexpectedError",
    ]
    return names[code]
}

/// Row-major single-precision GEMM on the context's queue through CLBlast:
/// `C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]` for `batch` matrices
/// spaced by the given strides (elements). `batch == 1` uses `CLBlastSgemm`.
package func clblastGemm(_ context: OpenCLContext, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                 alpha: Float, a: BufferView, lda: Int, strideA: Int,
                 b: BufferView, ldb: Int, strideB: Int,
                 beta: Float, c: BufferView, ldc: Int, strideC: Int, batch: Int = 1) throws {
    if context.isPlanning {
        try planGemm(context, m: m, n: n, k: k, batch: batch)
        return
    }
    // Tuned parameters must be in force before CLBlast builds its kernels;
    // Device.select applies them already, this covers contexts made directly.
    try GemmTuning.applyPersistedOnce(context)
    var queue: cl_command_queue? = context.queue
    let ta = transposeA ? CLBlastTransposeYes : CLBlastTransposeNo
    let tb = transposeB ? CLBlastTransposeYes : CLBlastTransposeNo
    let shape = "m \(m) n \(n) k \(k) batch \(batch)"
    // The event gives the GEMM's device time when the context is profiling;
    // otherwise noteLaunch just releases it.
    var event: cl_event?
    if batch == 1 {
        // CLBlast's indirect path pads and transposes A, B and C into a
        // temporary buffer; left to itself it creates (and frees) one on
        // every call. Taken from the context's pool instead, a training step
        // in steady state reuses the same buffers and allocates nothing. The
        // queue is in order, so the buffer may go back to the pool as soon as
        // the GEMM is enqueued.
        var tempBytes = 0
        try checkCLBlast(CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, ta, tb, m, n, k, a.offset, lda,
                                                    b.offset, ldb, c.offset, ldc, &queue, &tempBytes),
                         "CLBlastSGemmTempBufferSize", detail: gemmFailureDetail(context, shape))
        let temp = tempBytes > 0 ? try context.allocate(bytes: tempBytes) : nil
        try checkCLBlast(CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                                    a.buffer.handle, a.offset, lda, b.buffer.handle, b.offset, ldb,
                                                    beta, c.buffer.handle, c.offset, ldc, &queue, &event,
                                                    temp?.handle), "CLBlastSgemmWithTempBuffer",
                         detail: gemmFailureDetail(context, shape))
        withExtendedLifetime(temp) {}
        context.noteLaunch("CLBlastSgemm", event: event)
    } else {
        // No temp-buffer variant exists for the strided-batched GEMM: on its
        // indirect path CLBlast creates padded copies of A, B and C (a whole
        // batch of them) on every call. Hot paths that would take it use
        // `clblastBatchedGemmAllocates` to pick a route through plain GEMMs.
        try checkCLBlast(CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                                    a.buffer.handle, a.offset, lda, strideA,
                                                    b.buffer.handle, b.offset, ldb, strideB,
                                                    beta, c.buffer.handle, c.offset, ldc, strideC,
                                                    batch, &queue, &event), "CLBlastSgemmStridedBatched",
                         detail: gemmFailureDetail(context, shape))
        context.noteLaunch("CLBlastSgemmStridedBatched", event: event)
    }
}

/// Whether a strided-batched GEMM of these sizes would make CLBlast create
/// temporary buffers on the call: true when one of its matrices takes
/// CLBlast's indirect kernel and needs padding or transposing (the
/// batched routine then allocates a padded copy per matrix of the batch;
/// with a weight at stride 0, `batch` copies of it). The direct kernel,
/// which small products take, reads the operands in place.
///
/// Answered from `CLBlastSGemmTempBufferSize`, which applies the same
/// direct/indirect rule and padding checks (offsets are taken as 0: the
/// batched routine ignores them in that check).
func clblastBatchedGemmAllocates(_ context: OpenCLContext, transposeA: Bool, transposeB: Bool,
                                 m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int) throws -> Bool {
    try GemmTuning.applyPersistedOnce(context)
    var queue: cl_command_queue? = context.queue
    var bytes = 0
    try checkCLBlast(CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, transposeA ? CLBlastTransposeYes : CLBlastTransposeNo,
                                                transposeB ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k,
                                                0, lda, 0, ldb, 0, ldc, &queue, &bytes),
                     "CLBlastSGemmTempBufferSize", detail: "m \(m) n \(n) k \(k)")
    return bytes > 0
}

/// The detail of a failed GEMM: its shape, and the tuned parameters when a
/// persisted set is in force, since they are then the likely culprit.
private func gemmFailureDetail(_ context: OpenCLContext, _ shape: String) -> String {
    guard GemmTuning.appliedRecord(on: context.device) != nil else { return shape }
    let file = context.programs.directory.map { GemmTuning.path(for: context.device, directory: $0) }
        ?? "the program cache"
    return shape + "; tuned CLBlast parameters from \(file) are applied "
        + "(\(GemmTuning.environmentVariable)=0 disables them)"
}

/// A planning context's stand-in for a CLBlast GEMM: checks what would stop
/// CLBlast's kernels on a GPU and counts the call, enqueueing nothing.
///
/// CLBlast solves a row-major GEMM as the column-major one of its
/// transpose, so either of `m` and `n` may end up in grid dimension 1, in
/// tiles of at least 32 (its smallest `WGD`/`NWG` defaults), and the batch
/// of a strided-batched GEMM is grid dimension 2.
private func planGemm(_ context: OpenCLContext, m: Int, n: Int, k: Int, batch: Int) throws {
    let shape = "m \(m) n \(n) k \(k) batch \(batch)"
    let limit = context.launchProfile.maxGroups[1]
    let name = batch == 1 ? "CLBlastSgemm" : "CLBlastSgemmStridedBatched"
    var reason: String?
    if [m, n, k].contains(where: { $0 > Int(Int32.max) }) {
        reason = "a dimension exceeds 32-bit indices"
    } else if max(m, n) > limit * 32 {
        reason = "\(max(m, n)) rows or columns need more than \(limit) work-groups of 32 in grid dimension 1"
    } else if batch > context.launchProfile.maxGroups[2] {
        reason = "a batch of \(batch) exceeds \(context.launchProfile.maxGroups[2]) work-groups in grid dimension 2"
    }
    if let reason {
        throw RuntimeError.launchOutsideProfile(kernel: "\(name) (\(shape))", global: [m, n, batch], local: nil,
                                                profile: context.launchProfile.name, reason: reason)
    }
    context.noteLaunch(name)
}
