/// A recursive-descent parser following jinja2's own grammar (`jinja2/parser.py`):
/// the same precedence (filters and `is` tests bind tighter than arithmetic,
/// `**` is left-associative, unary minus binds tighter than `**`), the same
/// tuple and slice rules. Constructs this interpreter does not implement are
/// refused here, with their position, whenever they can be seen statically.
struct JinjaParser {
    private var tokens: [JinjaToken]
    private var index = 0
    private var loopDepth = 0
    private var macroDepth = 0

    init(tokens: [JinjaToken]) {
        self.tokens = tokens
    }

    // MARK: Token helpers

    private var current: JinjaToken { tokens[index] }
    private var lookahead: JinjaToken { tokens[min(index + 1, tokens.count - 1)] }

    private mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    private func isOp(_ op: String, _ token: JinjaToken? = nil) -> Bool {
        if case .op(let value) = (token ?? current).kind { return value == op }
        return false
    }

    private func isName(_ name: String, _ token: JinjaToken? = nil) -> Bool {
        if case .name(let value) = (token ?? current).kind { return value == name }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    private func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .data: "template text"
        case .variableBegin: "'{{'"
        case .variableEnd: "'}}'"
        case .blockBegin: "'{%'"
        case .blockEnd: "'%}'"
        case .name(let name): "'\(name)'"
        case .string: "a string"
        case .integer(let value): "'\(value)'"
        case .float(let value): "'\(value)'"
        case .op(let op): "'\(op)'"
        case .eof: "end of template"
        }
    }

    private func syntaxError(_ message: String, at location: JinjaLocation? = nil) -> TokenizationError {
        let location = location ?? current.location
        return TokenizationError(.templateSyntax, "\(message) at \(location)", underlying: "line:column \(location)")
    }

    private func unsupported(_ what: String, at location: JinjaLocation) -> TokenizationError {
        TokenizationError(
            .unsupportedTemplate,
            "\(what) at \(location) is not supported by this chat-template interpreter; the template cannot be rendered faithfully",
            underlying: "line:column \(location)")
    }

    private mutating func expectOp(_ op: String) throws(TokenizationError) {
        guard isOp(op) else { throw syntaxError("expected '\(op)', got \(describe(current))") }
        advance()
    }

    private mutating func expectName() throws(TokenizationError) -> String {
        guard case .name(let name) = current.kind else { throw syntaxError("expected a name, got \(describe(current))") }
        advance()
        return name
    }

    private mutating func expectBlockEnd() throws(TokenizationError) {
        guard case .blockEnd = current.kind else { throw syntaxError("expected '%}', got \(describe(current))") }
        advance()
    }

    // MARK: Statements

    mutating func parseTemplate() throws(TokenizationError) -> [JinjaNode] {
        let (body, _) = try parseStatements(until: [])
        return body
    }

    /// Parses nodes until a `{% tag %}` whose name is in `endTags`; consumes `{%` and the tag name and returns it.
    private mutating func parseStatements(until endTags: Set<String>) throws(TokenizationError) -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while true {
            let token = current
            switch token.kind {
            case .data(let text):
                nodes.append(.text(text))
                advance()
            case .variableBegin:
                advance()
                let expr = try parseTuple()
                guard case .variableEnd = current.kind else { throw syntaxError("expected '}}', got \(describe(current))") }
                advance()
                nodes.append(.output(expr))
            case .blockBegin:
                if case .name(let name) = lookahead.kind, endTags.contains(name) {
                    advance()
                    advance()
                    return (nodes, name)
                }
                advance()
                nodes.append(contentsOf: try parseStatement())
            case .eof:
                if !endTags.isEmpty {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw syntaxError("unexpected end of template, expected \(expected)")
                }
                return (nodes, nil)
            default:
                throw syntaxError("unexpected \(describe(token))")
            }
        }
    }

    private mutating func parseStatement() throws(TokenizationError) -> [JinjaNode] {
        let token = current
        guard case .name(let tag) = token.kind else { throw syntaxError("expected a tag name, got \(describe(token))") }
        advance()
        switch tag {
        case "for": return [try parseFor(at: token.location)]
        case "if": return [try parseIf()]
        case "set": return [try parseSet(at: token.location)]
        case "macro": return [try parseMacro(at: token.location)]
        case "with": return [try parseWith()]
        case "print":
            let expr = try parseTuple()
            try expectBlockEnd()
            return [.output(expr)]
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseStatements(until: ["endgeneration"])
            try expectBlockEnd()
            return [.generation(body)]
        case "break", "continue":
            guard loopDepth > 0 else { throw syntaxError("'\(tag)' outside a loop", at: token.location) }
            try expectBlockEnd()
            return [tag == "break" ? .breakLoop : .continueLoop]
        case "extends", "block", "include", "import", "from", "call", "filter", "autoescape", "trans", "pluralize":
            throw unsupported("the {% \(tag) %} tag", at: token.location)
        case "endfor", "endif", "endmacro", "endset", "endwith", "endgeneration", "elif", "else", "endcall", "endblock",
            "endfilter", "endraw":
            throw syntaxError("unexpected '\(tag)'", at: token.location)
        default:
            throw syntaxError("unknown tag '\(tag)'", at: token.location)
        }
    }

    private mutating func parseFor(at location: JinjaLocation) throws(TokenizationError) -> JinjaNode {
        let target = try parseAssignTarget(allowNamespace: false)
        guard skipName("in") else { throw syntaxError("expected 'in', got \(describe(current))") }
        let iterable = try parseTuple(withCondexpr: false, extraEndNames: ["recursive"])
        var filter: JinjaExpr? = nil
        if skipName("if") { filter = try parseExpression() }
        if isName("recursive") { throw unsupported("recursive for loops", at: current.location) }
        try expectBlockEnd()
        loopDepth += 1
        let (body, end) = try parseStatements(until: ["endfor", "else"])
        loopDepth -= 1
        try expectBlockEnd()
        var elseBody: [JinjaNode] = []
        if end == "else" {
            (elseBody, _) = try parseStatements(until: ["endfor"])
            try expectBlockEnd()
        }
        return .forLoop(JinjaForLoop(target: target, iterable: iterable, filter: filter, body: body, elseBody: elseBody, location: location))
    }

    private mutating func parseIf() throws(TokenizationError) -> JinjaNode {
        var branches: [JinjaIfBranch] = []
        var test = try parseTuple(withCondexpr: false)
        while true {
            try expectBlockEnd()
            let (body, end) = try parseStatements(until: ["elif", "else", "endif"])
            branches.append(JinjaIfBranch(test: test, body: body))
            switch end {
            case "elif":
                test = try parseTuple(withCondexpr: false)
            case "else":
                try expectBlockEnd()
                let (otherwise, _) = try parseStatements(until: ["endif"])
                try expectBlockEnd()
                return .ifChain(branches, otherwise: otherwise)
            default:
                try expectBlockEnd()
                return .ifChain(branches, otherwise: [])
            }
        }
    }

    private mutating func parseAssignTarget(allowNamespace: Bool) throws(TokenizationError) -> JinjaTarget {
        if allowNamespace, case .name = current.kind, isOp(".", lookahead) {
            let name = try expectName()
            advance()
            let attribute = try expectName()
            return .namespaceAttribute(name, attribute)
        }
        let parenthesized = isOp("(")
        if parenthesized { advance() }
        var names: [String] = []
        var isTuple = parenthesized
        while true {
            if !names.isEmpty {
                guard isOp(",") else { break }
                advance()
                isTuple = true
                if case .name = current.kind {} else { break }
            }
            guard case .name(let name) = current.kind else { throw syntaxError("expected a name to assign to, got \(describe(current))") }
            if ["true", "false", "none", "True", "False", "None"].contains(name) {
                throw syntaxError("cannot assign to '\(name)'")
            }
            names.append(name)
            advance()
        }
        if parenthesized { try expectOp(")") }
        return isTuple ? .tuple(names) : .name(names[0])
    }

    private mutating func parseSet(at location: JinjaLocation) throws(TokenizationError) -> JinjaNode {
        let target = try parseAssignTarget(allowNamespace: true)
        if isOp("=") {
            advance()
            let value = try parseTuple()
            try expectBlockEnd()
            return .set(target, value, location)
        }
        if isOp("|") { throw unsupported("a filter on a block {% set %}", at: current.location) }
        guard case .name(let name) = target else { throw unsupported("a block {% set %} with this target", at: location) }
        try expectBlockEnd()
        let (body, _) = try parseStatements(until: ["endset"])
        try expectBlockEnd()
        return .setBlock(name, body)
    }

    private mutating func parseMacro(at location: JinjaLocation) throws(TokenizationError) -> JinjaNode {
        let name = try expectName()
        try expectOp("(")
        var parameters: [JinjaMacroParameter] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            if isOp("*") || isOp("**") { throw unsupported("variadic macro parameters", at: current.location) }
            let parameter = try expectName()
            var defaultValue: JinjaExpr? = nil
            if isOp("=") {
                advance()
                defaultValue = try parseExpression()
            } else if parameters.last?.defaultValue != nil {
                throw syntaxError("non-default argument follows default argument")
            }
            parameters.append(JinjaMacroParameter(name: parameter, defaultValue: defaultValue))
        }
        advance()
        try expectBlockEnd()
        let savedLoopDepth = loopDepth
        loopDepth = 0
        macroDepth += 1
        let (body, _) = try parseStatements(until: ["endmacro"])
        macroDepth -= 1
        loopDepth = savedLoopDepth
        try expectBlockEnd()
        return .macro(JinjaMacro(name: name, parameters: parameters, body: body, location: location))
    }

    private mutating func parseWith() throws(TokenizationError) -> JinjaNode {
        var bindings: [JinjaWithBinding] = []
        while true {
            if case .blockEnd = current.kind { break }
            if !bindings.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget(allowNamespace: false)
            try expectOp("=")
            bindings.append(JinjaWithBinding(target: target, value: try parseExpression()))
        }
        try expectBlockEnd()
        let (body, _) = try parseStatements(until: ["endwith"])
        try expectBlockEnd()
        return .with(bindings, body)
    }

    // MARK: Expressions

    private func isTupleEnd(_ extraEndNames: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case .op(")"): return true
        case .name(let name): return extraEndNames.contains(name)
        default: return false
        }
    }

    private mutating func parseTuple(
        withCondexpr: Bool = true, extraEndNames: Set<String> = [], explicitParentheses: Bool = false
    ) throws(TokenizationError) -> JinjaExpr {
        let location = current.location
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndNames) { break }
            items.append(withCondexpr ? try parseExpression() : try parseOr())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let first = items.first { return first }
            if !explicitParentheses { throw syntaxError("expected an expression, got \(describe(current))") }
        }
        return JinjaExpr(kind: .tuple(items), location: location)
    }

    private mutating func parseExpression() throws(TokenizationError) -> JinjaExpr {
        var expr = try parseOr()
        while isName("if") {
            let location = current.location
            advance()
            let test = try parseOr()
            var otherwise: JinjaExpr? = nil
            if skipName("else") { otherwise = try parseExpression() }
            expr = JinjaExpr(kind: .conditional(test: test, then: expr, otherwise: otherwise), location: location)
        }
        return expr
    }

    private mutating func parseOr() throws(TokenizationError) -> JinjaExpr {
        var left = try parseAnd()
        while isName("or") {
            let location = current.location
            advance()
            left = JinjaExpr(kind: .or(left, try parseAnd()), location: location)
        }
        return left
    }

    private mutating func parseAnd() throws(TokenizationError) -> JinjaExpr {
        var left = try parseNot()
        while isName("and") {
            let location = current.location
            advance()
            left = JinjaExpr(kind: .and(left, try parseNot()), location: location)
        }
        return left
    }

    private mutating func parseNot() throws(TokenizationError) -> JinjaExpr {
        if isName("not") {
            let location = current.location
            advance()
            return JinjaExpr(kind: .not(try parseNot()), location: location)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(TokenizationError) -> JinjaExpr {
        let location = current.location
        let expr = try parseMath1()
        var comparisons: [JinjaComparison] = []
        while true {
            if case .op(let op) = current.kind, let compare = JinjaCompareOperator(rawValue: op), compare != .contains {
                advance()
                comparisons.append(JinjaComparison(op: compare, operand: try parseMath1()))
            } else if isName("in") {
                advance()
                comparisons.append(JinjaComparison(op: .contains, operand: try parseMath1()))
            } else if isName("not"), isName("in", lookahead) {
                advance()
                advance()
                comparisons.append(JinjaComparison(op: .notContains, operand: try parseMath1()))
            } else {
                break
            }
        }
        return comparisons.isEmpty ? expr : JinjaExpr(kind: .compare(expr, comparisons), location: location)
    }

    private mutating func parseMath1() throws(TokenizationError) -> JinjaExpr {
        var left = try parseConcat()
        while isOp("+") || isOp("-") {
            let location = current.location
            let op: JinjaBinaryOperator = isOp("+") ? .add : .subtract
            advance()
            left = JinjaExpr(kind: .binary(op, left, try parseConcat()), location: location)
        }
        return left
    }

    private mutating func parseConcat() throws(TokenizationError) -> JinjaExpr {
        let location = current.location
        var parts = [try parseMath2()]
        while isOp("~") {
            advance()
            parts.append(try parseMath2())
        }
        return parts.count == 1 ? parts[0] : JinjaExpr(kind: .concat(parts), location: location)
    }

    private mutating func parseMath2() throws(TokenizationError) -> JinjaExpr {
        var left = try parsePow()
        while true {
            let op: JinjaBinaryOperator
            if isOp("*") { op = .multiply } else if isOp("/") { op = .divide } else if isOp("//") { op = .floorDivide } else if isOp("%") {
                op = .modulo
            } else {
                break
            }
            let location = current.location
            advance()
            left = JinjaExpr(kind: .binary(op, left, try parsePow()), location: location)
        }
        return left
    }

    private mutating func parsePow() throws(TokenizationError) -> JinjaExpr {
        var left = try parseUnary()
        while isOp("**") {
            let location = current.location
            advance()
            left = JinjaExpr(kind: .binary(.power, left, try parseUnary()), location: location)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws(TokenizationError) -> JinjaExpr {
        let location = current.location
        var node: JinjaExpr
        if isOp("-") {
            advance()
            node = JinjaExpr(kind: .negate(try parseUnary(withFilter: false)), location: location)
        } else if isOp("+") {
            advance()
            node = JinjaExpr(kind: .plus(try parseUnary(withFilter: false)), location: location)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws(TokenizationError) -> JinjaExpr {
        let token = current
        let location = token.location
        switch token.kind {
        case .name(let name):
            advance()
            switch name {
            case "true", "True": return JinjaExpr(kind: .constant(.bool(true)), location: location)
            case "false", "False": return JinjaExpr(kind: .constant(.bool(false)), location: location)
            case "none", "None": return JinjaExpr(kind: .constant(.none), location: location)
            default:
                if macroDepth > 0, ["varargs", "kwargs", "caller"].contains(name) {
                    throw unsupported("'\(name)' inside a macro", at: location)
                }
                return JinjaExpr(kind: .name(name), location: location)
            }
        case .string(var value):
            advance()
            while case .string(let next) = current.kind {
                value += next
                advance()
            }
            return JinjaExpr(kind: .constant(.string(value)), location: location)
        case .integer(let value):
            advance()
            return JinjaExpr(kind: .constant(.int(value)), location: location)
        case .float(let value):
            advance()
            return JinjaExpr(kind: .constant(.double(value)), location: location)
        case .op("("):
            advance()
            let expr = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return expr
        case .op("["):
            advance()
            var items: [JinjaExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            advance()
            return JinjaExpr(kind: .list(items), location: location)
        case .op("{"):
            advance()
            var entries: [JinjaDictEntry] = []
            while !isOp("}") {
                if !entries.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                entries.append(JinjaDictEntry(key: key, value: try parseExpression()))
            }
            advance()
            return JinjaExpr(kind: .dict(entries), location: location)
        default:
            throw syntaxError("unexpected \(describe(token))")
        }
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        var node = start
        while true {
            if isOp("|") {
                node = try parseFilter(node)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private enum Subscript {
        case index(JinjaExpr)
        case slice(JinjaExpr?, JinjaExpr?, JinjaExpr?, JinjaLocation)
    }

    private mutating func parseSubscript(_ node: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        let token = current
        advance()
        if case .op(".") = token.kind {
            switch current.kind {
            case .name(let name):
                advance()
                return JinjaExpr(kind: .attribute(node, name), location: token.location)
            case .integer(let value):
                advance()
                return JinjaExpr(kind: .item(node, JinjaExpr(kind: .constant(.int(value)), location: token.location)), location: token.location)
            default:
                throw syntaxError("expected a name or number after '.', got \(describe(current))")
            }
        }
        var subscripts: [Subscript] = []
        while !isOp("]") {
            if !subscripts.isEmpty { try expectOp(",") }
            subscripts.append(try parseSubscribed())
        }
        advance()
        if subscripts.count == 1 {
            switch subscripts[0] {
            case .index(let key): return JinjaExpr(kind: .item(node, key), location: token.location)
            case .slice(let start, let stop, let step, _):
                return JinjaExpr(kind: .slice(node, start: start, stop: stop, step: step), location: token.location)
            }
        }
        var keys: [JinjaExpr] = []
        for part in subscripts {
            guard case .index(let key) = part else { throw unsupported("a slice inside a tuple subscript", at: token.location) }
            keys.append(key)
        }
        if keys.isEmpty { throw syntaxError("expected a subscript", at: token.location) }
        return JinjaExpr(kind: .item(node, JinjaExpr(kind: .tuple(keys), location: token.location)), location: token.location)
    }

    private mutating func parseSubscribed() throws(TokenizationError) -> Subscript {
        let location = current.location
        var start: JinjaExpr? = nil
        if isOp(":") {
            advance()
        } else {
            let node = try parseExpression()
            guard isOp(":") else { return .index(node) }
            advance()
            start = node
        }
        var stop: JinjaExpr? = nil
        if !isOp(":"), !isOp("]"), !isOp(",") { stop = try parseExpression() }
        var step: JinjaExpr? = nil
        if isOp(":") {
            advance()
            if !isOp("]"), !isOp(",") { step = try parseExpression() }
        }
        return .slice(start, stop, step, location)
    }

    private mutating func parseCallArguments() throws(TokenizationError) -> JinjaCallArguments {
        try expectOp("(")
        var arguments = JinjaCallArguments()
        var first = true
        while !isOp(")") {
            if !first {
                try expectOp(",")
                if isOp(")") { break }
            }
            first = false
            if isOp("*") || isOp("**") { throw unsupported("'*' / '**' argument unpacking", at: current.location) }
            if case .name(let name) = current.kind, isOp("=", lookahead) {
                advance()
                advance()
                arguments.keywords.append(JinjaKeywordArgument(name: name, value: try parseExpression()))
            } else {
                if !arguments.keywords.isEmpty { throw syntaxError("positional argument follows keyword argument") }
                arguments.positional.append(try parseExpression())
            }
        }
        advance()
        return arguments
    }

    private mutating func parseCall(_ node: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        let location = current.location
        if case .attribute(_, let method) = node.kind, JinjaBuiltins.unimplementedMethodNames.contains(method) {
            throw unsupported("the method .\(method)()", at: node.location)
        }
        if case .name(let function) = node.kind, JinjaBuiltins.unimplementedGlobals.contains(function) {
            throw unsupported("the global function \(function)()", at: node.location)
        }
        return JinjaExpr(kind: .call(node, try parseCallArguments()), location: location)
    }

    private mutating func parseDottedName() throws(TokenizationError) -> String {
        var name = try expectName()
        while isOp(".") {
            advance()
            name += "." + (try expectName())
        }
        return name
    }

    private mutating func parseFilter(_ node: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        advance()  // `|`
        let location = current.location
        let name = try parseDottedName()
        guard JinjaBuiltins.filterNames.contains(name) else { throw unsupported("the filter '\(name)'", at: location) }
        let arguments = isOp("(") ? try parseCallArguments() : JinjaCallArguments()
        // Filters that take another filter's or test's name: check a literal name now.
        let nameArgument: Int? =
            switch name {
            case "map": arguments.keywords.contains { $0.name == "attribute" } ? nil : 0
            case "select", "reject": 0
            case "selectattr", "rejectattr": 1
            default: nil
            }
        if let nameArgument, nameArgument < arguments.positional.count,
            case .constant(.string(let named)) = arguments.positional[nameArgument].kind
        {
            let known = name == "map" ? JinjaBuiltins.filterNames.contains(named) : JinjaBuiltins.testNames.contains(named)
            if !known { throw unsupported("the \(name == "map" ? "filter" : "test") '\(named)'", at: arguments.positional[nameArgument].location) }
        }
        return JinjaExpr(kind: .filter(node, name: name, arguments), location: location)
    }

    private mutating func parseTest(_ node: JinjaExpr) throws(TokenizationError) -> JinjaExpr {
        advance()  // `is`
        let negated = skipName("not")
        let location = current.location
        let name = try parseDottedName()
        guard JinjaBuiltins.testNames.contains(name) else { throw unsupported("the test '\(name)'", at: location) }
        var arguments = JinjaCallArguments()
        if isOp("(") {
            arguments = try parseCallArguments()
        } else {
            var takesArgument = false
            switch current.kind {
            case .name(let next): takesArgument = !["else", "or", "and"].contains(next)
            case .string, .integer, .float, .op("("), .op("["), .op("{"): takesArgument = true
            default: break
            }
            if takesArgument {
                if isName("is") { throw syntaxError("you cannot chain multiple tests with 'is'") }
                arguments.positional.append(try parsePostfix(try parsePrimary()))
            }
        }
        return JinjaExpr(kind: .test(node, name: name, arguments, negated: negated), location: location)
    }
}
