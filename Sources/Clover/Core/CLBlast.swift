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
func clblastGemm(_ context: OpenCLContext, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                 alpha: Float, a: BufferView, lda: Int, strideA: Int,
                 b: BufferView, ldb: Int, strideB: Int,
                 beta: Float, c: BufferView, ldc: Int, strideC: Int, batch: Int = 1) throws {
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
        try checkCLBlast(CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                      a.buffer.handle, a.offset, lda, b.buffer.handle, b.offset, ldb,
                                      beta, c.buffer.handle, c.offset, ldc, &queue, &event), "CLBlastSgemm",
                         detail: gemmFailureDetail(context, shape))
        context.noteLaunch("CLBlastSgemm", event: event)
    } else {
        try checkCLBlast(CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha,
                                                    a.buffer.handle, a.offset, lda, strideA,
                                                    b.buffer.handle, b.offset, ldb, strideB,
                                                    beta, c.buffer.handle, c.offset, ldc, strideC,
                                                    batch, &queue, &event), "CLBlastSgemmStridedBatched",
                         detail: gemmFailureDetail(context, shape))
        context.noteLaunch("CLBlastSgemmStridedBatched", event: event)
    }
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
