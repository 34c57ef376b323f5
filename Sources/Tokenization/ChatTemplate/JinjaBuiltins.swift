/// The filters, tests and methods the interpreter implements, each following
/// jinja2 3.1's (or Python's) definition, with Hugging Face's `tojson`.
enum JinjaBuiltins {
    static let filterNames: Set<String> = [
        "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent", "int", "items", "join",
        "last", "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "safe", "select",
        "selectattr", "sort", "string", "title", "tojson", "trim", "unique", "upper",
    ]

    static let testNames: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "float", "ge", "gt",
        "greaterthan", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping", "ne", "none", "number",
        "odd", "sameas", "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=",
    ]

    /// Every method of Python's `str`, `list` and `dict`: attribute access yields a bound method, never a dict key.
    static let stringMethodNames: Set<String> = [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
        "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
        "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
        "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ]
    static let listMethodNames: Set<String> = [
        "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort",
    ]
    static let dictMethodNames: Set<String> = [
        "clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values",
    ]
    /// Methods jinja2's ImmutableSandboxedEnvironment refuses to call (they would modify a value).
    static let mutatingMethodNames: Set<String> = [
        "append", "clear", "extend", "insert", "pop", "popitem", "remove", "reverse", "setdefault", "sort", "update",
    ]
    static let implementedMethodNames: Set<String> = [
        "capitalize", "count", "endswith", "find", "get", "index", "items", "join", "keys", "lower", "lstrip",
        "removeprefix", "removesuffix", "replace", "rstrip", "split", "startswith", "strip", "title", "upper", "values",
    ]
    static let unimplementedMethodNames: Set<String> = stringMethodNames.union(listMethodNames).union(dictMethodNames)
        .subtracting(implementedMethodNames).subtracting(mutatingMethodNames)
    static let unimplementedGlobals: Set<String> = ["lipsum", "cycler", "joiner"]
    static let numberAttributeNames: Set<String> = [
        "real", "imag", "numerator", "denominator", "conjugate", "bit_length", "bit_count", "to_bytes", "from_bytes",
        "as_integer_ratio", "is_integer", "hex", "fromhex",
    ]

    // MARK: Text helpers (Python str semantics over Unicode scalars)

    static func escapeHTML(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func find(_ needle: [Unicode.Scalar], in haystack: [Unicode.Scalar], from start: Int = 0) -> Int? {
        if needle.isEmpty { return start <= haystack.count ? start : nil }
        guard haystack.count >= needle.count else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func string(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }

    static func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        let isStripped: (Unicode.Scalar) -> Bool = { c in set.map { $0.contains(c) } ?? jinjaIsSpace(c) }
        var scalars = Array(s.unicodeScalars)[...]
        if leading { while let first = scalars.first, isStripped(first) { scalars.removeFirst() } }
        if trailing { while let last = scalars.last, isStripped(last) { scalars.removeLast() } }
        return string(scalars)
    }

    private static func lowerScalar(_ scalars: [Unicode.Scalar], _ i: Int) -> String {
        let c = scalars[i]
        guard c == "\u{03A3}" else { return c.properties.lowercaseMapping }
        // Final_Sigma, as CPython's lower() applies it.
        var j = i - 1
        while j >= 0, scalars[j].properties.isCaseIgnorable { j -= 1 }
        var finalSigma = j >= 0 && scalars[j].properties.isCased
        if finalSigma {
            var k = i + 1
            while k < scalars.count, scalars[k].properties.isCaseIgnorable { k += 1 }
            finalSigma = k == scalars.count || !scalars[k].properties.isCased
        }
        return finalSigma ? "\u{03C2}" : "\u{03C3}"
    }

    static func lower(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        return scalars.indices.map { lowerScalar(scalars, $0) }.joined()
    }

    static func upper(_ s: String) -> String { s.unicodeScalars.map { $0.properties.uppercaseMapping }.joined() }

    /// Python `str.capitalize()` (3.8+): title-case the first character, lower-case the rest.
    static func capitalize(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first else { return "" }
        return first.properties.titlecaseMapping + scalars.indices.dropFirst().map { lowerScalar(scalars, $0) }.joined()
    }

    /// Python `str.title()`.
    static func pythonTitle(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        var previousIsCased = false
        var out = ""
        for i in scalars.indices {
            let c = scalars[i]
            out += previousIsCased ? lowerScalar(scalars, i) : c.properties.titlecaseMapping
            previousIsCased = c.properties.isCased
        }
        return out
    }

    /// jinja2's `title` filter: capitalise each word, words split at runs of `-`, whitespace, `(`, `{`, `[`, `<`.
    static func jinjaTitle(_ s: String) -> String {
        func isSeparator(_ c: Unicode.Scalar) -> Bool { jinjaIsSpace(c) || "-({[<".unicodeScalars.contains(c) }
        let scalars = Array(s.unicodeScalars)
        var out = ""
        var i = 0
        while i < scalars.count {
            var j = i
            let separator = isSeparator(scalars[i])
            while j < scalars.count, isSeparator(scalars[j]) == separator { j += 1 }
            let piece = Array(scalars[i..<j])
            if separator {
                out += string(piece)
            } else {
                out += upper(string(piece[..<1])) + lower(string(piece[1...]))
            }
            i = j
        }
        return out
    }

    static func isLower(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isUppercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if !cased && c.properties.isLowercase { cased = true }
        }
        return cased
    }

    static func isUpper(_ s: String) -> Bool {
        var cased = false
        for c in s.unicodeScalars {
            if c.properties.isLowercase || c.properties.generalCategory == .titlecaseLetter { return false }
            if !cased && c.properties.isUppercase { cased = true }
        }
        return cased
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let source = Array(s.unicodeScalars)
        let needle = Array(old.unicodeScalars)
        let limit = count < 0 ? Int.max : count
        var out = String.UnicodeScalarView()
        var done = 0
        if needle.isEmpty {
            for c in source {
                if done < limit {
                    out.append(contentsOf: new.unicodeScalars)
                    done += 1
                }
                out.append(c)
            }
            if done < limit { out.append(contentsOf: new.unicodeScalars) }
            return String(out)
        }
        var i = 0
        while done < limit, let found = find(needle, in: source, from: i) {
            out.append(contentsOf: source[i..<found])
            out.append(contentsOf: new.unicodeScalars)
            i = found + needle.count
            done += 1
        }
        out.append(contentsOf: source[i...])
        return String(out)
    }

    static func split(_ s: String, _ separator: String?, maxSplit: Int) -> [String] {
        let scalars = Array(s.unicodeScalars)
        var remaining = maxSplit < 0 ? Int.max : maxSplit
        var result: [String] = []
        var i = 0
        guard let separator else {
            let n = scalars.count
            while remaining > 0 {
                while i < n, jinjaIsSpace(scalars[i]) { i += 1 }
                if i == n { break }
                let j = i
                i += 1
                while i < n, !jinjaIsSpace(scalars[i]) { i += 1 }
                result.append(string(scalars[j..<i]))
                remaining -= 1
            }
            if i < n {
                while i < n, jinjaIsSpace(scalars[i]) { i += 1 }
                if i != n { result.append(string(scalars[i..<n])) }
            }
            return result
        }
        let needle = Array(separator.unicodeScalars)
        while remaining > 0, let found = find(needle, in: scalars, from: i) {
            result.append(string(scalars[i..<found]))
            i = found + needle.count
            remaining -= 1
        }
        result.append(string(scalars[i...]))
        return result
    }

    /// Python `str.splitlines()`.
    static func splitLines(_ s: String) -> [String] {
        let scalars = Array(s.unicodeScalars)
        var lines: [String] = []
        var start = 0
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            let isBreak = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value)
            if isBreak {
                lines.append(string(scalars[start..<i]))
                if c == "\r", i + 1 < scalars.count, scalars[i + 1] == "\n" { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < scalars.count { lines.append(string(scalars[start...])) }
        return lines
    }

    /// Python `int(str, base)` for ASCII digits; nil for a `ValueError`.
    static func parseInt(_ text: String, base: Int) -> Int?? {
        var scalars = Array(strip(text, nil, leading: true, trailing: true).unicodeScalars)[...]
        if scalars.contains(where: { !$0.isASCII && $0.properties.numericType == .decimal }) { return .some(nil) }
        var negative = false
        if let first = scalars.first, first == "+" || first == "-" {
            negative = first == "-"
            scalars.removeFirst()
        }
        if base == 16, scalars.count > 2, scalars.first == "0", scalars.dropFirst().first == "x" || scalars.dropFirst().first == "X" {
            scalars.removeFirst(2)
            if scalars.first == "_" { scalars.removeFirst() }
        }
        guard let first = scalars.first, first != "_", scalars.last != "_", !string(scalars).contains("__") else { return nil }
        let digits = string(scalars.filter { $0 != "_" })
        guard let magnitude = UInt(digits, radix: base) else {
            return digits.allSatisfy({ $0.isHexDigit }) && !digits.isEmpty ? .some(nil) : nil
        }
        if negative {
            guard magnitude <= UInt(Int.max) + 1 else { return .some(nil) }
            return magnitude == UInt(Int.max) + 1 ? Int.min : -Int(magnitude)
        }
        guard magnitude <= UInt(Int.max) else { return .some(nil) }
        return Int(magnitude)
    }

    /// Python `float(str)`; nil for a `ValueError`.
    static func parseFloat(_ text: String) -> Double? {
        let trimmed = strip(text, nil, leading: true, trailing: true)
        var body = Substring(trimmed)
        var sign = ""
        if let first = body.first, first == "+" || first == "-" {
            sign = first == "-" ? "-" : ""
            body = body.dropFirst()
        }
        switch body.lowercased() {
        case "inf", "infinity": return sign == "-" ? -.infinity : .infinity
        case "nan": return .nan
        default: break
        }
        // digits ( '_' digits )* with optional fraction and exponent, as Python's grammar allows.
        let chars = Array(body)
        var i = 0
        func digitRun() -> Bool {
            guard i < chars.count, chars[i].isASCII, chars[i].isNumber else { return false }
            i += 1
            while i < chars.count {
                if chars[i].isASCII && chars[i].isNumber {
                    i += 1
                } else if chars[i] == "_", i + 1 < chars.count, chars[i + 1].isASCII, chars[i + 1].isNumber {
                    i += 2
                } else {
                    break
                }
            }
            return true
        }
        let integerPart = digitRun()
        var fractionPart = false
        if i < chars.count, chars[i] == "." {
            i += 1
            fractionPart = digitRun()
        }
        guard integerPart || fractionPart else { return nil }
        if i < chars.count, chars[i] == "e" || chars[i] == "E" {
            i += 1
            if i < chars.count, chars[i] == "+" || chars[i] == "-" { i += 1 }
            guard digitRun() else { return nil }
        }
        guard i == chars.count else { return nil }
        return Double(sign + String(body.filter { $0 != "_" }))
    }
}

// MARK: Filters, tests, methods

extension JinjaInterpreter {
    /// Binds positional and keyword arguments to parameter names, as a Python signature would.
    func bind(_ function: String, _ names: [String], _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> [JinjaValue?]
    {
        guard positional.count <= names.count else {
            throw renderError("\(function)() takes at most \(names.count) argument(s) (\(positional.count) given)", at: location)
        }
        var bound: [JinjaValue?] = positional + Array(repeating: nil, count: names.count - positional.count)
        for (name, value) in keywords {
            guard let index = names.firstIndex(of: name) else {
                throw renderError("\(function)() got an unexpected keyword argument '\(name)'", at: location)
            }
            guard bound[index] == nil else { throw renderError("\(function)() got multiple values for argument '\(name)'", at: location) }
            bound[index] = value
        }
        return bound
    }

    private func requireString(_ value: JinjaValue, _ what: String, at location: JinjaLocation) throws(TokenizationError) -> String {
        if case .undefined(let u) = value { throw undefinedError(u, at: location) }
        guard let s = value.stringValue else { throw renderError("\(what) must be str, not \(value.typeName)", at: location) }
        return s
    }

    private func requireInt(_ value: JinjaValue, _ what: String, at location: JinjaLocation) throws(TokenizationError) -> Int {
        if case .undefined(let u) = value { throw undefinedError(u, at: location) }
        guard case .int(let i)? = value.number, !value.isDouble else {
            throw renderError("\(what) must be an integer, not \(value.typeName)", at: location)
        }
        return i
    }

    private func noMarkup(_ value: JinjaValue, _ what: String, at location: JinjaLocation) throws(TokenizationError) {
        if value.isMarkup { throw unsupported("\(what) on a |safe string (the result would stay Markup)", at: location) }
    }

    /// jinja2's `make_attrgetter`: dotted path, integer parts as indices, item lookup first.
    private func attributeGetter(_ path: JinjaValue?, at location: JinjaLocation) throws(TokenizationError) -> ((JinjaValue) throws(
        TokenizationError
    ) -> JinjaValue)? {
        guard let path else { return nil }
        let parts: [JinjaValue]
        switch path {
        case .string(let s):
            parts = s.split(separator: ".", omittingEmptySubsequences: false).map { part in
                Int(part).map { JinjaValue.int($0) } ?? .string(String(part))
            }
        case .int: parts = [path]
        case .none: return nil
        default: throw unsupported("an attribute argument of type \(path.typeName)", at: location)
        }
        return { (item: JinjaValue) throws(TokenizationError) -> JinjaValue in
            var current = item
            for part in parts { current = try self.item(current, part, at: location) }
            return current
        }
    }

    func applyFilter(_ name: String, _ value: JinjaValue, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        switch name {
        case "trim":
            let a = try bind(name, ["chars"], positional, keywords, at: location)
            try noMarkup(value, "|trim", at: location)
            let chars = try a[0].flatMap { (v) throws(TokenizationError) -> String? in
                if case .none = v { return nil }
                return try requireString(v, "trim chars", at: location)
            }
            return .string(JinjaBuiltins.strip(try str(value, at: location), chars, leading: true, trailing: true))
        case "length", "count":
            _ = try bind(name, [], positional, keywords, at: location)
            return .int(try length(value, at: location))
        case "upper", "lower", "title", "capitalize":
            _ = try bind(name, [], positional, keywords, at: location)
            try noMarkup(value, "|\(name)", at: location)
            let s = try str(value, at: location)
            switch name {
            case "upper": return .string(JinjaBuiltins.upper(s))
            case "lower": return .string(JinjaBuiltins.lower(s))
            case "title": return .string(JinjaBuiltins.jinjaTitle(s))
            default: return .string(JinjaBuiltins.capitalize(s))
            }
        case "default", "d":
            let a = try bind(name, ["default_value", "boolean"], positional, keywords, at: location)
            let fallback = a[0] ?? .string("")
            if value.isUndefined || ((a[1]?.truthy ?? false) && !value.truthy) { return fallback }
            return value
        case "join":
            let a = try bind(name, ["d", "attribute"], positional, keywords, at: location)
            let separator = try str(a[0] ?? .string(""), at: location)
            var items = try iterate(value, at: location)
            if let getter = try attributeGetter(a[1], at: location) {
                var mapped: [JinjaValue] = []
                for item in items { mapped.append(try getter(item)) }
                items = mapped
            }
            var parts: [String] = []
            for item in items { parts.append(try str(item, at: location)) }
            return .string(parts.joined(separator: separator))
        case "first":
            _ = try bind(name, [], positional, keywords, at: location)
            if case .iterator(let iterator) = value {
                return iterator.next() ?? .undefined("No first item, sequence was empty.")
            }
            try noMarkup(value, "|first", at: location)
            return try iterate(value, at: location).first ?? .undefined("No first item, sequence was empty.")
        case "last":
            _ = try bind(name, [], positional, keywords, at: location)
            switch value {
            case .undefined: return .undefined("No last item, sequence was empty.")
            case .iterator: throw renderError("'\(value.typeName)' object is not reversible", at: location)
            default: break
            }
            try noMarkup(value, "|last", at: location)
            return try iterate(value, at: location).last ?? .undefined("No last item, sequence was empty.")
        case "list":
            _ = try bind(name, [], positional, keywords, at: location)
            return .list(try iterate(value, at: location))
        case "reverse":
            _ = try bind(name, [], positional, keywords, at: location)
            switch value {
            case .string(let s): return .string(JinjaBuiltins.string(s.unicodeScalars.reversed()))
            case .markup: throw unsupported("|reverse on a |safe string", at: location)
            case .list, .tuple, .dict, .range, .dictView:
                return .iterator(JinjaIterator(try iterate(value, at: location).reversed(), typeName: "reverseiterator"))
            case .undefined, .iterator: return .list(try iterate(value, at: location).reversed())
            default: throw renderError("argument must be iterable", at: location)
            }
        case "tojson":
            let a = try bind(name, ["ensure_ascii", "indent", "separators", "sort_keys"], positional, keywords, at: location)
            var indent: String? = nil
            switch a[1] {
            case nil, .none?: break
            case .string(let s)?: indent = s
            case let v?: indent = String(repeating: " ", count: max(0, try requireInt(v, "indent", at: location)))
            }
            var itemSeparator = indent == nil ? ", " : ","
            var keySeparator = ": "
            if let separators = a[2], !(separators.sequenceItems == nil && !separators.truthy) {
                guard let pair = separators.sequenceItems, pair.count == 2, let first = pair[0].stringValue,
                    let second = pair[1].stringValue
                else { throw renderError("tojson separators must be a pair of strings", at: location) }
                itemSeparator = first
                keySeparator = second
            }
            var out = ""
            try writeJSON(
                value, into: &out, indent: indent, level: 0, itemSeparator: itemSeparator, keySeparator: keySeparator,
                sortKeys: a[3]?.truthy ?? false, ensureASCII: a[0]?.truthy ?? false, at: location)
            return .string(out)
        case "string":
            _ = try bind(name, [], positional, keywords, at: location)
            if value.isMarkup { return value }
            return .string(try str(value, at: location))
        case "safe":
            _ = try bind(name, [], positional, keywords, at: location)
            return .markup(try str(value, at: location))
        case "escape", "e":
            _ = try bind(name, [], positional, keywords, at: location)
            if value.isMarkup { return value }
            return .markup(JinjaBuiltins.escapeHTML(try str(value, at: location)))
        case "int":
            let a = try bind(name, ["default", "base"], positional, keywords, at: location)
            let fallback = a[0] ?? .int(0)
            let base = try a[1].map { (v) throws(TokenizationError) in try requireInt(v, "base", at: location) } ?? 10
            guard [2, 8, 10, 16].contains(base) else { throw unsupported("|int with base \(base)", at: location) }
            return try toInt(value, fallback: fallback, base: base, at: location)
        case "float":
            let a = try bind(name, ["default"], positional, keywords, at: location)
            let fallback = a[0] ?? .double(0)
            switch value {
            case .undefined(let u): throw undefinedError(u, at: location)
            case .bool(let b): return .double(b ? 1 : 0)
            case .int(let i): return .double(Double(i))
            case .double: return value
            case .string(let s), .markup(let s):
                if s.unicodeScalars.contains(where: { !$0.isASCII && $0.properties.numericType != nil }) {
                    throw unsupported("|float on non-ASCII digits", at: location)
                }
                return JinjaBuiltins.parseFloat(s).map { .double($0) } ?? fallback
            default: return fallback
            }
        case "replace":
            let a = try bind(name, ["old", "new", "count"], positional, keywords, at: location)
            try noMarkup(value, "|replace", at: location)
            guard let old = a[0], let new = a[1] else { throw renderError("replace() missing required arguments", at: location) }
            var count = -1
            if let c = a[2], !(c.isNone) { count = try requireInt(c, "count", at: location) }
            return .string(
                JinjaBuiltins.replace(try str(value, at: location), try str(old, at: location), try str(new, at: location), count: count))
        case "items":
            _ = try bind(name, [], positional, keywords, at: location)
            switch value {
            case .undefined: return .iterator(JinjaIterator([]))
            case .dict(let dict): return .iterator(JinjaIterator(dict.pairs.map { .tuple([.string($0.0), $0.1]) }))
            default:
                // jinja2's |items is a lazy generator: it fails only when iterated and prints as a generator address.
                throw unsupported("|items on a \(value.typeName) (jinja2 fails lazily here)", at: location)
            }
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            guard keywords.isEmpty else { throw unsupported("keyword arguments to |\(name)", at: location) }
            var arguments = positional
            var getter: ((JinjaValue) throws(TokenizationError) -> JinjaValue)? = nil
            if byAttribute {
                guard !arguments.isEmpty else { throw renderError("\(name) requires an attribute name", at: location) }
                getter = try attributeGetter(arguments.removeFirst(), at: location)
            }
            var testName: String? = nil
            if !arguments.isEmpty {
                let test = arguments.removeFirst()
                guard let t = test.stringValue else { throw renderError("test name must be a string", at: location) }
                guard JinjaBuiltins.testNames.contains(t) else {
                    throw unsupported("the test '\(t)'", at: location)
                }
                testName = t
            }
            let keep = name.hasPrefix("select")
            var result: [JinjaValue] = []
            // jinja2's select_or_reject starts with `if value:` — a falsy value selects nothing, iterable or not.
            for item in value.truthy ? try iterate(value, at: location) : [] {
                let subject = try getter?(item) ?? item
                let passed = try testName.map { (t) throws(TokenizationError) in try applyTest(t, subject, arguments, [], at: location) }
                    ?? subject.truthy
                if passed == keep { result.append(item) }
            }
            return .iterator(JinjaIterator(result))
        case "map":
            var result: [JinjaValue] = []
            let items = value.truthy ? try iterate(value, at: location) : []  // do_map also starts with `if value:`
            if positional.isEmpty, keywords.contains(where: { $0.0 == "attribute" }) {
                let a = try bind(name, ["attribute", "default"], [], keywords, at: location)
                let getter = try attributeGetter(a[0], at: location)!
                for item in items {
                    let mapped = try getter(item)
                    if mapped.isUndefined, let fallback = a[1] { result.append(fallback) } else { result.append(mapped) }
                }
            } else {
                guard let filter = positional.first?.stringValue else { throw renderError("map requires a filter name or attribute=", at: location) }
                guard JinjaBuiltins.filterNames.contains(filter) else { throw unsupported("the filter '\(filter)'", at: location) }
                let rest = Array(positional.dropFirst())
                for item in items { result.append(try applyFilter(filter, item, rest, keywords, at: location)) }
            }
            return .iterator(JinjaIterator(result))
        case "unique":
            let a = try bind(name, ["case_sensitive", "attribute"], positional, keywords, at: location)
            let caseSensitive = a[0]?.truthy ?? false
            let getter = try attributeGetter(a[1], at: location)
            var seen: [JinjaValue] = []
            var result: [JinjaValue] = []
            for item in try iterate(value, at: location) {
                var key = try getter?(item) ?? item
                if !caseSensitive, let s = key.stringValue { key = .string(JinjaBuiltins.lower(s)) }
                switch key {
                case .list, .dict, .undefined: throw renderError("unhashable type: '\(key.typeName)'", at: location)
                default: break
                }
                if !seen.contains(where: { $0.pyEquals(key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .iterator(JinjaIterator(result))
        case "sort":
            let a = try bind(name, ["reverse", "case_sensitive", "attribute"], positional, keywords, at: location)
            let reverse = a[0]?.truthy ?? false
            let caseSensitive = a[1]?.truthy ?? false
            let getter = try attributeGetter(a[2], at: location)
            let items = try iterate(value, at: location)
            var keyed: [(key: JinjaValue, item: JinjaValue)] = []
            for item in items {
                var key = try getter?(item) ?? item
                if !caseSensitive, let s = key.stringValue { key = .string(JinjaBuiltins.lower(s)) }
                keyed.append((key, item))
            }
            let sorted = try stableSort(keyed, reverse: reverse, at: location)
            return .list(sorted.map(\.item))
        case "dictsort":
            let a = try bind(name, ["case_sensitive", "by", "reverse"], positional, keywords, at: location)
            if case .undefined(let u) = value { throw undefinedError(u, at: location) }
            guard case .dict(let dict) = value else { throw renderError("'\(value.typeName)' object has no attribute 'items'", at: location) }
            let by = try a[1].map { (v) throws(TokenizationError) in try requireString(v, "by", at: location) } ?? "key"
            guard by == "key" || by == "value" else {
                throw renderError("You can only sort by either \"key\" or \"value\"", at: location)
            }
            let caseSensitive = a[0]?.truthy ?? false
            var keyed: [(key: JinjaValue, item: JinjaValue)] = []
            for (k, v) in dict.pairs {
                var key = by == "key" ? JinjaValue.string(k) : v
                if !caseSensitive, let s = key.stringValue { key = .string(JinjaBuiltins.lower(s)) }
                keyed.append((key, .tuple([.string(k), v])))
            }
            return .list(try stableSort(keyed, reverse: a[2]?.truthy ?? false, at: location).map(\.item))
        case "indent":
            let a = try bind(name, ["width", "first", "blank"], positional, keywords, at: location)
            try noMarkup(value, "|indent", at: location)
            if case .undefined(let u) = value { throw undefinedError(u, at: location) }
            guard let text = value.stringValue else { throw renderError("|indent requires a string", at: location) }
            let indentation: String
            switch a[0] {
            case .string(let s)?: indentation = s
            case let w?: indentation = String(repeating: " ", count: max(0, try requireInt(w, "width", at: location)))
            case nil: indentation = "    "
            }
            let lines = JinjaBuiltins.splitLines(text + "\n")
            var result: String
            if a[2]?.truthy ?? false {
                result = lines.joined(separator: "\n" + indentation)
            } else {
                result = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty { result += "\n" + rest.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n") }
            }
            if a[1]?.truthy ?? false { result = indentation + result }
            return .string(result)
        case "abs":
            _ = try bind(name, [], positional, keywords, at: location)
            switch value.number {
            case .int(let i)?:
                guard i != Int.min else { throw unsupported("integers beyond 64 bits", at: location) }
                return .int(abs(i))
            case .double(let d)?: return .double(abs(d))
            case nil: throw renderError("bad operand type for abs(): '\(value.typeName)'", at: location)
            }
        default:
            throw unsupported("the filter '\(name)'", at: location)
        }
    }

    private func stableSort(_ items: [(key: JinjaValue, item: JinjaValue)], reverse: Bool, at location: JinjaLocation) throws(TokenizationError)
        -> [(key: JinjaValue, item: JinjaValue)]
    {
        guard items.count > 1 else { return items }
        let middle = items.count / 2
        let left = try stableSort(Array(items[..<middle]), reverse: reverse, at: location)
        let right = try stableSort(Array(items[middle...]), reverse: reverse, at: location)
        var merged: [(key: JinjaValue, item: JinjaValue)] = []
        merged.reserveCapacity(items.count)
        var i = 0
        var j = 0
        while i < left.count, j < right.count {
            // Take from the right only when it is strictly before the left: equal keys keep their order.
            let (a, b) = reverse ? (left[i].key, right[j].key) : (right[j].key, left[i].key)
            guard let rightFirst = a.pyLess(b) else {
                throw renderError("'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", at: location)
            }
            if rightFirst {
                merged.append(right[j])
                j += 1
            } else {
                merged.append(left[i])
                i += 1
            }
        }
        merged.append(contentsOf: left[i...])
        merged.append(contentsOf: right[j...])
        return merged
    }

    func length(_ value: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> Int {
        switch value {
        case .undefined: return 0
        case .string(let s), .markup(let s): return s.unicodeScalars.count
        case .list(let items), .tuple(let items): return items.count
        case .dict(let d), .dictView(_, let d): return d.count
        case .range(let start, let stop, let step): return jinjaRangeCount(start, stop, step)
        case .loop(let loop): return loop.items.count
        default: throw renderError("object of type '\(value.typeName)' has no len()", at: location)
        }
    }

    private func toInt(_ value: JinjaValue, fallback: JinjaValue, base: Int, at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        func fromDouble(_ d: Double) throws(TokenizationError) -> JinjaValue {
            if d.isNaN { return fallback }
            if d.isInfinite { throw renderError("cannot convert float infinity to integer", at: location) }
            guard let i = Int(exactly: d.rounded(.towardZero)) else { throw unsupported("integers beyond 64 bits", at: location) }
            return .int(i)
        }
        switch value {
        case .undefined(let u): throw undefinedError(u, at: location)
        case .bool(let b): return .int(b ? 1 : 0)
        case .int: return value
        case .double(let d): return try fromDouble(d)
        case .string(let s), .markup(let s):
            switch JinjaBuiltins.parseInt(s, base: base) {
            case .some(.some(let i)): return .int(i)
            case .some(.none):
                throw unsupported("|int on this string (non-ASCII digits or beyond 64 bits)", at: location)
            case .none:
                if s.unicodeScalars.contains(where: { !$0.isASCII && $0.properties.numericType != nil }) {
                    throw unsupported("|int on non-ASCII digits", at: location)
                }
                guard let d = JinjaBuiltins.parseFloat(s) else { return fallback }
                return try fromDouble(d)
            }
        default:
            return fallback
        }
    }

    // MARK: Tests

    func applyTest(_ name: String, _ value: JinjaValue, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> Bool
    {
        func argument() throws(TokenizationError) -> JinjaValue {
            let a = try bind("test \(name)", ["other"], positional, keywords, at: location)
            guard let other = a[0] else { throw renderError("the test '\(name)' requires an argument", at: location) }
            return other
        }
        func noArguments() throws(TokenizationError) { _ = try bind("test \(name)", [], positional, keywords, at: location) }
        func modulo(_ divisor: JinjaValue) throws(TokenizationError) -> JinjaValue {
            if value.stringValue != nil { throw unsupported("printf-style string formatting with %", at: location) }
            return try binary(.modulo, value, divisor, at: location)
        }
        switch name {
        case "defined":
            try noArguments()
            return !value.isUndefined
        case "undefined":
            try noArguments()
            return value.isUndefined
        case "none":
            try noArguments()
            return value.isNone
        case "boolean":
            try noArguments()
            if case .bool = value { return true }
            return false
        case "true", "false":
            try noArguments()
            if case .bool(let b) = value { return b == (name == "true") }
            return false
        case "integer":
            try noArguments()
            if case .int = value { return true }
            return false
        case "float":
            try noArguments()
            return value.isDouble
        case "number":
            try noArguments()
            return value.number != nil
        case "string":
            try noArguments()
            return value.stringValue != nil
        case "mapping":
            try noArguments()
            if case .dict = value { return true }
            return false
        case "iterable":
            try noArguments()
            switch value {
            case .undefined, .string, .markup, .list, .tuple, .dict, .dictView, .range, .iterator, .loop: return true
            default: return false
            }
        case "sequence":
            try noArguments()
            switch value {
            case .undefined, .string, .markup, .list, .tuple, .dict, .range: return true
            default: return false
            }
        case "callable":
            try noArguments()
            switch value {
            case .undefined, .macro, .function, .loop: return true
            default: return false
            }
        case "escaped":
            try noArguments()
            return value.isMarkup
        case "even":
            try noArguments()
            return try modulo(.int(2)).pyEquals(.int(0))
        case "odd":
            try noArguments()
            return try modulo(.int(2)).pyEquals(.int(1))
        case "divisibleby":
            return try modulo(try argument()).pyEquals(.int(0))
        case "eq", "equalto", "==": return value.pyEquals(try argument())
        case "ne", "!=": return !value.pyEquals(try argument())
        case "lt", "lessthan", "<": return try compare(.less, value, try argument(), at: location)
        case "le", "<=": return try compare(.lessEqual, value, try argument(), at: location)
        case "gt", "greaterthan", ">": return try compare(.greater, value, try argument(), at: location)
        case "ge", ">=": return try compare(.greaterEqual, value, try argument(), at: location)
        case "in": return try contains(try argument(), value, at: location)
        case "lower":
            try noArguments()
            return JinjaBuiltins.isLower(try str(value, at: location))
        case "upper":
            try noArguments()
            return JinjaBuiltins.isUpper(try str(value, at: location))
        case "sameas":
            let other = try argument()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.none, _), (_, .none), (.bool, _), (_, .bool): return false
            default: throw unsupported("'sameas' (object identity) on \(value.typeName) values", at: location)
            }
        default:
            throw unsupported("the test '\(name)'", at: location)
        }
    }

    // MARK: Methods

    func callMethod(_ receiver: JinjaValue, _ name: String, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        if JinjaBuiltins.mutatingMethodNames.contains(name) {
            switch receiver {
            case .list, .dict:
                throw renderError("access to attribute '\(name)' of '\(receiver.typeName)' object is unsafe.", at: location)
            default: break
            }
        }
        switch receiver {
        case .string(let s), .markup(let s):
            return try callStringMethod(receiver, s, name, positional, keywords, at: location)
        case .dict(let dict):
            switch name {
            case "items", "keys", "values":
                _ = try bind(name, [], positional, keywords, at: location)
                return .dictView(JinjaDictView(rawValue: "dict_" + name)!, dict)
            case "get":
                guard keywords.isEmpty, (1...2).contains(positional.count) else {
                    throw renderError("get expected 1 or 2 positional arguments", at: location)
                }
                if let key = positional[0].stringValue, let found = dict[key] { return found }
                switch positional[0] {
                case .list, .dict: throw renderError("unhashable type: '\(positional[0].typeName)'", at: location)
                default: break
                }
                return positional.count == 2 ? positional[1] : .none
            default: break
            }
        case .list(let items), .tuple(let items):
            switch name {
            case "count":
                guard positional.count == 1, keywords.isEmpty else { throw renderError("count() takes exactly one argument", at: location) }
                return .int(items.count { $0.pyEquals(positional[0]) })
            case "index":
                guard positional.count == 1, keywords.isEmpty else { throw unsupported("index() with start/stop", at: location) }
                guard let index = items.firstIndex(where: { $0.pyEquals(positional[0]) }) else {
                    throw renderError("value is not in \(receiver.typeName)", at: location)
                }
                return .int(index)
            default: break
            }
        default: break
        }
        throw unsupported("the method \(receiver.typeName).\(name)()", at: location)
    }

    private func callStringMethod(
        _ receiver: JinjaValue, _ s: String, _ name: String, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation
    ) throws(TokenizationError) -> JinjaValue {
        let stringResults: Set<String> = [
            "strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "replace", "split", "join", "removeprefix",
            "removesuffix",
        ]
        if receiver.isMarkup, stringResults.contains(name) {
            throw unsupported("the method Markup.\(name)() (the result would stay Markup)", at: location)
        }
        func optionalString(_ value: JinjaValue?, _ what: String) throws(TokenizationError) -> String? {
            guard let value, !value.isNone else { return nil }
            return try requireString(value, what, at: location)
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            guard keywords.isEmpty, positional.count <= 1 else { throw renderError("\(name) takes at most 1 argument", at: location) }
            let chars = try optionalString(positional.first, "\(name) arg")
            return .string(JinjaBuiltins.strip(s, chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "upper", "lower", "title", "capitalize":
            guard positional.isEmpty, keywords.isEmpty else { throw renderError("\(name)() takes no arguments", at: location) }
            switch name {
            case "upper": return .string(JinjaBuiltins.upper(s))
            case "lower": return .string(JinjaBuiltins.lower(s))
            case "title": return .string(JinjaBuiltins.pythonTitle(s))
            default: return .string(JinjaBuiltins.capitalize(s))
            }
        case "startswith", "endswith":
            guard keywords.isEmpty, positional.count == 1 else {
                throw unsupported("\(name)() with start/end arguments", at: location)
            }
            var candidates: [String] = []
            if let prefix = positional[0].stringValue {
                candidates = [prefix]
            } else if case .tuple(let items) = positional[0] {
                for item in items { candidates.append(try requireString(item, "\(name) tuple item", at: location)) }
            } else {
                throw renderError("\(name) first arg must be str or a tuple of str, not \(positional[0].typeName)", at: location)
            }
            let scalars = Array(s.unicodeScalars)
            return .bool(
                candidates.contains { candidate in
                    let c = Array(candidate.unicodeScalars)
                    return name == "startswith" ? scalars.starts(with: c) : scalars.reversed().starts(with: c.reversed())
                })
        case "split":
            let a = try bind(name, ["sep", "maxsplit"], positional, keywords, at: location)
            let separator = try optionalString(a[0], "split sep")
            if separator?.unicodeScalars.isEmpty == true { throw renderError("empty separator", at: location) }
            let maxSplit = try a[1].map { (v) throws(TokenizationError) in try requireInt(v, "maxsplit", at: location) } ?? -1
            return .list(JinjaBuiltins.split(s, separator, maxSplit: maxSplit).map { .string($0) })
        case "replace":
            let a = try bind(name, ["old", "new", "count"], positional, keywords, at: location)
            guard let old = a[0], let new = a[1] else { throw renderError("replace expected at least 2 arguments", at: location) }
            let count = try a[2].map { (v) throws(TokenizationError) in try requireInt(v, "count", at: location) } ?? -1
            return .string(
                JinjaBuiltins.replace(
                    s, try requireString(old, "replace arg 1", at: location), try requireString(new, "replace arg 2", at: location),
                    count: count))
        case "join":
            guard keywords.isEmpty, positional.count == 1 else { throw renderError("join() takes exactly one argument", at: location) }
            var parts: [String] = []
            for item in try iterate(positional[0], at: location) {
                guard let part = item.stringValue else {
                    throw renderError("sequence item \(parts.count): expected str instance, \(item.typeName) found", at: location)
                }
                if item.isMarkup { throw unsupported("str.join() over |safe strings", at: location) }
                parts.append(part)
            }
            return .string(parts.joined(separator: s))
        case "find", "count":
            guard keywords.isEmpty, positional.count == 1 else { throw unsupported("\(name)() with start/end arguments", at: location) }
            let needle = Array(try requireString(positional[0], "\(name) arg", at: location).unicodeScalars)
            let haystack = Array(s.unicodeScalars)
            if name == "find" { return .int(JinjaBuiltins.find(needle, in: haystack) ?? -1) }
            if needle.isEmpty { return .int(haystack.count + 1) }
            var count = 0
            var i = 0
            while let found = JinjaBuiltins.find(needle, in: haystack, from: i) {
                count += 1
                i = found + needle.count
            }
            return .int(count)
        case "removeprefix", "removesuffix":
            guard keywords.isEmpty, positional.count == 1 else { throw renderError("\(name)() takes exactly one argument", at: location) }
            let affix = Array(try requireString(positional[0], "\(name) arg", at: location).unicodeScalars)
            let scalars = Array(s.unicodeScalars)
            if name == "removeprefix", scalars.starts(with: affix) { return .string(JinjaBuiltins.string(scalars.dropFirst(affix.count))) }
            if name == "removesuffix", !affix.isEmpty, scalars.reversed().starts(with: affix.reversed()) {
                return .string(JinjaBuiltins.string(scalars.dropLast(affix.count)))
            }
            return .string(s)
        default:
            throw unsupported("the method str.\(name)()", at: location)
        }
    }

    // MARK: JSON (Hugging Face's tojson: json.dumps, ensure_ascii=False by default)

    func writeJSON(
        _ value: JinjaValue, into out: inout String, indent: String?, level: Int, itemSeparator: String, keySeparator: String, sortKeys: Bool,
        ensureASCII: Bool, at location: JinjaLocation
    ) throws(TokenizationError) {
        func newline(_ depth: Int) {
            guard let indent else { return }
            out += "\n" + String(repeating: indent, count: depth)
        }
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN {
                out += "NaN"
            } else if d.isInfinite {
                out += d < 0 ? "-Infinity" : "Infinity"
            } else {
                out += JinjaText.float(d)
            }
        case .string(let s), .markup(let s): out += Self.jsonString(s, ensureASCII: ensureASCII)
        case .list(let items), .tuple(let items):
            guard !items.isEmpty else {
                out += "[]"
                return
            }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                try writeJSON(
                    item, into: &out, indent: indent, level: level + 1, itemSeparator: itemSeparator, keySeparator: keySeparator,
                    sortKeys: sortKeys, ensureASCII: ensureASCII, at: location)
            }
            newline(level)
            out += "]"
        case .dict(let dict):
            guard dict.count > 0 else {
                out += "{}"
                return
            }
            out += "{"
            var pairs = dict.pairs
            if sortKeys {
                pairs.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) { $0.value < $1.value } }
            }
            for (i, pair) in pairs.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                out += Self.jsonString(pair.0, ensureASCII: ensureASCII) + keySeparator
                try writeJSON(
                    pair.1, into: &out, indent: indent, level: level + 1, itemSeparator: itemSeparator, keySeparator: keySeparator,
                    sortKeys: sortKeys, ensureASCII: ensureASCII, at: location)
            }
            newline(level)
            out += "}"
        default:
            throw renderError("Object of type \(value.typeName) is not JSON serializable", at: location)
        }
    }

    static func jsonString(_ s: String, ensureASCII: Bool) -> String {
        var out = String.UnicodeScalarView()
        out.append("\"")
        func hex4(_ v: UInt32) {
            var digits = String(v, radix: 16)
            while digits.count < 4 { digits = "0" + digits }
            out.append(contentsOf: ("\\u" + digits).unicodeScalars)
        }
        for c in s.unicodeScalars {
            switch c {
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": out.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": out.append(contentsOf: "\\f".unicodeScalars)
            default:
                if c.value < 0x20 {
                    hex4(c.value)
                } else if ensureASCII && c.value > 0x7E {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        hex4(0xD800 + (v >> 10))
                        hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        hex4(c.value)
                    }
                } else {
                    out.append(c)
                }
            }
        }
        out.append("\"")
        return String(out)
    }
}

extension JinjaValue {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}
