import Clover
import CloverRuntime

// The convolution algorithm search of `clover tune conv` and `clover train
// --autotune`, run by `Tuner.tuneConvolution`: every candidate of a geometry
// and pass is first checked against the CPU reference on a small case of the
// same kernel, stride, padding, dilation and groups (a wrong or failing
// candidate is disqualified: a kernel fault can poison a GPU context, but a
// wrong result must never be timed), then timed on the geometry itself; the
// fastest is handed to Clover's selection, which every later convolution of
// that geometry and pass on the device takes. The candidates and running a
// pass on one are Clover's (`ConvAlgorithmSelection`), as they reach the
// passes' internal kernels.

/// The search over one geometry and pass.
enum ConvolutionSearch {
    /// Checks and times every candidate of `geometry` on `context`, and
    /// remembers the fastest for the device in this process.
    ///
    /// - Throws: `CloverError.unsupported` when no candidate passes its check.
    static func run(_ context: OpenCLContext, _ geometry: ConvGeometry, repeats: Int) throws -> ConvTuningEntry {
        // The candidates first: they check the shapes.
        let candidates = try ConvAlgorithmSelection.candidates(for: geometry, on: context)
        // Persisted choices next: what is saved after this search keeps them.
        try ConvAlgorithmSelection.loadOnce(context)
        var times: [String: Double] = [:]
        var rejected: [String: String] = [:]
        var best: (choice: ConvChoice, milliseconds: Double)?
        let small = smallCase(geometry)
        for candidate in candidates {
            do {
                let error = try check(context, small, candidate)
                guard error <= 1e-3 else {
                    rejected[candidate.description] = "wrong result: relative error \(error) on the small case"
                    continue
                }
                let ms = try time(context, geometry, candidate, repeats: repeats) * 1000
                times[candidate.description] = ms
                if best == nil || ms < best!.milliseconds { best = (candidate, ms) }
            } catch {
                rejected[candidate.description] = "\(error)"
            }
        }
        guard let best else {
            throw CloverError.unsupported(op: "conv2d", shapes: [geometry.input, geometry.weight],
                                          device: context.device.description,
                                          reason: "no convolution algorithm passed its check for \(geometry.pass): \(rejected)")
        }
        let entry = ConvTuningEntry(choice: best.choice, milliseconds: times, rejected: rejected)
        ConvAlgorithmSelection.remember(entry, for: geometry, on: context.device)
        return entry
    }

    /// A geometry of the same kernel, stride, padding, dilation and groups
    /// small enough for the CPU reference: 2 samples, a few output rows and
    /// columns, and (without groups) at most 24 in and 40 out channels, so
    /// tiles are partial.
    static func smallCase(_ geometry: ConvGeometry) -> ConvGeometry {
        let s = geometry.parameters
        let (n, c, h, w) = (geometry.input[0], geometry.input[1], geometry.input[2], geometry.input[3])
        let (o, kh, kw) = (geometry.weight[0], geometry.weight[2], geometry.weight[3])
        let smallC = s.groups == 1 ? min(c, 24) : c, smallO = s.groups == 1 ? min(o, 40) : o
        let extentH = s.dilationH * (kh - 1) + 1, extentW = s.dilationW * (kw - 1) + 1
        let smallH = min(h, max(extentH - 2 * s.paddingH, 1) + 4 * s.strideH + 1)
        let smallW = min(w, max(extentW - 2 * s.paddingW, 1) + 5 * s.strideW + 2)
        return ConvGeometry(input: [min(n, 2), smallC, smallH, smallW], weight: [smallO, smallC / s.groups, kh, kw],
                            parameters: s, pass: geometry.pass)
    }

    /// The largest error of `choice` on `geometry` relative to the CPU
    /// reference's largest magnitude.
    static func check(_ context: OpenCLContext, _ geometry: ConvGeometry, _ choice: ConvChoice) throws -> Double {
        let (counts, outCount) = try ConvAlgorithmSelection.operandCounts(of: geometry)
        let (shapes, _) = try ConvAlgorithmSelection.operandShapes(of: geometry)
        var rng = SplitMix64(seed: 11)
        let inputs = counts.map { rng.uniformArray(count: $0, bound: 1) }
        let p = geometry.parameters
        let reference: [Float]
        switch geometry.pass {
        case .forward:
            reference = try Convolution2D(p).evalReference(inputs, shapes: shapes)[0]
        case .backwardData:
            reference = try Convolution2DBackwardData(p, inputShape: geometry.input)
                .evalReference(inputs, shapes: shapes)[0]
        case .backwardWeight:
            reference = try Convolution2DBackwardWeight(p, weightShape: geometry.weight)
                .evalReference(inputs, shapes: shapes)[0]
        }
        let a = try context.allocateView(count: counts[0]), b = try context.allocateView(count: counts[1])
        try context.upload(inputs[0], to: a)
        try context.upload(inputs[1], to: b)
        let out = try context.allocateView(count: outCount)
        // NaN first: a path that leaves entries unwritten fails the check.
        try context.upload([Float](repeating: .nan, count: outCount), to: out)
        try ConvAlgorithmSelection.run(context, geometry, choice, a, b, out)
        let result: [Float] = try context.download(out)
        let scale = Double(reference.map { abs($0) }.max() ?? 0) + 1e-6
        var worst = 0.0
        for (r, v) in zip(reference, result) {
            let e = abs(Double(r) - Double(v))
            if !(e <= worst) { worst = e.isNaN ? .infinity : max(worst, e) }
        }
        return worst / scale
    }

    /// Seconds per run of `choice` on `geometry` (the fastest of `repeats`
    /// after a warm-up run, which also compiles the kernels).
    static func time(_ context: OpenCLContext, _ geometry: ConvGeometry, _ choice: ConvChoice,
                     repeats: Int) throws -> Double {
        let (counts, outCount) = try ConvAlgorithmSelection.operandCounts(of: geometry)
        var rng = SplitMix64(seed: 12)
        let a = try context.allocateView(count: counts[0]), b = try context.allocateView(count: counts[1])
        try context.upload(rng.uniformArray(count: counts[0], bound: 1), to: a)
        try context.upload(rng.uniformArray(count: counts[1], bound: 1), to: b)
        let out = try context.allocateView(count: outCount)
        try ConvAlgorithmSelection.run(context, geometry, choice, a, b, out)
        try context.finish()
        var best = Double.infinity
        let clock = ContinuousClock()
        for _ in 0..<max(1, repeats) {
            let start = clock.now
            try ConvAlgorithmSelection.run(context, geometry, choice, a, b, out)
            try context.finish()
            best = min(best, (clock.now - start).inSeconds)
        }
        return best
    }
}
