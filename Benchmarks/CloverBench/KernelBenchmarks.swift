import Clover
import CloverModels
import CloverNN

// The kernel benchmarks: each is written once at the issue's full size and
// shrunk through a `Sizing`. Shapes are NCHW with batch 128 unless noted.

/// A kernel benchmark at one size, ready to be prepared on a device.
struct KernelWorkload {
    /// The op the PyTorch peer builds (see ``BenchRecord/op``).
    var op: String
    var params: [String: Int]
    var shape: String
    /// Forward floating-point operations (2 per multiply-add), when counted.
    var forwardFlops: Double?
    /// Backward floating-point operations: by convention twice the forward
    /// (gradients with respect to the data and the weights), not counting
    /// any recomputation an implementation chooses to do.
    var backwardFlops: Double?
    /// Bytes of one forward run: every input and output once (memory-bound
    /// ops only).
    var forwardBytes: Double?
    /// Bytes of one backward run: inputs, cotangents and gradients once.
    var backwardBytes: Double?
    /// Whether there is a backward pass (optimiser updates have none).
    var hasBackward: Bool
    /// `forward`, or `update` for optimisers.
    var forwardPass = "forward"
    /// Allocates the inputs on a device and returns the runnable passes.
    var prepare: (Device) throws -> PreparedKernel
}

/// The runnable passes of a workload on one device.
struct PreparedKernel {
    var forward: () throws -> Void
    var backward: (() throws -> Void)?
}

/// A named kernel benchmark.
struct KernelBenchmark {
    let name: String
    let make: (Sizing) throws -> KernelWorkload
}

/// A workload that applies one ``Primitive`` (forward) and calls its `vjp`
/// with fixed cotangents (backward), so the backward pass times exactly the
/// gradient ops, without autograd's bookkeeping.
///
/// Bytes are recorded (and GB/s reported) only for `memoryBound` ops; for
/// GEMM-like ops a bandwidth figure would only distract from GFLOP/s.
func primitiveWorkload(op: String, params: [String: Int], shape: String, primitive: Primitive, inputShapes: [[Int]],
                       forwardFlops: Double?, backwardFlops: Double?, memoryBound: Bool) throws -> KernelWorkload {
    let outputShapes = try primitive.outputShapes(for: inputShapes)
    let inputElements = Double(inputShapes.map { $0.reduce(1, *) }.reduce(0, +))
    let outputElements = Double(outputShapes.map { $0.reduce(1, *) }.reduce(0, +))
    return KernelWorkload(
        op: op, params: params, shape: shape, forwardFlops: forwardFlops, backwardFlops: backwardFlops,
        forwardBytes: memoryBound ? 4 * (inputElements + outputElements) : nil,
        // Every input gets a gradient of its own shape in these ops.
        backwardBytes: memoryBound ? 4 * (2 * inputElements + outputElements) : nil, hasBackward: true,
        prepare: { device in
            let inputs = try inputShapes.enumerated().map { i, s in try InputValues.tensor(s, seed: i, on: device) }
            let outputs = try apply(primitive, inputs)
            let cotangents = try outputShapes.enumerated().map { i, s in try InputValues.tensor(s, seed: 100 + i, on: device) }
            return PreparedKernel(
                forward: { _ = try apply(primitive, inputs) },
                backward: { _ = try primitive.vjp(inputs: inputs, outputs: outputs, cotangents: cotangents) })
        })
}

/// A convolution as ResNet and EfficientNet use it: square input and kernel.
struct ConvShape {
    var batch = 128
    var channels: Int
    var side: Int
    var outChannels: Int
    var kernel: Int
    var stride = 1
    var groups = 1
    var padding: Int { kernel / 2 }
}

enum KernelSuite {
    /// Every kernel benchmark, in report order.
    static func all() throws -> [KernelBenchmark] {
        var list: [KernelBenchmark] = [gemm("gemm/4096", m: 4096, n: 4096, k: 4096)]
        list += [gemm("gemm/1024", m: 1024, n: 1024, k: 1024), vectorGemm("gemm-vector/1024", side: 1024)]
        list += resNet50Pointwise.map { name, shape in gemmOfPointwise("gemm/r50-1x1-" + name, shape) }
        list += resNet50Dense3x3.map { name, shape in conv("conv3x3/r50-" + name, shape) }
        list += resNet50Pointwise.map { name, shape in conv("conv1x1/r50-" + name, shape) }
        list += resNeXt50Grouped.map { name, shape in conv("grouped/rx50-" + name, shape) }
        list.append(copy(elements: 16 << 20))
        list += efficientNetB0Depthwise.map { name, shape in conv("depthwise/b0-" + name, shape) }
        list += resNet50BatchNorm.map { channels, side in batchNorm(channels: channels, side: side) }
        list += regNet20States.map { channels, side in gates(lstm: true, channels: channels, side: side) }
        list += regNet20States.map { channels, side in gates(lstm: false, channels: channels, side: side) }
        list.append(attention())
        let (sizes, decays) = try resNet50Parameters()
        list.append(optimizer(adamW: false, sizes: sizes, decays: decays))
        list.append(optimizer(adamW: true, sizes: sizes, decays: decays))
        return list
    }

    // MARK: Shapes

    /// ResNet-50 (torchvision, v1.5: stride on the 3x3) 1x1 convolutions,
    /// one per distinct (input side, in, out, stride), named by output side.
    static let resNet50Pointwise: [(String, ConvShape)] = [
        ("56-c64-o64", ConvShape(channels: 64, side: 56, outChannels: 64, kernel: 1)),
        ("56-c64-o256", ConvShape(channels: 64, side: 56, outChannels: 256, kernel: 1)),
        ("56-c256-o64", ConvShape(channels: 256, side: 56, outChannels: 64, kernel: 1)),
        ("56-c256-o128", ConvShape(channels: 256, side: 56, outChannels: 128, kernel: 1)),
        ("28-c256-o512-s2", ConvShape(channels: 256, side: 56, outChannels: 512, kernel: 1, stride: 2)),
        ("28-c128-o512", ConvShape(channels: 128, side: 28, outChannels: 512, kernel: 1)),
        ("28-c512-o128", ConvShape(channels: 512, side: 28, outChannels: 128, kernel: 1)),
        ("28-c512-o256", ConvShape(channels: 512, side: 28, outChannels: 256, kernel: 1)),
        ("14-c512-o1024-s2", ConvShape(channels: 512, side: 28, outChannels: 1024, kernel: 1, stride: 2)),
        ("14-c256-o1024", ConvShape(channels: 256, side: 14, outChannels: 1024, kernel: 1)),
        ("14-c1024-o256", ConvShape(channels: 1024, side: 14, outChannels: 256, kernel: 1)),
        ("14-c1024-o512", ConvShape(channels: 1024, side: 14, outChannels: 512, kernel: 1)),
        ("7-c1024-o2048-s2", ConvShape(channels: 1024, side: 14, outChannels: 2048, kernel: 1, stride: 2)),
        ("7-c512-o2048", ConvShape(channels: 512, side: 7, outChannels: 2048, kernel: 1)),
        ("7-c2048-o512", ConvShape(channels: 2048, side: 7, outChannels: 512, kernel: 1)),
    ]

    /// ResNet-50's stride-1 3x3 convolutions, one per stage.
    static let resNet50Dense3x3: [(String, ConvShape)] = [
        ("56-c64", ConvShape(channels: 64, side: 56, outChannels: 64, kernel: 3)),
        ("28-c128", ConvShape(channels: 128, side: 28, outChannels: 128, kernel: 3)),
        ("14-c256", ConvShape(channels: 256, side: 14, outChannels: 256, kernel: 3)),
        ("7-c512", ConvShape(channels: 512, side: 7, outChannels: 512, kernel: 3)),
    ]

    /// ResNeXt-50 32x4d's grouped 3x3 convolutions (32 groups), one per stage.
    static let resNeXt50Grouped: [(String, ConvShape)] = [
        ("56-c128-g32", ConvShape(channels: 128, side: 56, outChannels: 128, kernel: 3, groups: 32)),
        ("28-c256-g32", ConvShape(channels: 256, side: 28, outChannels: 256, kernel: 3, groups: 32)),
        ("14-c512-g32", ConvShape(channels: 512, side: 14, outChannels: 512, kernel: 3, groups: 32)),
        ("7-c1024-g32", ConvShape(channels: 1024, side: 7, outChannels: 1024, kernel: 3, groups: 32)),
    ]

    /// EfficientNet-B0's depthwise convolutions: every MBConv stage's first
    /// block (which carries the stage's stride) and its repeated blocks,
    /// named by input side, channels, kernel and stride.
    static let efficientNetB0Depthwise: [(String, ConvShape)] = [
        (112, 32, 3, 1), (112, 96, 3, 2), (56, 144, 3, 1), (56, 144, 5, 2), (28, 240, 5, 1), (28, 240, 3, 2),
        (14, 480, 3, 1), (14, 480, 5, 1), (14, 672, 5, 1), (14, 672, 5, 2), (7, 1152, 5, 1), (7, 1152, 3, 1),
    ].map { side, channels, kernel, stride in
        ("\(side)-c\(channels)-k\(kernel)s\(stride)",
         ConvShape(channels: channels, side: side, outChannels: channels, kernel: kernel, stride: stride, groups: channels))
    }

    /// ResNet-50's batch-norm inputs (channels, side): the stem and each stage's output.
    static let resNet50BatchNorm = [(64, 112), (256, 56), (512, 28), (1024, 14), (2048, 7)]

    /// CIFAR RegNet-20's regulator states (channels, side), one per stage.
    static let regNet20States = [(16, 32), (32, 16), (64, 8)]

    /// The sizes of ResNet-50's parameter tensors and whether each gets
    /// weight decay (weights do, biases and BN scales do not), from the zoo
    /// model built on the meta device.
    static func resNet50Parameters() throws -> (sizes: [Int], decays: [Bool]) {
        let model = try ModelZoo.spec(named: "resnet50").make(1000, 3, Initializer(device: .meta))
        let parameters = model.parameters()
        return (parameters.map(\.tensor.count), parameters.map { $0.tensor.rank > 1 })
    }

    // MARK: Benchmarks

    /// `[m, k] · [k, n]`.
    static func gemm(_ name: String, m: Int, n: Int, k: Int) -> KernelBenchmark {
        KernelBenchmark(name: name) { s in
            try gemmWorkload(m: s.dimension(m), n: s.dimension(n), k: s.dimension(k))
        }
    }

    /// A 1x1 convolution as the GEMM it is: `[N·OH·OW, C] · [C, O]`.
    static func gemmOfPointwise(_ name: String, _ c: ConvShape) -> KernelBenchmark {
        KernelBenchmark(name: name) { s in
            let side = (s.side(c.side) - 1) / c.stride + 1
            return try gemmWorkload(m: s.batch(c.batch) * side * side, n: c.outChannels, k: c.channels)
        }
    }

    /// The same `side`³ GEMM run by the implicit-GEMM engine's vector kernel
    /// (`convgemm_forward_vector`, set 4/8x2) as a 1x1 convolution of a
    /// `[1, side, √side, √side]` input: the register-blocked GEMM that
    /// measures what a hand-written kernel reaches on a CPU device beside
    /// CLBlast's `gemm/1024` (BENCHMARKS.md, "POCL's ceiling"). Backward is
    /// the engine's vector data and weight gradients.
    static func vectorGemm(_ name: String, side fullSide: Int) -> KernelBenchmark {
        KernelBenchmark(name: name) { s in
            var spatial = 1
            while (2 * spatial) * (2 * spatial) <= s.dimension(fullSide) { spatial *= 2 }
            let k = spatial * spatial   // pixels = channels = outputs: a square GEMM
            let set = ConvGemmParameters.searchSpace.first { $0.form == .vector }!
            let macs = Double(k) * Double(k) * Double(k)
            return try primitiveWorkload(
                op: "conv2d", params: ["n": 1, "c": k, "h": spatial, "w": spatial, "o": k, "kernel": 1, "stride": 1,
                                       "padding": 0, "groups": 1],
                shape: "x [1, \(k), \(spatial), \(spatial)] w [\(k), \(k), 1, 1] (\(set))",
                primitive: Convolution2D(Convolution2DParameters(), forcedChoice: ConvChoice(.implicitGEMM, set)),
                inputShapes: [[1, k, spatial, spatial], [k, k, 1, 1]],
                forwardFlops: 2 * macs, backwardFlops: 4 * macs, memoryBound: false)
        }
    }

    static func gemmWorkload(m: Int, n: Int, k: Int) throws -> KernelWorkload {
        let macs = Double(m) * Double(n) * Double(k)
        return try primitiveWorkload(op: "matmul", params: ["m": m, "n": n, "k": k], shape: "[\(m), \(k)]·[\(k), \(n)]",
                                     primitive: MatMul(), inputShapes: [[m, k], [k, n]],
                                     forwardFlops: 2 * macs, backwardFlops: 4 * macs, memoryBound: false)
    }

    static func conv(_ name: String, _ c: ConvShape) -> KernelBenchmark {
        KernelBenchmark(name: name) { s in
            let (n, side) = (s.batch(c.batch), s.side(c.side))
            let parameters = Convolution2DParameters(stride: c.stride, padding: c.padding, groups: c.groups)
            let input = [n, c.channels, side, side], weight = [c.outChannels, c.channels / c.groups, c.kernel, c.kernel]
            let output = try parameters.outputShape(input: input, weight: weight)
            let macs = Double(output.reduce(1, *)) * Double(weight[1] * c.kernel * c.kernel)
            return try primitiveWorkload(
                op: "conv2d",
                params: ["n": n, "c": c.channels, "h": side, "w": side, "o": c.outChannels, "kernel": c.kernel,
                         "stride": c.stride, "padding": c.padding, "groups": c.groups],
                shape: "x [\(n), \(c.channels), \(side), \(side)] w [\(weight.map(String.init).joined(separator: ", "))]"
                    + " s\(c.stride) p\(c.padding)" + (c.groups > 1 ? " g\(c.groups)" : ""),
                primitive: Convolution2D(parameters), inputShapes: [input, weight],
                // Depthwise convolutions do so little work per byte that
                // bandwidth is their figure of merit too.
                forwardFlops: 2 * macs, backwardFlops: 4 * macs, memoryBound: c.groups == c.channels)
        }
    }

    /// The device's copy bandwidth, measured in the same run as the
    /// memory-bound rows it is the roofline for (depthwise, batch norm):
    /// `y = 1·x` over `elements` floats (`scale_elementwise`, one load and one
    /// store per element), GB/s counting both.
    static func copy(elements: Int) -> KernelBenchmark {
        KernelBenchmark(name: "copy/\(elements >> 20)Mi") { s in
            let n = s.count(elements)
            return try primitiveWorkload(op: "scale", params: ["n": n], shape: "[\(n)] floats, y = 1·x",
                                         primitive: Scale(1), inputShapes: [[n]], forwardFlops: nil,
                                         backwardFlops: nil, memoryBound: true)
        }
    }

    static func batchNorm(channels: Int, side: Int) -> KernelBenchmark {
        KernelBenchmark(name: "batchnorm/r50-\(side)-c\(channels)") { s in
            let (n, side) = (s.batch(128), s.side(side))
            return try primitiveWorkload(
                op: "batchnorm", params: ["n": n, "c": channels, "h": side, "w": side],
                shape: "x [\(n), \(channels), \(side), \(side)], training", primitive: BatchNormTraining(),
                inputShapes: [[n, channels, side, side], [channels], [channels]], forwardFlops: nil, backwardFlops: nil,
                memoryBound: true)
        }
    }

    /// The fused ConvLSTM cell update or ConvGRU gates over a state of
    /// `channels` at `side`.
    static func gates(lstm: Bool, channels: Int, side: Int) -> KernelBenchmark {
        let kind = lstm ? "lstm" : "gru"
        return KernelBenchmark(name: "\(kind)-gates/regnet20-\(side)-c\(channels)") { s in
            let (n, side) = (s.batch(128), s.side(side))
            let gateCount = lstm ? 4 : 2
            let state = [n, channels, side, side]
            return try primitiveWorkload(
                op: lstm ? "lstm_cell" : "gru_gates", params: ["n": n, "c": channels, "h": side, "w": side],
                shape: "pre [\(n), \(gateCount * channels), \(side), \(side)], \(lstm ? "c" : "h") [\(n), \(channels), \(side), \(side)]",
                primitive: lstm ? LSTMCell() as Primitive : GRUGates(),
                inputShapes: [[n, gateCount * channels, side, side], state], forwardFlops: nil, backwardFlops: nil,
                memoryBound: true)
        }
    }

    /// BERT-base self-attention: 12 heads of 64, sequence 128, batch 32.
    static func attention() -> KernelBenchmark {
        KernelBenchmark(name: "attention/bert-base-L128") { s in
            let (n, length, width, heads) = (s.batch(32), s.sequence(128), 768, 12)
            // Q·Kᵀ and P·V: 2·B·L²·D multiply-adds.
            let macs = 2 * Double(n) * Double(length) * Double(length) * Double(width)
            let x = [n, length, width]
            return try primitiveWorkload(
                op: "attention", params: ["n": n, "l": length, "d": width, "heads": heads],
                shape: "q, k, v [\(n), \(length), \(width)], \(heads) heads", primitive: ScaledDotProductAttention(heads: heads),
                inputShapes: [x, x, x], forwardFlops: 2 * macs, backwardFlops: 4 * macs, memoryBound: false)
        }
    }

    /// One fused optimiser update over ResNet-50's parameters (25.6 M in 161
    /// tensors), shrunk proportionally tensor by tensor.
    static func optimizer(adamW: Bool, sizes fullSizes: [Int], decays: [Bool]) -> KernelBenchmark {
        KernelBenchmark(name: adamW ? "adamw/resnet50" : "sgd/resnet50") { s in
            let total = fullSizes.reduce(0, +)
            let factor = Double(s.count(total)) / Double(total)
            let sizes = factor == 1 ? fullSizes : fullSizes.map { max(1, Int((Double($0) * factor).rounded())) }
            let count = sizes.reduce(0, +)
            // SGD reads p, g, b and writes p, b; AdamW reads p, g, m, v and writes p, m, v.
            let streams: Double = adamW ? 7 : 5
            return KernelWorkload(
                op: adamW ? "adamw" : "sgd", params: ["count": count, "tensors": sizes.count],
                shape: "\(count) parameters in \(sizes.count) tensors" + (adamW ? "" : ", momentum"),
                forwardFlops: nil, backwardFlops: nil, forwardBytes: 4 * streams * Double(count), backwardBytes: nil,
                hasBackward: false,
                forwardPass: "update",
                prepare: { device in
                    let segments = ParameterSegments(sizes: sizes, decays: decays)
                    let p = try InputValues.tensor([count], seed: 0, on: device)
                    let g = try InputValues.tensor([count], seed: 1, on: device)
                    if adamW {
                        let m = try Tensor.zeros([count], on: device), v = try Tensor.zeros([count], on: device)
                        let configuration = AdamWConfiguration(learningRate: 1e-3, weightDecay: 0.05)
                        return PreparedKernel(forward: {
                            try adamWStep(parameters: p, gradients: g, m: m, v: v, step: 10, configuration: configuration,
                                          segments: segments)
                        }, backward: nil)
                    }
                    let momentum = try Tensor.zeros([count], on: device)
                    let configuration = SGDConfiguration(learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4)
                    return PreparedKernel(forward: {
                        try sgdStep(parameters: p, gradients: g, momentum: momentum, configuration: configuration,
                                    segments: segments)
                    }, backward: nil)
                })
        }
    }
}
