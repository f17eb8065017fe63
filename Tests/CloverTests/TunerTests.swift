@testable import Clover
import CloverFiles
import CloverRuntime
@testable import CloverTuning
import Foundation
import CloverTestSupport
import XCTest

/// The Tuner and its store: both kinds of file saved and read back keyed by
/// the device's identity (name, platform, driver), and a convolution search
/// whose saved choice the op's look-up then uses, in a fresh process as in
/// this one.
final class TunerTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-tuner-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func gemmRecord(_ device: OpenCLDevice, identity: String? = nil) throws -> GemmTuningRecord {
        // CLBlast's parameters in force: valid on the device, and read
        // without overriding anything.
        GemmTuningRecord(device: device.description, deviceIdentity: identity ?? device.cacheIdentity,
                         parameters: try GemmTuning.currentConfiguration(on: device), defaultParameters: nil,
                         shapes: [GemmShape(m: 8, n: 8, k: 8)], defaultGFLOPS: [1], tunedGFLOPS: [2],
                         candidatesTried: 3, budgetSeconds: 1)
    }

    private func convRecord(_ device: OpenCLDevice, identity: String? = nil) -> ConvTuningRecord {
        let entry = ConvTuningEntry(choice: ConvChoice(.im2colGEMM), milliseconds: ["im2colGEMM": 0.5],
                                    rejected: ["direct": "wrong result"])
        let key = ConvAlgorithmSelection.key(input: [1, 2, 5, 5], weight: [3, 2, 3, 3],
                                             parameters: Convolution2DParameters(padding: (1, 1)), pass: .forward)
        return ConvTuningRecord(device: device.description, deviceIdentity: identity ?? device.cacheIdentity,
                                entries: [key: entry])
    }

    func testStoreSavesAndReloadsBothFilesKeyedByDevice() throws {
        let device = try TestSupport.openCLDevice()
        let store = TuningStore(directory: try temporaryDirectory() + "/nested")
        XCTAssertNil(try store.gemmRecord(for: device))
        XCTAssertNil(try store.convolutionRecord(for: device))

        let gemm = try gemmRecord(device), conv = convRecord(device)
        XCTAssertEqual(try store.save(gemm), store.gemmPath(for: device))
        XCTAssertEqual(try store.save(conv), store.convolutionPath(for: device))
        XCTAssertEqual(try store.gemmRecord(for: device), gemm)
        XCTAssertEqual(try store.convolutionRecord(for: device), conv)
        // The file names and locations runs read from.
        XCTAssertEqual(store.gemmPath(for: device), GemmTuning.path(for: device, directory: store.directory))
        XCTAssertEqual(store.convolutionPath(for: device),
                       store.directory + "/" + ConvAlgorithmSelection.fileName(for: device))
        XCTAssertTrue(store.gemmPath(for: device).hasSuffix("/" + GemmTuning.fileName(for: device)))

        // Another driver of the same device is another identity, so another
        // file: saving for it leaves this device's entries as they were.
        let other = device.cacheIdentity + " (another driver)"
        let otherGemm = try store.save(gemmRecord(device, identity: other))
        let otherConv = try store.save(convRecord(device, identity: other))
        XCTAssertNotEqual(otherGemm, store.gemmPath(for: device))
        XCTAssertNotEqual(otherConv, store.convolutionPath(for: device))
        XCTAssertEqual(try store.gemmRecord(for: device), gemm)
        XCTAssertEqual(try store.convolutionRecord(for: device), conv)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store.directory).count, 4)

        // A file holding another identity's record is not this device's.
        try FileManager.default.removeItem(atPath: store.convolutionPath(for: device))
        try FileManager.default.copyItem(atPath: otherConv, toPath: store.convolutionPath(for: device))
        XCTAssertThrowsError(try store.convolutionRecord(for: device)) { error in
            XCTAssertEqual(error as? ConvTuningFileError, ConvTuningFileError(path: store.convolutionPath(for: device)))
        }
        try FileManager.default.removeItem(atPath: store.gemmPath(for: device))
        try FileManager.default.copyItem(atPath: otherGemm, toPath: store.gemmPath(for: device))
        XCTAssertThrowsError(try store.gemmRecord(for: device)) { error in
            guard case .unusableFile(let path, _)? = error as? GemmTuningError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, store.gemmPath(for: device))
        }
    }

    /// A tuner without a store (no cache directory) saves nothing and says so.
    func testTunerWithoutStoreSavesNothing() throws {
        let context = try TestSupport.context(cacheDirectory: .some(nil))
        let tuner = Tuner(context)
        XCTAssertNil(tuner.store)
        XCTAssertNil(try tuner.saveConvolutions())
        let directory = try temporaryDirectory()
        XCTAssertEqual(Tuner(context, store: TuningStore(directory: directory)).store?.directory, directory)
    }

    /// A tiny geometry's search: its winner is what the op runs in this
    /// process, is saved, and is what the look-up returns after the
    /// process's choices are forgotten (as in a later run).
    func testConvolutionSearchIsPersistedAndUsedByTheLookup() throws {
        let directory = try temporaryDirectory()
        let context = try TestSupport.context(cacheDirectory: .some(directory))
        // Choices are process-wide per device: start and end with none, so
        // neither this test nor others see the other's.
        ConvAlgorithmSelection.reset()
        defer { ConvAlgorithmSelection.reset() }
        let input = [1, 3, 5, 6], weight = [4, 3, 3, 3]
        let parameters = Convolution2DParameters(padding: (1, 1))
        let untuned = try ConvAlgorithmSelection.currentChoice(context, input: input, weight: weight,
                                                               parameters: parameters, pass: .forward)
        XCTAssertFalse(untuned.tuned)

        let tuner = Tuner(context)
        let entry = try tuner.tuneConvolution(input: input, weight: weight, parameters: parameters, pass: .forward,
                                              repeats: 1)
        XCTAssertNotNil(entry.milliseconds[entry.choice.description], "the winner was timed")
        let g = try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
        XCTAssertEqual(try ConvAlgorithmSelection.choice(context, g, .forward), entry.choice)

        let path = try XCTUnwrap(tuner.saveConvolutions())
        XCTAssertEqual(path, directory + "/" + ConvAlgorithmSelection.fileName(for: context.device))
        let key = ConvAlgorithmSelection.key(input: input, weight: weight, parameters: parameters, pass: .forward)
        XCTAssertEqual(try tuner.store?.convolutionRecord(for: context.device)?.entries[key], entry)

        ConvAlgorithmSelection.reset()
        let reloaded = try ConvAlgorithmSelection.currentChoice(context, input: input, weight: weight,
                                                                parameters: parameters, pass: .forward)
        XCTAssertTrue(reloaded.tuned)
        XCTAssertEqual(reloaded.choice, entry.choice)
        XCTAssertEqual(try ConvAlgorithmSelection.choice(context, g, .forward), entry.choice)
        // The op runs it and still computes the convolution.
        let x = try Tensor(shape: input, values: (0..<input.reduce(1, *)).map { Float($0 % 7) / 7 },
                           on: Device(openCL: context))
        let w = try Tensor(shape: weight, values: (0..<weight.reduce(1, *)).map { Float($0 % 5) / 5 - 0.4 },
                           on: x.device)
        let expected = try Convolution2D(parameters).evalReference([x.toArray(), w.toArray()], shapes: [input, weight])[0]
        let y = try apply(Convolution2D(parameters), [x, w])[0].toArray()
        XCTAssertEqual(y.count, expected.count)
        for (a, b) in zip(y, expected) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    /// The search's small case keeps the kernel, stride, padding, dilation
    /// and groups, and is a valid geometry of at most 2 samples, 24 in and
    /// 40 out channels (without groups).
    func testSmallCaseKeepsTheKernelAndIsValid() throws {
        let wide = ConvGeometry(input: [64, 256, 56, 56], weight: [512, 256, 3, 3],
                                parameters: Convolution2DParameters(stride: 2, padding: 1, dilation: 2), pass: .forward)
        let grouped = ConvGeometry(input: [8, 64, 14, 14], weight: [64, 2, 3, 3],
                                   parameters: Convolution2DParameters(stride: 1, padding: 1, groups: 32),
                                   pass: .backwardData)
        for geometry in [wide, grouped] {
            let small = ConvolutionSearch.smallCase(geometry)
            XCTAssertNoThrow(try small.parameters.outputShape(input: small.input, weight: small.weight), "\(small.key)")
            XCTAssertEqual(small.weight[2...], geometry.weight[2...])
            XCTAssertEqual(small.pass, geometry.pass)
            XCTAssertLessThanOrEqual(small.input[0], 2)
        }
        let small = ConvolutionSearch.smallCase(wide)
        XCTAssertEqual(small.input[1], 24)
        XCTAssertEqual(small.weight[0...1], [40, 24])
        XCTAssertEqual(ConvolutionSearch.smallCase(grouped).input[1], 64, "groups keep their channels")
    }

    /// Measuring on first use goes through the Tuner and saves at once.
    func testAutotuneMeasuresOnFirstUseAndSaves() throws {
        let directory = try temporaryDirectory()
        let context = try TestSupport.context(cacheDirectory: .some(directory))
        ConvAlgorithmSelection.reset()
        defer { ConvAlgorithmSelection.reset() }
        XCTAssertFalse(Tuner.autotunesConvolutions)
        Tuner.autotunesConvolutions = true
        defer { Tuner.autotunesConvolutions = false }
        XCTAssertTrue(Tuner.autotunesConvolutions)
        let input = [1, 2, 4, 4], weight = [2, 2, 1, 1]
        let parameters = Convolution2DParameters()
        let g = try parameters.geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight])
        let choice = try ConvAlgorithmSelection.choice(context, g, .forward)
        let key = ConvAlgorithmSelection.key(input: input, weight: weight, parameters: parameters, pass: .forward)
        let saved = try TuningStore(directory: directory).convolutionRecord(for: context.device)
        XCTAssertEqual(saved?.entries[key]?.choice, choice)
    }
}
