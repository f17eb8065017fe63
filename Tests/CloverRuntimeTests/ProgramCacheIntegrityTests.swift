import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// Cached program binaries carry a length and a checksum: a truncated or
/// byte-flipped file never reaches the driver (POCL crashed on them) and is
/// replaced by a fresh compile.
final class ProgramCacheIntegrityTests: XCTestCase {
    private static let source = """
        __kernel void add_one(__global float *x, ulong off) { x[off + get_global_id(0)] += 1.0f; }
        """

    private func directory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func context(_ dir: String) throws -> OpenCLContext {
        // Forced on: the disk cache is off by default on POCL.
        try TestSupport.context(cacheDirectory: .some(dir), storeProgramBinaries: true)
    }

    /// Runs the kernel once on a fresh context over `dir` and returns the
    /// context's program statistics.
    private func run(_ dir: String) throws -> ProgramCache.Statistics {
        let ctx = try context(dir)
        let kernel = try ctx.kernel("add_one", program: "integrity", source: { Self.source })
        let x = try ctx.allocateView(count: 4)
        try ctx.upload([Float](repeating: 1, count: 4), to: x)
        try ctx.launch(kernel, global: [4], arguments: [x.buffer, x.kernelOffset])
        XCTAssertEqual(try ctx.download(x, as: Float.self), [2, 2, 2, 2])
        return ctx.programs.statistics
    }

    private func binaryFile(_ dir: String) throws -> String {
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("integrity-") }
        XCTAssertEqual(files.count, 1, "\(files)")
        return dir + "/" + (files.first ?? "")
    }

    func testTruncatedAndFlippedBinariesAreRecompiled() throws {
        let dir = try directory()
        XCTAssertEqual(try run(dir).compiled, 1)
        XCTAssertEqual(try run(dir).loadedFromDisk, 1)
        let path = try binaryFile(dir)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        // Truncated: the driver never sees it; compiled again and repaired.
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try run(dir).compiled, 1)
        XCTAssertGreaterThan(try Data(contentsOf: URL(fileURLWithPath: path)).count, good.count / 2)
        XCTAssertEqual(try run(dir).loadedFromDisk, 1)

        // One flipped byte in the binary: checksum mismatch, recompiled.
        var flipped = [UInt8](good)
        flipped[flipped.count - 7] ^= 0x40
        try Data(flipped).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try run(dir).compiled, 1)
        XCTAssertEqual(try run(dir).loadedFromDisk, 1)

        // An unframed file (an older cache, or garbage) as well.
        try Data(repeating: 0x7f, count: 64).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try run(dir).compiled, 1)
    }

    func testNoPlatformNamesACacheVariableThatIsNotADirectory() throws {
        let saved = getenv("XDG_CACHE_HOME").map { String(cString: $0) }
        defer { if let saved { setenv("XDG_CACHE_HOME", saved, 1) } else { unsetenv("XDG_CACHE_HOME") } }
        setenv("XDG_CACHE_HOME", "/etc/hostname", 1)
        XCTAssertTrue("\(RuntimeError.noPlatform)".contains("XDG_CACHE_HOME=/etc/hostname is not a directory"),
                      "\(RuntimeError.noPlatform)")
        setenv("XDG_CACHE_HOME", NSTemporaryDirectory(), 1)
        XCTAssertFalse("\(RuntimeError.noPlatform)".contains("XDG_CACHE_HOME"))
    }
}

/// Buffers in use stay within the device's memory even where the driver
/// would hand out host memory without limit (POCL).
final class DeviceMemoryLimitTests: XCTestCase {
    func testAllocationPastTheDeviceMemoryIsAnErrorNamingIt() throws {
        let ctx = try TestSupport.context()
        XCTAssertEqual(ctx.memoryLimitBytes, ctx.device.globalMemoryBytes)
        ctx.memoryLimitBytes = 64 << 20
        let a = try ctx.allocate(bytes: 24 << 20)
        let b = try ctx.allocate(bytes: 24 << 20)
        XCTAssertThrowsError(try ctx.allocate(bytes: 24 << 20)) { error in
            guard case let RuntimeError.outOfDeviceMemory(bytes, inUse, limit, _) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(bytes, 24 << 20)
            XCTAssertGreaterThanOrEqual(inUse, 48 << 20)
            XCTAssertEqual(limit, 64 << 20)
            XCTAssertTrue("\(error)".contains("smaller batch"), "\(error)")
        }
        // Idle pooled buffers do not count: freeing one makes room again.
        _ = consume a
        XCTAssertNoThrow(try ctx.allocate(bytes: 24 << 20))
        withExtendedLifetime(b) {}
    }
}
