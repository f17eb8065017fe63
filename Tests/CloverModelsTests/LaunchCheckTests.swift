import Clover
import CloverModels
import CloverRuntime
import CloverTestSupport
import XCTest

/// Every model of the zoo, and the BERT-base OSCAR encoder, planned for one
/// training step at its standard input size and batch 128 on a planning
/// device: every launch it would make fits the portable GPU launch profile
/// (NVIDIA's 65,535 work-groups in dimensions 1 and 2, 48 KiB of local
/// memory, work-groups of 256, 32-bit indices), proven on a CPU machine.
final class LaunchCheckTests: XCTestCase {
    private func planner() throws -> Device { try TestSupport.planningDevice() }

    /// Both kernel paths: a GPU's (tiled convolutions, depthwise and grouped
    /// kernels, one element per batch-norm item) and a CPU's (the vector
    /// kernels, float16 batch-norm chunks), whatever device plans them.
    func testEveryZooModelFitsThePortableProfileAtBatch128() throws {
        for kind in [DeviceKind.gpu, .cpu] {
            let device = try TestSupport.planningDevice(pathKind: kind)
            var failures: [String] = []
            var planned = 0
            for spec in ModelZoo.all where spec.name != "efficientnet-b7" {
                do {
                    let check = try LaunchCheck.trainingStep(of: spec, batch: 128, on: device)
                    XCTAssertGreaterThan(check.launches, 10, spec.name)
                    planned += 1
                } catch {
                    failures.append("\(kind) paths, \(spec.name): \(error)")
                }
            }
            XCTAssertEqual(failures, [])
            XCTAssertEqual(planned, ModelZoo.all.count - 1)
        }
        // The zoo must hold the models the issue names.
        for name in ["resnet152", "efficientnet-b7", "vgg19", "vgg19-bn", "resnext50-32x4d", "wrn-28-10"] {
            XCTAssertNoThrow(try ModelZoo.spec(named: name), name)
        }
    }

    /// EfficientNet-B7 at 600² and batch 128 has single activations of
    /// 2.2 billion elements (128 × 192 × 300²), past the 2³¹ that Clover's
    /// 32-bit element indices reach: the planner refuses it by name, and
    /// batch 64 fits.
    func testEfficientNetB7FitsAtBatch64AndIsRefusedClearlyAt128() throws {
        let device = try planner()
        let spec = try ModelZoo.spec(named: "efficientnet-b7")
        XCTAssertThrowsError(try LaunchCheck.trainingStep(of: spec, batch: 128, on: device)) { error in
            XCTAssertTrue("\(error)".contains("largest single allocation"), "\(error)")
        }
        let check = try LaunchCheck.trainingStep(of: spec, batch: 64, on: device)
        XCTAssertEqual(check.input, "64x3x600x600")
    }

    func testOSCARBaseEncoderFitsThePortableProfileAtBatch128() throws {
        let check = try LaunchCheck.oscarPretrainingStep(batch: 128, on: try planner())
        XCTAssertEqual(check.input, "128x128")
        XCTAssertGreaterThan(check.launches, 100)
    }

    /// The planner is not vacuous: a launch profile too small for a real
    /// step makes the same check fail, naming the kernel.
    func testPlannerRejectsWhatBreaksAStricterProfile() throws {
        var strict = LaunchProfile.portable
        strict.name = "strict"
        strict.maxGroups = [Int(Int32.max), 8, 8]
        let device = try TestSupport.planningDevice(profile: strict)
        let spec = try ModelZoo.spec(named: "cifar-resnet20")
        XCTAssertThrowsError(try LaunchCheck.trainingStep(of: spec, batch: 128, on: device)) { error in
            XCTAssertTrue("\(error)".contains("strict launch profile"), "\(error)")
        }
    }
}
