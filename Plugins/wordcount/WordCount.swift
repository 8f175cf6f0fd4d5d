/// Counts of one UTF-8 text, in the spirit of `wc`.
///
/// - `bytes`: the length of the text in bytes.
/// - `characters`: Unicode scalars (code points), like `wc -m` in a UTF-8 locale. Scalars, not
///   grapheme clusters, so the count does not change with the Unicode tables of the runtime.
/// - `words`: maximal runs of scalars that are not Unicode `White_Space`.
/// - `lines`: the number of `"\n"`, plus 1 when the text is non-empty and does not end with
///   `"\n"`, so a last line without a newline still counts (`wc -l` would not count it).
struct WordCount: Equatable {
    var bytes = 0
    var characters = 0
    var lines = 0
    var words = 0

    /// Counts `utf8`, or returns nil when it is not valid UTF-8.
    init?<Bytes: Sequence<UInt8>>(utf8: Bytes) {
        var iterator = utf8.makeIterator()
        var decoder = UTF8()
        var inWord = false
        var lastWasNewline = false
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                characters += 1
                bytes += UTF8.width(scalar)
                lastWasNewline = scalar == "\n"
                if lastWasNewline { lines += 1 }
                if scalar.properties.isWhitespace {
                    inWord = false
                } else if !inWord {
                    inWord = true
                    words += 1
                }
            case .emptyInput:
                break decoding
            case .error:
                return nil
            }
        }
        if bytes > 0 && !lastWasNewline { lines += 1 }
    }

    /// The counts as a JSON object with its keys in sorted order.
    var json: String {
        #"{"bytes":\#(bytes),"characters":\#(characters),"lines":\#(lines),"words":\#(words)}"#
    }
}
