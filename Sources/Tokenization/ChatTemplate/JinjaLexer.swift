/// A position in a template: 1-based line and column (columns count Unicode scalars).
struct JinjaLocation: Sendable, Hashable, CustomStringConvertible {
    var line: Int
    var column: Int
    var description: String { "\(line):\(column)" }
}

enum JinjaTokenKind: Sendable, Equatable {
    /// Literal template text, already trimmed by the whitespace-control rules.
    case data(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct JinjaToken: Sendable {
    var kind: JinjaTokenKind
    var location: JinjaLocation
}

/// Python's `str.isspace`: the characters jinja2's `\s`, `strip()` and `rstrip()` treat as whitespace.
func jinjaIsSpace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
    default: false
    }
}

/// Splits a template into tokens the way jinja2's lexer does under the
/// settings Hugging Face uses: `trim_blocks=True`, `lstrip_blocks=True`,
/// `keep_trailing_newline=False`, newlines normalised to `\n`.
struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var lineStarts: [Int] = [0]
    private let trimBlocks = true
    private let lstripBlocks = true

    init(source: String) {
        // jinja2 splits on \r\n, \r and \n, drops one trailing empty line and joins with \n.
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousWasCR = false
        for c in source.unicodeScalars {
            if c == "\r" {
                scalars.append("\n")
                previousWasCR = true
                continue
            }
            if c == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            scalars.append(c)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
        for (i, c) in s.enumerated() where c == "\n" { lineStarts.append(i + 1) }
    }

    func location(_ position: Int) -> JinjaLocation {
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= position { low = mid } else { high = mid - 1 }
        }
        return JinjaLocation(line: low + 1, column: position - lineStarts[low] + 1)
    }

    private enum TagKind { case variable, block, comment, raw }

    private func starts(with literal: String, at position: Int) -> Bool {
        var i = position
        for c in literal.unicodeScalars {
            guard i < s.count, s[i] == c else { return false }
            i += 1
        }
        return true
    }

    private func skipSpace(from position: Int) -> Int {
        var i = position
        while i < s.count, jinjaIsSpace(s[i]) { i += 1 }
        return i
    }

    /// If `{% raw %}` (in any of its whitespace-control spellings) starts at `position`
    /// (just after the sign), returns the position after its `%}`.
    private func rawBeginEnd(after position: Int) -> Int? {
        var i = skipSpace(from: position)
        guard starts(with: "raw", at: i) else { return nil }
        i = skipSpace(from: i + 3)
        if starts(with: "-%}", at: i) { return skipSpace(from: i + 3) }
        if starts(with: "%}", at: i) { return i + 2 }
        return nil
    }

    private func syntaxError(_ message: String, at position: Int) -> TokenizationError {
        TokenizationError(.templateSyntax, "\(message) at \(location(position))", underlying: "line:column \(location(position))")
    }

    /// Applies `-` (strip all whitespace before the tag) or lstrip_blocks to the text before a tag.
    private func controlledText(_ range: Range<Int>, sign: Unicode.Scalar?, kind: TagKind, lineStarting: Bool) -> ArraySlice<Unicode.Scalar> {
        var text = s[range]
        if sign == "-" {
            while let last = text.last, jinjaIsSpace(last) { text.removeLast() }
        } else if sign != "+", lstripBlocks, kind != .variable {
            let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? text.startIndex
            if lineStart > text.startIndex || lineStarting {
                let tail = text[lineStart...]
                if !tail.isEmpty, tail.allSatisfy(jinjaIsSpace) { text = text[..<lineStart] }
            }
        }
        return text
    }

    func tokenize() throws(TokenizationError) -> [JinjaToken] {
        var tokens: [JinjaToken] = []
        var pos = 0
        var lineStarting = true
        let n = s.count

        func emitData(_ text: ArraySlice<Unicode.Scalar>, at position: Int) {
            guard !text.isEmpty else { return }
            var string = String()
            string.unicodeScalars.append(contentsOf: text)
            tokens.append(JinjaToken(kind: .data(string), location: location(position)))
        }

        while pos < n {
            // Find the earliest tag opener.
            var tagStart: Int? = nil
            var kind = TagKind.variable
            var i = pos
            while i + 1 < n {
                if s[i] == "{" {
                    let next = s[i + 1]
                    if next == "{" { kind = .variable; tagStart = i; break }
                    if next == "%" { kind = .block; tagStart = i; break }
                    if next == "#" { kind = .comment; tagStart = i; break }
                }
                i += 1
            }
            guard let start = tagStart else {
                emitData(s[pos..<n], at: pos)
                break
            }
            var afterSign = start + 2
            var sign: Unicode.Scalar? = nil
            if afterSign < n, s[afterSign] == "-" || s[afterSign] == "+" {
                sign = s[afterSign]
                afterSign += 1
            }
            var rawContentStart = 0
            if kind == .block, let end = rawBeginEnd(after: afterSign) {
                kind = .raw
                rawContentStart = end
            }
            emitData(controlledText(pos..<start, sign: sign, kind: kind, lineStarting: lineStarting), at: pos)

            switch kind {
            case .comment:
                var q = afterSign
                var end: Int? = nil
                while q < n {
                    if starts(with: "+#}", at: q) { end = q + 3; break }
                    if starts(with: "-#}", at: q) { end = skipSpace(from: q + 3); break }
                    if starts(with: "#}", at: q) {
                        end = q + 2
                        if trimBlocks, q + 2 < n, s[q + 2] == "\n" { end = q + 3 }
                        break
                    }
                    q += 1
                }
                guard let end else { throw syntaxError("missing end of comment tag", at: start) }
                pos = end
            case .raw:
                // Find `{% endraw %}`; its sign and lstrip_blocks apply to the raw text.
                var q = rawContentStart
                var found: (textEnd: Int, sign: Unicode.Scalar?, end: Int)? = nil
                while q + 1 < n {
                    if s[q] == "{", s[q + 1] == "%" {
                        var k = q + 2
                        var endSign: Unicode.Scalar? = nil
                        if k < n, s[k] == "-" || s[k] == "+" { endSign = s[k]; k += 1 }
                        k = skipSpace(from: k)
                        if starts(with: "endraw", at: k) {
                            k = skipSpace(from: k + 6)
                            if starts(with: "+%}", at: k) { found = (q, endSign, k + 3); break }
                            if starts(with: "-%}", at: k) { found = (q, endSign, skipSpace(from: k + 3)); break }
                            if starts(with: "%}", at: k) {
                                var end = k + 2
                                if trimBlocks, end < n, s[end] == "\n" { end += 1 }
                                found = (q, endSign, end)
                                break
                            }
                        }
                    }
                    q += 1
                }
                guard let found else { throw syntaxError("missing end of raw directive", at: start) }
                let rawLineStarting = rawContentStart > 0 && s[rawContentStart - 1] == "\n"
                emitData(
                    controlledText(rawContentStart..<found.textEnd, sign: found.sign, kind: .block, lineStarting: rawLineStarting),
                    at: rawContentStart)
                pos = found.end
            case .variable, .block:
                tokens.append(JinjaToken(kind: kind == .variable ? .variableBegin : .blockBegin, location: location(start)))
                pos = try lexTag(from: afterSign, isBlock: kind == .block, into: &tokens)
            }
            lineStarting = pos > 0 && s[pos - 1] == "\n"
        }
        tokens.append(JinjaToken(kind: .eof, location: location(n)))
        return tokens
    }

    /// Lexes the inside of `{{ … }}` or `{% … %}` and returns the position after its end.
    private func lexTag(from start: Int, isBlock: Bool, into tokens: inout [JinjaToken]) throws(TokenizationError) -> Int {
        var pos = start
        let n = s.count
        var balance: [Unicode.Scalar] = []
        while true {
            guard pos < n else {
                throw syntaxError("unexpected end of template inside a \(isBlock ? "{% %} block" : "{{ }} expression")", at: pos)
            }
            if balance.isEmpty {
                if isBlock {
                    if starts(with: "+%}", at: pos) {
                        tokens.append(JinjaToken(kind: .blockEnd, location: location(pos)))
                        return pos + 3
                    }
                    if starts(with: "-%}", at: pos) {
                        tokens.append(JinjaToken(kind: .blockEnd, location: location(pos)))
                        return skipSpace(from: pos + 3)
                    }
                    if starts(with: "%}", at: pos) {
                        tokens.append(JinjaToken(kind: .blockEnd, location: location(pos)))
                        var end = pos + 2
                        if trimBlocks, end < n, s[end] == "\n" { end += 1 }
                        return end
                    }
                } else {
                    if starts(with: "-}}", at: pos) {
                        tokens.append(JinjaToken(kind: .variableEnd, location: location(pos)))
                        return skipSpace(from: pos + 3)
                    }
                    if starts(with: "}}", at: pos) {
                        tokens.append(JinjaToken(kind: .variableEnd, location: location(pos)))
                        return pos + 2
                    }
                }
            }
            let c = s[pos]
            if jinjaIsSpace(c) {
                pos = skipSpace(from: pos)
                continue
            }
            let here = location(pos)
            if isDigit(c) {
                let (kind, end) = try lexNumber(at: pos)
                tokens.append(JinjaToken(kind: kind, location: here))
                pos = end
                continue
            }
            if isNameStart(c) {
                var end = pos + 1
                while end < n, isNameStart(s[end]) || isDigit(s[end]) { end += 1 }
                var name = String()
                name.unicodeScalars.append(contentsOf: s[pos..<end])
                tokens.append(JinjaToken(kind: .name(name), location: here))
                pos = end
                continue
            }
            if c == "'" || c == "\"" {
                var end = pos + 1
                while end < n, s[end] != c {
                    if s[end] == "\\" { end += 1 }
                    end += 1
                }
                guard end < n else { throw syntaxError("unterminated string literal", at: pos) }
                let value = try decodeString(pos + 1..<end, at: pos)
                tokens.append(JinjaToken(kind: .string(value), location: here))
                pos = end + 1
                continue
            }
            var op: String? = nil
            for candidate in ["//", "**", "==", "!=", ">=", "<="] where starts(with: candidate, at: pos) {
                op = candidate
                break
            }
            if op == nil, "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(c) { op = String(Character(c)) }
            guard let op else { throw syntaxError("unexpected character '\(Character(c))'", at: pos) }
            switch op {
            case "(": balance.append(")")
            case "[": balance.append("]")
            case "{": balance.append("}")
            case ")", "]", "}":
                guard let expected = balance.popLast() else { throw syntaxError("unexpected '\(op)'", at: pos) }
                guard expected.description == op else {
                    throw syntaxError("unexpected '\(op)', expected '\(expected)'", at: pos)
                }
            default: break
            }
            tokens.append(JinjaToken(kind: .op(op), location: here))
            pos += op.unicodeScalars.count
        }
    }

    private func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
    private func isNameStart(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A) || c == "_"
    }

    /// `(\d+_)*\d+` starting at `position`; returns the end, or nil.
    private func digitRun(at position: Int) -> Int? {
        guard position < s.count, isDigit(s[position]) else { return nil }
        var i = position + 1
        while i < s.count {
            if isDigit(s[i]) {
                i += 1
            } else if s[i] == "_", i + 1 < s.count, isDigit(s[i + 1]) {
                i += 2
            } else {
                break
            }
        }
        return i
    }

    private func lexNumber(at position: Int) throws(TokenizationError) -> (JinjaTokenKind, Int) {
        let intEnd = digitRun(at: position)!
        var floatEnd: Int? = nil
        if position == 0 || s[position - 1] != "." {
            var i = intEnd
            var fraction = false
            if i < s.count, s[i] == ".", let end = digitRun(at: i + 1) {
                i = end
                fraction = true
            }
            var exponent = false
            if i < s.count, s[i] == "e" || s[i] == "E" {
                var k = i + 1
                if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
                if let end = digitRun(at: k) {
                    i = end
                    exponent = true
                }
            }
            if exponent || fraction { floatEnd = i }
        }
        let end = floatEnd ?? intEnd
        var text = String()
        text.unicodeScalars.append(contentsOf: s[position..<end].filter { $0 != "_" })
        if floatEnd != nil {
            guard let value = Double(text) else { throw syntaxError("invalid float literal", at: position) }
            return (.float(value), end)
        }
        guard let value = Int(text) else {
            throw TokenizationError(
                .unsupportedTemplate, "integer literal \(text) at \(location(position)) does not fit in 64 bits",
                underlying: "line:column \(location(position))")
        }
        return (.integer(value), end)
    }

    /// Python's `unicode-escape` decoding, as jinja2 applies it to string literals.
    private func decodeString(_ range: Range<Int>, at position: Int) throws(TokenizationError) -> String {
        var out = String.UnicodeScalarView()
        var i = range.lowerBound
        let end = range.upperBound
        func hex(_ count: Int) throws(TokenizationError) -> Unicode.Scalar {
            guard i + count <= end else { throw syntaxError("truncated escape in string literal", at: position) }
            var value: UInt32 = 0
            for k in 0..<count {
                guard let digit = Int(String(Character(s[i + k])), radix: 16) else {
                    throw syntaxError("truncated escape in string literal", at: position)
                }
                value = value * 16 + UInt32(digit)
            }
            guard let scalar = Unicode.Scalar(value) else {
                throw TokenizationError(
                    .unsupportedTemplate, "an escape for a surrogate code point at \(location(position)) is not supported",
                    underlying: "line:column \(location(position))")
            }
            i += count
            return scalar
        }
        while i < end {
            let c = s[i]
            guard c == "\\", i + 1 < end else {
                out.append(c)
                i += 1
                continue
            }
            let e = s[i + 1]
            i += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x": out.append(try hex(2))
            case "u": out.append(try hex(4))
            case "U": out.append(try hex(8))
            case "0"..."7":
                var value = e.value - 0x30
                var digits = 1
                while digits < 3, i < end, s[i].value >= 0x30, s[i].value <= 0x37 {
                    value = value * 8 + s[i].value - 0x30
                    i += 1
                    digits += 1
                }
                out.append(Unicode.Scalar(value)!)
            case "N":
                throw TokenizationError(
                    .unsupportedTemplate,
                    "a \\N{…} named escape in a string literal at \(location(position)) is not supported by this chat-template interpreter",
                    underlying: "line:column \(location(position))")
            default:
                out.append("\\")
                if e.isASCII {
                    out.append(e)
                } else {
                    // jinja2 first backslash-escapes non-ASCII text, so `\` + `é` decodes to the text `\xe9`.
                    let width = e.value < 0x100 ? 2 : (e.value < 0x10000 ? 4 : 8)
                    let prefix = width == 2 ? "x" : (width == 4 ? "u" : "U")
                    var digits = String(e.value, radix: 16)
                    while digits.count < width { digits = "0" + digits }
                    out.append(contentsOf: "\(prefix)\(digits)".unicodeScalars)
                }
            }
        }
        return String(out)
    }
}
