/// Run-time values of the interpreter: the Python objects jinja2 would hold,
/// reduced to what chat templates use. Rendering is synchronous and these
/// values never leave one `render` call, so the reference-typed ones
/// (namespaces, iterators) need not be `Sendable`.

/// An ordered, string-keyed dictionary (Python `dict` with `str` keys).
struct JinjaDict {
    private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    init() {}

    var count: Int { keys.count }

    subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var values: [JinjaValue] { keys.map { storage[$0]! } }
    var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
}

/// jinja2's default `Undefined`: renders empty, is falsy, iterates as empty,
/// and raises `UndefinedError` for attribute access, arithmetic and calls.
struct JinjaUndefined {
    /// What jinja2's `UndefinedError` would say, e.g. `'x' is undefined`.
    var message: String
}

final class JinjaNamespace {
    var attributes = JinjaDict()
}

/// A one-shot Python iterator (a generator from `select`/`map`, a `reversed()` object).
final class JinjaIterator {
    let items: [JinjaValue]
    var position = 0
    let typeName: String
    init(_ items: [JinjaValue], typeName: String = "generator") {
        self.items = items
        self.typeName = typeName
    }
    func drain() -> [JinjaValue] {
        defer { position = items.count }
        return Array(items[position...])
    }
    func next() -> JinjaValue? {
        guard position < items.count else { return nil }
        defer { position += 1 }
        return items[position]
    }
}

struct JinjaLoop {
    var items: [JinjaValue]
    var index0: Int
}

enum JinjaDictView: String {
    case items = "dict_items", keys = "dict_keys", values = "dict_values"
}

struct JinjaMacroValue {
    let definition: JinjaMacro
    let scope: JinjaScope
}

enum JinjaFunction {
    case raiseException, namespace, range, dict, strftimeNow
    case loopCycle(JinjaLoop)
    case method(JinjaValue, String)
}

indirect enum JinjaValue {
    case undefined(JinjaUndefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// markupsafe's `Markup`, produced by `|safe` and `|escape`: `+` escapes the other operand.
    case markup(String)
    case list([JinjaValue])
    case tuple([JinjaValue])
    case dict(JinjaDict)
    case dictView(JinjaDictView, JinjaDict)
    case range(start: Int, stop: Int, step: Int)
    case iterator(JinjaIterator)
    case namespace(JinjaNamespace)
    case loop(JinjaLoop)
    case macro(JinjaMacroValue)
    case function(JinjaFunction)

    static func undefined(_ message: String) -> JinjaValue { .undefined(JinjaUndefined(message: message)) }

    init(_ value: TemplateValue) {
        switch value {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let items): self = .list(items.map(JinjaValue.init))
        case .object(let object):
            var dict = JinjaDict()
            for (key, value) in object { dict[key] = JinjaValue(value) }
            self = .dict(dict)
        }
    }

    /// The Python type name, as jinja2's error messages spell it.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .markup: "Markup"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .dictView(let kind, _): kind.rawValue
        case .range: "range"
        case .iterator(let iterator): iterator.typeName
        case .namespace: "Namespace"
        case .loop: "LoopContext"
        case .macro: "Macro"
        case .function: "builtin_function_or_method"
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// The string payload of `str` and `Markup` values.
    var stringValue: String? {
        switch self {
        case .string(let s), .markup(let s): s
        default: nil
        }
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s), .markup(let s): !s.unicodeScalars.isEmpty
        case .list(let items), .tuple(let items): !items.isEmpty
        case .dict(let d), .dictView(_, let d): d.count > 0
        case .range(let start, let stop, let step): jinjaRangeCount(start, stop, step) > 0
        case .iterator, .namespace, .loop, .macro, .function: true
        }
    }
}

func jinjaRangeCount(_ start: Int, _ stop: Int, _ step: Int) -> Int {
    if step > 0 { return start < stop ? (stop - start - 1) / step + 1 : 0 }
    return start > stop ? (start - stop - 1) / (-step) + 1 : 0
}

/// Lexical scopes: each `for` iteration and each macro call gets a child scope; `if` does not.
final class JinjaScope {
    private var variables: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?) {
        self.parent = parent
    }

    func lookup(_ name: String) -> JinjaValue? {
        var scope: JinjaScope? = self
        while let current = scope {
            if let value = current.variables[name] { return value }
            scope = current.parent
        }
        return nil
    }

    func set(_ name: String, _ value: JinjaValue) { variables[name] = value }
}

// MARK: Python text conversions

enum JinjaText {
    /// Python `repr(float)`: shortest round-trip digits, exponent form when the exponent is < -4 or ≥ 16.
    static func float(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description also prints the shortest round-trip digits; re-lay them out Python's way.
        var text = Substring(value.description)
        var negative = false
        if text.first == "-" {
            negative = true
            text = text.dropFirst()
        }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...])!
            text = text[..<e]
        }
        var digits = ""
        var pointPosition = text.count
        if let dot = text.firstIndex(of: ".") {
            pointPosition = text.distance(from: text.startIndex, to: dot)
            digits = String(text[..<dot]) + String(text[text.index(after: dot)...])
        } else {
            digits = String(text)
        }
        var decimalPoint = pointPosition + exponent  // value = 0.DIGITS × 10^decimalPoint
        while digits.hasPrefix("0") {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while digits.hasSuffix("0") { digits.removeLast() }
        if digits.isEmpty { return negative ? "-0.0" : "0.0" }
        var out = negative ? "-" : ""
        if decimalPoint > -4 && decimalPoint <= 16 {
            if decimalPoint <= 0 {
                out += "0." + String(repeating: "0", count: -decimalPoint) + digits
            } else if decimalPoint >= digits.count {
                out += digits + String(repeating: "0", count: decimalPoint - digits.count) + ".0"
            } else {
                let split = digits.index(digits.startIndex, offsetBy: decimalPoint)
                out += digits[..<split] + "." + digits[split...]
            }
        } else {
            let e = decimalPoint - 1
            out += String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            let magnitude = abs(e)
            out += (e < 0 ? "e-" : "e+") + (magnitude < 10 ? "0" : "") + String(magnitude)
        }
        return out
    }

    /// Python's `str.isprintable` per scalar, used by `repr`.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Python `repr(str)`.
    static func stringRepr(_ s: String) -> String {
        let scalars = s.unicodeScalars
        let quote: Unicode.Scalar = (scalars.contains("'") && !scalars.contains("\"")) ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in scalars {
            switch c {
            case quote, "\\":
                out.append("\\")
                out.append(c)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default:
                if c.value < 0x20 || c.value == 0x7F || (c.value >= 0x80 && !isPrintable(c)) {
                    let (prefix, width) = c.value < 0x100 ? ("\\x", 2) : (c.value < 0x10000 ? ("\\u", 4) : ("\\U", 8))
                    var digits = String(c.value, radix: 16)
                    while digits.count < width { digits = "0" + digits }
                    out.append(contentsOf: (prefix + digits).unicodeScalars)
                } else {
                    out.append(c)
                }
            }
        }
        out.append(quote)
        return String(out)
    }
}

// MARK: Python equality and ordering

extension JinjaValue {
    /// A numeric view: `bool` is an `int` in Python.
    enum Number {
        case int(Int)
        case double(Double)
    }

    var number: Number? {
        switch self {
        case .bool(let b): .int(b ? 1 : 0)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        default: nil
        }
    }

    /// Sequence contents for sequence-like values (no iterator consumption).
    var sequenceItems: [JinjaValue]? {
        switch self {
        case .list(let items), .tuple(let items): items
        case .range(let start, let stop, let step):
            stride(from: start, to: stop, by: step).map { .int($0) }
        default: nil
        }
    }

    /// Python `==`.
    func pyEquals(_ other: JinjaValue) -> Bool {
        if let a = number, let b = other.number {
            switch (a, b) {
            case (.int(let x), .int(let y)): return x == y
            case (.int(let x), .double(let y)): return Double(x) == y
            case (.double(let x), .int(let y)): return x == Double(y)
            case (.double(let x), .double(let y)): return x == y
            }
        }
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)), (.markup(let a), .markup(let b)), (.string(let a), .markup(let b)),
            (.markup(let a), .string(let b)):
            return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case (.range, .range):
            return sequenceItems!.count == other.sequenceItems!.count
                && zip(sequenceItems!, other.sequenceItems!).allSatisfy { $0.pyEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.keys.allSatisfy { key in b[key].map { a[key]!.pyEquals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.iterator(let a), .iterator(let b)): return a === b
        default: return false
        }
    }

    /// Python `<`; nil when the types cannot be ordered (a `TypeError`).
    func pyLess(_ other: JinjaValue) -> Bool? {
        if let a = number, let b = other.number {
            switch (a, b) {
            case (.int(let x), .int(let y)): return x < y
            case (.int(let x), .double(let y)): return Double(x) < y
            case (.double(let x), .int(let y)): return x < Double(y)
            case (.double(let x), .double(let y)): return x < y
            }
        }
        if let a = stringValue, let b = other.stringValue {
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
        }
        switch (self, other) {
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !x.pyEquals(y) { return x.pyLess(y) }
            return a.count < b.count
        default:
            return nil
        }
    }
}
