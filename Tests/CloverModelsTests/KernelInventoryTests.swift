import Clover
import CloverModels
import CloverRuntime
import CloverTestSupport
import Foundation
import XCTest

/// The GPU path's kernel inventory, which the static NVIDIA check compiles:
/// what the ops ask for on a planning device that stands for a GPU.
final class KernelInventoryTests: XCTestCase {
    func testTheGPUPathAsksOnlyForTiledConvolutionsWithTheirRegisterLimits() throws {
        let device = try TestSupport.planningDevice(pathKind: .gpu)
        let specs = try ["resnet50", "efficientnet-b0"].map { try ModelZoo.spec(named: $0) }
        let inventory = try KernelInventory.gpuPath(models: specs, includeOSCAR: false, batches: [32],
                                                    tuningCandidates: true, on: device)
        XCTAssertEqual(inventory.batches, ["resnet50": 32, "efficientnet-b0": 32])
        let families = Set(inventory.programs.map(\.family))
        for family in ["convgemm", "depthwise", "normalization", "pooling", "loss", "optimizer"] {
            XCTAssertTrue(families.contains(family), "\(family) missing from \(families.sorted())")
        }
        let convgemm = inventory.programs.filter { $0.family == "convgemm" }
        XCTAssertGreaterThan(convgemm.count, 10)
        for program in convgemm {
            // The CPU-only forms (row-padded vector, barrier-free direct) are never tried on a GPU.
            XCTAssertTrue(program.options.contains("-DVECTOR=0") && program.options.contains("-DDIRECT=0"),
                          program.options)
            // Work-groups of 256 are held to 128 registers (two per SM); 128 items are not limited.
            let items = workGroupSize(program.options)
            XCTAssertEqual(program.registerLimit, items == 256 ? 128 : nil, program.options)
            if program.options.contains("-DTM=128 ") {
                XCTAssertTrue(program.options.contains("-DTK=8 "), program.options)
            }
            // The planning device takes no NVIDIA option; the limit travels beside the options.
            XCTAssertFalse(program.options.contains("-cl-nv-"), program.options)
        }
        XCTAssertTrue(convgemm.contains { $0.options.contains("-DTM=128 ") && $0.options.contains("-DKH=1 ") })
        // The tuning candidates are planned under TF32: the tensor-core sets are there, emulated on
        // the planning device (the static NVIDIA check compiles them without MMA_EMULATE).
        let tensorCore = convgemm.filter { $0.options.contains("-DMMA=1") }
        XCTAssertGreaterThan(tensorCore.count, 2)
        XCTAssertTrue(tensorCore.allSatisfy { $0.options.contains("-DMMA_EMULATE=1") })
        XCTAssertTrue(tensorCore.contains { $0.registerLimit == 128 } && tensorCore.contains { $0.registerLimit == nil })
        // Every tensor-core GEMM program, set by transposes, whatever the models plan.
        let matmul = inventory.programs.filter { $0.family == "matmul" }
        XCTAssertEqual(matmul.count, 8, matmul.map(\.options).description)
        XCTAssertTrue(matmul.allSatisfy { $0.options.contains("-DMMA_EMULATE=1") && $0.kernels.map(\.name) == ["matmul_tf32"] })
        XCTAssertEqual(Set(matmul.map(\.registerLimit)), [128, nil])
        // Every launch names its work-group size, so the check knows what it is held to.
        for program in inventory.programs {
            for kernel in program.kernels {
                XCTAssertFalse(kernel.driverChosenLocal, "\(program.family)/\(kernel.name)")
                XCTAssertFalse(kernel.localSizes.isEmpty, "\(program.family)/\(kernel.name)")
                XCTAssertGreaterThan(kernel.launches, 0)
            }
        }
        // The JSON the check reads keeps the limit.
        let json = String(decoding: try JSONEncoder().encode(inventory), as: UTF8.self)
        XCTAssertTrue(json.contains("\"registerLimit\":128"), String(json.prefix(400)))
    }

    /// Work-items per group of a convgemm program, from its defines.
    private func workGroupSize(_ options: String) -> Int {
        func value(_ name: String) -> Int {
            let part = options.split(separator: " ").first { $0.hasPrefix("-D\(name)=") }
            return part.flatMap { Int($0.dropFirst(name.count + 3)) } ?? 0
        }
        if options.contains("-DMMA=1") { return 32 * value("WM") * value("WN") }
        return (value("TM") / value("WM")) * (value("TN") / value("WN"))
    }

    func testAnOrdinaryDeviceIsRefusedByName() throws {
        let device = try TestSupport.planningDevice(pathKind: .cpu)
        XCTAssertThrowsError(try KernelInventory.gpuPath(models: [], includeOSCAR: false, on: device)) { error in
            XCTAssertTrue("\(error)".contains("not a planning device with GPU paths"), "\(error)")
        }
        let gpu = try TestSupport.planningDevice(pathKind: .gpu)
        XCTAssertThrowsError(try KernelInventory.gpuPath(models: [], includeOSCAR: false, batches: [0], on: gpu)) { error in
            XCTAssertTrue("\(error)".contains("batch sizes must be positive"), "\(error)")
        }
    }
}
