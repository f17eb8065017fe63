import CloverKernels
import CloverRuntime
import Foundation
import CloverTestSupport
import XCTest

/// The runtime on the selected OpenCL device: discovery, buffers, programs,
/// kernels, events and the errors each raises.
final class RuntimeTests: XCTestCase {
    /// A context with its own empty program cache directory.
    private func makeContext(cacheDirectory: String? = nil) throws -> OpenCLContext {
        // The disk cache is forced on: it is off by default on POCL, the usual test device.
        try TestSupport.context(cacheDirectory: .some(cacheDirectory), storeProgramBinaries: true)
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "clover-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testDiscoveryAndSelection() throws {
        let context = try makeContext()
        let devices = try DeviceDiscovery.allDevices()
        XCTAssertFalse(devices.isEmpty)
        for device in devices {
            XCTAssertFalse(device.name.isEmpty)
            XCTAssertGreaterThan(device.computeUnits, 0)
            XCTAssertGreaterThan(device.maxWorkGroupSize, 0)
            XCTAssertTrue(device.openCLCVersion.hasPrefix("OpenCL C"), device.openCLCVersion)
        }
        // Default: the first GPU, else the first CPU.
        let chosen = try DeviceDiscovery.select(nil, from: devices)
        if devices.contains(where: { $0.kind == .gpu }) {
            XCTAssertEqual(chosen.kind, .gpu)
        } else {
            XCTAssertEqual(chosen.index, devices.first(where: { $0.kind == .cpu })?.index)
        }
        // By index and by case-insensitive substring of the device name.
        XCTAssertEqual(try DeviceDiscovery.select("0", from: devices).index, 0)
        let fragment = String(context.device.name.prefix(6)).uppercased()
        XCTAssertEqual(try DeviceDiscovery.select(fragment, from: devices).platformName,
                       devices.first { $0.name.uppercased().contains(fragment) }!.platformName)
        if devices.contains(where: { $0.platformVendor.lowercased().contains("pocl") }) {
            XCTAssertTrue(try DeviceDiscovery.select("PoCL", from: devices).platformVendor.lowercased().contains("pocl"))
        }
    }

    func testUnknownDeviceNamesTheSpecAndTheChoices() throws {
        _ = try makeContext()
        XCTAssertThrowsError(try DeviceDiscovery.select("no-such-device-xyz")) { error in
            guard case let RuntimeError.noMatchingDevice(spec, available) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(spec, "no-such-device-xyz")
            XCTAssertFalse(available.isEmpty)
            XCTAssertTrue("\(error)".contains("no-such-device-xyz"))
        }
        XCTAssertThrowsError(try DeviceDiscovery.select("999"))
    }

    func testUploadDownloadAtOffsets() throws {
        let context = try makeContext()
        let whole = try context.allocateView(count: 100)
        let values = (0..<37).map { Float($0) * 0.5 - 3 }
        try context.upload([Float](repeating: -1, count: 100), to: whole)
        try context.upload(values, to: whole.slice(offset: 13, count: 37))
        let back = try context.download(whole, as: Float.self)
        XCTAssertEqual(Array(back[13..<50]), values)
        XCTAssertEqual(back[12], -1)
        XCTAssertEqual(back[50], -1)
        let ints: [Int32] = [7, -3, 1 << 30]
        let iv = try context.allocateView(count: 3)
        try context.upload(ints, to: iv)
        XCTAssertEqual(try context.download(iv, as: Int32.self), ints)
        // Device-side copy between offset views.
        let other = try context.allocateView(count: 40)
        try context.copy(from: whole.slice(offset: 13, count: 37), to: other.slice(offset: 3, count: 37), count: 37)
        XCTAssertEqual(Array(try context.download(other, as: Float.self)[3..<40]), values)
    }

    func testUploadsAreQueuedInOrderAndTheirStagingIsFreed() throws {
        let context = try makeContext()
        let view = try context.allocateView(count: 64)
        // Many overlapping non-blocking writes, each from an array that is
        // gone when upload returns: the last one written must win, and a
        // kernel enqueued between them sees the earlier one.
        let source = "__kernel void add1(__global float* x) { x[get_global_id(0)] += 1.0f; }"
        let kernel = try context.kernel("add1", program: "upload_order_probe", source: { source })
        for round in 0..<20 {
            try context.upload([Float](repeating: Float(round), count: 64), to: view)
        }
        try context.launch(kernel, global: [64], arguments: [view.buffer])
        try context.upload([Float](repeating: 100, count: 32), to: view.slice(offset: 32, count: 32))
        try context.finish()
        XCTAssertEqual(context.uploadsInFlight, 0, "finish() frees every staging block")
        let back = try context.download(view, as: Float.self)
        XCTAssertEqual(Array(back[0..<32]), [Float](repeating: 20, count: 32))
        XCTAssertEqual(Array(back[32..<64]), [Float](repeating: 100, count: 32))
        // A download also drains the queue and frees what was staged.
        try context.upload([Float](repeating: 5, count: 64), to: view)
        XCTAssertEqual(try context.download(view, as: Float.self), [Float](repeating: 5, count: 64))
        XCTAssertEqual(context.uploadsInFlight, 0)
    }

    func testBufferPoolReusesReleasedBuffers() throws {
        let context = try makeContext()
        XCTAssertEqual(BufferPool.bucket(for: 1), 256)
        XCTAssertEqual(BufferPool.bucket(for: 1000), 1024)
        XCTAssertEqual(BufferPool.bucket(for: 1025), 1280)
        XCTAssertLessThanOrEqual(Double(BufferPool.bucket(for: 123_457)), 1.25 * 123_457)
        let before = context.pool.statistics
        do { _ = try context.allocate(bytes: 5000) }
        _ = try context.allocate(bytes: 4900)  // same bucket: served from the pool
        let after = context.pool.statistics
        XCTAssertEqual(after.allocated - before.allocated, 1)
        XCTAssertEqual(after.reused - before.reused, 1)
    }

    func testAllocationBeyondTheDeviceLimitThrows() throws {
        let context = try makeContext()
        let huge = context.device.maxAllocationBytes * 2 + 4096
        XCTAssertThrowsError(try context.allocate(bytes: huge)) { error in
            guard case let RuntimeError.allocationTooLarge(bytes, _, device) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(bytes, huge)
            XCTAssertEqual(device, context.device.description)
        }
    }

    func testProgramCacheSecondStartCompilesNothing() throws {
        let dir = try temporaryDirectory()
        let source = "__kernel void twice(__global float* x, const ulong off) { x[off + get_global_id(0)] *= 2.0f; }"
        do {
            let first = try makeContext(cacheDirectory: dir)
            _ = try first.kernel("twice", program: "cache_probe", source: { source }, defines: ["FOO": "1"])
            _ = try first.kernel("twice", program: "cache_probe", source: { source }, defines: ["FOO": "1"])
            XCTAssertEqual(first.programs.statistics, .init(compiled: 1, loadedFromDisk: 0, memoryHits: 1))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".bin") }.count, 1)
        // A new context (as in a new process) loads the binary and compiles nothing...
        let second = try makeContext(cacheDirectory: dir)
        let kernel = try second.kernel("twice", program: "cache_probe", source: { source }, defines: ["FOO": "1"])
        XCTAssertEqual(second.programs.statistics, .init(compiled: 0, loadedFromDisk: 1, memoryHits: 0))
        // ...and the loaded program really runs.
        let view = try second.allocateView(count: 8)
        try second.upload((0..<8).map(Float.init), to: view)
        try second.launch(kernel, global: [5], arguments: [view.buffer, UInt64(3)])
        XCTAssertEqual(try second.download(view, as: Float.self), [0, 1, 2, 6, 8, 10, 12, 14])
        // Other defines are another program.
        _ = try second.kernel("twice", program: "cache_probe", source: { source }, defines: ["FOO": "2"])
        XCTAssertEqual(second.programs.statistics.compiled, 1)
    }

    func testCorruptCachedBinaryIsRecompiled() throws {
        let dir = try temporaryDirectory()
        let source = "__kernel void k(__global float* x) { x[0] = 1.0f; }"
        do { _ = try makeContext(cacheDirectory: dir).kernel("k", program: "corrupt_probe", source: { source }) }
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let context = try makeContext(cacheDirectory: dir)
        _ = try context.kernel("k", program: "corrupt_probe", source: { source })
        XCTAssertEqual(context.programs.statistics.compiled, 1)
    }

    func testFailedBuildCarriesTheBuildLog() throws {
        let context = try makeContext()
        let source = "__kernel void broken(__global float* x) { x[0] = undeclared_identifier_q; }"
        XCTAssertThrowsError(try context.kernel("broken", program: "broken_probe", source: { source })) { error in
            guard let e = error as? OpenCLError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(e.call, "clBuildProgram")
            XCTAssertEqual(e.codeName, "CL_BUILD_PROGRAM_FAILURE")
            XCTAssertTrue(e.buildLog?.contains("undeclared_identifier_q") ?? false, e.buildLog ?? "no log")
            XCTAssertTrue(e.description.contains("build log"))
        }
    }

    func testMissingKernelNameIsNamed() throws {
        let context = try makeContext()
        let source = "__kernel void present(__global float* x) { x[0] = 1.0f; }"
        XCTAssertThrowsError(try context.kernel("absent", program: "name_probe", source: { source })) { error in
            guard let e = error as? OpenCLError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(e.call, "clCreateKernel")
            XCTAssertEqual(e.codeName, "CL_INVALID_KERNEL_NAME")
            XCTAssertTrue(e.description.contains("absent"), e.description)
        }
    }

    func testLaunchChecksArgumentCountAndProfiles() throws {
        let context = try makeContext()
        let source = "__kernel void fill(__global float* x, const ulong off, const float v, const int n) { int i = get_global_id(0); if (i < n) x[off + i] = v; }"
        let kernel = try context.kernel("fill", program: "launch_probe", source: { source })
        XCTAssertEqual(kernel.argumentCount, 4)
        let view = try context.allocateView(count: 50)
        XCTAssertThrowsError(try context.launch(kernel, global: [50], arguments: [view.buffer, UInt64(0)])) { error in
            XCTAssertTrue("\(error)".contains("fill"), "\(error)")
        }
        // 50 items rounded up to 64 with a work-group of 16; the kernel guards.
        let event = try context.launch(kernel, global: [50], local: [16],
                                       arguments: [view.buffer, UInt64(0), Float(2.5), Int32(50)], timed: true)
        let times = try XCTUnwrap(event).profiledNanoseconds()
        XCTAssertGreaterThanOrEqual(times.end, times.start)
        XCTAssertEqual(try context.download(view, as: Float.self), [Float](repeating: 2.5, count: 50))
        XCTAssertEqual(context.launchCounts["launch_probe/fill"], 1)
    }

    func testStatusNames() {
        XCTAssertEqual(OpenCLError.name(of: -5), "CL_OUT_OF_RESOURCES")
        let e = OpenCLError(call: "clEnqueueNDRangeKernel", code: -5)
        XCTAssertEqual(e.description, "clEnqueueNDRangeKernel: CL_OUT_OF_RESOURCES (-5)")
        XCTAssertEqual(OpenCLError.name(of: 12345), "UNKNOWN_STATUS")
    }
}

/// The embedded kernel sources and their disk override.
final class KernelSourceTests: XCTestCase {
    func testEveryFamilyIsEmbeddedWithAHeader() throws {
        XCTAssertFalse(KernelSources.embeddedFamilies.isEmpty)
        for family in KernelSources.embeddedFamilies {
            let text = try KernelSources.source(family: family)
            XCTAssertTrue(text.hasPrefix("// ="), "\(family).cl must open with its header")
            XCTAssertTrue(text.contains("Kernels:"), "\(family).cl header must list its kernels")
            XCTAssertTrue(text.contains("Macros:"), "\(family).cl header must list its macros")
            XCTAssertFalse(KernelSources.kernelNames(in: text).isEmpty, family)
        }
    }

    func testKernelNameScanIgnoresComments() {
        let text = """
        // __kernel void commented_out(void)
        /* __kernel void also_not */
        __kernel void first(__global float* x) {}
        __kernel __attribute__((reqd_work_group_size(64, 1, 1)))
        void second(int n) {}
        """
        XCTAssertEqual(KernelSources.kernelNames(in: text), ["first", "second"])
    }

    func testMissingFamilyThrows() {
        XCTAssertThrowsError(try KernelSources.source(family: "no_such_family")) { error in
            XCTAssertTrue("\(error)".contains("no_such_family"))
        }
    }

    func testDirectoryOverrideReadsFromDisk() throws {
        let dir = NSTemporaryDirectory() + "clover-kernels-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "// from disk\n__kernel void on_disk(int n) {}\n".write(toFile: dir + "/probe.cl", atomically: true, encoding: .utf8)
        setenv(KernelSources.directoryVariable, dir, 1)
        defer { unsetenv(KernelSources.directoryVariable) }
        XCTAssertEqual(KernelSources.kernelNames(in: try KernelSources.source(family: "probe")), ["on_disk"])
        XCTAssertThrowsError(try KernelSources.source(family: "elementwise"))
    }
}
