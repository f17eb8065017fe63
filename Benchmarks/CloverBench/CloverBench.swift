import ArgumentParser
import Clover
import CloverModels
import CloverRuntime
// FoundationEssentials, never Foundation: see Report.swift.
import FoundationEssentials

extension MatmulPrecision: ExpressibleByArgument {}

/// `clover-bench`: times Clover's kernels (forward and backward) and full
/// training steps of the zoo models on one device, beside the naive CPU
/// reference at a reduced size, and prints markdown tables.
@main
struct CloverBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clover-bench",
        abstract: "Benchmark Clover's kernels and training steps on one device.",
        discussion: """
            Kernels: GEMM (4096³ and ResNet-50's 1x1-conv shapes), dense 3x3, 1x1, grouped \
            (ResNeXt-50) and depthwise (EfficientNet-B0) convolutions, batch norm, the \
            ConvLSTM/ConvGRU gates, BERT-base attention and the SGD/AdamW update over \
            ResNet-50's parameters, each forward and backward. Convolution engine (conv/<model>: \
            cifar-resnet20, resnet50, resnext50-32x4d, efficientnet-b0): every distinct convolution \
            geometry of the model's training step at the model rows' batch and side, each pass \
            (forward, data and weight gradient) on the algorithm the selection picks for the device \
            (a persisted clover tune conv choice, else the heuristic) beside im2col + CLBlast forced. \
            Models: one training step \
            (forward, backward, SGD update) on synthetic data, and one pre-training step of the \
            BERT-base OSCAR encoder (sequence 128: masked-token + contrastive loss, AdamW).

            Times are wall-clock from a drained queue to device.synchronize() returning, the \
            median of --repeat runs after --warmup runs. Each kernel is also timed at a \
            reduced size on Clover's naive CPU reference (plain loops, Double accumulation) \
            and on the device, giving the "Clover / reference" throughput ratio; that peer is \
            a correctness oracle, not a tuned CPU library.

            Markdown goes to standard output, progress to standard error. With --json the \
            results are rewritten after every benchmark, so a run cut short keeps what it \
            measured. Exits non-zero when any benchmark failed.

            Distributed (--distributed, or any run under Open MPI's mpirun): every rank runs the \
            model benchmarks with its gradients averaged over the ranks in every step, as \
            clover train --distributed does (25 MiB buckets, CLOVER_ALLREDUCE_BUCKET_BYTES to \
            change; reduced during backward on GPUs, after it on CPU devices, \
            CLOVER_ALLREDUCE_OVERLAP=1/0 to force), and the model rows gain the world size, global \
            batch, bytes allreduced, seconds in MPI_Allreduce and the share hidden (behind \
            backward with overlap), per step, and \
            global images/s. Kernel benchmarks are skipped; only rank 0 prints and writes --json. \
            Example: mpirun -np 2 clover-bench --distributed --quick --filter model/cifar-resnet20
            """
    )

    @Option(name: .long, help: "OpenCL device (index or name substring) or cpu-reference; default CLOVER_DEVICE, else the first GPU, else the first CPU.")
    var device: String?

    @Option(name: .long, help: ArgumentHelp(
        "Convolution arithmetic: tf32 (TF32 tensor cores where the device has them, PyTorch's default for convolutions) or fp32 (strict).",
        valueName: "fp32|tf32"))
    var precision: MatmulPrecision = .tf32

    @Flag(name: .long, help: "Small sizes for a 2-core CPU (POCL): sizes ×0.25, batches ×1/32, warm-up 1, 3 repetitions, unless given.")
    var quick = false

    @Option(name: .long, help: "Multiply spatial sides, matrix dimensions, parameter counts and sequence lengths by F (0 < F ≤ 1), and batch sizes too unless --batch-scale is given. Models keep a side of at least 16.")
    var scale: Double?

    @Option(name: .long, help: "Multiply batch sizes by F (0 < F ≤ 1).")
    var batchScale: Double?

    @Option(name: .long, help: "Run only benchmarks whose name contains this (case-insensitive); repeat for several. Names look like gemm/4096, conv1x1/r50-…, conv/resnet50, model/resnet50.")
    var filter: [String] = []

    @Option(name: .long, help: "Untimed runs before timing (default 3; 1 with --quick). Models always get at least 1.")
    var warmup: Int?

    @Option(name: .customLong("repeat"), help: "Timed runs; the median is reported (default 10; 3 with --quick).")
    var repetitions: Int?

    @Option(name: .long, help: "Write every result as JSON to this file (rewritten after each benchmark).")
    var json: String?

    @Flag(name: .long, help: "Skip the CPU-reference comparison.")
    var noReference = false

    @Option(name: .long, help: "Timed runs of the CPU reference (no warm-up; default 2).")
    var referenceRepeat = 2

    @Flag(name: .long, help: "List the selected benchmarks and their shapes without running them (with --json, write them as a plan).")
    var list = false

    @Option(name: .customLong("model"), help: ArgumentHelp(
        "Time training steps of this model instead of the standard rows, as NAME:BATCH (e.g. wrn-16-8:64); repeat for several.",
        discussion: "Any `clover models` name or oscar-<preset>, at its standard input size; only these rows run (no kernel rows). --scale and --batch-scale still apply."))
    var modelRows: [String] = []

    /// `--model` rows, parsed and checked against the zoo.
    var requestedModels: [ModelBenchmark] {
        get throws {
            try modelRows.map { row in
                let parts = row.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, let batch = Int(parts[1]), batch > 0 else {
                    throw ValidationError("--model \(row): expected NAME:BATCH with a positive batch, e.g. wrn-16-8:64")
                }
                let benchmark = ModelBenchmark(model: String(parts[0]), batch: batch)
                do {
                    if let preset = benchmark.oscarPreset { _ = try OSCAR.configuration(named: preset) }
                    else { _ = try ModelZoo.spec(named: benchmark.model) }
                } catch {
                    throw ValidationError("--model \(row): \(error)")
                }
                return benchmark
            }
        }
    }

    @Flag(name: .long, help: "Run under mpirun: average the model benchmarks' gradients over the ranks (detected from Open MPI's environment too); kernel benchmarks are skipped.")
    var distributed = false

    mutating func validate() throws {
        for (name, value) in [("--scale", scale), ("--batch-scale", batchScale)] {
            if let value, !(value > 0 && value <= 1) { throw ValidationError("\(name) must be in (0, 1], got \(value)") }
        }
        if let warmup, warmup < 0 { throw ValidationError("--warmup must be at least 0") }
        if let repetitions, repetitions < 1 { throw ValidationError("--repeat must be at least 1") }
        if referenceRepeat < 1 { throw ValidationError("--reference-repeat must be at least 1") }
        _ = try requestedModels
    }

    func run() throws {
        let job: DistributedBench?
        do {
            job = list ? nil : try DistributedBench.start(requested: distributed)
        } catch {
            StandardError.line("error: \(error)")
            throw ExitCode.failure
        }
        try run(job: job)
        try job?.finish()
    }

    func run(job: DistributedBench?) throws {
        let sizeFactor = scale ?? (quick ? 0.25 : 1)
        let sizing = Sizing.scaled(size: sizeFactor, batch: batchScale ?? scale ?? (quick ? 1.0 / 32 : 1))
        let warmupRuns = warmup ?? (quick ? 1 : 3)
        let timedRuns = repetitions ?? (quick ? 3 : 10)
        let selected = { (name: String) in
            filter.isEmpty || filter.contains { name.lowercased().contains($0.lowercased()) }
        }
        let kernels: [KernelBenchmark]
        let models: [ModelBenchmark]
        // Explicit --model rows are the whole run: a model-only measurement.
        let modelsOnly = !modelRows.isEmpty
        do {
            // A distributed run measures training steps; a kernel on each rank would only repeat itself.
            kernels = modelsOnly || job != nil || (distributed && list)
                ? [] : try KernelSuite.all().filter { selected($0.name) }
            models = modelsOnly ? try requestedModels.filter { selected($0.name) } : ModelBenchmark.all.filter { selected($0.name) }
        } catch {
            StandardError.line("error: \(error)")
            throw ExitCode.failure
        }
        let convEngine = modelsOnly || job != nil || (distributed && list)
            ? [] : ConvEngineBenchmark.all.filter { selected($0.name) }
        guard !kernels.isEmpty || !models.isEmpty || !convEngine.isEmpty else {
            StandardError.line("error: no benchmark matches --filter \(filter.joined(separator: ", "))")
            throw ExitCode.failure
        }

        let target: Device
        do {
            target = list ? .meta : try job?.selectDevice(device) ?? Device.select(device)
        } catch {
            if let job { job.abort("\(error)") }
            StandardError.line("error: \(error)")
            throw ExitCode.failure
        }
        let facts = target.openCL?.device
        var precisionInForce: String?
        if let context = target.openCL {
            context.matmulPrecision = precision
            precisionInForce = context.precisionInForce
        }
        let compareReference = !noReference && !list && !target.isReference && job == nil
        var report = BenchReport(
            device: list ? "none (plan only)" : facts?.name ?? target.description, platform: facts?.platformName,
            platformVersion: facts?.platformVersion, driverVersion: facts?.driverVersion,
            date: Date.now.formatted(.iso8601),
            timing: "wall clock from a drained queue to device.synchronize() returning, per run; median of "
                + "\(timedRuns) after \(warmupRuns) warm-up run(s); includes host-side launch cost and pooled allocation",
            peer: compareReference
                ? "Clover's naive CPU reference (plain Swift loops, Double accumulation, one thread) at a reduced size "
                    + "(batch 1, sides ≤ 8, GEMM dims ≤ 256, ≤ 2^18 parameters, sequence ≤ 64), median of \(referenceRepeat) "
                    + "run(s) without warm-up, against Clover on the device at the same size; "
                    + "Clover / reference = reference seconds ÷ Clover seconds (> 1: Clover is faster). "
                    + "A correctness oracle, not a tuned CPU library."
                : "none",
            sizing: sizing.label, warmup: warmupRuns, repeatCount: timedRuns, worldSize: job?.world.size,
            precision: precisionInForce, results: [])

        var failures = 0
        func save() {
            guard let json, job?.isRoot ?? true else { return }
            do { try report.write(to: json) } catch {
                StandardError.line("error: JSON report: \(error)")
                failures += 1
            }
        }

        for benchmark in kernels {
            let records = runKernel(benchmark, sizing: sizing, on: target, warmup: warmupRuns, repetitions: timedRuns,
                                    compareReference: compareReference)
            failures += records.filter { $0.error != nil || $0.reference?.error != nil }.count
            report.results += records
            save()
        }
        for benchmark in convEngine {
            let records = runConvEngine(benchmark, sizing: sizing, on: target, warmup: warmupRuns, repetitions: timedRuns)
            failures += records.filter { $0.error != nil || $0.convolution?.baselineError != nil }.count
            report.results += records
            save()
        }
        for benchmark in models {
            var record: BenchRecord
            do {
                let (planned, spec) = try benchmark.plan(sizing)
                record = planned
                if !list {
                    StandardError.line("\(benchmark.name) \(record.shape) …")
                    do {
                        try benchmark.run(&record, spec: spec, on: target, warmup: warmupRuns, repetitions: timedRuns,
                                          distributed: job)
                    } catch {
                        // Another rank may wait in a collective: end the whole job, naming this rank.
                        if let job { job.abort("\(benchmark.name): \(error)") }
                        record.error = "\(error)"
                    }
                }
            } catch {
                record = BenchRecord(name: benchmark.name, pass: "train_step", op: "train_step", params: [:],
                                     model: benchmark.model, shape: "—", error: "\(error)")
            }
            if let error = record.error {
                failures += 1
                StandardError.line("  error: \(error)")
            } else if let ips = record.imagesPerSecond {
                StandardError.line("  \(BenchFormat.significant(ips)) images/s, peak \(BenchFormat.bytes(record.peakBytes))")
                if let d = record.distributed {
                    StandardError.line("  \(d.worldSize) ranks: \(BenchFormat.significant(d.imagesPerSecond)) images/s global, "
                        + BenchFormat.fixed(d.bytesPerStep / 1e6, decimals: 2) + " MB allreduced per step, "
                        + "\(BenchFormat.milliseconds(d.allreduceSecondsPerStep)) ms in MPI_Allreduce, "
                        + BenchFormat.fixed(100 * d.hiddenFraction, decimals: 1) + "% hidden")
                }
            }
            report.results.append(record)
            save()
        }
        // Buffers cached by the pool go back to the driver before exit.
        target.openCL?.pool.trim()

        if list {
            for r in report.results { print("\(r.name)  \(r.pass)  \(r.shape)") }
        } else {
            print(report.markdown())
        }
        if failures > 0 {
            StandardError.line("\(failures) benchmark result(s) failed; see the Errors section")
            throw ExitCode.failure
        }
    }

    /// Times one kernel benchmark's passes at `sizing`, then (optionally)
    /// at the reference size on the device and on the CPU reference.
    /// Errors are recorded in the rows, never thrown: one failing shape
    /// (out of memory, say) must not end the suite.
    func runKernel(_ benchmark: KernelBenchmark, sizing: Sizing, on device: Device, warmup: Int, repetitions: Int,
                   compareReference: Bool) -> [BenchRecord] {
        let workload: KernelWorkload
        do {
            workload = try benchmark.make(sizing)
        } catch {
            return [BenchRecord(name: benchmark.name, pass: "forward", op: "?", params: [:], shape: "—", error: "\(error)")]
        }
        func row(_ pass: String, flops: Double?, bytes: Double?) -> BenchRecord {
            BenchRecord(name: benchmark.name, pass: pass, op: workload.op, params: workload.params, shape: workload.shape,
                        flops: flops, bytes: bytes)
        }
        var forward = row(workload.forwardPass, flops: workload.forwardFlops, bytes: workload.forwardBytes)
        var backward = workload.hasBackward ? row("backward", flops: workload.backwardFlops, bytes: workload.backwardBytes) : nil
        if list { return [forward] + (backward.map { [$0] } ?? []) }

        StandardError.line("\(benchmark.name) \(workload.shape) …")
        // Kernels are timed without autograd: the backward pass is the
        // primitive's vjp called directly.
        withoutGradients {
            do {
                let prepared = try workload.prepare(device)
                forward.record(try measure(on: device, warmup: warmup, repetitions: repetitions, prepared.forward))
                if let run = prepared.backward, backward != nil {
                    backward!.record(try measure(on: device, warmup: warmup, repetitions: repetitions, run))
                }
            } catch {
                if forward.seconds == nil { forward.error = "\(error)" }
                backward?.error = "\(error)"
            }
            guard compareReference, forward.error == nil else { return }
            var shape = "—"
            do {
                let reduced = try benchmark.make(.reference)
                shape = reduced.shape
                let onDevice = try reduced.prepare(device)
                let onReference = try reduced.prepare(.reference)
                func compare(_ clover: () throws -> Void, _ reference: () throws -> Void) throws -> ReferenceComparison {
                    let c = try measure(on: device, warmup: warmup, repetitions: repetitions, clover).median
                    let r = try measure(on: .reference, warmup: 0, repetitions: referenceRepeat, reference).median
                    return ReferenceComparison(shape: reduced.shape, cloverSeconds: c, referenceSeconds: r,
                                               cloverOverReference: r / c)
                }
                forward.reference = try compare(onDevice.forward, onReference.forward)
                if let c = onDevice.backward, let r = onReference.backward, backward != nil, backward!.error == nil {
                    backward!.reference = try compare(c, r)
                }
            } catch {
                let failed = ReferenceComparison(shape: shape, error: "\(error)")
                if forward.reference == nil { forward.reference = failed }
                if backward != nil, backward!.reference == nil { backward!.reference = failed }
            }
        }
        for r in [forward] + (backward.map { [$0] } ?? []) {
            let rate = r.gflops.map { BenchFormat.significant($0) + " GFLOP/s" } ?? r.gbps.map { BenchFormat.significant($0) + " GB/s" } ?? ""
            let ratio = r.reference?.cloverOverReference.map { ", \(BenchFormat.significant($0))× the reference" } ?? ""
            StandardError.line("  \(r.pass): " + (r.error.map { "error: \($0)" } ?? "\(BenchFormat.milliseconds(r.seconds)) ms \(rate)\(ratio)"))
        }
        return [forward] + (backward.map { [$0] } ?? [])
    }
}
