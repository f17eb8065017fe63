import CloverRuntime
import CloverKernels

// Fused ConvLSTM / ConvGRU gate arithmetic. Kernels: Kernels/convrnn.cl.
//
// The regulator's convs (grouped 1x1 over [X, H], then depthwise 3x3) turn
// the concatenated input into gate pre-activations; these primitives do all
// the pointwise gate work in one launch each. Pre-activations are
// `[B, G·N, H, W]` with the G gates of state channel n adjacent (channel
// n·G + k), because a grouped conv with one group per state channel writes
// its outputs that way. States are `[B, N, H, W]`.
//
// The plain ConvRNN regulator needs only `tanh` of its pre-activation.

/// Checks `pre` is `[B, G·N, H, W]` for a state `[B, N, H, W]`.
private func checkGates(_ op: String, pre: [Int], state: [Int], gates: Int, all: [[Int]]) throws {
    guard pre.count == 4, state.count == 4, pre[0] == state[0], pre[2] == state[2], pre[3] == state[3],
          pre[1] == gates * state[1] else {
        throw CloverError.shapeMismatch(op: op, shapes: all,
                                        reason: "gate pre-activations must be [B, \(gates)·N, H, W] for a state [B, N, H, W]")
    }
}

private func checkSame(_ op: String, _ shapes: [[Int]], _ indices: [Int], all: [[Int]]) throws {
    for i in indices where shapes[i] != shapes[indices[0]] {
        throw CloverError.shapeMismatch(op: op, shapes: all, reason: "state tensors must share one shape")
    }
}

/// Reference: index of gate k for state element e.
private func gateIndex(_ e: Int, channels: Int, hw: Int, gates: Int, _ k: Int) -> Int {
    let s = e % hw, n = (e / hw) % channels, b = e / hw / channels
    return ((b * channels + n) * gates + k) * hw + s
}

private func sigmoid(_ x: Double) -> Double { 1 / (1 + _exp(-x)) }

/// Launches one of the state kernels over `total` state elements; the
/// arguments are built once the extents are known to fit an `int`.
private func launchStateKernel<Arguments: KernelArguments>(_ context: OpenCLContext, total: Int,
                                                           _ arguments: @autoclosure () -> Arguments) throws {
    // Gate indices reach 4 · total (an LSTM's pre-activations).
    try checkInt32Extents(op: Arguments.kernel.name, [4, total])
    let kernel = try context.kernel(Arguments.kernel)
    try context.launch(kernel, global: [total], local: [pointwiseGroupSize], arguments())
}

/// ConvLSTM cell update. Inputs: pre `[B, 4N, H, W]` (gates i, f, o, g),
/// c `[B, N, H, W]`. Outputs: h′ = o·tanh(c′), c′ = f·c + i·g.
public struct LSTMCell: Primitive {
    public init() {}
    public var name: String { "lstm_cell" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects pre and c") }
        try checkGates(name, pre: inputs[0], state: inputs[1], gates: 4, all: inputs)
        return [inputs[1], inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let pre = inputs[0], c = inputs[1], n = shapes[1][1], hw = shapes[1][2] * shapes[1][3]
        var h = [Float](repeating: 0, count: c.count), cn = h
        for e in 0..<c.count {
            let i = sigmoid(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 4, 0)]))
            let f = sigmoid(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 4, 1)]))
            let o = sigmoid(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 4, 2)]))
            let g = _tanh(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 4, 3)]))
            let cNew = f * Double(c[e]) + i * g
            cn[e] = Float(cNew)
            h[e] = Float(o * _tanh(cNew))
        }
        return [h, cn]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[1].shape, total = inputs[1].count
        try launchStateKernel(context, total: total, LstmCellForwardArguments(
            total: Int32(total), nCh: Int32(s[1]), hw: Int32(s[2] * s[3]),
            pre: inputs[0].view, c: inputs[1].view, hOut: outputs[0].view, cOut: outputs[1].view))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try apply(LSTMCellBackward(), [cotangents[0], cotangents[1], inputs[0], inputs[1]])
    }
}

/// Gradient of ``LSTMCell``. Inputs: dh′, dc′, pre, c. Outputs: dpre, dc
/// (the gradient carried through C to the previous block).
public struct LSTMCellBackward: Primitive {
    public init() {}
    public var name: String { "lstm_cell_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 4 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dh, dc', pre, c") }
        try checkSame(name, inputs, [0, 1, 3], all: inputs)
        try checkGates(name, pre: inputs[2], state: inputs[3], gates: 4, all: inputs)
        return [inputs[2], inputs[3]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dh = inputs[0], dcn = inputs[1], pre = inputs[2], c = inputs[3]
        let n = shapes[3][1], hw = shapes[3][2] * shapes[3][3]
        var dpre = [Float](repeating: 0, count: pre.count), dc = [Float](repeating: 0, count: c.count)
        for e in 0..<c.count {
            let idx = (0..<4).map { gateIndex(e, channels: n, hw: hw, gates: 4, $0) }
            let i = sigmoid(Double(pre[idx[0]])), f = sigmoid(Double(pre[idx[1]]))
            let o = sigmoid(Double(pre[idx[2]])), g = _tanh(Double(pre[idx[3]]))
            let tc = _tanh(f * Double(c[e]) + i * g)
            let dTotal = Double(dcn[e]) + Double(dh[e]) * o * (1 - tc * tc)
            dpre[idx[0]] = Float(dTotal * g * i * (1 - i))
            dpre[idx[1]] = Float(dTotal * Double(c[e]) * f * (1 - f))
            dpre[idx[2]] = Float(Double(dh[e]) * tc * o * (1 - o))
            dpre[idx[3]] = Float(dTotal * i * (1 - g * g))
            dc[e] = Float(dTotal * f)
        }
        return [dpre, dc]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[3].shape, total = inputs[3].count
        try launchStateKernel(context, total: total, LstmCellBackwardArguments(
            total: Int32(total), nCh: Int32(s[1]), hw: Int32(s[2] * s[3]),
            dh: inputs[0].view, dcn: inputs[1].view, pre: inputs[2].view, c: inputs[3].view,
            dpre: outputs[0].view, dc: outputs[1].view))
    }
}

/// ConvGRU first stage. Inputs: pre `[B, 2N, H, W]` (gates z, r), h.
/// Outputs: z = σ(p_z) and r·h with r = σ(p_r) — the reset state that the
/// candidate's convs consume as `[X, r·H]`.
public struct GRUGates: Primitive {
    public init() {}
    public var name: String { "gru_gates" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 2 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects pre and h") }
        try checkGates(name, pre: inputs[0], state: inputs[1], gates: 2, all: inputs)
        return [inputs[1], inputs[1]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let pre = inputs[0], h = inputs[1], n = shapes[1][1], hw = shapes[1][2] * shapes[1][3]
        var z = [Float](repeating: 0, count: h.count), rh = z
        for e in 0..<h.count {
            z[e] = Float(sigmoid(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 2, 0)])))
            rh[e] = Float(sigmoid(Double(pre[gateIndex(e, channels: n, hw: hw, gates: 2, 1)])) * Double(h[e]))
        }
        return [z, rh]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[1].shape, total = inputs[1].count
        try launchStateKernel(context, total: total, GruGatesForwardArguments(
            total: Int32(total), nCh: Int32(s[1]), hw: Int32(s[2] * s[3]),
            pre: inputs[0].view, h: inputs[1].view, z: outputs[0].view, rh: outputs[1].view))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try apply(GRUGatesBackward(), [cotangents[0], cotangents[1], inputs[0], inputs[1]])
    }
}

/// Gradient of ``GRUGates``. Inputs: dz, d(r·h), pre, h. Outputs: dpre, dh.
public struct GRUGatesBackward: Primitive {
    public init() {}
    public var name: String { "gru_gates_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 4 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dz, drh, pre, h") }
        try checkSame(name, inputs, [0, 1, 3], all: inputs)
        try checkGates(name, pre: inputs[2], state: inputs[3], gates: 2, all: inputs)
        return [inputs[2], inputs[3]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let dz = inputs[0], drh = inputs[1], pre = inputs[2], h = inputs[3]
        let n = shapes[3][1], hw = shapes[3][2] * shapes[3][3]
        var dpre = [Float](repeating: 0, count: pre.count), dh = [Float](repeating: 0, count: h.count)
        for e in 0..<h.count {
            let zi = gateIndex(e, channels: n, hw: hw, gates: 2, 0), ri = gateIndex(e, channels: n, hw: hw, gates: 2, 1)
            let z = sigmoid(Double(pre[zi])), r = sigmoid(Double(pre[ri]))
            dpre[zi] = Float(Double(dz[e]) * z * (1 - z))
            dpre[ri] = Float(Double(drh[e]) * Double(h[e]) * r * (1 - r))
            dh[e] = Float(Double(drh[e]) * r)
        }
        return [dpre, dh]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let s = inputs[3].shape, total = inputs[3].count
        try launchStateKernel(context, total: total, GruGatesBackwardArguments(
            total: Int32(total), nCh: Int32(s[1]), hw: Int32(s[2] * s[3]),
            dz: inputs[0].view, drh: inputs[1].view, pre: inputs[2].view, h: inputs[3].view,
            dpre: outputs[0].view, dh: outputs[1].view))
    }
}

/// ConvGRU output, PyTorch `nn.GRU`'s convention: h′ = (1−z)·tanh(p̂) + z·h.
/// Inputs: z, p̂ (candidate pre-activation), h — all `[B, N, H, W]`.
public struct GRUOutput: Primitive {
    public init() {}
    public var name: String { "gru_output" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 3 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects z, p̂, h") }
        try checkSame(name, inputs, [0, 1, 2], all: inputs)
        return [inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let z = inputs[0], p = inputs[1], h = inputs[2]
        var out = [Float](repeating: 0, count: z.count)
        for e in 0..<z.count {
            let ze = Double(z[e])
            out[e] = Float((1 - ze) * _tanh(Double(p[e])) + ze * Double(h[e]))
        }
        return [out]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let total = inputs[0].count
        try launchStateKernel(context, total: total, GruOutputForwardArguments(
            total: Int32(total), z: inputs[0].view, pHat: inputs[1].view, h: inputs[2].view,
            hOut: outputs[0].view))
    }

    public func vjp(inputs: [Tensor], outputs: [Tensor], cotangents: [Tensor]) throws -> [Tensor?] {
        try apply(GRUOutputBackward(), [cotangents[0]] + inputs)
    }
}

/// Gradient of ``GRUOutput``. Inputs: dh′, z, p̂, h. Outputs: dz, dp̂, dh.
public struct GRUOutputBackward: Primitive {
    public init() {}
    public var name: String { "gru_output_backward" }

    public func outputShapes(for inputs: [[Int]]) throws -> [[Int]] {
        guard inputs.count == 4 else { throw CloverError.shapeMismatch(op: name, shapes: inputs, reason: "expects dh', z, p̂, h") }
        try checkSame(name, inputs, [0, 1, 2, 3], all: inputs)
        return [inputs[0], inputs[0], inputs[0]]
    }

    public func evalReference(_ inputs: [[Float]], shapes: [[Int]]) throws -> [[Float]] {
        let d = inputs[0], z = inputs[1], p = inputs[2], h = inputs[3]
        var dz = [Float](repeating: 0, count: d.count), dp = dz, dh = dz
        for e in 0..<d.count {
            let hh = _tanh(Double(p[e])), ze = Double(z[e]), de = Double(d[e])
            dz[e] = Float(de * (Double(h[e]) - hh))
            dp[e] = Float(de * (1 - ze) * (1 - hh * hh))
            dh[e] = Float(de * ze)
        }
        return [dz, dp, dh]
    }

    public func evalOpenCL(_ inputs: [Tensor], outputs: [Tensor], on context: OpenCLContext) throws {
        let total = inputs[0].count
        try launchStateKernel(context, total: total, GruOutputBackwardArguments(
            total: Int32(total), dho: inputs[0].view, z: inputs[1].view, pHat: inputs[2].view, h: inputs[3].view,
            dz: outputs[0].view, dp: outputs[1].view, dh: outputs[2].view))
    }
}
