#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
// Canonical decomposition (NFD) for accent stripping. FoundationEssentials has no normalisation
// API and full Foundation would bring ICU's data into every static binary; the standard library
// carries the Unicode tables already and exposes NFD to its `_Unicode` SPI clients.
@_spi(_Unicode) import Swift

/// BERT's WordPiece tokenizer over a standard `vocab.txt`, as BERT's
/// reference `FullTokenizer` does it: a basic pass (clean the text, space out
/// CJK ideographs, split on whitespace, lower-case and strip accents when
/// uncased, split off punctuation), then greedy longest-match-first WordPiece
/// on each word, continuation pieces prefixed `##`, a word with no
/// segmentation (or longer than ``maxCharactersPerWord``) becoming the
/// unknown token.
///
/// ```swift
/// let tokenizer = try WordPieceTokenizer(vocabularyFile: "vocab.txt")
/// let ids = try tokenizer.ids(for: "A man riding a horse.")
/// ```
public struct WordPieceTokenizer: Sendable {
    /// The vocabulary in file order: token `i` has id `i`.
    public let vocabulary: [String]
    /// Whether text is lower-cased and its accents stripped (BERT's uncased models).
    public let lowercases: Bool
    /// The token for a word with no segmentation.
    public let unknownToken: String
    /// Longer words become ``unknownToken`` whole (BERT: 100).
    public let maxCharactersPerWord: Int
    private let ids: [String: Int32]

    /// A tokenizer over `vocabulary` (token `i` has id `i`).
    ///
    /// - Throws: ``DataError`` naming `source` when the vocabulary is empty,
    ///   holds a token twice or lacks `unknownToken`.
    public init(vocabulary: [String], lowercases: Bool = true, unknownToken: String = "[UNK]",
                maxCharactersPerWord: Int = 100, source: String = "WordPieceTokenizer") throws {
        guard !vocabulary.isEmpty else { throw DataError(source, "the vocabulary is empty") }
        guard vocabulary.count < Int(Int32.max) else { throw DataError(source, "the vocabulary has more than 2^31 tokens") }
        guard maxCharactersPerWord > 0 else {
            throw DataError(source, "maxCharactersPerWord must be positive, got \(maxCharactersPerWord)")
        }
        var ids: [String: Int32] = [:]
        for (index, token) in vocabulary.enumerated() {
            if let first = ids[token] {
                throw DataError(source, "token \"\(token)\" appears twice (lines \(first + 1) and \(index + 1))")
            }
            ids[token] = Int32(index)
        }
        guard ids[unknownToken] != nil else { throw DataError(source, "the vocabulary has no unknown token \"\(unknownToken)\"") }
        self.vocabulary = vocabulary
        self.lowercases = lowercases
        self.unknownToken = unknownToken
        self.maxCharactersPerWord = maxCharactersPerWord
        self.ids = ids
    }

    /// Reads a BERT `vocab.txt`: one token per line, in id order (a final
    /// newline is optional; `\r\n` line ends are accepted).
    ///
    /// - Throws: ``DataError`` naming the file when it is missing, not UTF-8,
    ///   has an empty line, or fails ``init(vocabulary:lowercases:unknownToken:maxCharactersPerWord:source:)``.
    public init(vocabularyFile path: String, lowercases: Bool = true, unknownToken: String = "[UNK]") throws {
        let data = try readFileContents(atPath: path)
        guard let text = String(validating: data, as: UTF8.self) else { throw DataError(path, "is not UTF-8 text") }
        // "\r\n" is one Character in Swift, so split on either line end.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map(String.init)
        if lines.last == "" { lines.removeLast() }
        if let empty = lines.firstIndex(of: "") { throw DataError(path, "line \(empty + 1) is empty (one token per line)") }
        try self.init(vocabulary: lines, lowercases: lowercases, unknownToken: unknownToken, source: path)
    }

    /// The id of `token`, or nil when the vocabulary lacks it.
    public func id(of token: String) -> Int32? { ids[token] }

    /// `text` as WordPiece tokens.
    public func tokenize(_ text: String) -> [String] {
        basicTokens(text).flatMap(wordPieces)
    }

    /// `text` as vocabulary ids.
    public func ids(for text: String) -> [Int32] {
        tokenize(text).map { ids[$0]! }
    }

    /// The basic pass (BERT's `BasicTokenizer`): words and punctuation marks.
    public func basicTokens(_ text: String) -> [String] { Self.basicTokens(text, lowercasing: lowercases) }

    /// The basic pass without a vocabulary (it needs none): for building one.
    public static func basicTokens(_ text: String, lowercasing lowercases: Bool = true) -> [String] {
        var words: [[Unicode.Scalar]] = []
        var word: [Unicode.Scalar] = []
        func end() {
            if !word.isEmpty { words.append(word) }
            word = []
        }
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value == 0 || value == 0xFFFD || Self.isControl(scalar) { continue }
            if Self.isWhitespace(scalar) {
                end()
            } else if Self.isCJKIdeograph(value) {
                end()
                words.append([scalar])
            } else {
                word.append(scalar)
            }
        }
        end()
        var tokens: [String] = []
        for raw in words {
            var scalars = raw
            if lowercases {
                let lowered = String(String.UnicodeScalarView(raw)).lowercased()
                scalars = Array(lowered._nfd).filter { $0.properties.generalCategory != .nonspacingMark }
            }
            // Every punctuation mark is a token of its own; the runs between them are words.
            var run = String.UnicodeScalarView()
            for scalar in scalars {
                if Self.isPunctuation(scalar) {
                    if !run.isEmpty { tokens.append(String(run)) }
                    run = String.UnicodeScalarView()
                    tokens.append(String(scalar))
                } else {
                    run.append(scalar)
                }
            }
            if !run.isEmpty { tokens.append(String(run)) }
        }
        return tokens
    }

    /// Greedy longest-match-first WordPiece of one basic token.
    public func wordPieces(_ word: String) -> [String] {
        let scalars = Array(word.unicodeScalars)
        if scalars.count > maxCharactersPerWord { return [unknownToken] }
        var pieces: [String] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var match: String?
            while start < end {
                var piece = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { piece = "##" + piece }
                if ids[piece] != nil {
                    match = piece
                    break
                }
                end -= 1
            }
            guard let match else { return [unknownToken] }
            pieces.append(match)
            start = end
        }
        return pieces
    }

    // Character classes as BERT's tokenization.py defines them.

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// ASCII non-alphanumerics (`$`, `^`, `` ` `` included, which Unicode
    /// calls symbols) and every Unicode punctuation category.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT spaces out (not Hangul, Hiragana or Katakana).
    static func isCJKIdeograph(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
