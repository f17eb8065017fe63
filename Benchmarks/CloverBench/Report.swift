import CloverFiles
// FoundationEssentials, never Foundation: the static binary that travels to
// the GPU machine stays ~8 MiB instead of ~58 MiB (no ICU data).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Output: the markdown tables on stdout and the JSON file. The CLI's
// `Format` lives in the `clover` executable target, which cannot be
// imported, so the two formats needed here are written out again, small.

enum BenchFormat {
    /// `value` with `decimals` digits after the point (no `String(format:)`
    /// in FoundationEssentials).
    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
        let scale = pow(10, Double(decimals))
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return "\(value)" }
        let whole = UInt64(scaled), divisor = UInt64(scale)
        var text = String(whole / divisor)
        if decimals > 0 {
            let fraction = String(whole % divisor)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return value < 0 && whole != 0 ? "-" + text : text
    }

    /// Three significant digits at least, never scientific: `0.0123`,
    /// `1.23`, `123`, `12345`.
    static func significant(_ value: Double?) -> String {
        guard let value else { return "—" }
        guard value.isFinite, value != 0 else { return value == 0 ? "0" : fixed(value, decimals: 0) }
        let magnitude = abs(value)
        let decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2
            : min(9, 2 - Int(floor(log10(magnitude))))
        return fixed(value, decimals: decimals)
    }

    /// Milliseconds with three significant digits.
    static func milliseconds(_ seconds: Double?) -> String {
        seconds.map { significant($0 * 1e3) } ?? "—"
    }

    static func bytes(_ count: Int?) -> String {
        guard let count else { return "—" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, decimals: 1) + " " + units[unit]
    }

    /// A cell for a markdown table: pipes would split it.
    static func cell(_ text: String) -> String {
        text.replacing("|", with: "\\|")
    }
}

/// A markdown table.
struct MarkdownTable {
    var headers: [String]
    /// Right-aligned (numeric) columns.
    var numeric: Set<Int>
    var rows: [[String]] = []

    func render() -> String {
        var lines = ["| " + headers.joined(separator: " | ") + " |"]
        lines.append("|" + headers.indices.map { numeric.contains($0) ? " ---: " : " --- " }.joined(separator: "|") + "|")
        for row in rows { lines.append("| " + row.map(BenchFormat.cell).joined(separator: " | ") + " |") }
        return lines.joined(separator: "\n")
    }
}

extension BenchReport {
    /// The report as markdown: a header of facts, then the kernel and model tables.
    func markdown() -> String {
        var out = [
            "## clover-bench",
            "",
            "- Device: \(device)" + (platform.map { " (platform: \($0))" } ?? ""),
            "- OpenCL platform version: \(platformVersion ?? "—"); driver version: \(driverVersion ?? "—")",
            "- Date: \(date)",
            "- Sizes: \(sizing); warm-up \(warmup), repetitions \(repeatCount)",
            "- Convolutions: \(precision ?? "—")",
            "- Timing: \(timing)",
            "- Peer: \(peer)",
        ] + (worldSize.map { ["- Distributed: \($0) ranks under mpirun, gradients averaged over them in every training step"] } ?? [])
            + [""]
        let kernels = results.filter { $0.op != "train_step" && !$0.name.hasPrefix("conv/") }
        if !kernels.isEmpty {
            var table = MarkdownTable(
                headers: ["Benchmark", "Pass", "Shape", "Median ms", "GFLOP/s", "GB/s",
                          "Reference shape", "Clover ms", "Reference ms", "Clover / reference"],
                numeric: [3, 4, 5, 7, 8, 9])
            for r in kernels {
                let ref = r.reference
                table.rows.append([
                    r.name, r.pass, r.shape,
                    r.error == nil ? BenchFormat.milliseconds(r.seconds) : "error",
                    BenchFormat.significant(r.gflops), BenchFormat.significant(r.gbps),
                    ref?.shape ?? "—",
                    BenchFormat.milliseconds(ref?.cloverSeconds), BenchFormat.milliseconds(ref?.referenceSeconds),
                    ref?.error != nil ? "error" : ref?.cloverOverReference.map { BenchFormat.significant($0) + "×" } ?? "—",
                ])
            }
            out += ["### Kernels", "", table.render(), ""]
        }
        out += convolutionMarkdown(results.filter { $0.name.hasPrefix("conv/") })
        let models = results.filter { $0.op == "train_step" }
        if !models.isEmpty {
            // Per-step OpenCL calls after the first step (CLBlast's internal
            // kernels and buffers included); the first step's launches beside.
            var table = MarkdownTable(
                headers: ["Model", "Input", "Parameters", "Step ms", "Images (sequences)/s", "≈ GFLOP/s", "Peak device memory",
                          "Launches/step (first)", "CLBlast calls/step", "Host waits/step", "Copies/step",
                          "Allocations/step (bytes)"],
                numeric: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            for r in models {
                let counts = r.stepCounters
                let later = counts?.perStep
                func count(_ value: Double?) -> String { value.map { BenchFormat.fixed($0, decimals: $0.rounded() == $0 ? 0 : 1) } ?? "—" }
                table.rows.append([
                    r.model ?? r.name, r.shape, r.parameters.map(String.init) ?? "—",
                    r.error == nil ? BenchFormat.milliseconds(r.seconds) : "error",
                    BenchFormat.significant(r.imagesPerSecond), BenchFormat.significant(r.gflops),
                    BenchFormat.bytes(r.peakBytes),
                    counts.map { count(later?.kernelLaunches) + " (" + count($0.firstStep.kernelLaunches) + ")" } ?? "—",
                    count(later?.clblastCalls), count(later?.hostBlockingCalls), count(later?.bufferCopies),
                    later.map { count($0.bufferCreations) + " (" + BenchFormat.bytes(Int($0.bytesAllocated)) + ")" } ?? "—",
                ])
            }
            out += ["### Models: one training step (forward, backward, SGD update; AdamW for OSCAR)", "",
                    "OpenCL calls per step are counted where they enter OpenCL, CLBlast's own kernels and buffers "
                        + "included, as the mean of the steps after the first (the first step's launches in brackets).",
                    "", table.render(), ""]
            out += distributedMarkdown(models)
        }
        let failed = results.filter { $0.error != nil || $0.reference?.error != nil || $0.convolution?.baselineError != nil }
        if !failed.isEmpty {
            out += ["### Errors", ""]
            for r in failed {
                if let e = r.error { out.append("- \(r.name) \(r.pass): \(e)") }
                if let e = r.reference?.error { out.append("- \(r.name) \(r.pass) (reference comparison): \(e)") }
                if let e = r.convolution?.baselineError { out.append("- \(r.name) \(r.pass) \(r.shape) (im2colGEMM): \(e)") }
            }
            out.append("")
        }
        return out.joined(separator: "\n")
    }

    /// The `conv/<model>` table: each geometry and pass on the selection's
    /// algorithm beside im2col + CLBlast; empty without such rows.
    private func convolutionMarkdown(_ rows: [BenchRecord]) -> [String] {
        guard !rows.isEmpty else { return [] }
        var table = MarkdownTable(
            headers: ["Benchmark", "Pass", "Shape", "Chosen (source)", "Chosen ms", "Chosen GFLOP/s (GB/s)",
                      "im2col + CLBlast ms", "im2col GFLOP/s (GB/s)", "im2col ÷ chosen time"],
            numeric: [4, 5, 6, 7, 8])
        func rate(_ gflops: Double?, _ gbps: Double?) -> String {
            gbps.map { BenchFormat.significant($0) + " GB/s" } ?? BenchFormat.significant(gflops)
        }
        for r in rows {
            let c = r.convolution
            table.rows.append([
                r.name, r.pass, r.shape, c.map { "\($0.chosen) (\($0.source))" } ?? "—",
                r.error == nil ? BenchFormat.milliseconds(r.seconds) : "error", rate(r.gflops, r.gbps),
                c?.baselineError != nil ? "error" : BenchFormat.milliseconds(c?.baselineSeconds),
                rate(c?.baselineGflops, c?.baselineGbps),
                c?.speedup.map { BenchFormat.significant($0) + "×" } ?? "—",
            ])
        }
        return ["### Convolution engine: the selection's algorithm beside im2col + CLBlast", "",
                "Every distinct convolution geometry of the model's training step (recorded on the planning device at "
                    + "the model rows' batch and side); each pass timed on the algorithm the selection picks for this "
                    + "device (tuned: a persisted clover tune conv record; heuristic otherwise) and on im2col + CLBlast "
                    + "forced, in the same run. Depthwise rows report GB/s (every operand once); the last column is "
                    + "> 1 where the chosen algorithm is faster.",
                "", table.render(), ""]
    }

    /// The `--distributed` table: per step, what each rank allreduced, the
    /// time inside `MPI_Allreduce` and the share hidden; empty without
    /// distributed rows.
    private func distributedMarkdown(_ models: [BenchRecord]) -> [String] {
        let rows = models.filter { $0.distributed != nil }
        guard !rows.isEmpty else { return [] }
        var table = MarkdownTable(
            headers: ["Model", "Ranks", "Batch per rank", "Global batch", "Buckets", "Allreduced/step",
                      "In MPI_Allreduce/step", "Hidden", "Reduction with transfers/step", "Step ms", "Images/s (global)"],
            numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        for r in rows {
            let d = r.distributed!
            table.rows.append([
                r.model ?? r.name, String(d.worldSize), String(d.perRankBatch), String(d.globalBatch),
                "\(d.buckets) (≤ \(BenchFormat.bytes(d.bucketBytes)))",
                BenchFormat.fixed(d.bytesPerStep / 1e6, decimals: 2) + " MB",
                BenchFormat.milliseconds(d.allreduceSecondsPerStep) + " ms",
                BenchFormat.fixed(100 * d.hiddenFraction, decimals: 1) + "% "
                    + (d.overlap ? "behind backward" : "behind transfers"),
                BenchFormat.milliseconds(d.reductionSecondsPerStep) + " ms",
                BenchFormat.milliseconds(r.seconds),
                BenchFormat.significant(d.imagesPerSecond),
            ])
        }
        return ["### Distributed: gradients averaged over \(rows[0].distributed!.worldSize) ranks in every step", "",
                "Each rank runs the row's batch; the buckets are reduced "
                    + (rows.allSatisfy { $0.distributed!.overlap }
                        ? "during backward (overlap, as clover train on GPUs), and Hidden is the share behind backward. "
                        : "after backward where overlap is off (clover train's default on CPU devices), so nothing "
                            + "is hidden behind backward there. ")
                    + "Seconds are per step, mean over "
                    + "ranks, and include waiting for the slower rank; images/s is the global batch over rank 0's "
                    + "median step.",
                "", table.render(), ""]
    }

    /// Pretty, key-sorted JSON; non-finite numbers become strings rather
    /// than failing the encode.
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return [UInt8](try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    /// Writes the JSON to `path` atomically, so a reader (or a run killed
    /// half-way) never leaves half a file.
    ///
    /// - Throws: `FileWriteError`, which says which call failed and why
    ///   (`No such file or directory`).
    func write(to path: String) throws {
        try AtomicFile.write(try encoded(), to: path)
    }
}

/// Standard error, for progress lines that must not mix with the markdown
/// on standard output.
enum StandardError {
    /// Set on the ranks other than 0 of a `--distributed` run, which report
    /// nothing but their own failure (``DistributedBench/abort(_:)``).
    nonisolated(unsafe) static var silenced = false

    static func line(_ text: String) {
        guard !silenced else { return }
        fputs(text + "\n", stderr)
    }
}
