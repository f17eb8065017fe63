/// The launch limits every kernel launch is checked against, on every device.
///
/// A driver only rejects what breaks its own limits, and POCL's are far
/// wider than a GPU's: a launch with 294,912 work-groups in dimension 1
/// runs on POCL and fails on NVIDIA, whose OpenCL runs on CUDA grids (at
/// most 65,535 blocks in dimensions y and z, 48 KiB of local memory per
/// block). Checking every launch against one portable profile makes such a
/// launch fail here, in tests on a CPU, with a message that names it.
public struct LaunchProfile: Sendable, Equatable, CustomStringConvertible {
    /// A short name for messages, e.g. `portable`.
    public var name: String
    /// The most work-groups per dimension (0, 1, 2).
    public var maxGroups: [Int]
    /// The most `__local` memory one work-group may use, in bytes (static
    /// `__local` arrays and `__local` arguments together).
    public var maxLocalMemoryBytes: Int
    /// The largest work-group (product of the local sizes) a kernel may use
    /// unless its launch says it was tuned for more (and the device allows it).
    public var maxWorkGroupSize: Int
    /// The most work-items in one launch: kernels compute element indices
    /// from global ids in 32-bit arithmetic.
    public var maxWorkItems: Int
    /// The largest single buffer a planning context accepts, in place of the
    /// planning device's own limit: 2³¹ floats, the most 32-bit element
    /// indices reach (a GPU allows a quarter of its memory, an H200 35 GB).
    public var maxPlannedAllocationBytes: Int

    public init(name: String, maxGroups: [Int], maxLocalMemoryBytes: Int, maxWorkGroupSize: Int, maxWorkItems: Int,
                maxPlannedAllocationBytes: Int = Int(Int32.max) * 4) {
        self.maxPlannedAllocationBytes = maxPlannedAllocationBytes
        self.name = name
        self.maxGroups = maxGroups
        self.maxLocalMemoryBytes = maxLocalMemoryBytes
        self.maxWorkGroupSize = maxWorkGroupSize
        self.maxWorkItems = maxWorkItems
    }

    /// What NVIDIA's OpenCL (CUDA grids), AMD's default work-group size and
    /// every CPU driver accept: 2³¹−1 groups in dimension 0 and 65,535 in
    /// dimensions 1 and 2; 48 KiB of local memory; 256 work-items per group;
    /// 2³¹−1 work-items per launch.
    public static let portable = LaunchProfile(
        name: "portable", maxGroups: [Int(Int32.max), 65_535, 65_535],
        maxLocalMemoryBytes: 48 * 1024, maxWorkGroupSize: 256, maxWorkItems: Int(Int32.max))

    public var description: String {
        "\(name) profile (groups ≤ \(maxGroups.map(String.init).joined(separator: "/")) in dims 0/1/2, "
            + "local memory ≤ \(maxLocalMemoryBytes) B, work-group ≤ \(maxWorkGroupSize), "
            + "work-items ≤ \(maxWorkItems))"
    }

    /// The first limit a launch breaks, described, or nil when it fits.
    ///
    /// - Parameters:
    ///   - global: work-items per dimension, before rounding up to `local`.
    ///   - local: the work-group size, or nil when the driver chooses; then
    ///     every dimension counts as groups of one item, the worst a driver
    ///     may pick.
    ///   - localMemoryBytes: static and argument `__local` bytes together.
    ///   - tunedWorkGroupLimit: a larger work-group the kernel's tuned
    ///     parameters ask for and the device allows, if any.
    public func violation(global: [Int], local: [Int]?, localMemoryBytes: Int,
                          tunedWorkGroupLimit: Int? = nil) -> String? {
        var items = 1
        for (i, g) in global.enumerated() {
            let l = local?[i] ?? 1
            let groups = (g + l - 1) / l
            let limit = i < maxGroups.count ? maxGroups[i] : 1
            if groups > limit {
                let how = local == nil ? " (no local size given, so the driver may use groups of 1)" : ""
                return "\(groups) work-groups in dimension \(i) exceed the limit of \(limit)\(how)"
            }
            let (product, overflow) = items.multipliedReportingOverflow(by: groups * l)
            items = overflow ? Int.max : product
        }
        if items > maxWorkItems {
            return "\(items) work-items exceed the limit of \(maxWorkItems) (32-bit indices)"
        }
        if let local {
            let size = local.reduce(1, *)
            let limit = max(maxWorkGroupSize, tunedWorkGroupLimit ?? 0)
            if size > limit {
                return "a work-group of \(size) items exceeds the limit of \(limit)"
            }
        }
        if localMemoryBytes > maxLocalMemoryBytes {
            return "\(localMemoryBytes) bytes of local memory exceed the limit of \(maxLocalMemoryBytes)"
        }
        return nil
    }
}
