import Clover
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows kernel-program compiles on standard error while a command runs.
///
/// A cold program cache compiles each kernel family's parameter set from
/// source, seconds apiece on POCL, and a conformance sweep or a first
/// training step can build dozens: without this the command prints nothing
/// for minutes. On a terminal it keeps one updating line (cleared when the
/// compile ends); otherwise, as in a log, it writes one plain line per
/// finished compile. Standard output is left alone, so reports stay parseable.
final class BuildProgress {
    /// What the command is doing, shown beside the compile (e.g. `conv2d case 12/164`).
    var activity = ""
    private let terminal: Bool
    private var compileSeconds = 0.0

    private init() { terminal = isatty(STDERR_FILENO) != 0 }

    /// Starts reporting the compiles of `device`'s program cache (nothing for
    /// the CPU reference) and returns the reporter, whose ``activity`` the
    /// caller may update.
    @discardableResult
    static func attach(to device: Device) -> BuildProgress {
        let progress = BuildProgress()
        device.programBuildObserver = { [progress] event in progress.report(event) }
        return progress
    }

    private func report(_ event: ProgramBuildEvent) {
        let context = activity.isEmpty ? "" : "; \(activity)"
        let what: String, count: String
        switch event.work {
        case .program:
            what = "program \(Self.shortLabel(event.label))"
            count = "program \(event.ordinal)"
        case .firstLaunch(let kernel):
            what = "kernel \(event.family)/\(kernel)"
            count = "kernel \(event.ordinal)"
        }
        switch event.phase {
        case .started:
            guard terminal else { return }
            write("\r\u{1B}[Kcompiling \(what) (\(count)\(context))")
        case .finished(let seconds):
            compileSeconds += seconds
            let total = Format.fixed(compileSeconds, decimals: 1) + " s"
            if terminal {
                write("\r\u{1B}[K")
            } else if seconds >= Self.quietBelow {
                write("compiled \(what) in \(Format.fixed(seconds, decimals: 1)) s "
                      + "(\(count), \(total) compiling in all\(context))\n")
            }
        }
    }

    /// Builds and first launches quicker than this (answered by a warm driver
    /// cache: POCL's kernel cache makes a repeated build from source a lookup)
    /// are not logged line by line: only the ones that compiled something are news.
    static let quietBelow = 0.05

    private func write(_ text: String) {
        fputs(text, stderr)
        fflush(stderr)
    }

    /// The label without the `-cl-std` option every program shares.
    static func shortLabel(_ label: String) -> String {
        label.replacing(" -cl-std=CL1.2", with: "")
    }
}
