import Clover
import CloverConformance
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
// FoundationEssentials, not Foundation: it keeps the static binary small (no ICU data).
import FoundationEssentials

/// Background processes that run the conformance cases' device side ahead of
/// the foreground sweep (`clover conformance --jobs N`), so that kernels
/// compile on every core.
///
/// Why processes: a cold sweep is almost all kernel compilation (on POCL,
/// LLVM generating each kernel's code at its first launch, a second apiece for
/// the large convolution kernels), and one process compiles one kernel at a
/// time. What a warming process compiles lands in the driver's on-disk cache
/// (POCL's kernel cache; Clover's program binaries elsewhere), where the
/// foreground process finds it. The foreground run still runs and checks
/// every case itself, so its report is exactly that of a single-process run;
/// a warming process only ever saves it time.
///
/// Warming process `k` of `N − 1` walks the cases backwards from
/// `count·(k+1)/N − 1` while the foreground walks forwards from 0; each
/// stops where the foreground has arrived (the foreground publishes the case
/// it is on in a small position file), so the two meet near the middle of
/// the compile work whatever its distribution.
final class SweepWarmers {
    private var children: [pid_t] = []
    private let positionPath: String
    private let positionFile: Int32

    /// Starts `jobs − 1` warming processes over `caseCount` cases on OpenCL
    /// device `deviceIndex`, or returns nil when there is nothing to start
    /// (one job) or the processes cannot be started (the sweep then runs
    /// alone; `warning` says why).
    init?(jobs: Int, caseCount: Int, deviceIndex: Int, filter: String?, precision: MatmulPrecision = .fp32,
          warning: (String) -> Void) {
        guard jobs > 1, caseCount > 1 else { return nil }
        var template = Array((Self.temporaryDirectory + "/clover-sweep-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            warning("cannot create a position file in \(Self.temporaryDirectory) (errno \(errno)); running without warming processes")
            return nil
        }
        positionPath = String(cString: template)
        positionFile = fd
        publish(0)
        guard let executable = Self.executablePath else {
            warning("cannot find this executable's path; running without warming processes")
            close(fd)
            unlink(positionPath)
            return nil
        }
        for k in 1..<jobs {
            let start = caseCount * (k + 1) / jobs - 1
            var arguments = [executable, "conformance", "--device", "\(deviceIndex)",
                             "--warm-from", "\(start)", "--warm-position", positionPath]
            if let filter { arguments += ["--filter", filter] }
            arguments += ["--precision", precision.rawValue]
            let (pid, status) = Self.spawn(arguments)
            if status == 0 {
                children.append(pid)
            } else {
                warning("cannot start a warming process (posix_spawn: errno \(status)); \(children.count) running")
            }
        }
        if children.isEmpty {
            close(fd)
            unlink(positionPath)
            return nil
        }
    }

    /// How many warming processes run.
    var count: Int { children.count }

    /// Tells the warming processes that the foreground has reached case `index`.
    func publish(_ index: Int) {
        var value = Int64(index).littleEndian
        _ = withUnsafeBytes(of: &value) { pwrite(positionFile, $0.baseAddress, 8, 0) }
    }

    /// Stops the warming processes (they end after their current case) and
    /// waits for them; one still running after `grace` seconds is killed.
    func finish(grace: Double = 20) {
        publish(Int(Int64.max))
        let deadline = ContinuousClock.now + .milliseconds(Int(grace * 1000))
        var running = children
        while !running.isEmpty {
            running.removeAll { pid in
                var status: Int32 = 0
                return waitpid(pid, &status, WNOHANG) != 0
            }
            if running.isEmpty { break }
            if ContinuousClock.now >= deadline {
                for pid in running {
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                }
                break
            }
            usleep(20_000)
        }
        children = []
        close(positionFile)
        unlink(positionPath)
    }

    deinit {
        if !children.isEmpty { finish(grace: 0) }
    }

    /// The warming process's side: runs `cases` backwards from `start`,
    /// device side only, until the foreground (whose position `positionPath`
    /// holds) has reached the case, the foreground is gone, or case 0 is done.
    /// Errors are the foreground's to report: a case that throws here is skipped.
    static func warm(_ cases: [ConformanceCase], from start: Int, positionPath: String, runner: ConformanceRunner) {
        let parent = getppid()
        let fd = open(positionPath, O_RDONLY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        func foreground() -> Int? {
            var value: Int64 = 0
            let read = withUnsafeMutableBytes(of: &value) { pread(fd, $0.baseAddress, 8, 0) }
            guard read == 8 else { return nil }
            return Int(Int64(littleEndian: value))
        }
        var index = min(start, cases.count - 1)
        while index >= 0 {
            guard getppid() == parent, let position = foreground(), index > position else { return }
            try? runner.exercise(cases[index])
            index -= 1
        }
    }

    private static var temporaryDirectory: String {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        return tmp.isEmpty ? "/tmp" : (tmp.hasSuffix("/") ? String(tmp.dropLast()) : tmp)
    }

    /// This process's executable (Linux: `/proc/self/exe`), else `argv[0]`
    /// when it is a path.
    private static var executablePath: String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 { return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        let argv0 = CommandLine.arguments.first ?? ""
        return argv0.contains("/") ? argv0 : nil
    }

    /// Starts `arguments` with standard input, output and error on /dev/null;
    /// returns the process and posix_spawn's status (0 on success).
    private static func spawn(_ arguments: [String]) -> (pid_t, Int32) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
        }
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], &actions, nil, &cArguments, environ)
        return (pid, status)
    }
}
