import Clover
import CloverRuntime

// The measuring side of clover-bench: how shapes shrink, how an op is timed,
// and what a measurement records.

/// How shapes are chosen from a benchmark's full (issue-sized) shape.
///
/// Every benchmark is written once at full size and asks a `Sizing` for
/// each batch, spatial side, matrix dimension, element count and sequence
/// length, so `--scale`, `--quick` and the reduced size of the CPU-reference
/// comparison all derive from the same definition.
struct Sizing {
    let label: String
    let batch: (Int) -> Int
    let side: (Int) -> Int
    let dimension: (Int) -> Int
    let count: (Int) -> Int
    let sequence: (Int) -> Int
    /// The smallest image side a model is run at (a model's spatial side is
    /// at least this, or its full side when that is smaller).
    let modelSideFloor: Int

    /// Full size, or shrunk by `size` (spatial sides, matrix dimensions,
    /// element counts, sequence lengths) and `batch` (batch sizes), each
    /// rounded and kept at least 1.
    static func scaled(size: Double, batch: Double) -> Sizing {
        func shrink(_ factor: Double) -> (Int) -> Int {
            { value in factor == 1 ? value : max(1, Int((Double(value) * factor).rounded())) }
        }
        let full = size == 1 && batch == 1
        return Sizing(label: full ? "full" : "size ×\(size), batch ×\(batch)",
                      batch: shrink(batch), side: shrink(size), dimension: shrink(size), count: shrink(size),
                      sequence: shrink(size), modelSideFloor: full ? 1 : 16)
    }

    /// The reduced size at which the naive CPU reference is timed beside
    /// Clover: one sample, sides of at most 8, matrix dimensions of at most
    /// 256, at most 2^18 parameters and sequences of at most 64. Channel
    /// counts stay as they are, so the op keeps its character; these caps
    /// keep the reference (plain loops, Double accumulation) to about a
    /// second per op.
    static let reference = Sizing(label: "reference", batch: { min($0, 1) }, side: { min($0, 8) },
                                  dimension: { min($0, 256) }, count: { min($0, 1 << 18) },
                                  sequence: { min($0, 64) }, modelSideFloor: 1)
}

/// Wall-clock timings of repeated runs.
struct Timing {
    /// Seconds of each timed repetition, in order.
    let samples: [Double]

    var median: Double {
        let sorted = samples.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    var minimum: Double { samples.min() ?? .nan }
}

/// Times `body` on `device`: `warmup` untimed runs, then `repetitions` runs, each
/// timed from a drained queue to `device.synchronize()` returning.
///
/// Wall time rather than OpenCL profiling events, because an op may be
/// several launches, CLBlast calls and pooled allocations; the sample is
/// what a caller waits for, host-side launch cost included. Warm-up runs
/// also absorb program compilation and CLBlast's kernel builds.
func measure(on device: Device, warmup: Int, repetitions: Int, _ body: () throws -> Void) throws -> Timing {
    let clock = ContinuousClock()
    try device.synchronize()
    for _ in 0..<warmup {
        try body()
        try device.synchronize()
    }
    var samples: [Double] = []
    samples.reserveCapacity(repetitions)
    for _ in 0..<max(1, repetitions) {
        let start = clock.now
        try body()
        try device.synchronize()
        samples.append(seconds(clock.now - start))
    }
    return Timing(samples: samples)
}

/// A duration in seconds.
func seconds(_ duration: Duration) -> Double { duration.inSeconds }

/// Host values for benchmark inputs: a fixed block of uniform values in
/// [-1, 1) tiled to any length, so that filling a 100-million-element GEMM
/// operand costs a copy, not 100 million random draws.
enum InputValues {
    private static let block: [Float] = {
        var rng = SplitMix64(seed: 0xC10E_BE7C)
        return rng.uniformArray(count: 1 << 20, bound: 1)
    }()

    /// `count` values; offsets by `seed` so that two inputs differ.
    static func values(_ count: Int, seed: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(count)
        var start = (seed &* 7919) % block.count
        while out.count < count {
            let take = min(count - out.count, block.count - start)
            out.append(contentsOf: block[start..<start + take])
            start = 0
        }
        return out
    }

    /// A tensor of `shape` on `device` holding ``values(_:seed:)``.
    static func tensor(_ shape: [Int], seed: Int, on device: Device) throws -> Tensor {
        try Tensor(shape: shape, values: values(shape.reduce(1, *), seed: seed), on: device)
    }
}

/// The CPU-reference comparison of one kernel measurement.
struct ReferenceComparison: Codable {
    /// The reduced shape both were timed at.
    var shape: String
    /// Clover on the benchmarked device at that shape (median seconds).
    var cloverSeconds: Double?
    /// The naive CPU reference at that shape (median seconds).
    var referenceSeconds: Double?
    /// `referenceSeconds / cloverSeconds`: Clover's throughput over the
    /// reference's; above 1 Clover is faster.
    var cloverOverReference: Double?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case shape, error
        case cloverSeconds = "clover_seconds"
        case referenceSeconds = "reference_seconds"
        case cloverOverReference = "clover_over_reference"
    }
}

/// One row of results: a kernel pass or a model's training step. The JSON
/// schema is shared with `Benchmarks/peers/pytorch_peer.py`, which reads
/// `op`, `params` and `model` to build the same workload, and with
/// `Benchmarks/merge.py`, which joins rows on `name` and `pass`.
struct BenchRecord: Codable {
    /// e.g. `conv1x1/r50-l2-28-512-128`, `model/resnet50`.
    var name: String
    /// `forward`, `backward`, `update` (optimisers) or `train_step` (models).
    var pass: String
    /// The op the peer builds: `matmul`, `conv2d`, `batchnorm`, `lstm_cell`,
    /// `gru_gates`, `attention`, `sgd`, `adamw` or `train_step`.
    var op: String
    /// The op's integer parameters (sizes, strides, groups).
    var params: [String: Int]
    /// The zoo model name (models only).
    var model: String?
    /// Human-readable shape.
    var shape: String
    /// Median seconds of the timed repetitions.
    var seconds: Double?
    var minSeconds: Double?
    var repetitions: Int?
    /// Floating-point operations of one run (2 per multiply-add), when counted.
    var flops: Double?
    /// Bytes of one run, counting each tensor read or written once.
    var bytes: Double?
    var gflops: Double?
    var gbps: Double?
    var imagesPerSecond: Double?
    /// Peak bytes of device buffers in use during the model's steps.
    var peakBytes: Int?
    /// Model parameters (models only).
    var parameters: Int?
    var reference: ReferenceComparison?
    /// The OpenCL calls of the model's training steps (models only).
    var stepCounters: StepCounters?
    /// The gradient allreduce figures of a `--distributed` model row.
    var distributed: DistributedFigures?
    /// The selection's algorithm against im2col + CLBlast (`conv/<model>` rows only).
    var convolution: ConvComparison?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case name, pass, op, params, model, shape, seconds, repetitions, flops, bytes, gflops, gbps, reference, error, parameters
        case distributed, convolution
        case minSeconds = "min_seconds"
        case imagesPerSecond = "images_per_second"
        case peakBytes = "peak_bytes"
        case stepCounters = "step_counters"
    }

    /// Fills seconds and the rates derived from them.
    mutating func record(_ timing: Timing) {
        seconds = timing.median
        minSeconds = timing.minimum
        repetitions = timing.samples.count
        if let flops { gflops = flops / timing.median / 1e9 }
        if let bytes { gbps = bytes / timing.median / 1e9 }
    }
}

/// The whole run as written by `--json`.
struct BenchReport: Codable {
    var tool = "clover-bench"
    var device: String
    var platform: String?
    var platformVersion: String?
    var driverVersion: String?
    var date: String
    /// How times were taken, in words.
    var timing: String
    /// What the `reference` columns compare against, in words.
    var peer: String
    var sizing: String
    var warmup: Int
    var repeatCount: Int
    /// Ranks of a `--distributed` run (rank 0 writes the report); nil otherwise.
    var worldSize: Int?
    /// The convolutions' precision in force (`--precision`, and whether the
    /// device has TF32 tensor cores), in words.
    var precision: String?
    var results: [BenchRecord]

    enum CodingKeys: String, CodingKey {
        case tool, device, platform, date, timing, peer, sizing, warmup, results, precision
        case platformVersion = "platform_version"
        case driverVersion = "driver_version"
        case repeatCount = "repeat"
        case worldSize = "world_size"
    }
}

/// The OpenCL calls of a model's training steps, counted where they enter
/// OpenCL (``DeviceCounters``), so CLBlast's own kernels and temporary
/// buffers are in them: the first step on its own (it builds programs, fills
/// the buffer pool and creates the optimiser state), then the mean of the
/// steps after it, which is what every further step costs.
struct StepCounters: Codable {
    /// Counts of one step; means are fractional.
    struct Counts: Codable {
        var kernelLaunches: Double
        var clblastCalls: Double
        var hostBlockingCalls: Double
        var blockingReads: Double
        var finishes: Double
        var eventWaits: Double
        var bufferCopies: Double
        var bufferCreations: Double
        var bytesAllocated: Double
        var kernelCreations: Double

        init(_ c: DeviceCounters, steps: Int = 1) {
            let n = Double(max(steps, 1))
            kernelLaunches = Double(c.kernelLaunches) / n
            clblastCalls = Double(c.libraryCalls) / n
            hostBlockingCalls = Double(c.hostBlockingCalls) / n
            blockingReads = Double(c.blockingReads) / n
            finishes = Double(c.finishes) / n
            eventWaits = Double(c.eventWaits) / n
            bufferCopies = Double(c.bufferCopies) / n
            bufferCreations = Double(c.bufferCreations) / n
            bytesAllocated = Double(c.bytesAllocated) / n
            kernelCreations = Double(c.kernelCreations) / n
        }

        enum CodingKeys: String, CodingKey {
            case finishes
            case kernelLaunches = "kernel_launches"
            case clblastCalls = "clblast_calls"
            case hostBlockingCalls = "host_blocking_calls"
            case blockingReads = "blocking_reads"
            case eventWaits = "event_waits"
            case bufferCopies = "buffer_copies"
            case bufferCreations = "buffer_creations"
            case bytesAllocated = "bytes_allocated"
            case kernelCreations = "kernel_creations"
        }
    }

    var firstStep: Counts
    /// The mean of the steps after the first; nil when only one ran.
    var perStep: Counts?
    /// How many steps the mean covers.
    var laterSteps: Int
    /// Whether CLBlast's calls were visible (``DeviceCounters/seesLibraryCalls``).
    var includesCLBlastInternals: Bool

    /// The record of `steps` in order; nil when there are none.
    init?(_ steps: [DeviceCounters]) {
        guard let first = steps.first else { return nil }
        let later = steps.dropFirst()
        firstStep = Counts(first)
        perStep = later.isEmpty ? nil : Counts(later.reduce(DeviceCounters(), +), steps: later.count)
        laterSteps = later.count
        includesCLBlastInternals = DeviceCounters.seesLibraryCalls
    }

    enum CodingKeys: String, CodingKey {
        case firstStep = "first_step"
        case perStep = "per_step"
        case laterSteps = "later_steps"
        case includesCLBlastInternals = "includes_clblast_internals"
    }
}
