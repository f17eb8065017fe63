import COpenCL

/// A value that can be passed to an OpenCL kernel argument slot.
///
/// Only fixed-size types whose width matches an OpenCL C type conform, so a
/// Swift `Int` (64 bits) can never be passed where a kernel declares `int`.
public protocol KernelArgument {
    /// Sets this value as argument `index` of `kernel`; returns the status.
    func setArgument(_ kernel: cl_kernel, at index: cl_uint) -> cl_int
}

/// Scalars are passed by value with their exact size.
public protocol ScalarKernelArgument: KernelArgument {}
extension ScalarKernelArgument {
    public func setArgument(_ kernel: cl_kernel, at index: cl_uint) -> cl_int {
        var value = self
        return clSetKernelArg(kernel, index, MemoryLayout<Self>.size, &value)
    }
}

extension Int32: ScalarKernelArgument {}   // int
extension UInt32: ScalarKernelArgument {}  // uint
extension Int64: ScalarKernelArgument {}   // long
extension UInt64: ScalarKernelArgument {}  // ulong
extension Float: ScalarKernelArgument {}   // float

/// An OpenCL `int8` kernel argument (eight 32-bit ints, passed by value),
/// e.g. the sizes and strides of a tensor of up to eight axes.
public struct Int32Vector8: KernelArgument {
    public var values: SIMD8<Int32>

    /// `lanes` padded with `fill` to eight lanes.
    public init(_ lanes: [Int], fill: Int32) {
        precondition(lanes.count <= 8, "an int8 holds at most eight lanes")
        values = SIMD8(repeating: fill)
        for (i, v) in lanes.enumerated() { values[i] = Int32(v) }
    }

    public func setArgument(_ kernel: cl_kernel, at index: cl_uint) -> cl_int {
        var v = values
        return clSetKernelArg(kernel, index, MemoryLayout<SIMD8<Int32>>.size, &v)
    }
}

/// A `__local` scratch argument of a given size in bytes.
public struct LocalMemory: KernelArgument {
    public let bytes: Int
    public init(bytes: Int) { self.bytes = bytes }
    public func setArgument(_ kernel: cl_kernel, at index: cl_uint) -> cl_int {
        clSetKernelArg(kernel, index, bytes, nil)
    }
}

/// A compiled kernel function of a ``Program``.
///
/// `cl_kernel` objects carry their argument state, so a kernel is used from
/// one thread at a time; Clover drives each context's queue from one thread.
public final class Kernel {
    public let handle: cl_kernel
    /// The `__kernel` function name.
    public let name: String
    /// The program (kernel family) it came from, for messages.
    public let programName: String
    /// The kernel family (source file) it came from.
    public let family: String
    /// The build options of its program (`-cl-std=CL1.2` and the sorted `-D` defines).
    public let programOptions: String
    /// Its program's register limit per work-item, if one was asked for.
    public let programRegisterLimit: Int?
    /// `family/name`: the key of ``OpenCLContext/launchCounts``.
    public var qualifiedName: String { family + "/" + name }
    /// How many arguments the kernel declares.
    public let argumentCount: Int
    /// Bytes of `__local` memory the kernel declares itself (static
    /// `__local` arrays), before any `__local` argument is set.
    public let staticLocalMemoryBytes: Int
    /// Whether it has been enqueued yet (its first enqueue may generate code).
    var launched = false

    init(program: cl_program, programName: String, family: String, options: String, registerLimit: Int?,
         name: String) throws {
        var status: cl_int = 0
        guard let handle = clCreateKernel(program, name, &status), status == CL_SUCCESS else {
            throw OpenCLError(call: "clCreateKernel", code: status,
                              detail: "kernel '\(name)' in program '\(programName)'")
        }
        self.handle = handle
        self.name = name
        self.programName = programName
        self.family = family
        self.programOptions = options
        self.programRegisterLimit = registerLimit
        var count: cl_uint = 0
        try checkCL(clGetKernelInfo(handle, cl_kernel_info(CL_KERNEL_NUM_ARGS), MemoryLayout<cl_uint>.size, &count, nil),
                    "clGetKernelInfo", detail: name)
        argumentCount = Int(count)
        var local: cl_ulong = 0
        try checkCL(clGetKernelWorkGroupInfo(handle, nil, cl_kernel_work_group_info(CL_KERNEL_LOCAL_MEM_SIZE),
                                             MemoryLayout<cl_ulong>.size, &local, nil),
                    "clGetKernelWorkGroupInfo", detail: "CL_KERNEL_LOCAL_MEM_SIZE of \(name)")
        staticLocalMemoryBytes = Int(local)
    }

    deinit { clReleaseKernel(handle) }

    /// Sets all arguments in order, checking the count against the declaration.
    public func setArguments(_ arguments: [KernelArgument]) throws {
        guard arguments.count == argumentCount else {
            throw RuntimeError.invalidLaunch(
                kernel: name, reason: "\(arguments.count) arguments given, the kernel declares \(argumentCount)")
        }
        for (i, argument) in arguments.enumerated() {
            try checkCL(argument.setArgument(handle, at: cl_uint(i)), "clSetKernelArg",
                        detail: "argument \(i) of kernel '\(name)'")
        }
    }

    /// The largest work-group size this kernel can launch with on `device`.
    public func maxWorkGroupSize(on device: OpenCLDevice) throws -> Int {
        var size = 0
        try checkCL(clGetKernelWorkGroupInfo(handle, device.id, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                             MemoryLayout<Int>.size, &size, nil),
                    "clGetKernelWorkGroupInfo", detail: name)
        return size
    }
}

/// A completed or pending command, with profiled times.
public final class Event {
    public let handle: cl_event

    init(handle: cl_event) { self.handle = handle }
    deinit { clReleaseEvent(handle) }

    /// Blocks until the command completes.
    public func wait() throws {
        var event: cl_event? = handle
        try checkCL(clWaitForEvents(1, &event), "clWaitForEvents")
    }

    /// Start and end of execution in device nanoseconds (waits first).
    public func profiledNanoseconds() throws -> (start: UInt64, end: UInt64) {
        try wait()
        var start: cl_ulong = 0, end: cl_ulong = 0
        try checkCL(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_START),
                                            MemoryLayout<cl_ulong>.size, &start, nil), "clGetEventProfilingInfo")
        try checkCL(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_END),
                                            MemoryLayout<cl_ulong>.size, &end, nil), "clGetEventProfilingInfo")
        return (start, end)
    }

    /// Execution time in seconds, from profiling.
    public func elapsedSeconds() throws -> Double {
        let t = try profiledNanoseconds()
        return Double(t.end &- t.start) * 1e-9
    }
}

extension Duration {
    /// The duration in seconds, as a `Double` (profiling, timing, rates).
    public var inSeconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) * 1e-18
    }
}
