// The format alone, with no Clover dependency, so that scripts/fuzz_safetensors.sh can
// compile this file by itself under libFuzzer; writing a file is in SafeTensors+Write.swift,
// Module's state-dict methods are in StateDict.swift.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A problem with a safetensors file; always names the file.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// The safetensors format (8-byte little-endian header length, a JSON
/// header of `name → {dtype, shape, data_offsets}`, then raw data), for
/// checkpoints that PyTorch's `safetensors` reads and writes.
///
/// Clover keeps float32 values; `F64`, `F16`, `BF16`, `I64` and `I32` entries
/// are converted on reading (torchvision's `num_batches_tracked` is `I64`).
public struct SafeTensors {
    public struct Entry: Equatable {
        public var shape: [Int]
        public var values: [Float]
        public init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

    /// Entries in file order.
    public var names: [String] = []
    public var entries: [String: Entry] = [:]
    public var metadata: [String: String] = [:]

    public init() {}

    public subscript(name: String) -> Entry? { entries[name] }

    public mutating func append(_ name: String, shape: [Int], values: [Float]) {
        if entries[name] == nil { names.append(name) }
        entries[name] = Entry(shape: shape, values: values)
    }

    // MARK: Reading

    private struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct TensorInfo: Decodable {
        var dtype: String
        var shape: [Int]
        var data_offsets: [Int]
    }

    private struct Header: Decodable {
        var infos: [(String, TensorInfo)] = []
        var metadata: [String: String] = [:]
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: DynamicKey.self)
            for key in c.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try c.decode([String: String].self, forKey: key)
                } else {
                    infos.append((key.stringValue, try c.decode(TensorInfo.self, forKey: key)))
                }
            }
        }
    }

    /// Reads a file; a truncated or corrupt file is an error naming it.
    public static func read(path: String) throws -> SafeTensors {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError(path: path, reason: "cannot read the file")
        }
        return try parse(data, path: path)
    }

    /// The largest header accepted, as the safetensors reference (100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Parses bytes in the safetensors format; `path` names the source in errors.
    ///
    /// Validated as the safetensors reference does, with checked arithmetic
    /// throughout: a sane header length; a JSON object without duplicate
    /// names; for each tensor a known dtype, non-negative dimensions whose
    /// element count and byte size do not overflow, and a data range equal
    /// to that size; the ranges, sorted, contiguous from 0 and covering the
    /// data section exactly (so none overlap or leave bytes unread).
    public static func parse(_ data: Data, path: String) throws -> SafeTensors {
        let bytes = [UInt8](data)
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
        guard bytes.count >= 8 else { throw fail("truncated: \(bytes.count) bytes, no header length") }
        var rawLength: UInt64 = 0
        for i in 0..<8 { rawLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard rawLength > 0, rawLength <= UInt64(bytes.count - 8) else {
            throw fail("header length \(rawLength) exceeds the file (\(bytes.count) bytes)")
        }
        guard rawLength <= UInt64(maxHeaderBytes) else {
            throw fail("header length \(rawLength) exceeds the \(maxHeaderBytes)-byte limit")
        }
        let headerLength = Int(rawLength)
        let headerBytes = bytes[8..<(8 + headerLength)]
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw fail("the header does not start with '{'")
        }
        if let duplicate = try duplicateTopLevelKey(headerBytes) {
            throw fail("tensor name \(duplicate) appears twice in the header")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(headerBytes))
        } catch {
            throw fail("malformed JSON header: \(error)")
        }
        let dataStart = 8 + headerLength
        let dataBytes = bytes.count - dataStart
        struct Placed { var name: String; var info: TensorInfo; var begin: Int; var end: Int; var count: Int; var width: Int }
        var placed: [Placed] = []
        for (name, info) in header.infos {
            guard let width = elementWidth(info.dtype) else {
                throw fail("tensor \(name): unsupported dtype \(info.dtype)")
            }
            guard info.shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor \(name): negative dimension in shape \(info.shape)")
            }
            var count = 1
            for d in info.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor \(name): the element count of shape \(info.shape) overflows") }
                count = product
            }
            let (size, overflow) = count.multipliedReportingOverflow(by: width)
            guard !overflow else { throw fail("tensor \(name): \(count) elements of \(info.dtype) overflow a byte size") }
            guard info.data_offsets.count == 2 else {
                throw fail("tensor \(name): data_offsets must be [begin, end], got \(info.data_offsets)")
            }
            let (begin, end) = (info.data_offsets[0], info.data_offsets[1])
            guard begin >= 0, end >= begin, end <= dataBytes else {
                throw fail("tensor \(name): data \(begin)..<\(end) lies outside the \(dataBytes)-byte data section")
            }
            guard end - begin == size else {
                throw fail("tensor \(name): data \(begin)..<\(end) holds \(end - begin) bytes, \(info.dtype) \(info.shape) needs \(size)")
            }
            placed.append(Placed(name: name, info: info, begin: begin, end: end, count: count, width: width))
        }
        placed.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for p in placed {
            guard p.begin == cursor else {
                throw fail(p.begin < cursor
                    ? "tensor \(p.name): data \(p.begin)..<\(p.end) overlaps the tensor before it (which ends at \(cursor))"
                    : "tensor \(p.name): data starts at \(p.begin), leaving bytes \(cursor)..<\(p.begin) unused")
            }
            cursor = p.end
        }
        guard cursor == dataBytes else {
            throw fail("the tensors cover \(cursor) bytes of a \(dataBytes)-byte data section")
        }
        var file = SafeTensors()
        file.metadata = header.metadata
        for p in placed {
            let base = dataStart + p.begin
            let values = (0..<p.count).map { decode(bytes, at: base + $0 * p.width, dtype: p.info.dtype) }
            file.append(p.name, shape: p.info.shape, values: values)
        }
        return file
    }

    /// The first name that occurs twice among the header object's own keys
    /// (JSON decoders keep one of them silently), or nil. A plain scan:
    /// strings and nesting depth only; the decoder validates the rest.
    static func duplicateTopLevelKey(_ header: ArraySlice<UInt8>) throws -> String? {
        var seen = Set<[UInt8]>()
        var depth = 0
        var i = header.startIndex
        var expectKey = false
        while i < header.endIndex {
            let b = header[i]
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectKey = depth == 1 && b == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectKey = depth == 1
            case UInt8(ascii: "\""):
                var j = i + 1
                while j < header.endIndex, header[j] != UInt8(ascii: "\"") {
                    j += header[j] == UInt8(ascii: "\\") ? 2 : 1
                }
                if expectKey && j < header.endIndex {
                    // Decode escapes so "a" and "\u0061" count as one name.
                    let raw = Array(header[i...j])
                    let key = (try? JSONDecoder().decode(String.self, from: Data(raw))).map { Array($0.utf8) } ?? raw
                    if !seen.insert(key).inserted { return String(decoding: key, as: UTF8.self) }
                    expectKey = false
                }
                i = j
            default:
                break
            }
            i += 1
        }
        return nil
    }

    private static func elementWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32": return 4
        case "F64", "I64": return 8
        case "F16", "BF16": return 2
        default: return nil
        }
    }

    private static func decode(_ b: [UInt8], at i: Int, dtype: String) -> Float {
        func u(_ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(b[i + $1]) << (8 * UInt64($1)) } }
        switch dtype {
        case "F32": return Float(bitPattern: UInt32(u(4)))
        case "F64": return Float(Double(bitPattern: u(8)))
        case "I32": return Float(Int32(bitPattern: UInt32(u(4))))
        case "I64": return Float(Int64(bitPattern: u(8)))
        case "BF16": return Float(bitPattern: UInt32(u(2)) << 16)
        default: return Float(Float16(bitPattern: UInt16(u(2))))
        }
    }

    // MARK: Writing

    /// The file's bytes: float32 little-endian data, 8-byte aligned header.
    public func encoded() -> Data {
        var json = "{"
        var offset = 0
        var parts: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        for name in names {
            let e = entries[name]!
            let size = e.values.count * 4
            parts.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        json += parts.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + offset)
        for i in 0..<8 { out.append(UInt8((header.count >> (8 * i)) & 0xff)) }
        out += header
        for name in names {
            for v in entries[name]!.values {
                let bits = v.bitPattern
                for i in 0..<4 { out.append(UInt8((bits >> (8 * UInt32(i))) & 0xff)) }
            }
        }
        return Data(out)
    }

    private func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
