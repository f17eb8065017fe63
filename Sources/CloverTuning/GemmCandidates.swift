import Clover
import CloverRuntime

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
