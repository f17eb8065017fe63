import Clover

extension ConformanceSuite {
    /// Embedding lookup and its scatter-add gradient: repeated ids (drawn
    /// from a small range so most rows repeat and some never occur), a single
    /// repeated token, awkward vocabulary and width, buffer offsets.
    static func embeddingCases() -> [ConformanceCase] {
        // The lookup copies values: exact. The gradient sums each id's dy rows
        // in float (at most ~40 terms here) against Double.
        let forward = Tolerance(absolute: 0, relative: 0)
        let backward = Tolerance(absolute: 1e-6, relative: 1e-5)
        var rng = SeededGenerator(seed: 7)
        func ids(_ shape: [Int], below bound: Int) -> TokenIDs {
            let n = shape.reduce(1, *)
            return try! TokenIDs((0..<n).map { _ in Int32.random(in: 0..<Int32(bound), using: &rng) }, shape: shape)
        }
        typealias Setup = (label: String, ids: TokenIDs, vocabulary: Int, dim: Int, offset: Bool, fd: Bool)
        let setups: [Setup] = [
            ("ids 3x13 from 10 of 97, dim 32", ids([3, 13], below: 10), 97, 32, false, false),
            ("ids 1x33 from 1000, dim 48", ids([1, 33], below: 1000), 1000, 48, true, false),
            ("ids 3x33 from 5 of 30522, dim 32", ids([3, 33], below: 5), 30522, 32, false, false),
            ("ids 1x1, vocab 1, dim 1", try! TokenIDs([0], shape: [1, 1]), 1, 1, true, true),
            ("ids 3x7 all the same token, vocab 13, dim 3", try! TokenIDs([Int32](repeating: 12, count: 21), shape: [3, 7]),
             13, 3, false, true),
            ("ids 2x5 from 4 of 7, dim 3", ids([2, 5], below: 4), 7, 3, true, true),
            ("ids 97 (rank 1) from 13, dim 7", ids([97], below: 13), 13, 7, false, false),
        ]
        return setups.map { s in
            ConformanceCase(op: "embedding", label: s.label, primitive: EmbeddingLookup(ids: s.ids),
                            inputShapes: [[s.vocabulary, s.dim]], offsetInputs: s.offset,
                            forward: forward, backward: backward, finiteDifference: s.fd)
        }
    }
}
