import Clover
import CloverRuntime
import XCTest

/// The OpenCL call counters see what Clover enqueues and what CLBlast
/// enqueues behind its back.
final class DeviceCountersTests: XCTestCase {
    /// A CLBlast GEMM at an awkward size takes CLBlast's indirect path: it pads
    /// and transposes the operands with kernels of its own before the GEMM
    /// kernel. Clover only sees one routine call; the counters must see every
    /// kernel the device runs.
    func testCountersSeeTheKernelsInsideACLBlastGemm() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        XCTAssertTrue(DeviceCounters.seesLibraryCalls,
                      "clEnqueueNDRangeKernel does not resolve to the counting definition for shared libraries")
        let n = 1000
        let a = try Tensor(shape: [n, n], values: [Float](repeating: 0.5, count: n * n), on: device)
        let b = try Tensor(shape: [n, n], values: [Float](repeating: 0.25, count: n * n), on: device)
        // Once untimed, so that CLBlast's program build does not count.
        _ = try matmul(a, b)
        try device.synchronize()
        let launchesBefore = context.launchCounts
        let before = DeviceCounters.current
        let c = try matmul(a, b)
        let delta = DeviceCounters.current - before
        let noted = context.launchCounts.reduce(0) { $0 + $1.value } - launchesBefore.reduce(0) { $0 + $1.value }
        // Clover's own launches plus the CLBlast calls it noted; whatever the
        // counters see beyond Clover's own launches ran inside CLBlast.
        let cloverKernels = noted - delta.libraryCalls
        let clblastKernels = delta.kernelLaunches - cloverKernels
        XCTAssertEqual(delta.libraryCalls, 1, "\(delta)")
        XCTAssertGreaterThanOrEqual(clblastKernels, 2,
                                    "an indirect GEMM launches padding kernels and the GEMM kernel: \(delta)")
        // CLBlast asks for each kernel it launches on every call; after the
        // first call the objects it released answer (CLCounters.c), so none is created.
        XCTAssertGreaterThanOrEqual(delta.kernelReuses, clblastKernels,
                                    "CLBlast's kernels come back from the pool: \(delta)")
        XCTAssertEqual(delta.kernelCreations, 0, "a repeated CLBlast GEMM creates no kernel object: \(delta)")
        XCTAssertEqual(try c.toArray()[0], Float(n) * 0.125)
    }

    /// Clover's own calls: a device copy, a blocking read and a queue drain
    /// each count once; pooled allocations create no new buffer.
    func testCountersSeeCopiesReadsAndFinishes() throws {
        let device = try TestDevice.get()
        let context = try XCTUnwrap(device.openCL)
        let source = try context.allocateView(count: 1024)
        let destination = try context.allocateView(count: 1024)
        try context.upload([Float](repeating: 3, count: 1024), to: source)
        try context.finish()
        let before = DeviceCounters.current
        try context.copy(from: source, to: destination, count: 1024)
        let values: [Float] = try context.download(destination)
        try context.finish()
        let delta = DeviceCounters.current - before
        XCTAssertEqual(values[1023], 3)
        XCTAssertEqual(delta.bufferCopies, 1)
        XCTAssertEqual(delta.blockingReads, 1)
        XCTAssertEqual(delta.finishes, 1)
        XCTAssertEqual(delta.hostBlockingCalls, 2)
        XCTAssertEqual(delta.bufferCreations, 0)

        // A size class never used before creates exactly one buffer of its bytes.
        let created = DeviceCounters.current
        let fresh = try context.allocate(bytes: (1 << 22) + 4)
        let allocation = DeviceCounters.current - created
        XCTAssertLessThanOrEqual(allocation.bufferCreations, 1)
        if allocation.bufferCreations == 1 { XCTAssertEqual(allocation.bytesAllocated, fresh.capacityBytes) }
    }

    func testDifferenceAndSum() {
        var a = DeviceCounters()
        a.kernelLaunches = 10
        a.finishes = 2
        a.bytesAllocated = 100
        var b = DeviceCounters()
        b.kernelLaunches = 4
        b.finishes = 1
        b.bytesAllocated = 40
        let d = a - b
        XCTAssertEqual(d.kernelLaunches, 6)
        XCTAssertEqual(d.hostBlockingCalls, 1)
        XCTAssertEqual(d + b, a)
    }
}
