import Clover
import CloverNN
import Foundation
import XCTest

/// The safetensors parser validates like the format's reference: each
/// reproduction of the hostile-input probe is an error naming the file,
/// never a trap or a silently wrong load; and a seeded mutation fuzz of
/// valid files ends in either a load or a ``SafeTensorsError``.
final class SafeTensorsValidationTests: XCTestCase {
    /// A file assembled from a header text and raw data bytes; the header
    /// length is the header's own unless `length` overrides it.
    private func file(_ header: String, data: [UInt8], length: UInt64? = nil) -> Data {
        let h = Array(header.utf8)
        let n = length ?? UInt64(h.count)
        var bytes: [UInt8] = (0..<8).map { UInt8((n >> (8 * UInt64($0))) & 0xff) }
        bytes += h
        bytes += data
        return Data(bytes)
    }

    private func floats(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in (0..<4).map { UInt8((v.bitPattern >> (8 * UInt32($0))) & 0xff) } }
    }

    private func assertRejected(_ data: Data, _ label: String, mentioning text: String? = nil,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.parse(data, path: "probe-\(label)"), label, file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else {
                return XCTFail("\(label): \(error) is not a SafeTensorsError", file: file, line: line)
            }
            XCTAssertEqual(e.path, "probe-\(label)", file: file, line: line)
            if let text { XCTAssertTrue(e.reason.contains(text), "\(label): \(e.reason)", file: file, line: line) }
        }
    }

    func testOverflowingShapesAndOffsetsAreErrors() {
        let big = Int64.max
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[\#(big),\#(big)],"data_offsets":[0,8]}}"#, data: floats([1, 2])),
                       "shape overflow", mentioning: "overflows")
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[\#(big / 2)],"data_offsets":[0,8]}}"#, data: floats([1, 2])),
                       "count x width overflow", mentioning: "overflow")
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[\#(big - 8),\#(big)]}}"#, data: floats([1, 2])),
                       "offsets near Int64.max", mentioning: "outside")
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,\#(big)]}}"#, data: floats([1, 2])),
                       "end near Int64.max", mentioning: "outside")
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: floats([1, 2])),
                       "negative dimension", mentioning: "negative")
        assertRejected(file(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: floats([1, 2])),
                       "one offset", mentioning: "data_offsets")
    }

    func testHeaderLengthMustMatchTheData() {
        // Padded with spaces, so one byte short still parses as JSON: the
        // data section then has a byte too many and must be refused.
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  "#
        let good = file(header, data: floats([1, 2]))
        XCTAssertNoThrow(try SafeTensors.parse(good, path: "good"))
        assertRejected(file(header, data: floats([1, 2]), length: UInt64(header.utf8.count - 1)), "one byte short",
                       mentioning: "cover")
        assertRejected(file(header, data: floats([1, 2]), length: UInt64(header.utf8.count + 1)), "one byte long")
        assertRejected(file(header, data: floats([1, 2]), length: UInt64.max), "length 2^64-1", mentioning: "exceeds")
        assertRejected(file(header, data: floats([1, 2]), length: 1 << 63), "length 2^63", mentioning: "exceeds")
        assertRejected(file(" " + header, data: floats([1, 2])), "not an object", mentioning: "'{'")
    }

    func testRangesMustBeContiguousAndCoverTheData() {
        let two = floats([1, 2, 3, 4])
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                            data: floats([1, 2, 3])), "overlapping", mentioning: "overlaps")
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                            data: two), "duplicated offsets")
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#, data: floats([1, 2]).prefix(5).map { $0 }),
                       "unaligned gap", mentioning: "unused")
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: two), "trailing data",
                       mentioning: "cover")
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
                            data: two), "duplicate name", mentioning: "twice")
        assertRejected(file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: floats([1, 2])),
                       "size differs from shape", mentioning: "needs")
        assertRejected(file(#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, data: floats([1, 2])),
                       "unknown dtype", mentioning: "dtype")
        // Mixed widths in file order are fine when contiguous.
        let mixed = file(#"{"n":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                         data: floats([1, 2]) + [7, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try SafeTensors.parse(mixed, path: "mixed")["n"]?.values, [7])
    }

    /// A seeded mutation fuzz: bit flips, byte overwrites with boundary
    /// values, truncation, extension, header-length edits and numeric edits
    /// inside the header of valid files. Every outcome must be a load or a
    /// SafeTensorsError; a trap would end the test process. Bounded by
    /// `CLOVER_FUZZ_ITERATIONS` (default 20,000).
    func testSeededMutationFuzzNeverTraps() throws {
        var seeds: [Data] = []
        var a = SafeTensors()
        a.append("conv.weight", shape: [2, 1, 2, 2], values: (0..<8).map(Float.init))
        a.append("bn.running_var", shape: [2], values: [1, 2])
        a.metadata = ["format": "pt"]
        seeds.append(a.encoded())
        seeds.append(file(#"{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"n":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}}"#,
                          data: floats([1, 2]) + [7, 0, 0, 0, 0, 0, 0, 0] + [0, 0x3c, 0, 0xc0]))
        let iterations = Int(ProcessInfo.processInfo.environment["CLOVER_FUZZ_ITERATIONS"] ?? "") ?? 20_000
        var rng = SplitMix64(seed: 20261201)
        let numbers = ["0", "-1", "8", "9223372036854775807", "-9223372036854775808", "18446744073709551615",
                       "4294967296", "1e300", "[]", "null", "\"x\""]
        var loaded = 0, rejected = 0
        for i in 0..<iterations {
            var bytes = [UInt8](seeds[i % seeds.count])
            let mutations = 1 + Int(rng.next() % 4)
            for _ in 0..<mutations {
                let position = Int(rng.next() % UInt64(max(1, bytes.count)))
                switch rng.next() % 7 {
                case 0: if !bytes.isEmpty { bytes[position] ^= UInt8(1 << (rng.next() % 8)) }
                case 1: if !bytes.isEmpty { bytes[position] = [0, 0xff, 0x7f, 0x80, 0x22, 0x5b, 0x7d][Int(rng.next() % 7)] }
                case 2: bytes.removeLast(min(bytes.count, Int(rng.next() % 9)))
                case 3: bytes += (0..<Int(rng.next() % 9)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                case 4:
                    // Header length: off by a little, or wild.
                    guard bytes.count >= 8 else { break }
                    let delta = Int64(rng.next() % 5) - 2
                    var n: UInt64 = 0
                    for k in 0..<8 { n |= UInt64(bytes[k]) << (8 * UInt64(k)) }
                    n = rng.next() % 3 == 0 ? rng.next() : UInt64(bitPattern: Int64(bitPattern: n) &+ delta)
                    for k in 0..<8 { bytes[k] = UInt8((n >> (8 * UInt64(k))) & 0xff) }
                default:
                    // Replace a number in the header with a hostile value.
                    let text = String(decoding: bytes, as: UTF8.self)
                    let digits = text.indices.filter { text[$0].isNumber }
                    guard !digits.isEmpty, text.utf8.count == bytes.count else { break }
                    let at = digits[Int(rng.next() % UInt64(digits.count))]
                    var end = at
                    while end < text.endIndex, text[end].isNumber { end = text.index(after: end) }
                    let replaced = text.replacingCharacters(in: at..<end, with: numbers[Int(rng.next() % UInt64(numbers.count))])
                    bytes = Array(replaced.utf8)
                }
            }
            do {
                _ = try SafeTensors.parse(Data(bytes), path: "fuzz-\(i)")
                loaded += 1
            } catch is SafeTensorsError {
                rejected += 1
            }
        }
        XCTAssertEqual(loaded + rejected, iterations)
        XCTAssertGreaterThan(rejected, iterations / 2)
    }
}
