import CloverRuntime

// The parameter sets GemmTuning searches over: CLBlast's single-precision
// GEMM runs one of two kernels, chosen per call by size, and each has its
// own database entry that `CLBlastOverrideParameters` can replace:
//
//   Xgemm        the indirect path: A and B are copied (padded, transposed
//                as needed) into tile-aligned buffers, then a tiled kernel
//   XgemmDirect  the direct path: one kernel on the matrices as they are
//   GemmRoutine  XGEMM_MIN_INDIRECT_SIZE: a GEMM with m·n·k below its cube
//                takes the direct path
//
// The constraints are those of CLBlast's own tuners
// (src/tuning/kernels/xgemm.hpp, xgemm_direct.hpp); a set that breaks one
// fails to compile or computes garbage.

/// A complete set of parameters for one CLBlast kernel's database entry.
public protocol CLBlastParameterSet: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The kernel name `CLBlastOverrideParameters` takes.
    static var kernel: String { get }
    /// Every parameter CLBlast 1.5 requires for the kernel, sorted by name.
    static var names: [String] { get }
    /// The values by parameter name; exactly ``names``.
    var values: [String: Int] { get }
    /// A set from name–value pairs.
    ///
    /// - Throws: ``GemmTuningError/invalidParameters(_:)`` when a name is
    ///   missing or unknown, or a value is out of range.
    init(_ values: [String: Int]) throws
    /// The kernel's constraints this set breaks, as readable sentences;
    /// empty when CLBlast should accept it. The device's local-memory and
    /// work-group limits are checked when given.
    func violations(localMemoryLimit: Int?, maxWorkGroupSize: Int?) -> [String]
}

extension CLBlastParameterSet {
    /// The value of parameter `name` (0 for a name not in ``names``).
    public subscript(_ name: String) -> Int { values[name] ?? 0 }

    /// `NAME=value` pairs in ``names`` order.
    public var description: String {
        Self.names.map { "\($0)=\(self[$0])" }.joined(separator: " ")
    }

    /// ``violations(localMemoryLimit:maxWorkGroupSize:)`` without device limits.
    public func violations() -> [String] { violations(localMemoryLimit: nil, maxWorkGroupSize: nil) }

    /// Checks that `values` has exactly ``names``, each at least 0 (the
    /// `zeroable` ones) or 1; shared by the initialisers.
    static func validated(_ values: [String: Int], zeroable: Set<String>) throws -> [String: Int] {
        let missing = names.filter { values[$0] == nil }
        let unknown = values.keys.filter { !names.contains($0) }.sorted()
        guard missing.isEmpty, unknown.isEmpty else {
            throw GemmTuningError.invalidParameters(
                kernel, (missing.isEmpty ? [] : ["missing \(missing.joined(separator: ", "))"])
                    + (unknown.isEmpty ? [] : ["unknown \(unknown.joined(separator: ", "))"]))
        }
        let bad = names.filter { values[$0]! < (zeroable.contains($0) ? 0 : 1) }
        guard bad.isEmpty else {
            throw GemmTuningError.invalidParameters(kernel, bad.map { "\($0)=\(values[$0]!) is out of range" })
        }
        return values
    }
}

/// Whether `value` is a multiple of `divisor`; false for a divisor of 0,
/// which a hand-made set may hold.
private func multiple(_ value: Int, of divisor: Int) -> Bool { divisor > 0 && value % divisor == 0 }

/// Collects the sentences of broken constraints.
private struct Violations {
    var list: [String] = []
    mutating func require(_ ok: Bool, _ message: @autoclosure () -> String) {
        if !ok { list.append(message()) }
    }
}

// MARK: - Xgemm

/// Parameters of CLBlast's `Xgemm` kernel, the indirect path used for all
/// but small GEMMs, batched or not.
///
/// Work-group tile `MWG`×`NWG`×`KWG`, threads `MDIMC`×`NDIMC` (re-shaped
/// to `MDIMA`, `NDIMB` for loading A and B), unroll `KWI`, vector widths
/// `VWM`, `VWN`, strided access `STRM`, `STRN`, local-memory caching `SA`,
/// `SB`, and the variant `GEMMK` (0: local-memory tiling, 1: 2D register
/// tiling with `KREG`).
public struct XgemmParameters: CLBlastParameterSet {
    public static let kernel = "Xgemm"
    public static let names = ["GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG",
                               "SA", "SB", "STRM", "STRN", "VWM", "VWN"]
    public let values: [String: Int]

    public init(_ values: [String: Int]) throws {
        self.values = try Self.validated(values, zeroable: ["GEMMK", "SA", "SB", "STRM", "STRN"])
    }

    /// A set in CLBlast's database argument order; `GEMMK` 0 unless given.
    public init(mwg: Int, nwg: Int, kwg: Int, mdimc: Int, ndimc: Int, mdima: Int, ndimb: Int, kwi: Int = 2,
                vwm: Int, vwn: Int, strm: Int = 0, strn: Int = 0, sa: Int, sb: Int, gemmk: Int = 0, kreg: Int = 1) {
        // Not validated (it cannot throw): violations() reports out-of-range
        // values instead.
        values = ["GEMMK": gemmk, "KREG": kreg, "KWG": kwg, "KWI": kwi, "MDIMA": mdima, "MDIMC": mdimc,
                  "MWG": mwg, "NDIMB": ndimb, "NDIMC": ndimc, "NWG": nwg, "SA": sa, "SB": sb,
                  "STRM": strm, "STRN": strn, "VWM": vwm, "VWN": vwn]
    }

    public init(from decoder: Decoder) throws { try self.init(decoder.singleValueContainer().decode([String: Int].self)) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// Local memory one work-group uses: the A and B tiles when cached.
    public var localMemoryBytes: Int {
        4 * (self["SA"] * self["KWG"] * self["MWG"] + self["SB"] * self["KWG"] * self["NWG"])
    }

    public func violations(localMemoryLimit: Int?, maxWorkGroupSize: Int?) -> [String] {
        let gemmk = self["GEMMK"], kwg = self["KWG"], kwi = self["KWI"], kreg = self["KREG"]
        let mwg = self["MWG"], nwg = self["NWG"], mdimc = self["MDIMC"], ndimc = self["NDIMC"]
        let mdima = self["MDIMA"], ndimb = self["NDIMB"], vwm = self["VWM"], vwn = self["VWN"]
        var v = Violations()
        v.require(gemmk == 0 || gemmk == 1, "GEMMK must be 0 or 1")
        for flag in ["SA", "SB", "STRM", "STRN"] { v.require(self[flag] <= 1, "\(flag) must be 0 or 1") }
        for width in ["VWM", "VWN"] {
            v.require([1, 2, 4, 8, 16].contains(self[width]), "\(width) must be 1, 2, 4, 8 or 16")
        }
        v.require(multiple(kwg, of: kwi), "KWG % KWI == 0 (\(kwg) % \(kwi))")
        v.require(multiple(mwg, of: mdimc * vwm), "MWG % (MDIMC·VWM) == 0 (\(mwg) % \(mdimc * vwm))")
        v.require(multiple(nwg, of: ndimc * vwn), "NWG % (NDIMC·VWN) == 0 (\(nwg) % \(ndimc * vwn))")
        v.require(multiple(mwg, of: mdima * vwm), "MWG % (MDIMA·VWM) == 0 (\(mwg) % \(mdima * vwm))")
        v.require(multiple(nwg, of: ndimb * vwn), "NWG % (NDIMB·VWN) == 0 (\(nwg) % \(ndimb * vwn))")
        if gemmk == 0 {
            // The MDIMC×NDIMC threads re-shape into MDIMA×KDIMA and
            // KDIMB×NDIMB to load the tiles, so those must be whole.
            let threads = mdimc * ndimc
            v.require(multiple(threads, of: mdima) && multiple(kwg, of: threads / mdima),
                      "KWG % ((MDIMC·NDIMC)/MDIMA) == 0 (\(kwg) % (\(threads)/\(mdima)))")
            v.require(multiple(threads, of: ndimb) && multiple(kwg, of: threads / ndimb),
                      "KWG % ((MDIMC·NDIMC)/NDIMB) == 0 (\(kwg) % (\(threads)/\(ndimb)))")
            v.require(kreg == 1, "KREG must be 1 when GEMMK is 0")
        } else {
            // The register-tiled kernel uses no local memory, and CLBlast's
            // tuner ties its load shape to its compute shape.
            v.require(multiple(kreg, of: vwn), "KREG % VWN == 0 (\(kreg) % \(vwn))")
            v.require(mdima == mdimc && ndimb == ndimc, "MDIMA == MDIMC and NDIMB == NDIMC when GEMMK is 1")
            v.require(self["SA"] == 0 && self["SB"] == 0, "SA and SB must be 0 when GEMMK is 1")
        }
        if let localMemoryLimit {
            v.require(localMemoryBytes <= localMemoryLimit,
                      "local memory \(localMemoryBytes) B exceeds the device's \(localMemoryLimit) B")
        }
        if let maxWorkGroupSize {
            v.require(mdimc * ndimc <= maxWorkGroupSize,
                      "work-group MDIMC·NDIMC = \(mdimc * ndimc) exceeds the device's \(maxWorkGroupSize)")
        }
        return v.list
    }
}

// MARK: - XgemmDirect

/// Parameters of CLBlast's `XgemmDirect` kernel, the direct path for small
/// GEMMs (below ``GemmRoutineParameters/minIndirectSize`` cubed).
///
/// Square work-group tile `WGD`, threads `MDIMCD`×`NDIMCD` (re-shaped to
/// `MDIMAD`, `NDIMBD` for loading), unroll `KWID`, vector widths `VWMD`,
/// `VWND`, and local-memory padding `PADA`, `PADB` against bank conflicts.
public struct XgemmDirectParameters: CLBlastParameterSet {
    public static let kernel = "XgemmDirect"
    public static let names = ["KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"]
    public let values: [String: Int]

    public init(_ values: [String: Int]) throws {
        self.values = try Self.validated(values, zeroable: ["PADA", "PADB"])
    }

    /// A set from its values, in the order of CLBlast's tuner; `KWID` 2 and
    /// padding on unless given.
    public init(wgd: Int, mdimcd: Int, ndimcd: Int, mdimad: Int, ndimbd: Int, kwid: Int = 2, vwmd: Int, vwnd: Int,
                pada: Int = 1, padb: Int = 1) {
        values = ["KWID": kwid, "MDIMAD": mdimad, "MDIMCD": mdimcd, "NDIMBD": ndimbd, "NDIMCD": ndimcd,
                  "PADA": pada, "PADB": padb, "VWMD": vwmd, "VWND": vwnd, "WGD": wgd]
    }

    public init(from decoder: Decoder) throws { try self.init(decoder.singleValueContainer().decode([String: Int].self)) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// Local memory one work-group uses: padded WGD×WGD tiles of A and B.
    public var localMemoryBytes: Int {
        let wgd = self["WGD"]
        return 4 * (wgd * (wgd + self["PADA"]) + wgd * (wgd + self["PADB"]))
    }

    public func violations(localMemoryLimit: Int?, maxWorkGroupSize: Int?) -> [String] {
        let wgd = self["WGD"], kwid = self["KWID"], mdimcd = self["MDIMCD"], ndimcd = self["NDIMCD"]
        let mdimad = self["MDIMAD"], ndimbd = self["NDIMBD"], vwmd = self["VWMD"], vwnd = self["VWND"]
        var v = Violations()
        for flag in ["PADA", "PADB"] { v.require(self[flag] <= 1, "\(flag) must be 0 or 1") }
        for width in ["VWMD", "VWND"] {
            v.require([1, 2, 4, 8, 16].contains(self[width]), "\(width) must be 1, 2, 4, 8 or 16")
        }
        v.require(multiple(wgd, of: kwid), "WGD % KWID == 0 (\(wgd) % \(kwid))")
        v.require(multiple(wgd, of: mdimcd * vwmd), "WGD % (MDIMCD·VWMD) == 0 (\(wgd) % \(mdimcd * vwmd))")
        v.require(multiple(wgd, of: ndimcd * vwnd), "WGD % (NDIMCD·VWND) == 0 (\(wgd) % \(ndimcd * vwnd))")
        v.require(multiple(wgd, of: mdimad * vwmd), "WGD % (MDIMAD·VWMD) == 0 (\(wgd) % \(mdimad * vwmd))")
        v.require(multiple(wgd, of: ndimbd * vwnd), "WGD % (NDIMBD·VWND) == 0 (\(wgd) % \(ndimbd * vwnd))")
        let threads = mdimcd * ndimcd
        v.require(multiple(threads, of: mdimad) && multiple(wgd, of: threads / mdimad),
                  "WGD % ((MDIMCD·NDIMCD)/MDIMAD) == 0 (\(wgd) % (\(threads)/\(mdimad)))")
        v.require(multiple(threads, of: ndimbd) && multiple(wgd, of: threads / ndimbd),
                  "WGD % ((MDIMCD·NDIMCD)/NDIMBD) == 0 (\(wgd) % (\(threads)/\(ndimbd)))")
        if let localMemoryLimit {
            v.require(localMemoryBytes <= localMemoryLimit,
                      "local memory \(localMemoryBytes) B exceeds the device's \(localMemoryLimit) B")
        }
        if let maxWorkGroupSize {
            v.require(threads <= maxWorkGroupSize,
                      "work-group MDIMCD·NDIMCD = \(threads) exceeds the device's \(maxWorkGroupSize)")
        }
        return v.list
    }
}

// MARK: - GemmRoutine

/// CLBlast's choice between the two paths: a GEMM whose m·n·k is below
/// ``minIndirectSize`` cubed runs ``XgemmDirectParameters``' kernel, any
/// other ``XgemmParameters``' (with its copy and pad kernels).
public struct GemmRoutineParameters: CLBlastParameterSet {
    public static let kernel = "GemmRoutine"
    public static let names = ["XGEMM_MIN_INDIRECT_SIZE"]
    public let values: [String: Int]

    public init(_ values: [String: Int]) throws {
        self.values = try Self.validated(values, zeroable: [])
    }

    /// The set with threshold `minIndirectSize`.
    public init(minIndirectSize: Int) {
        values = ["XGEMM_MIN_INDIRECT_SIZE": max(minIndirectSize, 1)]
    }

    public init(from decoder: Decoder) throws { try self.init(decoder.singleValueContainer().decode([String: Int].self)) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// `XGEMM_MIN_INDIRECT_SIZE`.
    public var minIndirectSize: Int { self["XGEMM_MIN_INDIRECT_SIZE"] }

    /// Whether CLBlast runs `shape` on the direct path (its `UseDirectKernel`).
    public func usesDirect(_ shape: GemmShape) -> Bool {
        let size = UInt64(minIndirectSize)
        let (cube, overflow) = size.multipliedReportingOverflow(by: size)
        guard !overflow else { return true }
        let (cube3, overflow3) = cube.multipliedReportingOverflow(by: size)
        return overflow3 || UInt64(shape.m) * UInt64(shape.n) * UInt64(shape.k) < cube3
    }

    public func violations(localMemoryLimit: Int?, maxWorkGroupSize: Int?) -> [String] {
        // CLBlast cubes it in 64 bits.
        minIndirectSize <= 2_000_000 ? [] : ["XGEMM_MIN_INDIRECT_SIZE must be at most 2000000"]
    }
}

// MARK: - Configuration

/// Everything GEMM tuning sets on a device: both kernels' parameters and
/// the size at which CLBlast switches from one to the other.
public struct GemmConfiguration: Hashable, Sendable, Codable, CustomStringConvertible {
    public var xgemm: XgemmParameters
    public var direct: XgemmDirectParameters
    public var routine: GemmRoutineParameters

    public init(xgemm: XgemmParameters, direct: XgemmDirectParameters, routine: GemmRoutineParameters) {
        self.xgemm = xgemm
        self.direct = direct
        self.routine = routine
    }

    enum CodingKeys: String, CodingKey {
        case xgemm = "Xgemm", direct = "XgemmDirect", routine = "GemmRoutine"
    }

    /// Every broken constraint, prefixed with its kernel.
    public func violations(localMemoryLimit: Int? = nil, maxWorkGroupSize: Int? = nil) -> [String] {
        xgemm.violations(localMemoryLimit: localMemoryLimit, maxWorkGroupSize: maxWorkGroupSize).map { "Xgemm: \($0)" }
            + direct.violations(localMemoryLimit: localMemoryLimit, maxWorkGroupSize: maxWorkGroupSize)
                .map { "XgemmDirect: \($0)" }
            + routine.violations(localMemoryLimit: localMemoryLimit, maxWorkGroupSize: maxWorkGroupSize)
                .map { "GemmRoutine: \($0)" }
    }

    /// One line per kernel.
    public var description: String {
        "Xgemm: \(xgemm)\nXgemmDirect: \(direct)\nGemmRoutine: \(routine)"
    }
}

// MARK: - Candidates

extension GemmTuning {
    /// The `Xgemm` candidates for `device`, in the fixed order a search
    /// tries them: sets known to do well on the device's kind (CPU or GPU)
    /// first, then CLBlast's exhaustive tuner space (tiles of 16–64) for
    /// both kernel variants, then its wider sampled space. Each space is
    /// shuffled with a fixed seed, so a short budget samples it evenly and
    /// every run tries the same sets in the same order. Every set satisfies
    /// the constraints for the device.
    public static func xgemmCandidates(for device: OpenCLDevice) -> [XgemmParameters] {
        xgemmCandidates(kind: device.kind, localMemoryLimit: device.localMemoryBytes,
                        maxWorkGroupSize: device.maxWorkGroupSize)
    }

    /// ``xgemmCandidates(for:)`` for a device described by its limits.
    public static func xgemmCandidates(kind: DeviceKind, localMemoryLimit: Int, maxWorkGroupSize: Int) -> [XgemmParameters] {
        let seeds = kind == .cpu ? xgemmCPUSeeds + xgemmGPUSeeds : xgemmGPUSeeds + xgemmCPUSeeds
        return candidates(seeds: seeds, space: xgemmSpace) {
            $0.localMemoryBytes <= localMemoryLimit && $0["MDIMC"] * $0["NDIMC"] <= maxWorkGroupSize
        }
    }

    /// The `XgemmDirect` candidates for `device`, ordered like ``xgemmCandidates(for:)``.
    public static func directCandidates(for device: OpenCLDevice) -> [XgemmDirectParameters] {
        directCandidates(kind: device.kind, localMemoryLimit: device.localMemoryBytes,
                         maxWorkGroupSize: device.maxWorkGroupSize)
    }

    /// ``directCandidates(for:)`` for a device described by its limits.
    public static func directCandidates(kind: DeviceKind, localMemoryLimit: Int,
                                        maxWorkGroupSize: Int) -> [XgemmDirectParameters] {
        candidates(seeds: directSeeds, space: directSpace) {
            $0.localMemoryBytes <= localMemoryLimit && $0["MDIMCD"] * $0["NDIMCD"] <= maxWorkGroupSize
        }
    }

    /// The seeds that fit, then the space's sets that fit and are not seeds.
    /// The space's sets meet every constraint but the device's limits, so
    /// only `fits` is checked on them (the wide spaces hold ~100 000 sets).
    private static func candidates<P: CLBlastParameterSet>(seeds: [P], space: [P], fits: (P) -> Bool) -> [P] {
        var seen = Set<P>()
        let usableSeeds = seeds.filter { $0.violations().isEmpty && fits($0) && seen.insert($0).inserted }
        return usableSeeds + space.filter { fits($0) && !seen.contains($0) }
    }

    /// CLBlast's exhaustive tuner space for both kernel variants, then its
    /// wider one, each shuffled with a fixed seed, without repeats; built
    /// once per process.
    static let xgemmSpace: [XgemmParameters] = {
        let core = interleave(shuffled(xgemmCoreSpace(gemmk: 0), seed: 0xC10E_0001),
                              shuffled(xgemmCoreSpace(gemmk: 1), seed: 0xC10E_0002), ratio: 3)
        let wide = interleave(shuffled(xgemmWideSpace(gemmk: 0), seed: 0xC10E_0003),
                              shuffled(xgemmWideSpace(gemmk: 1), seed: 0xC10E_0004), ratio: 3)
        var seen = Set<XgemmParameters>()
        return (core + wide).filter { seen.insert($0).inserted }
    }()

    /// The same for `XgemmDirect`.
    static let directSpace: [XgemmDirectParameters] = {
        let core = shuffled(directTunerSpace(wide: false), seed: 0xC10E_0011)
        let wide = shuffled(directTunerSpace(wide: true), seed: 0xC10E_0012)
        var seen = Set<XgemmDirectParameters>()
        return (core + wide).filter { seen.insert($0).inserted }
    }()

    /// Sets that did well on CPU OpenCL devices: the best of a partial run of
    /// CLBlast's own tuner (`clblast_tuner_xgemm`, 1024³) on POCL on an AMD
    /// EPYC, and CLBlast's database default for Intel CPUs.
    static let xgemmCPUSeeds: [XgemmParameters] = [
        .init(mwg: 64, nwg: 64, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 4, sa: 0, sb: 0),
        .init(mwg: 64, nwg: 64, kwg: 32, mdimc: 16, ndimc: 8, mdima: 16, ndimb: 8, vwm: 4, vwn: 2, sa: 1, sb: 1),
        .init(mwg: 64, nwg: 32, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 2, vwn: 4, sa: 1, sb: 1),
        .init(mwg: 32, nwg: 64, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 2, sa: 0, sb: 0),
        .init(mwg: 64, nwg: 16, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 2, sa: 1, sb: 1),
        .init(mwg: 32, nwg: 64, kwg: 32, mdimc: 8, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 4, sa: 0, sb: 0),
    ]

    /// Sets from CLBlast's database for NVIDIA and AMD GPUs (Pascal, Maxwell,
    /// Hawaii) and large-tile sets for big modern GPUs.
    static let xgemmGPUSeeds: [XgemmParameters] = [
        .init(mwg: 64, nwg: 64, kwg: 32, mdimc: 16, ndimc: 8, mdima: 16, ndimb: 8, vwm: 4, vwn: 4, sa: 1, sb: 1),
        .init(mwg: 64, nwg: 128, kwg: 16, mdimc: 16, ndimc: 8, mdima: 32, ndimb: 16, vwm: 2, vwn: 8, strn: 1, sa: 0, sb: 1),
        .init(mwg: 128, nwg: 128, kwg: 16, mdimc: 16, ndimc: 8, mdima: 8, ndimb: 8, vwm: 4, vwn: 8, strm: 1, strn: 1,
              sa: 1, sb: 1),
        .init(mwg: 128, nwg: 64, kwg: 16, mdimc: 32, ndimc: 8, mdima: 16, ndimb: 32, vwm: 4, vwn: 2, strm: 1, strn: 1,
              sa: 1, sb: 1),
        .init(mwg: 128, nwg: 128, kwg: 16, mdimc: 16, ndimc: 16, mdima: 16, ndimb: 16, vwm: 4, vwn: 4, strm: 1,
              strn: 1, sa: 1, sb: 1),
        .init(mwg: 64, nwg: 128, kwg: 32, mdimc: 16, ndimc: 16, mdima: 16, ndimb: 16, vwm: 4, vwn: 8, sa: 1, sb: 1),
    ]

    /// Wider vectors and tiles than CLBlast's generic direct default
    /// (`WGD` 16, vector width 1), which suit CPUs' SIMD units.
    static let directSeeds: [XgemmDirectParameters] = [
        .init(wgd: 32, mdimcd: 8, ndimcd: 8, mdimad: 8, ndimbd: 8, vwmd: 4, vwnd: 4),
        .init(wgd: 32, mdimcd: 8, ndimcd: 8, mdimad: 8, ndimbd: 8, vwmd: 2, vwnd: 2),
        .init(wgd: 32, mdimcd: 8, ndimcd: 8, mdimad: 8, ndimbd: 8, vwmd: 4, vwnd: 1),
        .init(wgd: 16, mdimcd: 8, ndimcd: 8, mdimad: 8, ndimbd: 8, vwmd: 2, vwnd: 2),
        .init(wgd: 64, mdimcd: 16, ndimcd: 16, mdimad: 16, ndimbd: 16, kwid: 8, vwmd: 4, vwnd: 4),
        .init(wgd: 32, mdimcd: 16, ndimcd: 16, mdimad: 16, ndimbd: 16, kwid: 8, vwmd: 2, vwnd: 2),
    ]

    /// CLBlast's exhaustive `Xgemm` tuner space (its variations 1 and 11).
    static func xgemmCoreSpace(gemmk: Int) -> [XgemmParameters] {
        var result: [XgemmParameters] = []
        let tiles = [16, 32, 64]
        if gemmk == 0 {
            for mwg in tiles { for nwg in tiles { for mdim in [8, 16, 32] { for ndim in [8, 16, 32] {
                for vwm in [1, 2, 4] { for vwn in [1, 2, 4] { for s in [0, 1] {
                    result.append(.init(mwg: mwg, nwg: nwg, kwg: 32, mdimc: mdim, ndimc: ndim, mdima: mdim, ndimb: ndim,
                                        vwm: vwm, vwn: vwn, sa: s, sb: s))
                } } }
            } } } }
        } else {
            for mwg in tiles { for nwg in tiles { for mdim in [4, 8, 16] { for ndim in [4, 8, 16] {
                for vw in [1, 2, 4] { for kreg in [1, 2, 4] {
                    result.append(.init(mwg: mwg, nwg: nwg, kwg: 1, mdimc: mdim, ndimc: ndim, mdima: mdim, ndimb: ndim,
                                        kwi: 1, vwm: vw, vwn: vw, sa: 0, sb: 0, gemmk: 1, kreg: kreg))
                } }
            } } } }
        }
        return result.filter { $0.violations().isEmpty }
    }

    /// CLBlast's wider, randomly sampled `Xgemm` tuner space (variations 2 and 12).
    static func xgemmWideSpace(gemmk: Int) -> [XgemmParameters] {
        var result: [XgemmParameters] = []
        if gemmk == 0 {
            let dims = [8, 16, 32], widths = [1, 2, 4, 8]
            for mwg in [16, 32, 64, 128] { for nwg in [16, 32, 64, 128] { for kwg in [16, 32] {
                for mdimc in dims { for ndimc in dims { for mdima in dims { for ndimb in dims {
                    // The cheap divisibility tests first: most of the grid fails them.
                    for vwm in widths where mwg % (mdimc * vwm) == 0 && mwg % (mdima * vwm) == 0 {
                        for vwn in widths where nwg % (ndimc * vwn) == 0 && nwg % (ndimb * vwn) == 0 {
                            for strm in [0, 1] { for strn in [0, 1] { for sa in [0, 1] { for sb in [0, 1] {
                                let p = XgemmParameters(mwg: mwg, nwg: nwg, kwg: kwg, mdimc: mdimc, ndimc: ndimc,
                                                        mdima: mdima, ndimb: ndimb, vwm: vwm, vwn: vwn,
                                                        strm: strm, strn: strn, sa: sa, sb: sb)
                                if p.violations().isEmpty { result.append(p) }
                            } } } }
                        }
                    }
                } } } }
            } } }
        } else {
            let dims = [2, 4, 8, 16, 32], widths = [1, 2, 4, 8]
            for mwg in [8, 16, 32, 64, 128] { for nwg in [8, 16, 32, 64, 128] {
                for mdim in dims { for ndim in dims {
                    for vwm in widths where mwg % (mdim * vwm) == 0 {
                        for vwn in widths where nwg % (ndim * vwn) == 0 {
                            for kreg in [1, 2, 4, 8, 16] where kreg % vwn == 0 {
                                result.append(.init(mwg: mwg, nwg: nwg, kwg: 1, mdimc: mdim, ndimc: ndim, mdima: mdim,
                                                    ndimb: ndim, kwi: 1, vwm: vwm, vwn: vwn, sa: 0, sb: 0,
                                                    gemmk: 1, kreg: kreg))
                            }
                        }
                    }
                } }
            } }
        }
        return result
    }

    /// CLBlast's `XgemmDirect` tuner spaces: exhaustive (variation 1) or
    /// wide (variation 2).
    static func directTunerSpace(wide: Bool) -> [XgemmDirectParameters] {
        var result: [XgemmDirectParameters] = []
        let dims = [8, 16, 32], widths = [1, 2, 4, 8]
        for wgd in wide ? [8, 16, 32, 64] : [8, 16, 32] {
            for mdimcd in dims { for ndimcd in dims {
                for mdimad in wide ? dims : [mdimcd] { for ndimbd in wide ? dims : [ndimcd] {
                    for kwid in wide ? [2, 8, 16] : [2] {
                        for vwmd in widths where wgd % (mdimcd * vwmd) == 0 && wgd % (mdimad * vwmd) == 0 {
                            for vwnd in widths where wgd % (ndimcd * vwnd) == 0 && wgd % (ndimbd * vwnd) == 0 {
                                for pada in wide ? [0, 1] : [1] { for padb in wide ? [0, 1] : [1] {
                                    let p = XgemmDirectParameters(wgd: wgd, mdimcd: mdimcd, ndimcd: ndimcd,
                                                                  mdimad: mdimad, ndimbd: ndimbd, kwid: kwid,
                                                                  vwmd: vwmd, vwnd: vwnd, pada: pada, padb: padb)
                                    if p.violations().isEmpty { result.append(p) }
                                } }
                            }
                        }
                    }
                } }
            } }
        }
        return result
    }

    /// Fisher–Yates with SplitMix64: unlike `shuffled(using:)`, whose
    /// algorithm the standard library may change, this order is fixed.
    static func shuffled<T>(_ items: [T], seed: UInt64) -> [T] {
        var items = items
        var rng = SplitMix64(seed: seed)
        guard items.count > 1 else { return items }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            items.swapAt(i, j)
        }
        return items
    }

    /// `ratio` items of `major`, then one of `minor`, and so on.
    static func interleave<T>(_ major: [T], _ minor: [T], ratio: Int) -> [T] {
        var result: [T] = []
        result.reserveCapacity(major.count + minor.count)
        var i = 0, j = 0
        while i < major.count || j < minor.count {
            for _ in 0..<ratio where i < major.count {
                result.append(major[i])
                i += 1
            }
            if j < minor.count {
                result.append(minor[j])
                j += 1
            }
        }
        return result
    }
}
