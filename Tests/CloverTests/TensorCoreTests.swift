@testable import Clover
@testable import CloverKernels
import CloverRuntime
import CloverTestSupport
import Foundation
import XCTest

/// TF32 tensor cores: the rounding, the probe (its emulated pass and its
/// failure path, both on POCL), and when the convolution paths may take them.
final class TensorCoreTests: XCTestCase {
    /// cvt.rna.tf32.f32: 13 low mantissa bits dropped, to nearest, ties away
    /// from zero, carries into the exponent, overflow to infinity.
    func testTF32RoundingMatchesCvtRnaBitPatterns() {
        let cases: [(UInt32, UInt32)] = [
            (0x3f80_0000, 0x3f80_0000),   // 1.0 is exact
            (0x3f80_0fff, 0x3f80_0000),   // below the half: down
            (0x3f80_1000, 0x3f80_2000),   // a tie: away from zero
            (0x3f80_3000, 0x3f80_4000),   // a tie with an odd kept bit: away from zero, not to even
            (0x3f80_1001, 0x3f80_2000),   // above the half: up
            (0xbf80_1000, 0xbf80_2000),   // negative tie: away from zero
            (0x3fff_f000, 0x4000_0000),   // carry into the exponent: 2.0
            (0x7f7f_ffff, 0x7f80_0000),   // the largest float rounds to infinity
            (0x7f80_0000, 0x7f80_0000),   // infinity stays
            (0xff80_0000, 0xff80_0000),
            (0x0000_1000, 0x0000_2000),   // a subnormal tie
            (0x4049_0fdb, 0x4049_0000),   // pi
        ]
        for (input, expected) in cases {
            XCTAssertEqual(Float(bitPattern: input).roundedToTF32.bitPattern, expected,
                           "0x\(String(input, radix: 16))")
        }
        XCTAssertTrue(Float.nan.roundedToTF32.isNaN)
    }

    /// mma.h's emulation performs the documented fragment layout: the probe
    /// (non-symmetric A, B, C; rounding boundaries) matches the host's product.
    func testTheEmulatedProductPassesTheProbe() throws {
        let context = try TestSupport.context()
        XCTAssertNil(TensorCoreProbe.run(on: context, emulated: true))
    }

    /// A layout mistake does not pass: the probe kernel with B's fragment
    /// read transposed (B[g][t] for B[t][g]) disagrees with the host, and so
    /// does one that forgets to round X.
    func testAWrongFragmentLayoutOrRoundingFailsTheProbe() throws {
        let context = try TestSupport.context()
        let source = try KernelSources.source(family: "tensorcore")
        let transposed = source.replacingOccurrences(of: "B[t * 8 + g]", with: "B[g * 8 + t]")
        XCTAssertNotEqual(transposed, source)
        let failure = try XCTUnwrap(TensorCoreProbe.run(on: context, emulated: true, source: transposed))
        XCTAssertTrue(failure.hasPrefix("D["), failure)
        let unrounded = source.replacingOccurrences(of: "R[r_off + lane] = tf32_round(X[x_off + lane]);",
                                                    with: "R[r_off + lane] = X[x_off + lane];")
        XCTAssertNotEqual(unrounded, source)
        let rounding = try XCTUnwrap(TensorCoreProbe.run(on: context, emulated: true, source: unrounded))
        XCTAssertTrue(rounding.contains("cvt.rna gives"), rounding)
    }

    /// The failure path, on a device without tensor cores: a probe that does
    /// not build is reported, not thrown; the PTX form is refused there by
    /// name (POCL's compiler would abort on it); and a failed probe turns the
    /// tensor-core paths off.
    func testAFailedProbeTurnsTheTensorCoresOff() throws {
        let context = try TestSupport.context()
        XCTAssertFalse(context.device.hasTF32TensorCores)
        let broken = try XCTUnwrap(TensorCoreProbe.run(on: context, emulated: true, source: "__kernel void tf32_mma_probe( {"))
        XCTAssertTrue(broken.contains("clBuildProgram"), broken)
        let refused = try XCTUnwrap(TensorCoreProbe.run(on: context))
        XCTAssertTrue(refused.contains("has no TF32 tensor cores"), refused)
        // The primitive refuses its PTX form there by name instead of handing it to the compiler.
        let device = Device(openCL: context)
        let shapes = [[16, 8], [8, 8], [16, 8], [32]]
        let tensors = try zip(shapes, TensorCoreProbe.inputs).map { try Tensor(shape: $0, values: $1, on: device) }
        XCTAssertThrowsError(try apply(TensorCoreProduct(emulated: false), tensors)) { error in
            XCTAssertTrue("\(error)".contains("tf32_mma") && "\(error)".contains("compute capability 8.0"), "\(error)")
        }
        XCTAssertEqual(context.precisionInForce, "fp32 (tf32 asked; \(context.device.name) has no TF32 tensor cores)")

        let planning = try TestSupport.planningDevice(pathKind: .gpu).openCL!
        XCTAssertEqual(planning.matmulPrecision, .tf32, "the default follows PyTorch's convolutions")
        XCTAssertTrue(planning.usesTF32TensorCores)
        planning.matmulPrecision = .fp32
        XCTAssertFalse(planning.usesTF32TensorCores)
        planning.matmulPrecision = .tf32
        TensorCoreProbe.turnOff(planning, because: broken)
        XCTAssertEqual(planning.tensorCoreFailure, broken)
        XCTAssertFalse(planning.usesTF32TensorCores)
        XCTAssertTrue(planning.precisionInForce.hasPrefix("fp32 (tf32 asked; the tensor-core probe failed: "))
        // A CPU device never takes them, whatever the precision.
        XCTAssertFalse(context.usesTF32TensorCores)
    }

    /// The tensor-core sets are candidates and heuristic defaults only where
    /// the tensor cores may be used; the CPU forms never on a GPU.
    func testTensorCoreSetsAreChosenOnlyWhereAllowed() throws {
        let g = try Convolution2DParameters(stride: 1, padding: 1)
            .geometry(input: [8, 256, 14, 14], weight: [256, 256, 3, 3], op: "conv2d",
                      shapes: [[8, 256, 14, 14], [256, 256, 3, 3]])
        for pass in [ConvPass.forward, .backwardData, .backwardWeight] {
            let with = ConvAlgorithmSelection.candidates(g, pass, kind: .gpu, tensorCores: true)
            let without = ConvAlgorithmSelection.candidates(g, pass, kind: .gpu)
            let cpu = ConvAlgorithmSelection.candidates(g, pass, kind: .cpu)
            XCTAssertEqual(with.filter { $0.roundsToTF32 }.count, 2, "\(pass)")
            XCTAssertTrue(without.allSatisfy { !$0.roundsToTF32 }, "\(pass)")
            XCTAssertTrue(cpu.allSatisfy { !$0.roundsToTF32 }, "\(pass)")
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu, tensorCores: true).parameters,
                           ConvGemmParameters(tensorCoreTileM: 128, tileN: 128, tileK: 8, warpsM: 2, warpsN: 4))
            XCTAssertEqual(ConvAlgorithmSelection.heuristic(g, pass, kind: .gpu).parameters?.form, .tiled)
        }
        for set in ConvGemmParameters.searchSpace where set.form == .tensorCore {
            XCTAssertEqual(set.violations, [], "\(set)")
            XCTAssertEqual(set.workGroupSize % 32, 0)
        }
        let bad = ConvGemmParameters(tensorCoreTileM: 48, tileN: 64, tileK: 12, warpsM: 2, warpsN: 2)
        XCTAssertTrue(bad.violations.contains { $0.contains("multiples of 16 x 8") }, "\(bad.violations)")
        XCTAssertTrue(bad.violations.contains { $0.contains("TK 12 must be a multiple of 8") }, "\(bad.violations)")
    }

    /// Under TF32 a GPU's products (attention's among them) run on the
    /// tensor-core GEMM, one `matmul_tf32` launch each, the small side
    /// picking the 64x64 set; strict FP32 leaves them to CLBlast; a forced
    /// set that is not a tensor-core one is refused by name.
    func testMatMulTakesTheTensorCoresOnlyUnderTF32() throws {
        let device = try TestSupport.planningDevice(pathKind: .gpu)
        let context = try XCTUnwrap(device.openCL)
        var programs: [String] = []
        let previous = context.launchObserver
        context.launchObserver = { record in programs.append(record.kernel.family + " " + record.kernel.programOptions) }
        defer { context.launchObserver = previous }
        func zeros(_ shape: [Int]) throws -> Tensor {
            try Tensor(shape: shape, values: [Float](repeating: 0, count: shape.reduce(1, *)), on: device)
        }
        let q = try zeros([2, 13, 64]), k = try zeros([2, 13, 64]), v = try zeros([2, 13, 64])
        _ = try attention(q, k, v, heads: 2)
        let tensorCore = programs.filter { $0.hasPrefix("matmul ") }
        XCTAssertEqual(tensorCore.count, 2, "\(programs)")
        XCTAssertTrue(tensorCore.allSatisfy { $0.contains("-DTM=64 ") }, "\(tensorCore)")
        XCTAssertTrue(tensorCore.contains { $0.contains("-DTB=1") }, "Q·Kᵀ transposes K: \(tensorCore)")
        _ = try matmul(try zeros([200, 96]), try zeros([96, 300]))
        XCTAssertTrue(programs.last!.hasPrefix("matmul ") && programs.last!.contains("-DTM=128 "), programs.last!)

        programs = []
        context.matmulPrecision = .fp32
        defer { context.matmulPrecision = .tf32 }
        _ = try attention(q, k, v, heads: 2)
        XCTAssertFalse(programs.contains { $0.hasPrefix("matmul ") }, "\(programs)")

        let tiled = ConvGemmParameters.searchSpace.first { $0.form == .tiled }!
        XCTAssertThrowsError(try apply(MatMul(tensorCoreSet: tiled), [try zeros([4, 4]), try zeros([4, 4])])) { error in
            XCTAssertTrue("\(error)".contains("matmul") && "\(error)".contains("not a tensor-core set"), "\(error)")
        }
    }
}
