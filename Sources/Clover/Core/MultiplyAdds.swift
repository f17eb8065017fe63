/// A primitive that knows its multiply-add count from shapes (convolutions,
/// matrix products), for model reports such as `clover models`.
public protocol MultiplyAddCounting {
    func multiplyAdds(inputs: [[Int]], outputs: [[Int]]) -> Int
}

/// Counts the multiply-adds of every counting primitive applied on a device
/// inside ``count(on:_:)`` — typically one forward pass on the
/// ``Device/meta`` device, which costs nothing.
public enum MultiplyAdds {
    /// The multiply-adds of the counting primitives that `body` applies on
    /// `device` (primitives on other devices are not counted). Nests: an
    /// inner count is not added to the outer one.
    public static func count(on device: Device, _ body: () throws -> Void) rethrows -> Int {
        let saved = device.multiplyAddTally
        device.multiplyAddTally = 0
        defer { device.multiplyAddTally = saved }
        try body()
        return device.multiplyAddTally ?? 0
    }

    static func record(_ primitive: Primitive, on device: Device, inputs: [[Int]], outputs: [[Int]]) {
        guard device.multiplyAddTally != nil, let counting = primitive as? MultiplyAddCounting else { return }
        device.multiplyAddTally! += counting.multiplyAdds(inputs: inputs, outputs: outputs)
    }
}

extension Convolution2D: MultiplyAddCounting {
    /// N·O·OH·OW·(C/groups)·KH·KW.
    public func multiplyAdds(inputs: [[Int]], outputs: [[Int]]) -> Int {
        let w = inputs[1]
        return outputs[0].reduce(1, *) * w[1] * w[2] * w[3]
    }
}

extension MatMul: MultiplyAddCounting {
    /// batch·m·n·k.
    public func multiplyAdds(inputs: [[Int]], outputs: [[Int]]) -> Int {
        guard let d = try? dimensions(inputs) else { return 0 }
        return d.batch * d.m * d.n * d.k
    }
}

extension LinearMap: MultiplyAddCounting {
    /// rows·out·in.
    public func multiplyAdds(inputs: [[Int]], outputs: [[Int]]) -> Int {
        outputs[0].reduce(1, *) * inputs[1][1]
    }
}
