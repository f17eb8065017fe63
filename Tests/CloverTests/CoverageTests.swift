import Clover
import CloverConformance
import CloverKernels
import CloverRuntime
import XCTest

/// The sweep must reach every `__kernel` in `Kernels/`.
final class CoverageTests: XCTestCase {
    func testSweepExercisesEveryKernel() throws {
        let device = try TestDevice.get()
        let results = try Sweep.run(ConformanceSuite.allCases())
        XCTAssertTrue(results.allSatisfy(\.passed), "failing cases: \(results.filter { !$0.passed }.map { "\($0.op) [\($0.label)]" })")
        let declared = try ConformanceSuite.declaredKernels()
        XCTAssertFalse(declared.isEmpty)
        let missing = try ConformanceSuite.unexercisedKernels(on: XCTUnwrap(device.openCL))
        XCTAssertEqual(missing, [], "kernels the sweep never launched: \(missing)")
        // CLBlast GEMM is exercised too, plain and strided-batched.
        XCTAssertNotNil(device.openCL?.launchCounts["clblast/CLBlastSgemm"])
        XCTAssertNotNil(device.openCL?.launchCounts["clblast/CLBlastSgemmStridedBatched"])
    }

    /// A cold sweep's time is mostly spent building programs (BENCHMARKS.md,
    /// "The first run"), so the number of distinct programs the sweep needs
    /// is held to a budget: a new case or parameter set that adds programs
    /// must raise it here on purpose. The count is machine-independent for
    /// a device of the same kind (the CPU heuristics pick the sets).
    func testSweepBuildsAtMostItsProgramBudget() throws {
        let device = try TestDevice.get()
        _ = try Sweep.run(ConformanceSuite.allCases())
        // 138 measured on POCL (2026-12-05), 151 with the TF32 tensor-core sets' 12 convgemm
        // programs (convolutions and linear layers) and the tensor-core probe, 159 with the tensor-core
        // batched GEMM's 8 (2 sets x 4 transpose combinations: matmul and attention; 2026-12-06), 164
        // with max pooling's gradient built per window and stride (6 windows, small programs; 2026-12-07); GPU
        // devices take other paths and are unmeasured, so they get headroom until a GPU session
        // records their count.
        let budget = device.openCL?.device.kind == .cpu ? 164 : 189
        let byFamily = Dictionary(grouping: Sweep.programs, by: { String($0.prefix(while: { $0 != " " })) })
            .mapValues(\.count).sorted { $0.key < $1.key }
        XCTAssertGreaterThan(Sweep.programs.count, 0)
        XCTAssertLessThanOrEqual(Sweep.programs.count, budget, "programs per family: \(byFamily)")
    }

    /// The harness must be able to fail: a primitive whose OpenCL path is
    /// wrong by a small amount is caught on forward and backward.
    func testHarnessCatchesAWrongKernel() throws {
        let device = try TestDevice.get()
        struct OffByALittle: Primitive {
            var name: String { "off_by_a_little" }
            func outputShapes(for inputs: [[Int]]) throws -> [[Int]] { inputs }
            func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] { inputs }
            func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
                // Writes 1.001·x through the real scale kernel.
                let y = try scale(inputs[0], by: 1.001).toArray()
                try context.upload(y, to: outputs[0].deviceView!)
            }
            func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
                [try scale(cotangents[0], by: inputs[0].device.isReference ? 1 : 0.999)]
            }
        }
        let c = ConformanceCase(op: "off_by_a_little", label: "13", primitive: OffByALittle(), inputShapes: [[13]],
                                forward: Tolerance(absolute: 1e-6, relative: 1e-6),
                                backward: Tolerance(absolute: 1e-6, relative: 1e-6), finiteDifference: true)
        let r = ConformanceRunner(device: device).run(c)
        XCTAssertFalse(r.passed)
        XCTAssertGreaterThan(r.forward.failures, 0)
        XCTAssertGreaterThan(r.backward.failures, 0)
        XCTAssertEqual(r.finiteDifference?.failures, 0, "the reference gradient itself is right")
    }

    /// A wrong reference gradient is caught by finite differences.
    func testFiniteDifferencesCatchAWrongReferenceGradient() throws {
        let device = try TestDevice.get()
        struct WrongGradient: Primitive {
            var name: String { "wrong_gradient" }
            func outputShapes(for inputs: [[Int]]) throws -> [[Int]] { inputs }
            func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] { inputs }
            func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
                try context.copy(from: inputs[0].deviceView!, to: outputs[0].deviceView!, count: inputs[0].count)
            }
            func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
                [try scale(cotangents[0], by: 2)]
            }
        }
        let c = ConformanceCase(op: "wrong_gradient", label: "7", primitive: WrongGradient(), inputShapes: [[7]],
                                forward: Tolerance(absolute: 1e-6, relative: 1e-6),
                                backward: Tolerance(absolute: 1e-6, relative: 1e-6), finiteDifference: true)
        let r = ConformanceRunner(device: device).run(c)
        XCTAssertFalse(r.passed)
        XCTAssertGreaterThan(r.finiteDifference?.failures ?? 0, 0)
    }
}
