import CloverData
import Foundation
import XCTest

/// The OSCAR corpus format: what is written reads back, and every bad input
/// is an error naming the file and the line or id at fault.
final class OSCARCorpusTests: XCTestCase {
    private let vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "a", "red", "shoe", "bag", "##s"]

    private func sample(_ id: String, _ caption: String, regions: Int = 2, featureSize: Int = 3) -> OSCARSample {
        let boxes = (0..<regions).map { r in [Float(r) * 0.1, 0, Float(r) * 0.1 + 0.5, 1] }
        let features = (0..<(regions * featureSize)).map { Float($0) + Float(id.count) / 8 }
        return OSCARSample(id: id, caption: caption, tags: ["shoe", "red bag"], boxes: boxes, features: features)
    }

    private func directory() -> String {
        let path = NSTemporaryDirectory() + "clover-oscar-corpus-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func writeCorpus() throws -> (String, [OSCARSample], [OSCARSample]) {
        let path = directory()
        let train = [sample("t1", "a red shoe"), sample("t2", "a bag", regions: 3)]
        let test = [sample("e1", "red bags", regions: 1)]
        try OSCARCorpus.write(directory: path, vocabulary: vocabulary, train: train, test: test, featureSize: 3)
        return (path, train, test)
    }

    /// Replaces `file` of the corpus at `path` with `text`.
    private func overwrite(_ path: String, _ file: String, _ text: String) throws {
        try text.write(toFile: path + "/" + file, atomically: true, encoding: .utf8)
    }

    private func assertError(_ path: String, mentions fragments: [String], line: UInt = #line) {
        XCTAssertThrowsError(try OSCARCorpus(directory: path), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is DataError, "\(type(of: error)): \(text)", line: line)
            for fragment in fragments { XCTAssertTrue(text.contains(fragment), "'\(fragment)' not in: \(text)", line: line) }
        }
    }

    func testWrittenCorpusReadsBack() throws {
        let (path, train, test) = try writeCorpus()
        let corpus = try OSCARCorpus(directory: path)
        XCTAssertEqual(corpus.train, train)
        XCTAssertEqual(corpus.test, test)
        XCTAssertEqual(corpus.featureSize, 3)
        XCTAssertEqual(corpus.tokenizer.vocabulary, vocabulary)
        XCTAssertEqual(corpus.tokenizer.tokenize(test[0].caption), ["red", "bag", "##s"])
        // A region's input is its features, then (x1, y1, x2, y2, w, h).
        XCTAssertEqual(train[1].regionInput(2, featureSize: 3), [6, 7, 8].map { $0 + 0.25 } + [0.2, 0, 0.7, 1, 0.5, 1])
    }

    func testBadLinesNameFileAndLine() throws {
        let (path, _, _) = try writeCorpus()
        let good = try String(contentsOfFile: path + "/train.jsonl", encoding: .utf8)
        let first = good.split(separator: "\n")[0]
        let cases: [(String, [String])] = [
            ("\(first)\n{\"id\": \"x\"}\n", ["train.jsonl line 2", "missing \"caption\""]),
            ("not json\n", ["train.jsonl line 1", "not a sample"]),
            ("\(first)\n\n\(first)\n", ["train.jsonl line 3", "\"t1\" appears twice"]),
            ("{\"id\": \"t1\", \"caption\": \" \", \"tags\": [], \"boxes\": [[0, 0, 1, 1]]}\n", ["line 1", "caption is empty"]),
            ("{\"id\": \"t1\", \"caption\": \"a\", \"tags\": [], \"boxes\": []}\n", ["line 1", "no boxes"]),
            ("{\"id\": \"t1\", \"caption\": \"a\", \"tags\": [], \"boxes\": [[0, 0, 1]]}\n", ["line 1", "box 0 has 3 numbers"]),
            ("{\"id\": \"t1\", \"caption\": \"a\", \"tags\": [], \"boxes\": [[0.5, 0, 0.2, 1], [0, 0, 1, 1]]}\n",
             ["line 1", "box 0", "not inside the image"]),
            ("{\"id\": \"t1\", \"caption\": \"a\", \"tags\": [], \"boxes\": [[0, 0, 1, 1.5]]}\n", ["line 1", "not inside"]),
            ("", ["train.jsonl", "holds no samples"]),
        ]
        for (text, fragments) in cases {
            try overwrite(path, "train.jsonl", text)
            assertError(path, mentions: fragments)
        }
    }

    func testFeaturesMustMatchTheSamples() throws {
        let (path, _, _) = try writeCorpus()
        func features(_ entries: [(String, [Int], [Float])]) throws {
            var file = SafeTensors()
            for (name, shape, values) in entries { file.append(name, shape: shape, values: values) }
            try file.write(path: path + "/features.safetensors")
        }
        let t2 = [Float](repeating: 1, count: 9), e1: [Float] = [1, 2, 3]
        try features([("t2", [3, 3], t2), ("e1", [1, 3], e1)])
        assertError(path, mentions: ["features.safetensors", "no tensor named \"t1\"", "train.jsonl line 1"])
        try features([("t1", [3, 2], [Float](repeating: 0, count: 6)), ("t2", [3, 3], t2), ("e1", [1, 3], e1)])
        assertError(path, mentions: ["\"t1\" has shape [3, 2]", "2 box(es)"])
        try features([("t1", [2, 4], [Float](repeating: 0, count: 8)), ("t2", [3, 3], t2), ("e1", [1, 3], e1)])
        assertError(path, mentions: ["\"t2\" has 3 features per region, earlier samples 4"])
        try features([("t1", [2, 3], [0, 1, .nan, 3, 4, 5]), ("t2", [3, 3], t2), ("e1", [1, 3], e1)])
        assertError(path, mentions: ["\"t1\" holds the non-finite value"])
        try FileManager.default.removeItem(atPath: path + "/features.safetensors")
        assertError(path, mentions: ["features.safetensors", "no such file"])
        try "not safetensors".write(toFile: path + "/features.safetensors", atomically: true, encoding: .utf8)
        assertError(path, mentions: ["features.safetensors", "is not a readable safetensors file"])
    }

    func testVocabularyAndDirectoryProblemsAreNamed() throws {
        assertError("/nonexistent/corpus", mentions: ["/nonexistent/corpus", "no such corpus directory"])
        let (path, _, _) = try writeCorpus()
        try overwrite(path, "vocab.txt", "[PAD]\n[CLS]\n[SEP]\n[UNK]\nshoe\n")
        assertError(path, mentions: ["vocab.txt", "no [MASK] token"])
    }

    func testWriteRefusesFeaturesThatDoNotMatchTheBoxes() {
        let bad = OSCARSample(id: "b", caption: "a", tags: [], boxes: [[0, 0, 1, 1]], features: [1, 2])
        XCTAssertThrowsError(try OSCARCorpus.write(directory: directory(), vocabulary: vocabulary, train: [bad],
                                                   test: [bad], featureSize: 3)) { error in
            XCTAssertTrue("\(error)".contains("sample \"b\" has 2 feature values for 1 box(es) of 3"), "\(error)")
        }
    }
}
