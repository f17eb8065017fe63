/// One array from an IDX file, the format of MNIST and Fashion-MNIST: a
/// big-endian magic number (two zero bytes, a type code, the number of
/// dimensions), one big-endian 32-bit size per dimension, then the values in
/// row-major order.
///
/// Only unsigned-byte data (type code 0x08) is supported, which is what the
/// MNIST family uses.
public struct IDXArray: Sendable {
    /// The magic number of unsigned-byte images, `[count, rows, columns]`.
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// The magic number of unsigned-byte labels, `[count]`.
    public static let labelsMagic: UInt32 = 0x0000_0801

    /// The size of each dimension, outermost first.
    public let dimensions: [Int]
    /// The values, row-major; a slice of the decoded file, so not copied.
    public let values: ArraySlice<UInt8>

    /// Reads an IDX file, gzip-compressed or not (told apart by content).
    ///
    /// - Parameter expectedMagic: ``imagesMagic``, ``labelsMagic`` or any
    ///   other unsigned-byte magic number; a file with another is an error.
    /// - Throws: ``DataError`` naming the file for a wrong magic number, a
    ///   truncated header or data, or bytes after the data.
    public init(contentsOfFile path: String, expectedMagic: UInt32) throws {
        try self.init(bytes: try readPossiblyCompressed(atPath: path), expectedMagic: expectedMagic,
                      source: path)
    }

    /// Parses IDX bytes held in memory; `source` names them in errors.
    public init(bytes: [UInt8], expectedMagic: UInt32, source: String = "IDX data") throws {
        func bigEndian32(at offset: Int) -> UInt32 {
            bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }
        guard bytes.count >= 4 else {
            throw DataError(source, "truncated IDX file: \(bytes.count) bytes, too short for the "
                + "4-byte magic number")
        }
        let magic = bigEndian32(at: 0)
        guard magic == expectedMagic else {
            throw DataError(source, "wrong magic number \(hex32(magic)) (expected \(hex32(expectedMagic))"
                + "\(IDXArray.describe(expectedMagic)))")
        }
        let rank = Int(magic & 0xFF)
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw DataError(source, "truncated IDX header: \(bytes.count) bytes, but \(rank) "
                + "dimensions need \(headerSize)")
        }
        let dimensions = (0..<rank).map { Int(bigEndian32(at: 4 + 4 * $0)) }
        // Sizes are 32-bit each, so the product can overflow Int only with
        // a rank well beyond any real file; checking costs nothing.
        var valueCount = 1
        for size in dimensions {
            let (product, overflow) = valueCount.multipliedReportingOverflow(by: size)
            guard !overflow else {
                throw DataError(source, "IDX dimensions \(dimensions) describe more values than fit in memory")
            }
            valueCount = product
        }
        // A file that declares no items would train or test on nothing and
        // report success: refuse it by name.
        if let empty = dimensions.firstIndex(of: 0) {
            throw DataError(source, empty == 0
                ? "the file declares 0 items (dimensions \(dimensions)): there is nothing to load"
                : "dimension \(empty) of \(dimensions) is 0: the items hold no values")
        }
        let available = bytes.count - headerSize
        guard available >= valueCount else {
            throw DataError(source, "truncated IDX data: dimensions \(dimensions) need \(valueCount) "
                + "bytes after the \(headerSize)-byte header, but only \(available) are present")
        }
        guard available == valueCount else {
            throw DataError(source, "\(available - valueCount) unexpected bytes after the IDX data "
                + "(dimensions \(dimensions) need \(valueCount))")
        }
        self.dimensions = dimensions
        self.values = bytes[headerSize...]
    }

    private static func describe(_ magic: UInt32) -> String {
        switch magic {
        case imagesMagic: return ", unsigned-byte images [count, rows, columns]"
        case labelsMagic: return ", unsigned-byte labels [count]"
        default: return ""
        }
    }
}
