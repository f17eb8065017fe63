import Clover
import CloverModels
import CloverNN
import CloverRuntime
// FoundationEssentials, never Foundation: see Report.swift.
import FoundationEssentials

// The convolution engine's rows (`conv/<model>`): every distinct convolution
// geometry of a zoo model's training step, each pass (forward, data
// gradient, weight gradient) timed twice in the same run — on the algorithm
// the selection picks for this device, and on im2col + CLBlast forced.

/// What one conv-engine row compares: the selection's algorithm against
/// im2col + CLBlast on the same geometry and pass.
struct ConvComparison: Codable {
    /// The algorithm the selection picks (``ConvChoice/description``).
    var chosen: String
    /// `tuned` (a persisted `clover tune conv` record) or `heuristic`.
    var source: String
    /// Always `im2colGEMM`.
    var baseline: String
    var baselineSeconds: Double?
    var baselineGflops: Double?
    var baselineGbps: Double?
    /// im2col seconds ÷ chosen seconds (> 1: the chosen algorithm is faster).
    var speedup: Double?
    var baselineError: String?

    enum CodingKeys: String, CodingKey {
        case chosen, source, baseline, speedup
        case baselineSeconds = "baseline_seconds"
        case baselineGflops = "baseline_gflops"
        case baselineGbps = "baseline_gbps"
        case baselineError = "baseline_error"
    }
}

/// The `conv/<model>` group: one zoo model's convolution geometries.
struct ConvEngineBenchmark {
    /// The zoo name (`ModelZoo.spec(named:)`).
    let model: String
    /// The batch at full size.
    let batch: Int

    var name: String { "conv/" + model }

    static let all = [
        ConvEngineBenchmark(model: "cifar-resnet20", batch: 128),
        ConvEngineBenchmark(model: "resnet50", batch: 128),
        ConvEngineBenchmark(model: "resnext50-32x4d", batch: 128),
        ConvEngineBenchmark(model: "efficientnet-b0", batch: 128),
    ]

    /// A distinct geometry (input, weight, parameters) of the model.
    struct Geometry {
        var input: [Int]
        var weight: [Int]
        var parameters: Convolution2DParameters
    }

    /// The model's distinct convolution geometries at `sizing` (batch and
    /// side as the `model/` rows size them), as ``ConvAlgorithmSelection``
    /// records them from one training step (forward, loss, backward) on
    /// `planner`, which allocates nothing and runs no kernels.
    func geometries(_ sizing: Sizing, planner: Device) throws -> [Geometry] {
        let spec = try ModelZoo.spec(named: model)
        let fullSide = spec.inputShape[1]
        let side = max(min(fullSide, sizing.modelSideFloor), sizing.side(fullSide))
        let batch = sizing.batch(self.batch)
        let recorded = try ConvAlgorithmSelection.recordGeometries {
            let net = try spec.make(spec.classes, spec.inputShape[0], Initializer(device: planner))
            net.train()
            let images = try Tensor.zeros([batch, spec.inputShape[0], side, side], on: planner)
            let labels = ClassLabels((0..<batch).map { Int32($0 % spec.classes) })
            // Forward and backward only: the passes' geometries are what is recorded.
            _ = try Trainer(model: net, optimizer: nil).step(images: images, labels: labels)
        }
        var seen = Set<String>(), list: [Geometry] = []
        for g in recorded {
            // One key per geometry: the forward pass's, whatever pass recorded it.
            let key = ConvAlgorithmSelection.key(input: g.input, weight: g.weight, parameters: g.parameters, pass: .forward)
            if seen.insert(key).inserted { list.append(Geometry(input: g.input, weight: g.weight, parameters: g.parameters)) }
        }
        return list
    }

    /// The record of one geometry and pass before timing.
    static func record(_ name: String, _ g: Geometry, _ pass: ConvPass) throws -> BenchRecord {
        let p = g.parameters
        let output = try p.outputShape(input: g.input, weight: g.weight)
        let macs = Double(output.reduce(1, *)) * Double(g.weight[1] * g.weight[2] * g.weight[3])
        let depthwise = p.groups > 1 && p.groups == g.input[1] && g.weight[1] == 1
        let (x, w, y) = (Double(g.input.reduce(1, *)), Double(g.weight.reduce(1, *)), Double(output.reduce(1, *)))
        var shape = "x [\(g.input.map(String.init).joined(separator: ", "))] w [\(g.weight.map(String.init).joined(separator: ", "))]"
            + " s\(p.strideH) p\(p.paddingH)"
        if p.strideH != p.strideW || p.paddingH != p.paddingW { shape += " (s\(p.strideW) p\(p.paddingW) across)" }
        if p.dilationH != 1 || p.dilationW != 1 { shape += " d\(p.dilationH)x\(p.dilationW)" }
        if p.groups > 1 { shape += " g\(p.groups)" }
        return BenchRecord(
            name: name, pass: pass.rawValue, op: "conv2d",
            params: ["n": g.input[0], "c": g.input[1], "h": g.input[2], "w": g.input[3], "o": g.weight[0],
                     "kernel_h": g.weight[2], "kernel_w": g.weight[3], "stride": p.strideH, "padding": p.paddingH,
                     "dilation": p.dilationH, "groups": p.groups],
            shape: shape,
            // Each pass is one GEMM-shaped product of the forward's size.
            flops: 2 * macs,
            // Depthwise: every operand once (bandwidth is its figure of merit).
            bytes: depthwise ? 4 * (x + w + y) : nil)
    }

    /// The path the selection takes for `g` and `pass` (as training would),
    /// and whether a measurement chose it.
    static func selectedChoice(_ context: OpenCLContext, _ g: Geometry,
                               _ pass: ConvPass) throws -> (choice: ConvChoice, source: String) {
        let current = try ConvAlgorithmSelection.currentChoice(context, input: g.input, weight: g.weight,
                                                               parameters: g.parameters, pass: pass)
        return (current.choice, current.tuned ? "tuned" : "heuristic")
    }

    /// The runnable pass of `g` on `choice` (nil: the selection's own).
    static func runner(_ g: Geometry, _ pass: ConvPass, choice: ConvChoice?, x: Tensor, w: Tensor, dy: Tensor)
        -> () throws -> Void {
        let p = g.parameters
        switch pass {
        case .forward:
            let op = Convolution2D(p, forcedChoice: choice)
            return { _ = try apply(op, [x, w]) }
        case .backwardData:
            let op = Convolution2DBackwardData(p, inputShape: g.input, forcedChoice: choice)
            return { _ = try apply(op, [dy, w]) }
        case .backwardWeight:
            let op = Convolution2DBackwardWeight(p, weightShape: g.weight, forcedChoice: choice)
            return { _ = try apply(op, [dy, x]) }
        }
    }
}

extension CloverBench {
    /// Every row of one `conv/<model>` group; errors are recorded in rows,
    /// never thrown.
    func runConvEngine(_ benchmark: ConvEngineBenchmark, sizing: Sizing, on device: Device, warmup: Int,
                       repetitions: Int) -> [BenchRecord] {
        let failed = { (error: Error) in
            [BenchRecord(name: benchmark.name, pass: "forward", op: "conv2d", params: [:], model: benchmark.model,
                         shape: "—", error: "\(error)")]
        }
        let geometries: [ConvEngineBenchmark.Geometry]
        do {
            // Planned on the selected device's kind: the same layers, no buffers and no kernels.
            geometries = try benchmark.geometries(sizing, planner: try Device.planning(self.device))
        } catch {
            return failed(error)
        }
        var records: [BenchRecord] = []
        for g in geometries {
            for pass in ConvPass.allCases {
                do {
                    var r = try ConvEngineBenchmark.record(benchmark.name, g, pass)
                    r.model = benchmark.model
                    records.append(r)
                } catch {
                    records.append(BenchRecord(name: benchmark.name, pass: pass.rawValue, op: "conv2d", params: [:],
                                               model: benchmark.model, shape: "—", error: "\(error)"))
                }
            }
        }
        if list { return records }
        guard let context = device.openCL else {
            return records.map { var r = $0; r.error = "the convolution engine needs an OpenCL device"; return r }
        }
        StandardError.line("\(benchmark.name): \(geometries.count) geometries × 3 passes "
                           + "(each row says whether a measurement or the heuristic chose its path)")
        var index = 0
        for g in geometries {
            withoutGradients {
                let tensors: (Tensor, Tensor, Tensor)
                do {
                    let output = try g.parameters.outputShape(input: g.input, weight: g.weight)
                    tensors = (try InputValues.tensor(g.input, seed: 0, on: device),
                               try InputValues.tensor(g.weight, seed: 1, on: device),
                               try InputValues.tensor(output, seed: 100, on: device))
                } catch {
                    for k in index..<(index + 3) where records[k].error == nil { records[k].error = "\(error)" }
                    return
                }
                for (offset, pass) in ConvPass.allCases.enumerated() {
                    var r = records[index + offset]
                    guard r.error == nil else { continue }
                    var comparison = ConvComparison(chosen: "?", source: "?", baseline: ConvAlgorithm.im2colGEMM.rawValue)
                    do {
                        let (choice, source) = try ConvEngineBenchmark.selectedChoice(context, g, pass)
                        comparison.chosen = choice.description
                        comparison.source = source
                        // The selection's own path (nothing forced), as training runs it.
                        let chosen = ConvEngineBenchmark.runner(g, pass, choice: nil, x: tensors.0, w: tensors.1, dy: tensors.2)
                        r.record(try measure(on: device, warmup: warmup, repetitions: repetitions, chosen))
                    } catch {
                        r.error = "\(error)"
                    }
                    do {
                        let baseline = ConvEngineBenchmark.runner(g, pass, choice: ConvChoice(.im2colGEMM),
                                                                  x: tensors.0, w: tensors.1, dy: tensors.2)
                        let t = try measure(on: device, warmup: warmup, repetitions: repetitions, baseline).median
                        comparison.baselineSeconds = t
                        comparison.baselineGflops = r.flops.map { $0 / t / 1e9 }
                        comparison.baselineGbps = r.bytes.map { $0 / t / 1e9 }
                        if let s = r.seconds { comparison.speedup = t / s }
                    } catch {
                        comparison.baselineError = "\(error)"
                    }
                    r.convolution = comparison
                    records[index + offset] = r
                    let rate = { (gflops: Double?, gbps: Double?) in
                        gbps.map { BenchFormat.significant($0) + " GB/s" } ?? gflops.map { BenchFormat.significant($0) + " GFLOP/s" } ?? ""
                    }
                    StandardError.line("  \(r.shape) \(pass): "
                        + (r.error.map { "error: \($0)" }
                            ?? "\(comparison.chosen) \(BenchFormat.milliseconds(r.seconds)) ms \(rate(r.gflops, r.gbps))")
                        + "; im2colGEMM "
                        + (comparison.baselineError.map { "error: \($0)" }
                            ?? "\(BenchFormat.milliseconds(comparison.baselineSeconds)) ms "
                                + rate(comparison.baselineGflops, comparison.baselineGbps))
                        + (comparison.speedup.map { ", \(BenchFormat.significant($0))×" } ?? ""))
                }
            }
            index += 3
        }
        return records
    }
}
