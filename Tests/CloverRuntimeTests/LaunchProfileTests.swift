import CloverRuntime
import CloverTestSupport
import XCTest

/// The portable launch profile: every launch is checked against it on every
/// device, and a planning context checks and counts launches without
/// running them.
final class LaunchProfileTests: XCTestCase {
    private static let source = """
        __kernel void touch(__global float *out, ulong offset, __local float *scratch) {
            size_t i = get_global_id(0) + get_global_id(1) * get_global_size(0);
            if (i == 0) { scratch[0] = 1.0f; out[offset] = scratch[0]; }
        }
        """

    private func context(planning: Bool = false) throws -> OpenCLContext {
        try TestSupport.context(planning: planning)
    }

    func testProfileArithmetic() {
        let p = LaunchProfile.portable
        XCTAssertNil(p.violation(global: [1 << 30], local: [256], localMemoryBytes: 0))
        XCTAssertNil(p.violation(global: [64, 65_535 * 4], local: [64, 4], localMemoryBytes: 48 * 1024))
        // im2col's old dimension 1 at ResNet-50's layer 3: 294,912 rows.
        XCTAssertNotNil(p.violation(global: [196, 294_912], local: [64, 1], localMemoryBytes: 0))
        // Without a local size the driver may pick groups of one item.
        XCTAssertNotNil(p.violation(global: [16, 65_536], local: nil, localMemoryBytes: 0))
        XCTAssertNotNil(p.violation(global: [16, 16, 70_000], local: nil, localMemoryBytes: 0))
        XCTAssertNotNil(p.violation(global: [512], local: [512], localMemoryBytes: 0))
        XCTAssertNil(p.violation(global: [512], local: [512], localMemoryBytes: 0, tunedWorkGroupLimit: 1024))
        XCTAssertNotNil(p.violation(global: [256], local: [256], localMemoryBytes: 48 * 1024 + 4))
        XCTAssertNotNil(p.violation(global: [1 << 20, 4096], local: [256, 1], localMemoryBytes: 0))
    }

    /// POCL accepts all of these; the profile must refuse them anyway, with
    /// a message that names the kernel, its sizes and the limit.
    func testLaunchesOutsideTheProfileThrowOnEveryDevice() throws {
        let ctx = try context()
        let kernel = try ctx.kernel("touch", program: "launch-profile-test", source: { Self.source })
        let out = try ctx.allocateView(count: 1)
        let args: (Int) -> [KernelArgument] = { [out.buffer, out.kernelOffset, LocalMemory(bytes: $0)] }
        try ctx.launch(kernel, global: [4, 4], local: [4, 4], arguments: args(4))
        try ctx.finish()
        let cases: [(global: [Int], local: [Int]?, bytes: Int, expect: String)] = [
            ([1, 70_000], [1, 1], 4, "dimension 1"),
            ([1, 70_000], nil, 4, "dimension 1"),
            ([512], [512], 4, "work-group of 512"),
            ([64], [64], 64 * 1024, "local memory"),
        ]
        for c in cases {
            XCTAssertThrowsError(try ctx.launch(kernel, global: c.global, local: c.local, arguments: args(c.bytes))) { error in
                guard case let RuntimeError.launchOutsideProfile(name, global, _, profile, reason) = error else {
                    return XCTFail("unexpected error \(error)")
                }
                XCTAssertEqual(name, "touch")
                XCTAssertEqual(global, c.global)
                XCTAssertEqual(profile, "portable")
                XCTAssertTrue(reason.contains(c.expect), reason)
                XCTAssertTrue("\(error)".contains("touch"), "\(error)")
            }
        }
    }

    /// A planning context counts launches and allocations but runs and
    /// allocates nothing real, and still checks the profile.
    func testPlanningContextChecksWithoutRunning() throws {
        let ctx = try context(planning: true)
        XCTAssertTrue(ctx.isPlanning)
        let kernel = try ctx.kernel("touch", program: "launch-profile-test", source: { Self.source })
        do {
            // Up to 64 GiB in 16 planned buffers: nothing is really allocated.
            let big = try (0..<16).map { _ in try ctx.allocate(bytes: min(4 << 30, ctx.device.maxAllocationBytes)) }
            XCTAssertEqual(ctx.pool.statistics.allocated, 0)
            XCTAssertGreaterThan(ctx.plannedPeakBytes, 0)
            let view = BufferView(buffer: big[0], offset: 0, count: 1024)
            try ctx.upload([Float](repeating: 3, count: 1024), to: view)
            try ctx.launch(kernel, global: [4096, 60_000], local: [256, 1],
                           arguments: [view.buffer, view.kernelOffset, LocalMemory(bytes: 4)])
            XCTAssertEqual(ctx.launchCounts["launch-profile-test/touch"], 1)
            XCTAssertEqual(try ctx.download(view, as: Float.self), [Float](repeating: 0, count: 1024))
            XCTAssertThrowsError(try ctx.launch(kernel, global: [1, 70_000], local: [1, 1],
                                                arguments: [view.buffer, view.kernelOffset, LocalMemory(bytes: 4)]))
            XCTAssertEqual(ctx.launchCounts["launch-profile-test/touch"], 1)
        }
        let peak = ctx.plannedPeakBytes
        XCTAssertEqual(ctx.plannedLiveBytes, 0)
        XCTAssertEqual(ctx.plannedPeakBytes, peak)
    }
}
