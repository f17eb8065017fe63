import Clover

extension ConformanceSuite {
    /// 2-D convolution, forward and all three gradients (through `Convolution2D.vjp`,
    /// which runs the backward-data, backward-weight and backward-bias
    /// primitives): batch 1 and more, odd and non-square spatial sizes, odd
    /// channel counts, 1x1 to 7x7 kernels, stride, padding, dilation,
    /// grouped and depthwise weights, with and without bias, offset inputs,
    /// batch chunking, a few mid-size GEMMs, and finite differences on the
    /// small cases; then each specialised OpenCL path (pointwise GEMM,
    /// depthwise, grouped direct) on scaled-down ResNet-50, ResNeXt-50 and
    /// EfficientNet-B0 shapes and awkward sizes.
    ///
    /// Shapes stay small because the CPU reference is deliberately naive.
    static func convolutionCases() -> [ConformanceCase] {
        // Each output is a float GEMM sum of K = C/G·KH·KW products (forward),
        // O/G·KH·KW (backward data) or N·OH·OW (backward weight: up to ~2200
        // in the mid-size cases) against a Double-accumulated reference. With
        // inputs in [-1, 1] the float rounding error grows like
        // sqrt(terms)·eps·|partial sums|; measured on POCL, the worst element
        // of the mid-size cases uses a third of abs 1e-4 + rel 1e-4·|ref|, the
        // small cases under a tenth, while any indexing bug (a wrong tap, a
        // missed padding zero, leaked pool garbage) is off by O(1).
        let tol = Tolerance(absolute: 1e-4, relative: 1e-4)
        // The tensor-core sets against a reference that rounds its operands to TF32 as they do: only
        // FP32 accumulation differs (observed up to 6e-6 on these sizes), while operands left
        // unrounded on either side err by about 1e-3.
        let tf32Tol = Tolerance(absolute: 2e-5, relative: 1e-5)
        func tolerance(_ choice: ConvChoice?) -> Tolerance { choice?.roundsToTF32 == true ? tf32Tol : tol }

        struct Config {
            var label: String
            var input: [Int]            // [N, C, H, W]
            var outChannels: Int
            var kernel: (Int, Int)
            var parameters: Convolution2DParameters
            var bias = true
            var offset = false
            var finiteDifference = false
            var columnLimitBytes = defaultConvColumnBufferLimitBytes
        }
        func p(_ stride: Int = 1, _ padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Convolution2DParameters {
            Convolution2DParameters(stride: stride, padding: padding, dilation: dilation, groups: groups)
        }

        var configs: [Config] = [
            // 1x1 kernels (pointwise), stride 1 and 2.
            Config(label: "1x1", input: [2, 3, 7, 7], outChannels: 5, kernel: (1, 1), parameters: p()),
            Config(label: "1x1 s2", input: [1, 5, 13, 13], outChannels: 3, kernel: (1, 1), parameters: p(2),
                   bias: false, offset: true),
            Config(label: "1x1 on 1x1 image", input: [3, 5, 1, 1], outChannels: 3, kernel: (1, 1), parameters: p(),
                   finiteDifference: true),
            // More planes than im2col (302,400) and col2im (33,600) put in grid dimension 1
            // (32,768): their items stride over the rest.
            Config(label: "3x3 p1 with 302,400 im2col planes", input: [8, 4200, 4, 4], outChannels: 4, kernel: (3, 3),
                   parameters: p(1, 1), bias: false),
            // 3x3.
            Config(label: "3x3 valid to 1x1 output", input: [1, 1, 3, 3], outChannels: 1, kernel: (3, 3),
                   parameters: p(), finiteDifference: true),
            Config(label: "3x3 p1 non-square", input: [2, 3, 7, 5], outChannels: 5, kernel: (3, 3), parameters: p(1, 1),
                   offset: true),
            Config(label: "3x3 p1 on 1x1 image", input: [2, 3, 1, 1], outChannels: 5, kernel: (3, 3),
                   parameters: p(1, 1), offset: true, finiteDifference: true),
            Config(label: "3x3 s2 p1", input: [3, 3, 13, 13], outChannels: 5, kernel: (3, 3), parameters: p(2, 1)),
            Config(label: "3x3 s2 p0 (last row and column unread)", input: [2, 3, 8, 6], outChannels: 3, kernel: (3, 3),
                   parameters: p(2, 0), bias: false, offset: true),
            Config(label: "3x3 p2 (output larger than input)", input: [1, 3, 3, 3], outChannels: 3, kernel: (3, 3),
                   parameters: p(1, 2), finiteDifference: true),
            // 5x5.
            Config(label: "5x5 p2", input: [2, 3, 7, 7], outChannels: 3, kernel: (5, 5), parameters: p(1, 2),
                   bias: false),
            Config(label: "5x5 s2 p1 non-square", input: [1, 5, 13, 7], outChannels: 3, kernel: (5, 5),
                   parameters: p(2, 1), offset: true),
            // The ResNet stem, scaled down: 7x7 stride 2 padding 3.
            Config(label: "7x7 s2 p3 stem", input: [2, 3, 13, 13], outChannels: 5, kernel: (7, 7), parameters: p(2, 3)),
            Config(label: "7x7 s2 p3 stem batch 3", input: [3, 3, 7, 7], outChannels: 3, kernel: (7, 7),
                   parameters: p(2, 3), offset: true),
            // Dilation.
            Config(label: "3x3 d2 p2", input: [2, 3, 13, 13], outChannels: 3, kernel: (3, 3),
                   parameters: p(1, 2, dilation: 2), offset: true),
            Config(label: "3x3 d2 s2 p1", input: [1, 3, 7, 7], outChannels: 5, kernel: (3, 3),
                   parameters: p(2, 1, dilation: 2), bias: false),
            Config(label: "3x3 d2 small", input: [1, 2, 5, 5], outChannels: 2, kernel: (3, 3),
                   parameters: p(1, 0, dilation: 2), finiteDifference: true),
            // Groups.
            Config(label: "3x3 p1 groups 2", input: [2, 6, 7, 7], outChannels: 4, kernel: (3, 3),
                   parameters: p(1, 1, groups: 2)),
            Config(label: "3x3 s2 groups 2", input: [3, 4, 7, 5], outChannels: 6, kernel: (3, 3),
                   parameters: p(2, 0, groups: 2), bias: false, offset: true),
            Config(label: "3x3 p1 groups 2 small", input: [2, 2, 4, 3], outChannels: 2, kernel: (3, 3),
                   parameters: p(1, 1, groups: 2), finiteDifference: true),
            // Depthwise (groups == C), with and without a channel multiplier.
            Config(label: "3x3 p1 depthwise", input: [2, 5, 7, 7], outChannels: 5, kernel: (3, 3),
                   parameters: p(1, 1, groups: 5), offset: true),
            Config(label: "3x3 s2 p1 depthwise x2", input: [1, 3, 13, 13], outChannels: 6, kernel: (3, 3),
                   parameters: p(2, 1, groups: 3)),
            Config(label: "3x3 p1 depthwise small", input: [2, 3, 3, 3], outChannels: 3, kernel: (3, 3),
                   parameters: p(1, 1, groups: 3), bias: false, finiteDifference: true),
            // Height and width differ in kernel, stride, padding and dilation.
            Config(label: "3x2 kernel s(1,2) p(2,1) d(2,1)", input: [2, 3, 7, 5], outChannels: 4, kernel: (3, 2),
                   parameters: Convolution2DParameters(stride: (1, 2), padding: (2, 1), dilation: (2, 1)), offset: true),
            Config(label: "1x3 kernel s(2,1) p(0,1) small", input: [1, 2, 5, 4], outChannels: 3, kernel: (1, 3),
                   parameters: Convolution2DParameters(stride: (2, 1), padding: (0, 1)), finiteDifference: true),
        ]
        // Mid-size: GEMMs large enough for CLBlast's indirect (padded,
        // tiled) kernels rather than the direct ones the small cases use.
        configs += [
            Config(label: "3x3 p1 mid-size", input: [2, 16, 33, 33], outChannels: 32, kernel: (3, 3),
                   parameters: p(1, 1), offset: true),
            Config(label: "3x3 p1 mid-size wide", input: [1, 64, 47, 47], outChannels: 64, kernel: (3, 3),
                   parameters: p(1, 1), bias: false),
            Config(label: "3x3 p1 mid-size groups 2", input: [2, 64, 33, 33], outChannels: 64, kernel: (3, 3),
                   parameters: p(1, 1, groups: 2), offset: true),
            // WRN-28-10's widths (160 and 320 channels, the stride-2 entry of
            // stage 3) on small images instead of 32² and 16².
            Config(label: "WRN-28-10 3x3 160->160", input: [2, 160, 6, 6], outChannels: 160, kernel: (3, 3),
                   parameters: p(1, 1), bias: false),
            Config(label: "WRN-28-10 3x3 s2 320->640", input: [1, 320, 6, 6], outChannels: 640, kernel: (3, 3),
                   parameters: p(2, 1), bias: false, offset: true),
        ]
        // Batch chunking: a column budget of 2.5 samples gives chunks of 2 + 1,
        // and a budget below one sample still makes progress one at a time.
        let chunkInput = [3, 3, 7, 7], chunkColumnBytes = 3 * 3 * 3 * 7 * 7 * 4
        configs.append(Config(label: "3x3 p1 chunks of 2", input: chunkInput, outChannels: 5, kernel: (3, 3),
                              parameters: p(1, 1), offset: true, columnLimitBytes: chunkColumnBytes * 5 / 2))
        // Padding 0 keeps this grouped case on the im2col path (depthwise and
        // grouped-direct take only "same" padding).
        configs.append(Config(label: "3x3 p0 groups 3 chunks of 1", input: chunkInput, outChannels: 3, kernel: (3, 3),
                              parameters: p(1, 0, groups: 3), columnLimitBytes: 1))

        // The specialised paths (see Convolution2DParameters.algorithm), on real
        // network shapes scaled down to a few spatial tiles, plus awkward
        // sizes. Each label names the path the shape is meant to take; the
        // dispatch test in ConvolutionShapeTests checks that it does.
        configs += [
            // pointwiseGEMM: ResNet-50 bottleneck 1x1s, groups 1 (one
            // strided-batched GEMM over the samples, weight at stride 0).
            Config(label: "pointwise resnet50 1x1 expand 64->256", input: [2, 64, 7, 7], outChannels: 256,
                   kernel: (1, 1), parameters: p(), offset: true),
            Config(label: "pointwise resnet50 1x1 reduce 256->64 batch 1", input: [1, 256, 7, 7], outChannels: 64,
                   kernel: (1, 1), parameters: p(), bias: false),
            Config(label: "pointwise 1x1 batch 3 13x13", input: [3, 7, 13, 13], outChannels: 3, kernel: (1, 1),
                   parameters: p(), offset: true),
            // Grouped 1x1 with thick groups (ShuffleNet-style, > 16 channels per
            // group): the wide relayout, one GEMM batched over groups.
            Config(label: "pointwise 1x1 groups 2 of 20->18", input: [3, 40, 5, 3], outChannels: 36, kernel: (1, 1),
                   parameters: p(1, 0, groups: 2), offset: true),
            Config(label: "pointwise 1x1 groups 3 of 17->5 dilation 2", input: [2, 51, 3, 2], outChannels: 15,
                   kernel: (1, 1), parameters: p(1, 0, dilation: 2, groups: 3), bias: false),
            Config(label: "pointwise 1x1 groups 2 of 20->18 batch 1", input: [1, 40, 4, 5], outChannels: 36,
                   kernel: (1, 1), parameters: p(1, 0, groups: 2), bias: false, offset: true),
            // Squeeze-and-excitation on [N, C, 1, 1]: one GEMM over the batch
            // per pass (strided-batched over thick groups).
            Config(label: "pointwise SE squeeze 1x1 image 48->12", input: [5, 48, 1, 1], outChannels: 12,
                   kernel: (1, 1), parameters: p(), offset: true),
            Config(label: "pointwise SE expand 1x1 image 12->48 batch 1", input: [1, 12, 1, 1], outChannels: 48,
                   kernel: (1, 1), parameters: p()),
            Config(label: "pointwise 1x1 image groups 2 of 20->18", input: [4, 40, 1, 1], outChannels: 36,
                   kernel: (1, 1), parameters: p(1, 0, groups: 2), bias: false, offset: true),
            // ResNet-50 projection shortcut, 1x1 stride 2: im2colGEMM (its
            // im2col of a 1x1 kernel is the strided gather).
            Config(label: "im2col resnet50 1x1 s2 projection 256->128", input: [2, 256, 7, 7], outChannels: 128,
                   kernel: (1, 1), parameters: p(2), bias: false, offset: true),

            // groupedDirect: ResNeXt-50 32x4d (cardinality 32, 4 channels per group).
            Config(label: "grouped resnext50 32x4d 3x3 s1", input: [2, 128, 8, 8], outChannels: 128, kernel: (3, 3),
                   parameters: p(1, 1, groups: 32), offset: true),
            Config(label: "grouped resnext50 32x4d 3x3 s2 batch 1", input: [1, 128, 7, 7], outChannels: 128,
                   kernel: (3, 3), parameters: p(2, 1, groups: 32), bias: false),
            // 8 channels per group (the next ResNeXt stage): two blocks of output channels.
            Config(label: "grouped 8 per group 3x3 s1 batch 3", input: [3, 64, 7, 7], outChannels: 64, kernel: (3, 3),
                   parameters: p(1, 1, groups: 8)),
            Config(label: "grouped 8 per group 3x3 s2", input: [2, 128, 8, 8], outChannels: 128, kernel: (3, 3),
                   parameters: p(2, 1, groups: 16), offset: true),
            // 16 per group, the limit of the path, over several 8x8 tiles.
            Config(label: "grouped 16 per group 3x3 s1 17x9", input: [1, 32, 17, 9], outChannels: 32, kernel: (3, 3),
                   parameters: p(1, 1, groups: 2), bias: false, offset: true),
            // Awkward: 3 in / 5 out per group (partial channel blocks), stride 2
            // over three tiles of dx rows (the dy patch of a tile at an odd row
            // offset needs all its rows).
            Config(label: "grouped 3->5 per group 3x3 s2 19x13", input: [1, 9, 19, 13], outChannels: 15, kernel: (3, 3),
                   parameters: p(2, 1, groups: 3), offset: true),
            Config(label: "grouped 2 per group 3x3 s1 on 1x1 image", input: [3, 4, 1, 1], outChannels: 4,
                   kernel: (3, 3), parameters: p(1, 1, groups: 2), finiteDifference: true),
            Config(label: "grouped 2 per group 3x3 s2 small", input: [1, 4, 3, 5], outChannels: 6, kernel: (3, 3),
                   parameters: p(2, 1, groups: 2), bias: false, finiteDifference: true),
            // Grouped 1x1 with thin groups: the RegNet cell's N groups of 2
            // channels, G = 1, 2 or 4 outputs (ConvRNN, ConvGRU, ConvLSTM).
            Config(label: "grouped 1x1 regnet cell lstm 2N=32 -> 4N", input: [2, 32, 8, 8], outChannels: 64,
                   kernel: (1, 1), parameters: p(1, 0, groups: 16), offset: true),
            Config(label: "grouped 1x1 regnet cell gru 2N=16 -> 2N 11x9", input: [3, 16, 11, 9], outChannels: 16,
                   kernel: (1, 1), parameters: p(1, 0, groups: 8)),
            Config(label: "grouped 1x1 regnet cell rnn split reduction", input: [3, 8, 28, 28], outChannels: 4,
                   kernel: (1, 1), parameters: p(1, 0, groups: 4), bias: false),
            Config(label: "grouped 1x1 groups 4 of 2->3", input: [3, 8, 5, 3], outChannels: 12, kernel: (1, 1),
                   parameters: p(1, 0, groups: 4), offset: true),
            Config(label: "grouped 1x1 groups 2 dilation 2 small", input: [2, 4, 3, 2], outChannels: 2,
                   kernel: (1, 1), parameters: p(1, 0, dilation: 2, groups: 2), bias: false, finiteDifference: true),
            // Positions N·OH·OW = 3·28·28 > 512: the backward-weight reduction is split.
            Config(label: "grouped 4 per group 3x3 s1 split reduction", input: [3, 8, 28, 28], outChannels: 8,
                   kernel: (3, 3), parameters: p(1, 1, groups: 2)),

            // depthwise: EfficientNet-B0 MBConv depthwise convolutions, scaled down.
            Config(label: "depthwise effnet-b0 3x3 s1 C32", input: [2, 32, 14, 14], outChannels: 32, kernel: (3, 3),
                   parameters: p(1, 1, groups: 32), offset: true),
            Config(label: "depthwise effnet-b0 3x3 s2 C96 batch 1", input: [1, 96, 14, 14], outChannels: 96,
                   kernel: (3, 3), parameters: p(2, 1, groups: 96), bias: false),
            Config(label: "depthwise effnet-b0 5x5 s2 C144", input: [2, 144, 9, 9], outChannels: 144, kernel: (5, 5),
                   parameters: p(2, 2, groups: 144), offset: true),
            Config(label: "depthwise effnet-b0 5x5 s1 C240", input: [1, 240, 7, 7], outChannels: 240, kernel: (5, 5),
                   parameters: p(1, 2, groups: 240)),
            Config(label: "depthwise effnet-b0 3x3 s2 C240 batch 3", input: [3, 240, 7, 7], outChannels: 240,
                   kernel: (3, 3), parameters: p(2, 1, groups: 240), bias: false, offset: true),
            // Awkward sizes: non-square, several tiles, images smaller than the kernel.
            Config(label: "depthwise 3x3 s2 non-square 7x13", input: [2, 7, 7, 13], outChannels: 7, kernel: (3, 3),
                   parameters: p(2, 1, groups: 7), offset: true),
            Config(label: "depthwise 5x5 s1 17x17", input: [1, 3, 17, 17], outChannels: 3, kernel: (5, 5),
                   parameters: p(1, 2, groups: 3), bias: false),
            Config(label: "depthwise 3x3 s2 19x17", input: [2, 3, 19, 17], outChannels: 3, kernel: (3, 3),
                   parameters: p(2, 1, groups: 3), offset: true),
            Config(label: "depthwise 3x3 s1 on 1x1 image", input: [3, 5, 1, 1], outChannels: 5, kernel: (3, 3),
                   parameters: p(1, 1, groups: 5), finiteDifference: true),
            Config(label: "depthwise 5x5 s2 on 3x3 image", input: [1, 3, 3, 3], outChannels: 3, kernel: (5, 5),
                   parameters: p(2, 2, groups: 3), finiteDifference: true),
            Config(label: "depthwise 5x5 s2 small", input: [2, 2, 6, 5], outChannels: 2, kernel: (5, 5),
                   parameters: p(2, 2, groups: 2), bias: false, finiteDifference: true),
            // Wide rows: the GPU kernels' 2 and 4 outputs per item, with a ragged last item.
            Config(label: "depthwise 3x3 s1 wide 9x70", input: [1, 3, 9, 70], outChannels: 3, kernel: (3, 3),
                   parameters: p(1, 1, groups: 3), offset: true),
            Config(label: "depthwise 5x5 s2 wide 6x67", input: [2, 2, 6, 67], outChannels: 2, kernel: (5, 5),
                   parameters: p(2, 2, groups: 2), bias: false),
            // Positions N·OH·OW = 3·28·28: the backward-weight reduction is split.
            Config(label: "depthwise 3x3 s1 split reduction", input: [3, 8, 28, 28], outChannels: 8, kernel: (3, 3),
                   parameters: p(1, 1, groups: 8), offset: true),
            // Not depthwise-path shapes: 7x7 and dilated depthwise stay on im2col.
            Config(label: "im2col depthwise 7x7 p3", input: [1, 4, 9, 9], outChannels: 4, kernel: (7, 7),
                   parameters: p(1, 3, groups: 4)),
            Config(label: "im2col depthwise 3x3 d2 p2", input: [2, 4, 7, 7], outChannels: 4, kernel: (3, 3),
                   parameters: p(1, 2, dilation: 2, groups: 4), bias: false),
        ]

        var cases = configs.map { c in
            let weight = [c.outChannels, c.input[1] / c.parameters.groups, c.kernel.0, c.kernel.1]
            var shapes = [c.input, weight]
            if c.bias { shapes.append([c.outChannels]) }
            let label = "x \(formatShape(c.input)) w \(formatShape(weight)) \(c.label)"
                + (c.bias ? " bias" : "") + (c.offset ? " offset" : "")
            return ConformanceCase(
                op: "conv2d", label: label,
                primitive: Convolution2D(c.parameters, columnBufferLimitBytes: c.columnLimitBytes),
                inputShapes: shapes, offsetInputs: c.offset, forward: tol, backward: tol,
                finiteDifference: c.finiteDifference)
        }

        // The depthwise and grouped kernels (Kernels/depthwise.cl, grouped.cl) and the pointwise
        // CLBlast path forced on every shape of their path: CPU devices run most of those shapes on
        // the vector kernels, GPUs on these.
        for c in configs {
            let weight = [c.outChannels, c.input[1] / c.parameters.groups, c.kernel.0, c.kernel.1]
            guard let path = try? c.parameters.algorithm(input: c.input, weight: weight),
                  path == .depthwise || path == .groupedDirect || path == .pointwiseGEMM else { continue }
            var shapes = [c.input, weight]
            if c.bias { shapes.append([c.outChannels]) }
            cases.append(ConformanceCase(
                op: "conv2d", label: "x \(formatShape(c.input)) w \(formatShape(weight)) \(c.label) forced \(path)"
                    + (c.bias ? " bias" : "") + (c.offset ? " offset" : ""),
                primitive: Convolution2D(c.parameters, forcedChoice: ConvChoice(path)),
                inputShapes: shapes, offsetInputs: c.offset, forward: tol, backward: tol,
                finiteDifference: c.finiteDifference))
        }

        // Fused activations (ConvActivation): in the implicit-GEMM kernels' epilogue for each form,
        // and as a pass after the others (im2col, depthwise, pointwise), with and without bias;
        // SiLU's second output (the pre-activation) is checked and differentiated too (finite
        // differences for SiLU only: ReLU's kink makes them disagree wherever an output is near 0).
        let fusedChoices: [ConvChoice?] = [
            ConvChoice(.implicitGEMM, ConvGemmParameters.searchSpace.first { $0.form == .vector }!),
            ConvChoice(.implicitGEMM, ConvGemmParameters.searchSpace.first { $0.form == .direct }!),
            ConvChoice(.implicitGEMM, ConvGemmParameters.searchSpace.first { $0.form == .tiled }!),
            ConvChoice(.im2colGEMM), nil,
            // The tensor-core sets' epilogues (TF32 products; emulated on devices without them).
            ConvChoice(.implicitGEMM, ConvGemmParameters.searchSpace.last { $0.form == .tensorCore }!),
            ConvChoice(.implicitGEMM, ConvGemmParameters.searchSpace.first { $0.form == .tensorCore }!),
        ]
        let fusedGeometries: [(String, [Int], Int, (Int, Int), Convolution2DParameters)] = [
            ("3x3 s2 p1", [2, 5, 9, 7], 6, (3, 3), p(2, 1)),
            ("depthwise 3x3", [2, 4, 6, 5], 4, (3, 3), p(1, 1, groups: 4)),
            ("1x1", [2, 6, 4, 3], 5, (1, 1), p(1, 0)),
        ]
        for activation in [ConvActivation.relu, .silu] {
            for (index, choice) in fusedChoices.enumerated() {
                let (name, input, out, kernel, parameters) = fusedGeometries[index % fusedGeometries.count]
                let weight = [out, input[1] / parameters.groups, kernel.0, kernel.1]
                let bias = index % 2 == 0
                cases.append(ConformanceCase(
                    op: "conv2d_\(activation.rawValue)",
                    label: "x \(formatShape(input)) w \(formatShape(weight)) \(name) "
                        + (choice.map { "forced \($0)" } ?? "selected") + (bias ? " bias" : ""),
                    primitive: Convolution2D(parameters, activation: activation, forcedChoice: choice),
                    inputShapes: bias ? [input, weight, [out]] : [input, weight], offsetInputs: index == 1,
                    forward: tolerance(choice), backward: tolerance(choice),
                    finiteDifference: index == 4 && activation == .silu))
            }
        }

        // Every algorithm that covers every geometry, forced: im2col + CLBlast and each
        // implicit-GEMM parameter set (Kernels/convgemm.cl), forward and both gradients, on
        // awkward sizes that leave every tile partial: 3x3 stride 1 and 2, the 7x7 stride-2
        // stem, 5x5, 1x1 stride 2, grouped with dilation. Each set gets three of the six
        // geometries in turn, so all geometries and all kernels are covered.
        let sweep: [(String, [Int], Int, (Int, Int), Convolution2DParameters)] = [
            ("3x3 p1 non-square", [2, 5, 9, 7], 11, (3, 3), p(1, 1)),
            ("3x3 s2 p1", [2, 6, 11, 13], 7, (3, 3), p(2, 1)),
            ("7x7 s2 p3 stem", [2, 3, 17, 15], 9, (7, 7), p(2, 3)),
            ("5x5 p2", [1, 4, 9, 8], 6, (5, 5), p(1, 2)),
            ("1x1 s2", [3, 9, 7, 7], 5, (1, 1), p(2)),
            ("3x3 d2 p2 groups 3", [2, 9, 8, 9], 6, (3, 3), p(1, 2, dilation: 2, groups: 3)),
        ]
        let choices = [ConvChoice(.im2colGEMM)] + ConvGemmParameters.searchSpace.map { ConvChoice(.implicitGEMM, $0) }
        for (index, choice) in choices.enumerated() {
            for step in 0..<3 {
                let (name, input, out, kernel, parameters) = sweep[(2 * index + step) % sweep.count]
                let weight = [out, input[1] / parameters.groups, kernel.0, kernel.1]
                let bias = step == 0
                cases.append(ConformanceCase(
                    op: "conv2d", label: "x \(formatShape(input)) w \(formatShape(weight)) \(name) forced \(choice)"
                        + (bias ? " bias" : ""),
                    primitive: Convolution2D(parameters, forcedChoice: choice),
                    inputShapes: bias ? [input, weight, [out]] : [input, weight], offsetInputs: step == 1,
                    forward: tolerance(choice), backward: tolerance(choice), finiteDifference: false))
            }
        }
        return cases
    }
}
