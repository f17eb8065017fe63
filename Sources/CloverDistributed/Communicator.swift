import CMPI
import CMPIShim
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed MPI call: the call's name, MPI's error code and its message.
///
/// Every MPI call Clover makes is checked (the communicator's error handler
/// is `MPI_ERRORS_RETURN`, so errors come back rather than aborting), the
/// same way every OpenCL call is.
public struct MPIError: Error, CustomStringConvertible {
    /// The MPI function that failed, e.g. `MPI_Allreduce`.
    public let call: String
    /// MPI's error code (`MPI_ERR_*`), or -1 for a check Clover makes itself.
    public let code: Int32
    /// MPI's description of `code`, or Clover's reason.
    public let message: String

    public init(call: String, code: Int32, message: String) {
        self.call = call
        self.code = code
        self.message = message
    }

    public var description: String {
        code == -1 ? "\(call): \(message)" : "\(call) failed: \(message) (MPI error \(code))"
    }
}

/// Throws an ``MPIError`` naming `call` unless `code` is `MPI_SUCCESS`.
@inline(__always)
func checkMPI(_ code: Int32, _ call: @autoclosure () -> String) throws {
    guard code != MPI_SUCCESS else { return }
    throw MPIError(call: call(), code: code, message: mpiErrorString(code))
}

/// MPI's text for an error code (`MPI_Error_string`).
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(clover_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else { return "unknown MPI error" }
    return String(decoding: buffer.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// How many threads may call MPI at once, in increasing order of support
/// (`MPI_THREAD_SINGLE` ... `MPI_THREAD_MULTIPLE`).
public enum MPIThreadLevel: Int, Comparable, Sendable, CustomStringConvertible {
    case single, funneled, serialized, multiple

    var cValue: Int32 {
        switch self {
        case .single: return clover_mpi_thread_single()
        case .funneled: return clover_mpi_thread_funneled()
        case .serialized: return clover_mpi_thread_serialized()
        case .multiple: return clover_mpi_thread_multiple()
        }
    }

    init?(cValue: Int32) {
        guard let level = Self.allCases.first(where: { $0.cValue == cValue }) else { return nil }
        self = level
    }

    static let allCases: [MPIThreadLevel] = [.single, .funneled, .serialized, .multiple]

    public static func < (a: MPIThreadLevel, b: MPIThreadLevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .single: return "MPI_THREAD_SINGLE"
        case .funneled: return "MPI_THREAD_FUNNELED"
        case .serialized: return "MPI_THREAD_SERIALIZED"
        case .multiple: return "MPI_THREAD_MULTIPLE"
        }
    }
}

/// An element type MPI reduces: its `MPI_Datatype`.
public protocol MPIScalar {
    static var mpiDatatype: MPI_Datatype { get }
}

extension Float: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { clover_mpi_float() }
}

extension Double: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { clover_mpi_double() }
}

extension Int64: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { clover_mpi_int64() }
}

/// `MPI_COMM_WORLD` of an Open MPI job: this process's rank, the world
/// size, the rank among the processes on this host (which picks the
/// device), and the collectives data-parallel training uses.
///
/// ```swift
/// let world = try Communicator.initialize(requiring: .serialized)
/// var gradients: [Float] = ...
/// try world.allreduceSum(&gradients)      // every rank now holds the sum
/// try world.finalize()
/// ```
///
/// MPI can be initialised once per process, so ``initialize(requiring:)``
/// returns the same communicator on every call. Large buffers are sent in
/// chunks of at most `Int32.max` elements (MPI counts are `int`).
public final class Communicator: @unchecked Sendable {
    /// This process's rank in the job, `0..<size`.
    public let rank: Int
    /// The number of processes in the job.
    public let size: Int
    /// This process's rank among the job's processes on the same host.
    public let localRank: Int
    /// The number of the job's processes on this host.
    public let localSize: Int
    /// The thread support MPI provided (at least the level required).
    public let threadLevel: MPIThreadLevel

    private let handle: MPI_Comm
    /// MPI is initialised once per process: the world communicator once it
    /// is, and whether MPI has been finalised since.
    private static let process = Mutex<(world: Communicator?, finalized: Bool)>((nil, false))

    /// The world communicator of this process while MPI is initialised and
    /// not finalised; nil otherwise (where a failing command must end the
    /// job with ``abort(code:)``).
    public static var active: Communicator? {
        process.withLock { $0.finalized ? nil : $0.world }
    }

    private init(handle: MPI_Comm, threadLevel: MPIThreadLevel) throws {
        self.handle = handle
        self.threadLevel = threadLevel
        // Errors must come back as codes (default: abort the job with
        // MPI's message and no word of which Clover call failed).
        try checkMPI(MPI_Comm_set_errhandler(handle, clover_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try checkMPI(MPI_Comm_rank(handle, &rank), "MPI_Comm_rank")
        try checkMPI(MPI_Comm_size(handle, &size), "MPI_Comm_size")
        var local: MPI_Comm? = clover_mpi_comm_null()
        try checkMPI(MPI_Comm_split_type(handle, clover_mpi_comm_type_shared(), rank, clover_mpi_info_null(), &local),
                     "MPI_Comm_split_type")
        var localRank: Int32 = 0, localSize: Int32 = 0
        try checkMPI(MPI_Comm_rank(local, &localRank), "MPI_Comm_rank (host communicator)")
        try checkMPI(MPI_Comm_size(local, &localSize), "MPI_Comm_size (host communicator)")
        try checkMPI(MPI_Comm_free(&local), "MPI_Comm_free")
        (self.rank, self.size, self.localRank, self.localSize) = (Int(rank), Int(size), Int(localRank), Int(localSize))
    }

    /// Initialises MPI (`MPI_Init_thread`) and returns `MPI_COMM_WORLD`.
    ///
    /// - Throws: ``MPIError`` when initialisation fails, or when MPI provides
    ///   less thread support than `level` (naming both levels).
    public static func initialize(requiring level: MPIThreadLevel = .funneled) throws -> Communicator {
        if let shared = process.withLock({ $0.world }) {
            guard shared.threadLevel >= level else {
                throw MPIError(call: "MPI_Init_thread", code: -1,
                               message: "already initialised with \(shared.threadLevel), below the \(level) required")
            }
            return shared
        }
        var provided: Int32 = 0
        try checkMPI(MPI_Init_thread(nil, nil, level.cValue, &provided), "MPI_Init_thread")
        guard let providedLevel = MPIThreadLevel(cValue: provided), providedLevel >= level else {
            let name = MPIThreadLevel(cValue: provided)?.description ?? "level \(provided)"
            throw MPIError(call: "MPI_Init_thread", code: -1,
                           message: "\(level) required, but this MPI library provides only \(name)")
        }
        let world = try Communicator(handle: clover_mpi_comm_world(), threadLevel: providedLevel)
        process.withLock { $0.world = world }
        return world
    }

    /// Whether this process was started by Open MPI's `mpirun` (its
    /// environment names the job's size), so `clover train` can go
    /// distributed without `--distributed`.
    public static func isLaunchedByOpenMPI(environment: [String: String]) -> Bool {
        environment["OMPI_COMM_WORLD_SIZE"] != nil
    }

    /// Whether this is rank 0, the rank that prints and writes files.
    public var isRoot: Bool { rank == 0 }

    /// Sums `buffer` element-wise over all ranks, in place
    /// (`MPI_Allreduce` with `MPI_IN_PLACE`).
    public func allreduceSum<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {
        guard let base = buffer.baseAddress else {
            // A zero-length reduction still takes part in the collective, so
            // that every rank calls MPI the same number of times.
            try checkMPI(MPI_Allreduce(clover_mpi_in_place(), nil, 0, T.mpiDatatype, clover_mpi_sum(), handle),
                         "MPI_Allreduce (0 elements)")
            return
        }
        var start = 0
        repeat {
            let count = min(buffer.count - start, Int(Int32.max))
            try checkMPI(MPI_Allreduce(clover_mpi_in_place(), base + start, Int32(count), T.mpiDatatype, clover_mpi_sum(), handle),
                         "MPI_Allreduce (\(count) elements)")
            start += count
        } while start < buffer.count
    }

    /// Sums `values` element-wise over all ranks, in place.
    public func allreduceSum<T: MPIScalar>(_ values: inout [T]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    /// The largest of `value` over all ranks (`MPI_Allreduce` with `MPI_MAX`).
    public func allreduceMax(_ value: Int64) throws -> Int64 {
        var result = value
        try checkMPI(MPI_Allreduce(clover_mpi_in_place(), &result, 1, Int64.mpiDatatype, clover_mpi_max(), handle),
                     "MPI_Allreduce (max)")
        return result
    }

    /// Sends `root`'s bytes to every rank (`MPI_Bcast` of the length, then
    /// of the bytes); `bytes` is ignored on other ranks.
    public func broadcast(_ bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        var length = Int64(rank == root ? bytes.count : 0)
        try checkMPI(MPI_Bcast(&length, 1, Int64.mpiDatatype, Int32(root), handle), "MPI_Bcast (length)")
        guard length >= 0 else {
            throw MPIError(call: "MPI_Bcast", code: -1, message: "rank \(root) sent a negative length \(length)")
        }
        var buffer = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        try buffer.withUnsafeMutableBytes { raw in
            var start = 0
            while start < raw.count {
                let count = min(raw.count - start, Int(Int32.max))
                try checkMPI(MPI_Bcast(raw.baseAddress! + start, Int32(count), clover_mpi_byte(), Int32(root), handle),
                             "MPI_Bcast (\(count) bytes)")
                start += count
            }
        }
        return buffer
    }

    /// Sends `root`'s value to every rank.
    public func broadcast(_ value: Int64, root: Int = 0) throws -> Int64 {
        var value = value
        try checkMPI(MPI_Bcast(&value, 1, Int64.mpiDatatype, Int32(root), handle), "MPI_Bcast")
        return value
    }

    /// Waits until every rank arrives (`MPI_Barrier`).
    public func barrier() throws {
        try checkMPI(MPI_Barrier(handle), "MPI_Barrier")
    }

    /// Ends the whole job (`MPI_Abort`): `mpirun` kills every rank and exits
    /// non-zero, so no rank waits forever in a collective.
    public func abort(code: Int32 = 1) -> Never {
        _ = MPI_Abort(handle, code)
        // MPI_Abort does not return; should it, the process must still end.
        _exit(code)
    }

    /// Shuts MPI down (`MPI_Finalize`); call once, after the last collective.
    public func finalize() throws {
        Self.process.withLock { $0.finalized = true }
        try checkMPI(MPI_Finalize(), "MPI_Finalize")
    }
}
