#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Executes a parsed template. One interpreter renders one template once.
final class JinjaInterpreter {
    private var callDepth = 0
    private static let maximumCallDepth = 200
    /// Strings and lists longer than this are refused instead of exhausting memory.
    static let maximumLength = 10_000_000

    enum Flow { case normal, breakLoop, continueLoop }

    // MARK: Errors

    func renderError(_ message: String, at location: JinjaLocation) -> TokenizationError {
        TokenizationError(.templateRender, "\(message) (at \(location))", underlying: "line:column \(location)")
    }

    func unsupported(_ what: String, at location: JinjaLocation) -> TokenizationError {
        TokenizationError(
            .unsupportedTemplate,
            "\(what) at \(location) is not supported by this chat-template interpreter; the template cannot be rendered faithfully",
            underlying: "line:column \(location)")
    }

    func undefinedError(_ undefined: JinjaUndefined, at location: JinjaLocation) -> TokenizationError {
        renderError(undefined.message, at: location)
    }

    // MARK: Statements

    func execute(_ nodes: [JinjaNode], scope: JinjaScope, into out: inout String) throws(TokenizationError) -> Flow {
        for node in nodes {
            switch node {
            case .text(let text):
                out += text
            case .output(let expr):
                out += try str(try evaluate(expr, scope), at: expr.location)
            case .ifChain(let branches, let otherwise):
                var taken = false
                for branch in branches {
                    guard try evaluate(branch.test, scope).truthy else { continue }
                    taken = true
                    let flow = try execute(branch.body, scope: scope, into: &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try execute(otherwise, scope: scope, into: &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let loop):
                try executeFor(loop, scope: scope, into: &out)
            case .set(let target, let expr, let location):
                try assign(target, try evaluate(expr, scope), in: scope, at: location)
            case .setBlock(let name, let body):
                var captured = ""
                _ = try execute(body, scope: scope, into: &captured)
                scope.set(name, .string(captured))
            case .macro(let macro):
                scope.set(macro.name, .macro(JinjaMacroValue(definition: macro, scope: scope)))
            case .with(let bindings, let body):
                let inner = JinjaScope(parent: scope)
                for binding in bindings {
                    try assign(binding.target, try evaluate(binding.value, scope), in: inner, at: binding.value.location)
                }
                let flow = try execute(body, scope: inner, into: &out)
                if flow != .normal { return flow }
            case .generation(let body):
                let flow = try execute(body, scope: scope, into: &out)
                if flow != .normal { return flow }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    private func executeFor(_ loop: JinjaForLoop, scope: JinjaScope, into out: inout String) throws(TokenizationError) {
        let all = try iterate(try evaluate(loop.iterable, scope), at: loop.iterable.location)
        var items = all
        if let filter = loop.filter {
            items = []
            for item in all {
                let probe = JinjaScope(parent: scope)
                try assign(loop.target, item, in: probe, at: loop.location)
                if try evaluate(filter, probe).truthy { items.append(item) }
            }
        }
        if items.isEmpty {
            _ = try execute(loop.elseBody, scope: JinjaScope(parent: scope), into: &out)
            return
        }
        for index in items.indices {
            let iteration = JinjaScope(parent: scope)
            iteration.set("loop", .loop(JinjaLoop(items: items, index0: index)))
            try assign(loop.target, items[index], in: iteration, at: loop.location)
            if try execute(loop.body, scope: iteration, into: &out) == .breakLoop { break }
        }
    }

    private func assign(_ target: JinjaTarget, _ value: JinjaValue, in scope: JinjaScope, at location: JinjaLocation) throws(TokenizationError) {
        switch target {
        case .name(let name):
            scope.set(name, value)
        case .tuple(let names):
            let parts = try iterate(value, at: location)
            guard parts.count == names.count else {
                throw renderError(
                    parts.count > names.count
                        ? "too many values to unpack (expected \(names.count))"
                        : "not enough values to unpack (expected \(names.count), got \(parts.count))", at: location)
            }
            for (name, part) in zip(names, parts) { scope.set(name, part) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let namespace) = scope.lookup(name) else {
                throw renderError("cannot assign attribute on non-namespace object", at: location)
            }
            namespace.attributes[attribute] = value
        }
    }

    // MARK: Conversions

    /// Python `str()` as jinja2 applies it to `{{ … }}` output (`Undefined` → empty).
    func str(_ value: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> String {
        switch value {
        case .undefined: return ""
        case .string(let s), .markup(let s): return s
        default: return try repr(value, at: location)
        }
    }

    /// Python `repr()`, for values inside containers.
    func repr(_ value: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> String {
        switch value {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return JinjaText.float(d)
        case .string(let s): return JinjaText.stringRepr(s)
        case .markup(let s): return "Markup(\(JinjaText.stringRepr(s)))"
        case .list(let items): return "[" + (try joinedRepr(items, at: location)) + "]"
        case .tuple(let items): return "(" + (try joinedRepr(items, at: location)) + (items.count == 1 ? ",)" : ")")
        case .dict(let dict): return try dictRepr(dict, at: location)
        case .dictView(let kind, let dict):
            let items: [JinjaValue] =
                switch kind {
                case .items: dict.pairs.map { .tuple([.string($0.0), $0.1]) }
                case .keys: dict.keys.map { .string($0) }
                case .values: dict.values
                }
            return "\(kind.rawValue)([" + (try joinedRepr(items, at: location)) + "])"
        case .range(let start, let stop, let step):
            return step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))"
        case .namespace(let namespace): return "<Namespace " + (try dictRepr(namespace.attributes, at: location)) + ">"
        case .iterator, .loop, .macro, .function:
            throw unsupported("printing a \(value.typeName) object (Python shows its memory address)", at: location)
        }
    }

    private func joinedRepr(_ items: [JinjaValue], at location: JinjaLocation) throws(TokenizationError) -> String {
        var parts: [String] = []
        for item in items { parts.append(try repr(item, at: location)) }
        return parts.joined(separator: ", ")
    }

    private func dictRepr(_ dict: JinjaDict, at location: JinjaLocation) throws(TokenizationError) -> String {
        var parts: [String] = []
        for (key, value) in dict.pairs { parts.append(JinjaText.stringRepr(key) + ": " + (try repr(value, at: location))) }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    /// Python `iter()`: the items a `for` loop or a filter sees.
    func iterate(_ value: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> [JinjaValue] {
        switch value {
        case .undefined: return []
        case .list(let items), .tuple(let items): return items
        case .string(let s), .markup(let s): return s.unicodeScalars.map { .string(String(Character($0))) }
        case .dict(let dict): return dict.keys.map { .string($0) }
        case .dictView(let kind, let dict):
            switch kind {
            case .items: return dict.pairs.map { .tuple([.string($0.0), $0.1]) }
            case .keys: return dict.keys.map { .string($0) }
            case .values: return dict.values
            }
        case .range: return value.sequenceItems!
        case .iterator(let iterator): return iterator.drain()
        case .loop: throw unsupported("iterating over the loop object (recursive loops)", at: location)
        default: throw renderError("'\(value.typeName)' object is not iterable", at: location)
        }
    }

    // MARK: Expressions

    func evaluate(_ expr: JinjaExpr, _ scope: JinjaScope) throws(TokenizationError) -> JinjaValue {
        let location = expr.location
        switch expr.kind {
        case .constant(let constant):
            switch constant {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let name):
            if let value = scope.lookup(name) { return value }
            switch name {
            case "raise_exception": return .function(.raiseException)
            case "namespace": return .function(.namespace)
            case "range": return .function(.range)
            case "dict": return .function(.dict)
            case "strftime_now": return .function(.strftimeNow)
            case "lipsum", "cycler", "joiner": throw unsupported("the global '\(name)'", at: location)
            default: return .undefined("'\(name)' is undefined")
            }
        case .list(let items):
            var values: [JinjaValue] = []
            for item in items { values.append(try evaluate(item, scope)) }
            return .list(values)
        case .tuple(let items):
            var values: [JinjaValue] = []
            for item in items { values.append(try evaluate(item, scope)) }
            return .tuple(values)
        case .dict(let entries):
            var dict = JinjaDict()
            for entry in entries {
                let key = try evaluate(entry.key, scope)
                guard let name = key.stringValue else { throw unsupported("a dict literal key of type \(key.typeName)", at: entry.key.location) }
                dict[name] = try evaluate(entry.value, scope)
            }
            return .dict(dict)
        case .attribute(let object, let name):
            return try attribute(try evaluate(object, scope), name, at: location)
        case .item(let object, let key):
            return try item(try evaluate(object, scope), try evaluate(key, scope), at: location)
        case .slice(let object, let start, let stop, let step):
            let value = try evaluate(object, scope)
            let bounds = [start, stop, step]
            var resolved: [Int?] = []
            for bound in bounds {
                guard let bound else {
                    resolved.append(nil)
                    continue
                }
                switch try evaluate(bound, scope) {
                case .none: resolved.append(nil)
                case .int(let i): resolved.append(i)
                case .bool(let b): resolved.append(b ? 1 : 0)
                default:
                    // jinja2 compiles slices to a plain Python subscript: no undefined fallback.
                    if case .undefined(let u) = value { throw undefinedError(u, at: location) }
                    throw renderError("slice indices must be integers or None or have an __index__ method", at: location)
                }
            }
            return try slice(value, resolved[0], resolved[1], resolved[2], at: location)
        case .call(let callee, let arguments):
            let function = try evaluate(callee, scope)
            let (positional, keywords) = try evaluateArguments(arguments, scope)
            return try call(function, positional, keywords, at: location)
        case .filter(let subject, let name, let arguments):
            let value = try evaluate(subject, scope)
            let (positional, keywords) = try evaluateArguments(arguments, scope)
            return try applyFilter(name, value, positional, keywords, at: location)
        case .test(let subject, let name, let arguments, let negated):
            let value = try evaluate(subject, scope)
            let (positional, keywords) = try evaluateArguments(arguments, scope)
            let result = try applyTest(name, value, positional, keywords, at: location)
            return .bool(result != negated)
        case .negate(let operand):
            let value = try evaluate(operand, scope)
            switch value.number {
            case .int(let i)?:
                guard i != Int.min else { throw unsupported("integers beyond 64 bits", at: location) }
                return .int(-i)
            case .double(let d)?: return .double(-d)
            case nil:
                if case .undefined(let u) = value { throw undefinedError(u, at: location) }
                throw renderError("bad operand type for unary -: '\(value.typeName)'", at: location)
            }
        case .plus(let operand):
            let value = try evaluate(operand, scope)
            switch value.number {
            case .int(let i)?: return .int(i)
            case .double(let d)?: return .double(d)
            case nil:
                if case .undefined(let u) = value { throw undefinedError(u, at: location) }
                throw renderError("bad operand type for unary +: '\(value.typeName)'", at: location)
            }
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left, scope), try evaluate(right, scope), at: location)
        case .concat(let parts):
            var out = ""
            for part in parts { out += try str(try evaluate(part, scope), at: part.location) }
            return .string(out)
        case .compare(let first, let comparisons):
            var left = try evaluate(first, scope)
            for comparison in comparisons {
                let right = try evaluate(comparison.operand, scope)
                guard try compare(comparison.op, left, right, at: comparison.operand.location) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .and(let left, let right):
            let value = try evaluate(left, scope)
            return value.truthy ? try evaluate(right, scope) : value
        case .or(let left, let right):
            let value = try evaluate(left, scope)
            return value.truthy ? value : try evaluate(right, scope)
        case .not(let operand):
            return .bool(!(try evaluate(operand, scope).truthy))
        case .conditional(let test, let then, let otherwise):
            if try evaluate(test, scope).truthy { return try evaluate(then, scope) }
            if let otherwise { return try evaluate(otherwise, scope) }
            return .undefined("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    private func evaluateArguments(_ arguments: JinjaCallArguments, _ scope: JinjaScope) throws(TokenizationError) -> (
        [JinjaValue], [(String, JinjaValue)]
    ) {
        var positional: [JinjaValue] = []
        for argument in arguments.positional { positional.append(try evaluate(argument, scope)) }
        var keywords: [(String, JinjaValue)] = []
        for keyword in arguments.keywords { keywords.append((keyword.name, try evaluate(keyword.value, scope))) }
        return (positional, keywords)
    }

    // MARK: Attribute and item access (jinja2's sandboxed getattr / getitem)

    func attribute(_ value: JinjaValue, _ name: String, at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        if name.hasPrefix("__") { throw unsupported("access to the attribute '\(name)'", at: location) }
        switch value {
        case .undefined(let u):
            throw undefinedError(u, at: location)
        case .dict(let dict):
            if JinjaBuiltins.dictMethodNames.contains(name) { return .function(.method(value, name)) }
            return dict[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .string, .markup:
            if JinjaBuiltins.stringMethodNames.contains(name) { return .function(.method(value, name)) }
        case .list:
            if JinjaBuiltins.listMethodNames.contains(name) { return .function(.method(value, name)) }
        case .tuple:
            if name == "count" || name == "index" { return .function(.method(value, name)) }
        case .namespace(let namespace):
            return namespace.attributes[name] ?? .undefined("'Namespace object' has no attribute '\(name)'")
        case .loop(let loop):
            return try loopAttribute(loop, name, at: location)
        case .range(let start, let stop, let step):
            switch name {
            case "start": return .int(start)
            case "stop": return .int(stop)
            case "step": return .int(step)
            case "count", "index": throw unsupported("range.\(name)", at: location)
            default: break
            }
        case .none, .bool, .int, .double:
            if JinjaBuiltins.numberAttributeNames.contains(name) { throw unsupported("the number attribute '\(name)'", at: location) }
        case .macro:
            if ["name", "arguments", "defaults", "catch_kwargs", "catch_varargs", "caller"].contains(name) {
                throw unsupported("the macro attribute '\(name)'", at: location)
            }
        case .dictView:
            if name == "mapping" || name == "isdisjoint" { throw unsupported("the dict view attribute '\(name)'", at: location) }
        case .iterator, .function:
            break
        }
        return .undefined("'\(value.typeName) object' has no attribute '\(name)'")
    }

    private func loopAttribute(_ loop: JinjaLoop, _ name: String, at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        let length = loop.items.count
        let i = loop.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(length - i)
        case "revindex0": return .int(length - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == length - 1)
        case "length": return .int(length)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? loop.items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < length ? loop.items[i + 1] : .undefined("there is no next item")
        case "cycle": return .function(.loopCycle(loop))
        case "changed": throw unsupported("loop.changed()", at: location)
        default: return .undefined("'LoopContext object' has no attribute '\(name)'")
        }
    }

    func item(_ value: JinjaValue, _ key: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        if case .undefined(let u) = value { throw undefinedError(u, at: location) }
        var index: Int? = nil
        switch key {
        case .int(let i): index = i
        case .bool(let b): index = b ? 1 : 0
        default: break
        }
        switch value {
        case .dict(let dict):
            if let name = key.stringValue, let found = dict[name] { return found }
        case .list(let items), .tuple(let items):
            if let index {
                let resolved = index < 0 ? index + items.count : index
                if resolved >= 0, resolved < items.count { return items[resolved] }
            }
        case .string(let s), .markup(let s):
            if let index {
                let scalars = Array(s.unicodeScalars)
                let resolved = index < 0 ? index + scalars.count : index
                if resolved >= 0, resolved < scalars.count {
                    if case .markup = value { throw unsupported("indexing a |safe string", at: location) }
                    return .string(String(Character(scalars[resolved])))
                }
            }
        case .range:
            if let index {
                let items = value.sequenceItems!
                let resolved = index < 0 ? index + items.count : index
                if resolved >= 0, resolved < items.count { return items[resolved] }
            }
        default:
            break
        }
        if let name = key.stringValue { return try attribute(value, name, at: location) }
        return .undefined("'\(value.typeName) object' has no item")
    }

    private func slice(_ value: JinjaValue, _ start: Int?, _ stop: Int?, _ step: Int?, at location: JinjaLocation) throws(TokenizationError)
        -> JinjaValue
    {
        if case .undefined(let u) = value { throw undefinedError(u, at: location) }
        func indices(_ count: Int) throws(TokenizationError) -> [Int] {
            let step = step ?? 1
            guard step != 0 else { throw renderError("slice step cannot be zero", at: location) }
            let lower = step > 0 ? 0 : -1
            let upper = step > 0 ? count : count - 1
            func clamp(_ bound: Int?, _ fallback: Int) -> Int {
                guard var bound else { return fallback }
                if bound < 0 {
                    bound += count
                    if bound < lower { bound = lower }
                } else if bound > upper {
                    bound = upper
                }
                return bound
            }
            let first = clamp(start, step > 0 ? lower : upper)
            let last = clamp(stop, step > 0 ? upper : lower)
            var result: [Int] = []
            var i = first
            while step > 0 ? i < last : i > last {
                result.append(i)
                i += step
            }
            return result
        }
        switch value {
        case .list(let items): return .list(try indices(items.count).map { items[$0] })
        case .tuple(let items): return .tuple(try indices(items.count).map { items[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var out = String.UnicodeScalarView()
            for i in try indices(scalars.count) { out.append(scalars[i]) }
            return .string(String(out))
        case .markup: throw unsupported("slicing a |safe string", at: location)
        case .range(let rangeStart, _, let rangeStep):
            let items = value.sequenceItems!
            let picked = try indices(items.count)
            let sliceStep = step ?? 1
            if picked.isEmpty {
                let anchor = rangeStart
                return .range(start: anchor, stop: anchor, step: rangeStep * sliceStep)
            }
            return .range(
                start: rangeStart + picked[0] * rangeStep, stop: rangeStart + (picked.last! + sliceStep) * rangeStep,
                step: rangeStep * sliceStep)
        default:
            throw renderError("'\(value.typeName)' object is not subscriptable with a slice", at: location)
        }
    }

    // MARK: Operators

    private func overflow(at location: JinjaLocation) -> TokenizationError {
        unsupported("integer arithmetic beyond 64 bits", at: location)
    }

    func binary(_ op: JinjaBinaryOperator, _ left: JinjaValue, _ right: JinjaValue, at location: JinjaLocation) throws(TokenizationError)
        -> JinjaValue
    {
        if case .undefined(let u) = left { throw undefinedError(u, at: location) }
        if case .undefined(let u) = right { throw undefinedError(u, at: location) }
        if let a = left.number, let b = right.number { return try arithmetic(op, a, b, at: location) }
        let typeError = renderError(
            "unsupported operand type(s) for \(op.rawValue): '\(left.typeName)' and '\(right.typeName)'", at: location)
        switch op {
        case .add:
            switch (left, right) {
            case (.string(let a), .string(let b)): return try checkedString(a + b, at: location)
            case (.markup(let a), _):
                guard let b = right.stringValue else { throw typeError }
                return .markup(a + (right.isMarkup ? b : JinjaBuiltins.escapeHTML(b)))
            case (.string(let a), .markup(let b)): return .markup(JinjaBuiltins.escapeHTML(a) + b)
            case (.list(let a), .list(let b)): return try checkedList(a + b, at: location)
            case (.tuple(let a), .tuple(let b)):
                guard a.count + b.count <= Self.maximumLength else { throw unsupported("a tuple this long", at: location) }
                return .tuple(a + b)
            default: throw typeError
            }
        case .multiply:
            func repeatCount(_ value: JinjaValue) -> Int? {
                if case .int(let i)? = value.number, !(value.isDouble) { return max(i, 0) }
                return nil
            }
            if let count = repeatCount(right) ?? repeatCount(left) {
                let sequence = repeatCount(right) != nil ? left : right
                switch sequence {
                case .string(let s):
                    guard s.unicodeScalars.count.multipliedReportingOverflow(by: count).partialValue <= Self.maximumLength else {
                        throw unsupported("a string this long", at: location)
                    }
                    return .string(String(repeating: s, count: count))
                case .markup: throw unsupported("repeating a |safe string", at: location)
                case .list(let items):
                    guard items.count.multipliedReportingOverflow(by: count).partialValue <= Self.maximumLength else {
                        throw unsupported("a list this long", at: location)
                    }
                    return .list(Array([[JinjaValue]](repeating: items, count: count).joined()))
                case .tuple(let items):
                    guard items.count.multipliedReportingOverflow(by: count).partialValue <= Self.maximumLength else {
                        throw unsupported("a tuple this long", at: location)
                    }
                    return .tuple(Array([[JinjaValue]](repeating: items, count: count).joined()))
                default: throw typeError
                }
            }
            throw typeError
        case .modulo:
            if left.stringValue != nil { throw unsupported("printf-style string formatting with %", at: location) }
            throw typeError
        default:
            throw typeError
        }
    }

    private func checkedString(_ s: String, at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        guard s.utf8.count <= Self.maximumLength * 4 else { throw unsupported("a string this long", at: location) }
        return .string(s)
    }

    private func checkedList(_ items: [JinjaValue], at location: JinjaLocation) throws(TokenizationError) -> JinjaValue {
        guard items.count <= Self.maximumLength else { throw unsupported("a list this long", at: location) }
        return .list(items)
    }

    private func arithmetic(_ op: JinjaBinaryOperator, _ a: JinjaValue.Number, _ b: JinjaValue.Number, at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        if case .int(let x) = a, case .int(let y) = b {
            switch op {
            case .add:
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow(at: location) }
                return .int(r)
            case .subtract:
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow(at: location) }
                return .int(r)
            case .multiply:
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow(at: location) }
                return .int(r)
            case .divide:
                guard y != 0 else { throw renderError("division by zero", at: location) }
                return .double(Double(x) / Double(y))
            case .floorDivide, .modulo:
                guard y != 0 else { throw renderError("integer division or modulo by zero", at: location) }
                if x == Int.min && y == -1 { throw overflow(at: location) }
                var q = x / y
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) {
                    q -= 1
                    r += y
                }
                return .int(op == .floorDivide ? q : r)
            case .power:
                if y < 0 {
                    guard x != 0 else { throw renderError("0.0 cannot be raised to a negative power", at: location) }
                    return .double(pow(Double(x), Double(y)))
                }
                var result = 1
                var base = x
                var exponent = y
                while exponent > 0 {
                    if exponent & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow(at: location) }
                        result = r
                    }
                    exponent >>= 1
                    if exponent > 0 {
                        let (sq, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow(at: location) }
                        base = sq
                    }
                }
                return .int(result)
            }
        }
        func double(_ n: JinjaValue.Number) -> Double {
            switch n {
            case .int(let i): Double(i)
            case .double(let d): d
            }
        }
        let x = double(a)
        let y = double(b)
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            guard y != 0 else { throw renderError("float division by zero", at: location) }
            return .double(x / y)
        case .floorDivide, .modulo:
            guard y != 0 else { throw renderError("float floor division or modulo by zero", at: location) }
            // CPython's float_divmod.
            var mod = fmod(x, y)
            var div = (x - mod) / y
            if mod != 0 {
                if (y < 0) != (mod < 0) {
                    mod += y
                    div -= 1
                }
            } else {
                mod = copysign(0, y)
            }
            var floorDiv: Double
            if div != 0 {
                floorDiv = floor(div)
                if div - floorDiv > 0.5 { floorDiv += 1 }
            } else {
                floorDiv = copysign(0, x / y)
            }
            return .double(op == .floorDivide ? floorDiv : mod)
        case .power:
            if x == 0 && y < 0 { throw renderError("0.0 cannot be raised to a negative power", at: location) }
            if x < 0 && y != y.rounded() { throw unsupported("a power with a complex result", at: location) }
            return .double(pow(x, y))
        }
    }

    func compare(_ op: JinjaCompareOperator, _ left: JinjaValue, _ right: JinjaValue, at location: JinjaLocation) throws(TokenizationError)
        -> Bool
    {
        switch op {
        case .equal: return left.pyEquals(right)
        case .notEqual: return !left.pyEquals(right)
        case .contains: return try contains(right, left, at: location)
        case .notContains: return !(try contains(right, left, at: location))
        case .less, .lessEqual, .greater, .greaterEqual:
            if case .undefined(let u) = left { throw undefinedError(u, at: location) }
            if case .undefined(let u) = right { throw undefinedError(u, at: location) }
            let error = renderError(
                "'\(op.rawValue)' not supported between instances of '\(left.typeName)' and '\(right.typeName)'", at: location)
            switch op {
            case .less:
                guard let r = left.pyLess(right) else { throw error }
                return r
            case .greater:
                guard let r = right.pyLess(left) else { throw error }
                return r
            case .lessEqual:
                guard let r = right.pyLess(left) else { throw error }
                if left.isNaN || right.isNaN { return false }
                return !r
            default:
                guard let r = left.pyLess(right) else { throw error }
                if left.isNaN || right.isNaN { return false }
                return !r
            }
        }
    }

    /// Python `needle in haystack`.
    func contains(_ haystack: JinjaValue, _ needle: JinjaValue, at location: JinjaLocation) throws(TokenizationError) -> Bool {
        switch haystack {
        case .undefined: return false
        case .string(let s), .markup(let s):
            guard let n = needle.stringValue else {
                throw renderError("'in <string>' requires string as left operand, not \(needle.typeName)", at: location)
            }
            return JinjaBuiltins.find(Array(n.unicodeScalars), in: Array(s.unicodeScalars)) != nil
        case .list(let items), .tuple(let items): return items.contains { $0.pyEquals(needle) }
        case .range: return haystack.sequenceItems!.contains { $0.pyEquals(needle) }
        case .dict(let dict):
            if let key = needle.stringValue { return dict[key] != nil }
            switch needle {
            case .list, .dict: throw renderError("unhashable type: '\(needle.typeName)'", at: location)
            default: return false
            }
        case .dictView:
            return try iterate(haystack, at: location).contains { $0.pyEquals(needle) }
        case .iterator(let iterator):
            while let next = iterator.next() {
                if next.pyEquals(needle) { return true }
            }
            return false
        default:
            throw renderError("argument of type '\(haystack.typeName)' is not iterable", at: location)
        }
    }

    // MARK: Calls

    func call(_ function: JinjaValue, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        switch function {
        case .undefined(let u):
            throw undefinedError(u, at: location)
        case .macro(let macro):
            return try callMacro(macro, positional, keywords, at: location)
        case .function(let builtin):
            return try callBuiltin(builtin, positional, keywords, at: location)
        default:
            throw renderError("'\(function.typeName)' object is not callable", at: location)
        }
    }

    private func callMacro(_ macro: JinjaMacroValue, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        let definition = macro.definition
        guard positional.count <= definition.parameters.count else {
            throw renderError("macro '\(definition.name)' takes not more than \(definition.parameters.count) argument(s)", at: location)
        }
        var provided: [String: JinjaValue] = [:]
        for (parameter, value) in zip(definition.parameters, positional) { provided[parameter.name] = value }
        for (name, value) in keywords {
            guard definition.parameters.contains(where: { $0.name == name }) else {
                throw renderError("macro '\(definition.name)' takes no keyword argument '\(name)'", at: location)
            }
            guard provided[name] == nil else {
                throw renderError("macro '\(definition.name)' got multiple values for argument '\(name)'", at: location)
            }
            provided[name] = value
        }
        callDepth += 1
        defer { callDepth -= 1 }
        guard callDepth <= Self.maximumCallDepth else { throw renderError("maximum macro recursion depth exceeded", at: location) }
        let frame = JinjaScope(parent: macro.scope)
        for parameter in definition.parameters {
            if let value = provided[parameter.name] {
                frame.set(parameter.name, value)
            } else if let defaultValue = parameter.defaultValue {
                frame.set(parameter.name, try evaluate(defaultValue, frame))
            } else {
                frame.set(parameter.name, .undefined("parameter '\(parameter.name)' was not provided"))
            }
        }
        var out = ""
        _ = try execute(definition.body, scope: frame, into: &out)
        return .string(out)
    }

    private func callBuiltin(_ builtin: JinjaFunction, _ positional: [JinjaValue], _ keywords: [(String, JinjaValue)], at location: JinjaLocation)
        throws(TokenizationError) -> JinjaValue
    {
        switch builtin {
        case .raiseException:
            let message = try positional.first.map { (v) throws(TokenizationError) in try str(v, at: location) } ?? ""
            throw TokenizationError(.templateRender, message, underlying: "raise_exception at line:column \(location)")
        case .namespace, .dict:
            var dict = JinjaDict()
            guard positional.count <= 1 else { throw renderError("\(builtin) expected at most 1 positional argument", at: location) }
            if let first = positional.first {
                switch first {
                case .dict(let initial): dict = initial
                default: throw unsupported("\(builtin)() from a \(first.typeName)", at: location)
                }
            }
            for (key, value) in keywords { dict[key] = value }
            if case .dict = builtin { return .dict(dict) }
            let namespace = JinjaNamespace()
            namespace.attributes = dict
            return .namespace(namespace)
        case .range:
            guard keywords.isEmpty, (1...3).contains(positional.count) else {
                throw renderError("range expected 1 to 3 integer arguments", at: location)
            }
            var ints: [Int] = []
            for argument in positional {
                guard case .int(let i)? = argument.number, !argument.isDouble else {
                    throw renderError("'\(argument.typeName)' object cannot be interpreted as an integer", at: location)
                }
                ints.append(i)
            }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            guard step != 0 else { throw renderError("range() arg 3 must not be zero", at: location) }
            guard jinjaRangeCount(start, stop, step) <= 100_000 else {
                throw renderError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).", at: location)
            }
            return .range(start: start, stop: stop, step: step)
        case .strftimeNow:
            guard let format = positional.first?.stringValue, positional.count == 1, keywords.isEmpty else {
                throw renderError("strftime_now() takes one string argument", at: location)
            }
            return .string(try Self.strftimeNow(format, at: location, interpreter: self))
        case .loopCycle(let loop):
            guard !positional.isEmpty else { throw renderError("no items for cycling given", at: location) }
            return positional[loop.index0 % positional.count]
        case .method(let receiver, let name):
            return try callMethod(receiver, name, positional, keywords, at: location)
        }
    }

    /// `datetime.now().strftime(format)`: C `strftime` on local time, with Python's own `%f` and naive-datetime `%z`/`%Z`.
    private static func strftimeNow(_ format: String, at location: JinjaLocation, interpreter: JinjaInterpreter) throws(TokenizationError)
        -> String
    {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        var rewritten = ""
        var iterator = format.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else {
                rewritten.append(c)
                continue
            }
            guard let d = iterator.next() else {
                rewritten.append("%")
                break
            }
            switch d {
            case "f":
                var micro = String(Int(spec.tv_nsec) / 1000)
                while micro.count < 6 { micro = "0" + micro }
                rewritten += micro
            case "z", "Z": break
            default:
                rewritten.append("%")
                rewritten.append(d)
            }
        }
        var buffer = [CChar](repeating: 0, count: 1024)
        let count = strftime(&buffer, buffer.count, rewritten, &parts)
        guard count > 0 || rewritten.isEmpty else { throw interpreter.unsupported("this strftime format", at: location) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension JinjaValue {
    var isMarkup: Bool {
        if case .markup = self { return true }
        return false
    }
    var isDouble: Bool {
        if case .double = self { return true }
        return false
    }
    var isNaN: Bool {
        if case .double(let d) = self { return d.isNaN }
        return false
    }
}
