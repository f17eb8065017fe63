import CloverData
import Foundation
import XCTest

/// The WordPiece tokenizer against the tokenizations BERT's reference
/// implementation (google-research/bert, tokenization_test.py) gives.
final class WordPieceTests: XCTestCase {
    /// tokenization_test.py's vocabulary.
    private let vocabulary = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",",
                              "low", "lowest"]

    func testFullTokenizerMatchesBERT() throws {
        let tokenizer = try WordPieceTokenizer(vocabulary: vocabulary)
        XCTAssertEqual(tokenizer.tokenize("UNwant\u{00E9}d,running"), ["un", "##want", "##ed", ",", "runn", "##ing"])
        XCTAssertEqual(tokenizer.ids(for: "UNwant\u{00E9}d,running"), [7, 4, 5, 10, 8, 9])
    }

    func testWordPiecesMatchBERT() throws {
        let tokenizer = try WordPieceTokenizer(vocabulary: vocabulary)
        XCTAssertEqual(tokenizer.tokenize(""), [])
        XCTAssertEqual(tokenizer.tokenize("unwanted running"), ["un", "##want", "##ed", "runn", "##ing"])
        // No segmentation of the whole word: the word is unknown, not its tail.
        XCTAssertEqual(tokenizer.tokenize("unwantedX running"), ["[UNK]", "runn", "##ing"])
        // Longest match first: "lowest" whole, not "low" + a tail.
        XCTAssertEqual(tokenizer.wordPieces("lowest"), ["lowest"])
        let short = try WordPieceTokenizer(vocabulary: vocabulary, maxCharactersPerWord: 5)
        XCTAssertEqual(short.wordPieces("runnin"), ["[UNK]"])
    }

    func testBasicTokenizerMatchesBERT() throws {
        let uncased = try WordPieceTokenizer(vocabulary: vocabulary)
        XCTAssertEqual(uncased.basicTokens(" \tHeLLo!how  \n Are yoU?  "), ["hello", "!", "how", "are", "you", "?"])
        XCTAssertEqual(uncased.basicTokens("H\u{00E9}llo"), ["hello"])
        XCTAssertEqual(uncased.basicTokens("ah\u{535A}\u{63A8}zz"), ["ah", "\u{535A}", "\u{63A8}", "zz"])
        let cased = try WordPieceTokenizer(vocabulary: vocabulary, lowercases: false)
        XCTAssertEqual(cased.basicTokens(" \tHeLLo!how  \n Are yoU?  "), ["HeLLo", "!", "how", "Are", "yoU", "?"])
        XCTAssertEqual(cased.basicTokens("H\u{00E9}llo"), ["H\u{00E9}llo"])
        // Control characters and U+FFFD vanish; non-breaking and ideographic spaces separate;
        // ASCII symbols and Unicode punctuation split off.
        XCTAssertEqual(uncased.basicTokens("a\u{0007}b\u{FFFD}c\u{00A0}d\u{3000}e$f\u{2014}g"),
                       ["abc", "d", "e", "$", "f", "\u{2014}", "g"])
    }

    func testVocabularyFileIsReadInLineOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("vocab.txt").path
        try (vocabulary.joined(separator: "\r\n") + "\r\n").write(toFile: path, atomically: true, encoding: .utf8)
        let tokenizer = try WordPieceTokenizer(vocabularyFile: path)
        XCTAssertEqual(tokenizer.vocabulary, vocabulary)
        XCTAssertEqual(tokenizer.id(of: "##ing"), 9)
        XCTAssertNil(tokenizer.id(of: "missing"))
    }

    func testBadVocabulariesAreRefusedByName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func refusal(_ contents: Data) -> String {
            let path = directory.appendingPathComponent("vocab-\(UUID().uuidString).txt").path
            _ = FileManager.default.createFile(atPath: path, contents: contents)
            do {
                _ = try WordPieceTokenizer(vocabularyFile: path)
                return "accepted"
            } catch {
                XCTAssertTrue("\(error)".hasPrefix(path), "\(error)")
                return "\(error)"
            }
        }
        XCTAssertTrue(refusal(Data("[UNK]\na\n\nb\n".utf8)).contains("line 3 is empty"))
        XCTAssertTrue(refusal(Data("[UNK]\na\na\n".utf8)).contains("appears twice (lines 2 and 3)"))
        XCTAssertTrue(refusal(Data("a\nb\n".utf8)).contains("no unknown token \"[UNK]\""))
        XCTAssertTrue(refusal(Data([0x5B, 0xFF, 0x0A])).contains("not UTF-8"))
        XCTAssertTrue(refusal(Data()).contains("empty"))
        let missing = directory.appendingPathComponent("none.txt").path
        XCTAssertThrowsError(try WordPieceTokenizer(vocabularyFile: missing)) { error in
            XCTAssertEqual("\(error)", "\(missing): no such file")
        }
    }
}
