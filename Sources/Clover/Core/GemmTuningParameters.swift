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
