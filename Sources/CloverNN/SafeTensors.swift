import Clover
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
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

    /// Parses bytes in the safetensors format; `path` names the source in errors.
    public static func parse(_ data: Data, path: String) throws -> SafeTensors {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw SafeTensorsError(path: path, reason: "truncated: \(bytes.count) bytes, no header length") }
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        guard headerLength > 0, headerLength <= bytes.count - 8 else {
            throw SafeTensorsError(path: path, reason: "header length \(headerLength) exceeds the file (\(bytes.count) bytes)")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[8..<(8 + headerLength)]))
        } catch {
            throw SafeTensorsError(path: path, reason: "malformed JSON header: \(error)")
        }
        let dataStart = 8 + headerLength
        var file = SafeTensors()
        file.metadata = header.metadata
        for (name, info) in header.infos.sorted(by: { $0.1.data_offsets.first ?? 0 < $1.1.data_offsets.first ?? 0 }) {
            guard info.data_offsets.count == 2, info.shape.allSatisfy({ $0 >= 0 }) else {
                throw SafeTensorsError(path: path, reason: "tensor \(name): bad shape or offsets")
            }
            let (begin, end) = (info.data_offsets[0], info.data_offsets[1])
            let count = info.shape.reduce(1, *)
            guard let width = elementWidth(info.dtype) else {
                throw SafeTensorsError(path: path, reason: "tensor \(name): unsupported dtype \(info.dtype)")
            }
            guard begin >= 0, end >= begin, end - begin == count * width, dataStart + end <= bytes.count else {
                throw SafeTensorsError(path: path, reason: "tensor \(name): data \(begin)..<\(end) does not fit \(info.dtype) \(info.shape) in a \(bytes.count)-byte file")
            }
            let base = dataStart + begin
            let values = (0..<count).map { decode(bytes, at: base + $0 * width, dtype: info.dtype) }
            file.append(name, shape: info.shape, values: values)
        }
        return file
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

    /// Writes atomically: a temporary file in the same directory, then a
    /// rename, so a killed run never leaves a half-written checkpoint.
    public func write(path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: encoded()) else {
            throw SafeTensorsError(path: path, reason: "cannot write \(tmp)")
        }
        guard rename(tmp, path) == 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw SafeTensorsError(path: path, reason: "cannot rename \(tmp) into place")
        }
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

extension Module {
    /// Parameters and state tensors by state-dict name, downloaded to the host.
    public func stateDict() throws -> SafeTensors {
        for module in allModules() { try module.prepareStatesForSaving() }
        var file = SafeTensors()
        for (name, p) in namedParameters() { file.append(name, shape: p.shape, values: try p.tensor.toArray()) }
        for (name, s) in namedStates() { file.append(name, shape: s.tensor.shape, values: try s.tensor.toArray()) }
        return file
    }

    /// Loads parameters and state tensors by name onto each one's device.
    ///
    /// - Parameter strict: require exactly the module's names (as PyTorch's
    ///   `load_state_dict(strict=True)`); otherwise missing and unexpected
    ///   entries are skipped. Shapes must always match.
    public func loadStateDict(_ file: SafeTensors, strict: Bool = true) throws {
        let params = namedParameters(), states = namedStates()
        let known = Set(params.map(\.0) + states.map(\.0))
        if strict {
            let missing = known.subtracting(file.names).sorted()
            let unexpected = Set(file.names).subtracting(known).sorted()
            if !missing.isEmpty || !unexpected.isEmpty {
                throw CloverError.invalidArgument(op: "load_state_dict",
                                                  reason: "missing keys \(missing), unexpected keys \(unexpected)")
            }
        }
        // Values are written in place, so an optimiser arena that already
        // holds the parameters keeps training the loaded values.
        func load(_ name: String, _ current: Tensor) throws {
            guard let e = file[name] else { return }
            guard e.shape.reduce(1, *) == current.count, e.shape == current.shape || (e.shape.isEmpty && current.count == 1) else {
                throw CloverError.shapeMismatch(op: "load_state_dict \(name)", shapes: [current.shape, e.shape],
                                                reason: "checkpoint shape differs")
            }
            try current.copyValues(e.values)
        }
        for (name, p) in params { try load(name, p.tensor) }
        for (name, s) in states { try load(name, s.tensor) }
        for module in allModules() { try module.statesDidLoad() }
    }
}
