import Clover
import CloverNN
import Foundation
import XCTest

final class SafeTensorsTests: XCTestCase {
    private func tempPath(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "clover-\(UUID().uuidString)-\(name)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testRoundTripKeepsNamesShapesValuesAndMetadata() throws {
        var file = SafeTensors()
        file.append("conv1.weight", shape: [2, 1, 3, 3], values: (0..<18).map { Float($0) * 0.25 - 1 })
        file.append("bn1.running_var", shape: [2], values: [1, .infinity])
        file.append("scalar", shape: [], values: [3.5])
        file.metadata = ["format": "pt", "note": "quote \" and \\ back"]
        let path = tempPath("a.safetensors")
        try file.write(path: path)
        let back = try SafeTensors.read(path: path)
        XCTAssertEqual(back.names, file.names)
        XCTAssertEqual(back.entries, file.entries)
        XCTAssertEqual(back.metadata, file.metadata)
        let directory = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(name) }, [name],
                       "no temporary file is left beside it")
    }

    /// A file written by Python's safetensors for
    /// `{"a": torch.tensor([[1., 2.]]), "n": torch.tensor(7)}` (n is int64),
    /// assembled byte by byte from the format's definition.
    func testReadsPyTorchStyleFileWithInt64() throws {
        let header = #"{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"n":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}"#
        var bytes: [UInt8] = []
        let h = Array(header.utf8)
        for i in 0..<8 { bytes.append(UInt8((h.count >> (8 * i)) & 0xff)) }
        bytes += h
        for v: Float in [1, 2] { for i in 0..<4 { bytes.append(UInt8((v.bitPattern >> (8 * UInt32(i))) & 0xff)) } }
        bytes += [7, 0, 0, 0, 0, 0, 0, 0]
        let path = tempPath("torch.safetensors")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let file = try SafeTensors.read(path: path)
        XCTAssertEqual(file["a"], .init(shape: [1, 2], values: [1, 2]))
        XCTAssertEqual(file["n"], .init(shape: [], values: [7]))
    }

    func testCorruptFilesAreErrorsNamingTheFile() throws {
        var file = SafeTensors()
        file.append("w", shape: [4], values: [1, 2, 3, 4])
        let good = file.encoded()
        let cases: [(String, Data)] = [
            ("empty", Data()),
            ("truncated", good.prefix(good.count - 3)),
            ("huge header", Data([0xff, 0xff, 0, 0, 0, 0, 0, 0]) + good.dropFirst(8)),
            ("bad json", Data(good.prefix(8)) + Data(repeating: 0x7b, count: good.count - 8)),
        ]
        for (label, data) in cases {
            let path = tempPath(label)
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try SafeTensors.read(path: path), label) { error in
                XCTAssertTrue("\(error)".contains(path), "\(label): \(error)")
            }
        }
        XCTAssertThrowsError(try SafeTensors.read(path: "/nonexistent/x.safetensors"))
    }

    func testModuleStateDictRoundTrip() throws {
        final class Net: Module {
            let weight = Parameter(try! Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
            let runningMean = StateTensor(try! Tensor(shape: [2], values: [0.5, 0.25]))
        }
        let a = Net(), b = Net()
        try b.weight.assign(Tensor(shape: [2, 2], values: [9, 9, 9, 9]))
        let path = tempPath("net.safetensors")
        try a.stateDict().write(path: path)
        try b.loadStateDict(SafeTensors.read(path: path))
        XCTAssertEqual(try b.weight.tensor.toArray(), [1, 2, 3, 4])
        XCTAssertEqual(try b.runningMean.tensor.toArray(), [0.5, 0.25])
        var wrong = SafeTensors()
        wrong.append("weight", shape: [4], values: [1, 2, 3, 4])
        wrong.append("running_mean", shape: [2], values: [0, 0])
        XCTAssertThrowsError(try b.loadStateDict(wrong)) { XCTAssertTrue("\($0)".contains("weight"), "\($0)") }
        var missing = SafeTensors()
        missing.append("weight", shape: [2, 2], values: [1, 2, 3, 4])
        XCTAssertThrowsError(try b.loadStateDict(missing)) { XCTAssertTrue("\($0)".contains("running_mean"), "\($0)") }
        XCTAssertNoThrow(try b.loadStateDict(missing, strict: false))
    }
}
