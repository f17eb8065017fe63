import CZlib
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Gzip decompression through zlib.
public enum Gzip {
    /// Reads the gzip file at `path` and returns its decompressed bytes.
    ///
    /// Concatenated gzip members (as `cat a.gz b.gz` makes) are decompressed
    /// one after another. A missing, truncated or corrupt file (bad header,
    /// bad deflate data, CRC-32 or length mismatch, trailing junk) is a
    /// ``DataError`` naming the file.
    public static func decompressFile(atPath path: String) throws -> [UInt8] {
        let data = try readFileContents(atPath: path)
        return try data.withUnsafeBytes { try decompress($0, source: path) }
    }

    /// Decompresses gzip data held in memory; `source` names it in errors.
    public static func decompress(_ bytes: [UInt8], source: String = "gzip data") throws -> [UInt8] {
        try bytes.withUnsafeBytes { try decompress($0, source: source) }
    }

    /// Whether `bytes` starts with the gzip magic number 1f 8b.
    static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    static func decompress(_ input: UnsafeRawBufferPointer, source: String) throws -> [UInt8] {
        guard isGzip(input) else {
            throw DataError(source, input.isEmpty
                ? "empty file, not gzip data"
                : "not gzip data (it does not start with the gzip magic number 1f 8b)")
        }
        var stream = z_stream()
        guard clover_inflate_init_gzip(&stream) == Z_OK else {
            throw DataError(source, "zlib could not start decompression (inflateInit2 failed)")
        }
        defer { inflateEnd(&stream) }

        // The gzip trailer's last four bytes hold the decompressed size
        // modulo 2³², so reserving that much usually avoids regrowing. In a
        // damaged file they may be anything: deflate cannot expand more than
        // about 1032:1, and reserving (unlike filling) touches no pages.
        let trailerSize = input.count >= 18
            ? Int(input.loadUnaligned(fromByteOffset: input.count - 4, as: UInt32.self).littleEndian) : 0
        var output: [UInt8] = []
        output.reserveCapacity(min(trailerSize, input.count * 1032, 1 << 30))
        // zlib writes into a fixed scratch chunk that is appended to the
        // output, which keeps zlib's pointers away from a growing array.
        let chunkSize = 1 << 20
        let chunk = UnsafeMutablePointer<Bytef>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        var consumed = 0  // input bytes zlib has taken, over all calls
        let base = input.baseAddress!.assumingMemoryBound(to: Bytef.self)

        while true {
            // `avail_in` is 32-bit, so inputs over 4 GiB go in slices.
            if stream.avail_in == 0 {
                stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
                stream.avail_in = UInt32(min(input.count - consumed, Int(UInt32.max)))
            }
            let offeredIn = Int(stream.avail_in)
            stream.next_out = chunk
            stream.avail_out = UInt32(chunkSize)
            let status = inflate(&stream, Z_NO_FLUSH)
            output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: chunkSize - Int(stream.avail_out)))
            consumed += offeredIn - Int(stream.avail_in)

            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                if consumed == input.count { return output }
                let rest = UnsafeRawBufferPointer(rebasing: input[consumed...])
                guard isGzip(rest) else {
                    throw DataError(source, "\(rest.count) bytes of trailing data after the gzip stream")
                }
                guard inflateReset(&stream) == Z_OK else {
                    throw DataError(source, "zlib could not restart for the next gzip member")
                }
            case Z_BUF_ERROR where consumed == input.count:
                // No progress possible with output space free and no input
                // left: the stream stops before its end marker.
                throw DataError(source, "truncated gzip data (the stream ends after \(input.count) "
                    + "compressed bytes, \(output.count) decompressed, before its end marker)")
            case Z_BUF_ERROR:
                continue  // cannot happen with free output space, but is harmless
            case Z_DATA_ERROR, Z_NEED_DICT:
                let detail = stream.msg.map { String(cString: $0) } ?? "invalid data"
                throw DataError(source, "corrupt gzip data: \(detail)")
            case Z_MEM_ERROR:
                throw DataError(source, "out of memory while decompressing")
            default:
                throw DataError(source, "zlib inflate failed with status \(status)")
            }
        }
    }
}

/// The bytes of `path`, decompressed when the file is gzip (by its magic
/// number, not its name), so `.gz` and plain IDX files both work.
func readPossiblyCompressed(atPath path: String) throws -> [UInt8] {
    let data = try readFileContents(atPath: path)
    return try data.withUnsafeBytes { raw in
        Gzip.isGzip(raw) ? try Gzip.decompress(raw, source: path) : [UInt8](raw)
    }
}
