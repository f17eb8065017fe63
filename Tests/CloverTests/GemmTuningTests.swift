@testable import Clover
import CloverConformance
import CloverFiles
import CloverRuntime
@testable import CloverTuning
import Foundation
import CloverTestSupport
import XCTest

/// GEMM tuning: candidate constraints, a tiny search on the test device whose
/// result still passes the GEMM conformance cases, persistence, and the
/// `CLOVER_GEMM_TUNING=0` switch.
///
/// CLBlast's parameter overrides are process-wide and CLBlast has no "unset",
/// so every test that overrides records the parameters in force first
/// (`GemmTuning.currentConfiguration`, read back from CLBlast) and applies
/// them again when it ends. Other tests in the same process then run with
/// whatever was in force before: CLBlast's defaults, or the parameters a
/// saved `clover tune` applied when the test device was selected.
final class GemmTuningTests: XCTestCase {
    private func openCLContext() throws -> OpenCLContext {
        guard let context = try TestDevice.get().openCL else { throw TestSupport.unavailable("no OpenCL device") }
        return context
    }

    /// Runs `body` and then re-applies the GEMM parameters in force before it.
    private func preservingParameters<T>(_ device: OpenCLDevice, _ body: () throws -> T) throws -> T {
        let before = try GemmTuning.currentConfiguration(on: device)
        defer { XCTAssertNoThrow(try GemmTuning.apply(before, to: device)) }
        return try body()
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-gemm-tuning-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A configuration unlike CLBlast's defaults on any device, valid on POCL and GPUs.
    private let nonDefault = GemmConfiguration(
        xgemm: XgemmParameters(mwg: 64, nwg: 16, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 2,
                               sa: 1, sb: 1),
        direct: XgemmDirectParameters(wgd: 32, mdimcd: 8, ndimcd: 8, mdimad: 8, ndimbd: 8, vwmd: 4, vwnd: 2),
        routine: GemmRoutineParameters(minIndirectSize: 40))

    // MARK: Candidates

    func testCandidatesRespectTheConstraints() {
        for (kind, local, group) in [(DeviceKind.cpu, 4 << 20, 4096), (.gpu, 48 << 10, 1024), (.gpu, 16 << 10, 256)] {
            let xgemm = GemmTuning.xgemmCandidates(kind: kind, localMemoryLimit: local, maxWorkGroupSize: group)
            XCTAssertGreaterThan(xgemm.count, 1000)
            XCTAssertEqual(Set(xgemm).count, xgemm.count, "duplicates")
            XCTAssertTrue(xgemm.contains { $0["GEMMK"] == 1 }, "no register-tiled candidates")
            for p in xgemm {
                // The constraints restated independently of XgemmParameters.violations.
                let (mwg, nwg, kwg) = (p["MWG"], p["NWG"], p["KWG"])
                let (mdimc, ndimc, mdima, ndimb) = (p["MDIMC"], p["NDIMC"], p["MDIMA"], p["NDIMB"])
                let (vwm, vwn) = (p["VWM"], p["VWN"])
                XCTAssertEqual(mwg % (mdimc * vwm), 0, "\(p)")
                XCTAssertEqual(nwg % (ndimc * vwn), 0, "\(p)")
                XCTAssertEqual(mwg % (mdima * vwm), 0, "\(p)")
                XCTAssertEqual(nwg % (ndimb * vwn), 0, "\(p)")
                XCTAssertEqual(kwg % p["KWI"], 0, "\(p)")
                if p["GEMMK"] == 0 {
                    XCTAssertEqual(kwg % ((mdimc * ndimc) / mdima), 0, "\(p)")
                    XCTAssertEqual(kwg % ((mdimc * ndimc) / ndimb), 0, "\(p)")
                } else {
                    XCTAssertEqual(p["KREG"] % vwn, 0, "\(p)")
                    XCTAssertEqual(p["SA"] + p["SB"], 0, "\(p)")
                }
                XCTAssertLessThanOrEqual(4 * (p["SA"] * kwg * mwg + p["SB"] * kwg * nwg), local, "\(p)")
                XCTAssertLessThanOrEqual(mdimc * ndimc, group, "\(p)")
            }
            let direct = GemmTuning.directCandidates(kind: kind, localMemoryLimit: local, maxWorkGroupSize: group)
            XCTAssertGreaterThan(direct.count, 100)
            XCTAssertEqual(Set(direct).count, direct.count, "duplicates")
            for p in direct {
                let wgd = p["WGD"], threads = p["MDIMCD"] * p["NDIMCD"]
                XCTAssertEqual(wgd % p["KWID"], 0, "\(p)")
                XCTAssertEqual(wgd % (p["MDIMCD"] * p["VWMD"]), 0, "\(p)")
                XCTAssertEqual(wgd % (p["NDIMCD"] * p["VWND"]), 0, "\(p)")
                XCTAssertEqual(wgd % (p["MDIMAD"] * p["VWMD"]), 0, "\(p)")
                XCTAssertEqual(wgd % (p["NDIMBD"] * p["VWND"]), 0, "\(p)")
                XCTAssertEqual(wgd % (threads / p["MDIMAD"]), 0, "\(p)")
                XCTAssertEqual(wgd % (threads / p["NDIMBD"]), 0, "\(p)")
                XCTAssertLessThanOrEqual(4 * (wgd * (wgd + p["PADA"]) + wgd * (wgd + p["PADB"])), local, "\(p)")
                XCTAssertLessThanOrEqual(threads, group, "\(p)")
            }
        }
    }

    func testCandidateOrderIsDeterministicAndSeedsComeFirst() {
        let a = GemmTuning.xgemmCandidates(kind: .cpu, localMemoryLimit: 1 << 20, maxWorkGroupSize: 4096)
        let b = GemmTuning.xgemmCandidates(kind: .cpu, localMemoryLimit: 1 << 20, maxWorkGroupSize: 4096)
        XCTAssertEqual(a, b)
        XCTAssertEqual(Array(a.prefix(GemmTuning.xgemmCPUSeeds.count)), GemmTuning.xgemmCPUSeeds)
        let gpu = GemmTuning.xgemmCandidates(kind: .gpu, localMemoryLimit: 1 << 20, maxWorkGroupSize: 4096)
        XCTAssertEqual(Array(gpu.prefix(GemmTuning.xgemmGPUSeeds.count)), GemmTuning.xgemmGPUSeeds)
        XCTAssertEqual(GemmTuning.directCandidates(kind: .cpu, localMemoryLimit: 1 << 20, maxWorkGroupSize: 4096),
                       GemmTuning.directCandidates(kind: .cpu, localMemoryLimit: 1 << 20, maxWorkGroupSize: 4096))
        // A tight local-memory limit drops the sets that exceed it.
        let small = GemmTuning.xgemmCandidates(kind: .gpu, localMemoryLimit: 8 << 10, maxWorkGroupSize: 256)
        XCTAssertTrue(small.allSatisfy { $0.localMemoryBytes <= 8 << 10 && $0["MDIMC"] * $0["NDIMC"] <= 256 })
        XCTAssertLessThan(small.count, gpu.count)
    }

    func testViolationsNameTheBrokenConstraint() throws {
        // MWG 16 cannot hold MDIMC 8 threads of 4-wide vectors.
        let bad = XgemmParameters(mwg: 16, nwg: 32, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 1,
                                  sa: 1, sb: 1)
        XCTAssertTrue(bad.violations().contains { $0.contains("MWG % (MDIMC·VWM)") }, "\(bad.violations())")
        let big = XgemmParameters(mwg: 128, nwg: 128, kwg: 32, mdimc: 16, ndimc: 16, mdima: 16, ndimb: 16, vwm: 4,
                                  vwn: 4, sa: 1, sb: 1)
        XCTAssertEqual(big.localMemoryBytes, 32768)
        XCTAssertTrue(big.violations(localMemoryLimit: 16384, maxWorkGroupSize: nil).contains { $0.contains("local memory") })
        XCTAssertTrue(big.violations(localMemoryLimit: nil, maxWorkGroupSize: 128).contains { $0.contains("work-group") })
        // Hand-made zeros are reported, not divided by.
        let zero = XgemmParameters(mwg: 64, nwg: 64, kwg: 32, mdimc: 0, ndimc: 8, mdima: 0, ndimb: 8, kwi: 0, vwm: 4,
                                   vwn: 4, sa: 0, sb: 0)
        XCTAssertTrue(zero.violations().contains { $0.contains("KWG % KWI") }, "\(zero.violations())")
        XCTAssertThrowsError(try XgemmParameters(["MWG": 64])) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
        XCTAssertThrowsError(try XgemmDirectParameters(nonDefault.direct.values.merging(["WGD": 0]) { $1 }))
    }

    func testRoutingSendsEachShapeDownItsFasterPath() {
        let small = GemmShape(m: 16, n: 100_352, k: 144), square = GemmShape(m: 1024, n: 1024, k: 1024)
        let clblast = GemmRoutineParameters(minIndirectSize: 896)
        XCTAssertTrue(clblast.usesDirect(small))
        XCTAssertFalse(clblast.usesDirect(square))
        func route(_ indirect: [Double], _ direct: [Double]) -> (parameters: GemmRoutineParameters, score: Double) {
            GemmTuning.routing(shapes: [square, small], indirectTimes: indirect, directTimes: direct, default: clblast)
        }
        // Direct faster for both: the threshold moves above the square GEMM.
        let allDirect = route([2, 2], [1, 1])
        XCTAssertTrue(allDirect.parameters.usesDirect(square) && allDirect.parameters.usesDirect(small), "\(allDirect)")
        // The score is the geometric mean of GFLOP/s on the chosen paths.
        let expected = ((square.flops / 1e9) * (small.flops / 1e9)).squareRoot()
        XCTAssertEqual(allDirect.score, expected, accuracy: expected * 1e-9)
        // Indirect faster for both: it moves just below the small one.
        let allIndirect = route([1, 1], [2, 2]).parameters
        XCTAssertFalse(allIndirect.usesDirect(square) || allIndirect.usesDirect(small), "\(allIndirect)")
        // CLBlast's split already right, or another only within noise: kept.
        XCTAssertEqual(route([1, 2], [2, 1]).parameters, clblast)
        XCTAssertEqual(route([1, 1.01], [2, 1]).parameters, clblast)
        // Three shapes, the two smaller faster direct: the threshold goes
        // between them and the square one.
        let middle = GemmShape(m: 256, n: 256, k: 256)
        let three = GemmTuning.routing(shapes: [square, middle, small], indirectTimes: [1, 1, 4],
                                       directTimes: [4, 0.5, 1], default: GemmRoutineParameters(minIndirectSize: 1))
        XCTAssertTrue(three.parameters.usesDirect(small) && three.parameters.usesDirect(middle)
                      && !three.parameters.usesDirect(square), "\(three)")
    }

    // MARK: Search

    /// A tiny search (one candidate per kernel, small awkward matrices)
    /// whose winner, applied, still passes every GEMM conformance case on
    /// both CLBlast paths. A kernel the tiny search left at CLBlast's default
    /// is replaced by a fixed non-default set for the conformance runs, so
    /// overridden parameters are exercised on both paths either way.
    ///
    /// Nearly all its time is POCL compiling CLBlast's GEMM program, once per
    /// parameter set (5–6 s each on this project's busy 2-core machine): it
    /// takes seconds once POCL's kernel cache holds them, about a minute on a
    /// cold cache.
    func testTinyTuningRunStaysCorrect() throws {
        let context = try openCLContext()
        let device = context.device
        try preservingParameters(device) {
            let options = GemmTuningOptions(
                seconds: 20, shapes: [GemmShape(m: 96, n: 80, k: 72),
                                      GemmShape(m: 33, n: 130, k: 17, transposeA: true, transposeB: true)],
                maxCandidates: 1, repeats: 1)
            var reports: [GemmCandidateReport] = []
            let result = try Tuner(context).tuneGemm(options) { reports.append($0) }
            XCTAssertEqual(result.defaultConfiguration, try GemmTuning.builtinConfiguration(on: device))
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), result.best, "the winner is left applied")
            XCTAssertTrue(result.best.violations().isEmpty)
            XCTAssertEqual(Set(reports.filter { $0.index == 0 }.map(\.kernel)), ["Xgemm", "XgemmDirect"])
            XCTAssertLessThanOrEqual(result.candidatesTried, 2)
            XCTAssertEqual(result.wrongResults, 0, "a candidate computed a wrong result: \(reports.map(\.outcome))")
            XCTAssertTrue((result.defaultGFLOPS + result.tunedGFLOPS).allSatisfy { $0 > 0 && $0.isFinite })
            XCTAssertEqual(result.record.parameters, result.best)

            // The tuned kernels, and the fixed set's for those left at the
            // default. The conformance cases are small, so CLBlast would send
            // them all down the direct path: force each path in turn.
            let defaults = result.defaultConfiguration
            let checked = GemmConfiguration(
                xgemm: result.best.xgemm == defaults.xgemm ? nonDefault.xgemm : result.best.xgemm,
                direct: result.best.direct == defaults.direct ? nonDefault.direct : result.best.direct,
                routine: result.best.routine)
            for (path, threshold) in [("indirect", 1), ("direct", 2_000_000)] {
                var applied = checked
                applied.routine = GemmRoutineParameters(minIndirectSize: threshold)
                try GemmTuning.apply(applied, to: device)
                try assertMatMulConformance(on: TestDevice.get(), "\(path) path: \(applied)")
            }
        }
    }

    /// The GEMM conformance cases, run afresh: `assertConformance` keeps
    /// each case's first result for the process, which would hide the
    /// parameters applied since.
    private func assertMatMulConformance(on device: Device, _ label: String,
                                         file: StaticString = #filePath, line: UInt = #line) throws {
        let cases = ConformanceSuite.allCases().filter { $0.op == "matmul" }
        XCTAssertFalse(cases.isEmpty, file: file, line: line)
        let runner = ConformanceRunner(device: device)
        runner.finiteDifferenceSamples = 0  // the reference's own gradients are not what is tested here
        for c in cases {
            let r = runner.run(c)
            XCTAssertTrue(r.passed, "\(label): \(r.op) [\(r.label)]: \(r.message ?? "")", file: file, line: line)
        }
    }

    func testApplyReadBackAndRestoreBuiltins() throws {
        let device = try openCLContext().device
        try preservingParameters(device) {
            let builtin = try GemmTuning.builtinConfiguration(on: device)
            try GemmTuning.apply(nonDefault, to: device)
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), nonDefault)
            XCTAssertEqual(try GemmTuning.builtinConfiguration(on: device), builtin, "recorded before the override")
            try GemmTuning.restoreBuiltinParameters(on: device)
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), builtin)
        }
    }

    // MARK: Persistence

    private func record(for device: OpenCLDevice, _ configuration: GemmConfiguration) -> GemmTuningRecord {
        GemmTuningRecord(device: device.description, deviceIdentity: device.cacheIdentity, parameters: configuration,
                         defaultParameters: nil, shapes: [GemmShape(m: 8, n: 8, k: 8)], defaultGFLOPS: [1],
                         tunedGFLOPS: [2], candidatesTried: 3, budgetSeconds: 1)
    }

    func testPersistenceRoundTrip() throws {
        let device = try openCLContext().device
        let directory = try temporaryDirectory() + "/nested"
        XCTAssertNil(try GemmTuning.load(for: device, directory: directory))
        let saved = record(for: device, nonDefault)
        let path = try TuningStore(directory: directory).save(saved)
        XCTAssertEqual(path, GemmTuning.path(for: device, directory: directory))
        XCTAssertTrue(GemmTuning.fileName(for: device).hasPrefix("clblast-xgemm-"))
        XCTAssertTrue(path.hasSuffix(".json"))
        XCTAssertEqual(try GemmTuning.load(for: device, directory: directory), saved)
        // Atomic write: nothing but the file is left behind; saving again replaces it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [GemmTuning.fileName(for: device)])
        var second = saved
        second.candidatesTried = 9
        try TuningStore(directory: directory).save(second)
        XCTAssertEqual(try GemmTuning.load(for: device, directory: directory), second)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).count, 1)
        // The JSON names the kernels as CLBlast does.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for key in ["\"Xgemm\"", "\"XgemmDirect\"", "\"XGEMM_MIN_INDIRECT_SIZE\"", "\"MWG\"", "\"WGD\""] {
            XCTAssertTrue(text.contains(key), "\(key) missing from \(text)")
        }
    }

    /// A tuning file that cannot be written names itself and the failing
    /// call (a directory of that name is in the way of the rename), and
    /// leaves no temporary file.
    func testSaveFailureNamesTheFileAndTheCall() throws {
        let device = try openCLContext().device
        let directory = try temporaryDirectory()
        let path = GemmTuning.path(for: device, directory: directory)
        try FileManager.default.createDirectory(atPath: path + "/in-the-way", withIntermediateDirectories: true)
        XCTAssertThrowsError(try TuningStore(directory: directory).save(record(for: device, nonDefault))) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(type(of: error)): \(error)") }
            XCTAssertEqual(error.path, path)
            XCTAssertEqual(error.call, .rename)
            XCTAssertTrue("\(error)".hasPrefix("cannot write \(path): "), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [GemmTuning.fileName(for: device)])
    }

    /// The convolution tuning file's write errors are file errors naming the
    /// file, not invalid conv2d arguments.
    func testConvTuningSaveFailureNamesTheFile() throws {
        let plain = try temporaryDirectory() + "/plain"
        XCTAssertTrue(FileManager.default.createFile(atPath: plain, contents: Data()))
        let context = try OpenCLContext(device: TestSupport.openCLDevice(), cacheDirectory: .some(plain + "/cache"))
        XCTAssertThrowsError(try Tuner(context).saveConvolutions()) { error in
            guard let error = error as? FileWriteError else { return XCTFail("\(type(of: error)): \(error)") }
            XCTAssertEqual(error.path, plain + "/cache/" + ConvAlgorithmSelection.fileName(for: context.device))
            XCTAssertEqual(error.call, .makeDirectory)
            XCTAssertEqual("\(error)", "cannot write \(error.path): Not a directory (mkdir \(plain)/cache)")
        }
    }

    func testUnusableFilesAreReportedAndIgnored() throws {
        let device = try openCLContext().device
        let directory = try temporaryDirectory()
        let path = GemmTuning.path(for: device, directory: directory)
        func assertUnusable(_ contents: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            try contents.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try GemmTuning.load(for: device, directory: directory), file: file, line: line) { error in
                guard case GemmTuningError.unusableFile = error else {
                    return XCTFail("\(error)", file: file, line: line)
                }
                XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
            }
            // Applying it is a warning, not an error, and changes nothing.
            let before = try GemmTuning.currentConfiguration(on: device)
            XCTAssertNil(try GemmTuning.applyPersisted(to: device, directory: directory, environment: [:]),
                         file: file, line: line)
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), before, file: file, line: line)
        }
        try assertUnusable("{ not json", "not a GEMM tuning record")
        let encoder = JSONEncoder()
        func json(_ r: GemmTuningRecord) throws -> String { String(decoding: try encoder.encode(r), as: UTF8.self) }
        var other = record(for: device, nonDefault)
        other.deviceIdentity = "another|device"
        try assertUnusable(try json(other), "for device")
        var old = record(for: device, nonDefault)
        old.version = 99
        try assertUnusable(try json(old), "version 99")
        var broken = record(for: device, nonDefault)
        broken.parameters.xgemm = XgemmParameters(mwg: 16, nwg: 32, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8,
                                                  vwm: 4, vwn: 1, sa: 1, sb: 1)
        try assertUnusable(try json(broken), "MWG % (MDIMC·VWM)")
        let incomplete = try json(record(for: device, nonDefault)).replacingOccurrences(of: "\"KWID\"", with: "\"KWIX\"")
        try assertUnusable(incomplete, "missing KWID")
    }

    func testSavedParametersAreAppliedUnlessDisabled() throws {
        let device = try openCLContext().device
        let directory = try temporaryDirectory()
        try TuningStore(directory: directory).save(record(for: device, nonDefault))
        try preservingParameters(device) {
            let before = try GemmTuning.currentConfiguration(on: device)
            XCTAssertNotEqual(before, nonDefault)
            for value in ["0", "off", " false "] {
                XCTAssertFalse(GemmTuning.isEnabled(environment: [GemmTuning.environmentVariable: value]))
                XCTAssertNil(try GemmTuning.applyPersisted(to: device, directory: directory,
                                                           environment: [GemmTuning.environmentVariable: value]))
                XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), before, "applied despite \(value)")
            }
            XCTAssertTrue(GemmTuning.isEnabled(environment: [:]))
            XCTAssertTrue(GemmTuning.isEnabled(environment: [GemmTuning.environmentVariable: "1"]))
            let applied = try GemmTuning.applyPersisted(to: device, directory: directory, environment: [:])
            XCTAssertEqual(applied?.parameters, nonDefault)
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), nonDefault)
            // A GEMM under the applied parameters is still right.
            let ctx = try TestDevice.get()
            let a = try Tensor(shape: [3, 2], values: [1, 2, 3, 4, 5, 6], on: ctx)
            let b = try Tensor(shape: [2, 2], values: [1, 0, 0, 1], on: ctx)
            XCTAssertEqual(try matmul(a, b).toArray(), [1, 2, 3, 4, 5, 6])
        }
    }

    func testDeviceSelectAppliesSavedParameters() throws {
        let device = try openCLContext().device
        let directory = try temporaryDirectory()
        try TuningStore(directory: directory).save(record(for: device, nonDefault))
        try preservingParameters(device) {
            // Device.select looks once per device and process: forget the
            // look-up made when the test device was selected, and restore it after.
            let lookup = GemmTuning.persistedLookup(on: device)
            GemmTuning.setPersistedLookup(on: device, nil)
            defer { GemmTuning.setPersistedLookup(on: device, lookup) }
            guard GemmTuning.isEnabled() else { throw XCTSkip("\(GemmTuning.environmentVariable) disables tuning here") }
            _ = try Device.select(String(device.index), cacheDirectory: .some(directory))
            XCTAssertEqual(try GemmTuning.currentConfiguration(on: device), nonDefault)
            XCTAssertEqual(GemmTuning.appliedRecord(on: device)?.parameters, nonDefault)
        }
    }
}
