import Clover

extension ConformanceSuite {
    /// GEMM through CLBlast: every transpose combination, awkward m/n/k,
    /// alpha/beta with C, strided batches and buffer offsets.
    static func gemmCases() -> [ConformanceCase] {
        // Sums of k products in float on the device against Double on the
        // host: error grows like sqrt(k)·eps·|a||b|.
        let tol = Tolerance(absolute: 1e-4, relative: 1e-4)
        var cases: [ConformanceCase] = []
        let dims: [(Int, Int, Int)] = [(1, 1, 1), (3, 7, 13), (13, 1, 33), (33, 97, 7), (97, 13, 3), (64, 64, 64)]
        for (i, (m, n, k)) in dims.enumerated() {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = ta ? [k, m] : [m, k]
                    let b = tb ? [n, k] : [k, n]
                    let offset = (i + (ta ? 1 : 0) + (tb ? 2 : 0)) % 2 == 1
                    cases.append(ConformanceCase(
                        op: "matmul", label: "m\(m) n\(n) k\(k) tA\(ta ? 1 : 0) tB\(tb ? 1 : 0)\(offset ? " offset" : "")",
                        primitive: MatMul(transposeA: ta, transposeB: tb), inputShapes: [a, b],
                        offsetInputs: offset, forward: tol, backward: tol,
                        finiteDifference: m * n * k <= 4096))
                }
            }
        }
        // alpha/beta with an accumulator C.
        for (m, n, k) in [(7, 13, 3), (33, 5, 17)] {
            cases.append(ConformanceCase(
                op: "matmul", label: "m\(m) n\(n) k\(k) alpha 0.5 beta -1.5 with C offset",
                primitive: MatMul(transposeA: false, transposeB: true, alpha: 0.5, beta: -1.5),
                inputShapes: [[m, k], [n, k], [m, n]], offsetInputs: true, forward: tol, backward: tol,
                finiteDifference: true))
        }
        // Strided batches.
        for (batch, m, n, k) in [(2, 3, 5, 7), (5, 13, 1, 33), (3, 17, 9, 4)] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                cases.append(ConformanceCase(
                    op: "matmul", label: "batch\(batch) m\(m) n\(n) k\(k) tA\(ta ? 1 : 0) tB\(tb ? 1 : 0)",
                    primitive: MatMul(transposeA: ta, transposeB: tb, alpha: 1.25),
                    inputShapes: [[batch] + (ta ? [k, m] : [m, k]), [batch] + (tb ? [n, k] : [k, n])],
                    offsetInputs: batch == 3, forward: tol, backward: tol, finiteDifference: batch == 2))
            }
        }
        cases.append(ConformanceCase(
            op: "matmul", label: "batch2 m4 n3 k5 beta 2 with C",
            primitive: MatMul(alpha: -1, beta: 2), inputShapes: [[2, 4, 5], [2, 5, 3], [2, 4, 3]],
            forward: tol, backward: tol, finiteDifference: true))
        cases += tensorCoreGemmCases()
        return cases
    }

    /// The batched GEMM on TF32 tensor cores (`Kernels/matmul.cl`, emulated on
    /// devices without them) against a reference that rounds A and B (and in
    /// the gradients the cotangent) to TF32 as the kernel stages them: both
    /// sets, every transpose combination, M and N tails past a tile, K not a
    /// multiple of 8 or of the K-tile (the double buffer's last step), strided
    /// batches with offsets, alpha and beta with C.
    static func tensorCoreGemmCases() -> [ConformanceCase] {
        // FP32 accumulation of exactly rounded products against Double: the
        // sum's error only, sqrt(k)·eps·|a||b| ≲ 1e-6 here.
        let tol = Tolerance(absolute: 2e-5, relative: 1e-5)
        let sets = ConvGemmParameters.searchSpace.filter { $0.form == .tensorCore }
        let dims: [(Int, Int, Int)] = [(17, 9, 13), (70, 33, 24), (5, 130, 9), (129, 7, 40)]
        var cases: [ConformanceCase] = []
        for (si, set) in sets.enumerated() {
            for (ci, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)].enumerated() {
                let (m, n, k) = dims[(si + ci) % dims.count]
                cases.append(ConformanceCase(
                    op: "matmul", label: "m\(m) n\(n) k\(k) tA\(ta ? 1 : 0) tB\(tb ? 1 : 0) forced \(set)",
                    primitive: MatMul(transposeA: ta, transposeB: tb, tensorCoreSet: set),
                    inputShapes: [ta ? [k, m] : [m, k], tb ? [n, k] : [k, n]],
                    offsetInputs: ci % 2 == 1, forward: tol, backward: tol))
            }
        }
        for (ta, tb) in [(false, true), (false, false)] {
            let (batch, m, n, k) = (3, 19, 11, 21)
            cases.append(ConformanceCase(
                op: "matmul", label: "batch\(batch) m\(m) n\(n) k\(k) tA\(ta ? 1 : 0) tB\(tb ? 1 : 0) forced \(sets[0])",
                primitive: MatMul(transposeA: ta, transposeB: tb, alpha: 0.125, tensorCoreSet: sets[0]),
                inputShapes: [[batch] + (ta ? [k, m] : [m, k]), [batch] + (tb ? [n, k] : [k, n])],
                offsetInputs: true, forward: tol, backward: tol))
        }
        cases.append(ConformanceCase(
            op: "matmul", label: "m33 n17 k12 alpha 0.5 beta -1.5 with C forced \(sets[1])",
            primitive: MatMul(transposeB: true, alpha: 0.5, beta: -1.5, tensorCoreSet: sets[1]),
            inputShapes: [[33, 12], [17, 12], [33, 17]], offsetInputs: true, forward: tol, backward: tol))
        return cases
    }
}
