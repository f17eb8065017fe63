import Clover

extension ConformanceSuite {
    /// 2-D convolution, forward and all three gradients (through `Conv2D.vjp`,
    /// which runs the backward-data, backward-weight and backward-bias
    /// primitives): batch 1 and more, odd and non-square spatial sizes, odd
    /// channel counts, 1x1 to 7x7 kernels, stride, padding, dilation,
    /// grouped and depthwise weights, with and without bias, offset inputs,
    /// batch chunking, a few mid-size GEMMs, and finite differences on the
    /// small cases.
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

        struct Config {
            var label: String
            var input: [Int]            // [N, C, H, W]
            var outChannels: Int
            var kernel: (Int, Int)
            var parameters: Conv2DParameters
            var bias = true
            var offset = false
            var finiteDifference = false
            var columnLimitBytes = defaultConvColumnBufferLimitBytes
        }
        func p(_ stride: Int = 1, _ padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Conv2DParameters {
            Conv2DParameters(stride: stride, padding: padding, dilation: dilation, groups: groups)
        }

        var configs: [Config] = [
            // 1x1 kernels (pointwise), stride 1 and 2.
            Config(label: "1x1", input: [2, 3, 7, 7], outChannels: 5, kernel: (1, 1), parameters: p()),
            Config(label: "1x1 s2", input: [1, 5, 13, 13], outChannels: 3, kernel: (1, 1), parameters: p(2),
                   bias: false, offset: true),
            Config(label: "1x1 on 1x1 image", input: [3, 5, 1, 1], outChannels: 3, kernel: (1, 1), parameters: p(),
                   finiteDifference: true),
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
                   parameters: Conv2DParameters(stride: (1, 2), padding: (2, 1), dilation: (2, 1)), offset: true),
            Config(label: "1x3 kernel s(2,1) p(0,1) small", input: [1, 2, 5, 4], outChannels: 3, kernel: (1, 3),
                   parameters: Conv2DParameters(stride: (2, 1), padding: (0, 1)), finiteDifference: true),
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
        ]
        // Batch chunking: a column budget of 2.5 samples gives chunks of 2 + 1,
        // and a budget below one sample still makes progress one at a time.
        let chunkInput = [3, 3, 7, 7], chunkColumnBytes = 3 * 3 * 3 * 7 * 7 * 4
        configs.append(Config(label: "3x3 p1 chunks of 2", input: chunkInput, outChannels: 5, kernel: (3, 3),
                              parameters: p(1, 1), offset: true, columnLimitBytes: chunkColumnBytes * 5 / 2))
        configs.append(Config(label: "3x3 p1 groups 3 chunks of 1", input: chunkInput, outChannels: 3, kernel: (3, 3),
                              parameters: p(1, 1, groups: 3), columnLimitBytes: 1))

        return configs.map { c in
            let weight = [c.outChannels, c.input[1] / c.parameters.groups, c.kernel.0, c.kernel.1]
            var shapes = [c.input, weight]
            if c.bias { shapes.append([c.outChannels]) }
            let label = "x \(formatShape(c.input)) w \(formatShape(weight)) \(c.label)"
                + (c.bias ? " bias" : "") + (c.offset ? " offset" : "")
            return ConformanceCase(
                op: "conv2d", label: label,
                primitive: Conv2D(c.parameters, columnBufferLimitBytes: c.columnLimitBytes),
                inputShapes: shapes, offsetInputs: c.offset, forward: tol, backward: tol,
                finiteDifference: c.finiteDifference)
        }
    }
}
