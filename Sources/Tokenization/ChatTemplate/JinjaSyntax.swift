/// The parsed form of a chat template: statements (`JinjaNode`) over expressions (`JinjaExpr`).

enum JinjaConstant: Sendable, Hashable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

enum JinjaBinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

enum JinjaCompareOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case contains = "in", notContains = "not in"
}

struct JinjaKeywordArgument: Sendable {
    var name: String
    var value: JinjaExpr
}

struct JinjaCallArguments: Sendable {
    var positional: [JinjaExpr] = []
    var keywords: [JinjaKeywordArgument] = []
}

struct JinjaDictEntry: Sendable {
    var key: JinjaExpr
    var value: JinjaExpr
}

struct JinjaComparison: Sendable {
    var op: JinjaCompareOperator
    var operand: JinjaExpr
}

struct JinjaExpr: Sendable {
    indirect enum Kind: Sendable {
        case constant(JinjaConstant)
        case name(String)
        case list([JinjaExpr])
        case tuple([JinjaExpr])
        case dict([JinjaDictEntry])
        case attribute(JinjaExpr, String)
        case item(JinjaExpr, JinjaExpr)
        case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
        case call(JinjaExpr, JinjaCallArguments)
        case filter(JinjaExpr, name: String, JinjaCallArguments)
        case test(JinjaExpr, name: String, JinjaCallArguments, negated: Bool)
        case negate(JinjaExpr)
        case plus(JinjaExpr)
        case binary(JinjaBinaryOperator, JinjaExpr, JinjaExpr)
        case concat([JinjaExpr])
        case compare(JinjaExpr, [JinjaComparison])
        case and(JinjaExpr, JinjaExpr)
        case or(JinjaExpr, JinjaExpr)
        case not(JinjaExpr)
        case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
    }
    var kind: Kind
    var location: JinjaLocation
}

/// What `{% set %}` and `{% for %}` bind.
enum JinjaTarget: Sendable {
    case name(String)
    case tuple([String])
    /// `set ns.attribute = …`
    case namespaceAttribute(String, String)
}

struct JinjaIfBranch: Sendable {
    var test: JinjaExpr
    var body: [JinjaNode]
}

struct JinjaForLoop: Sendable {
    var target: JinjaTarget
    var iterable: JinjaExpr
    var filter: JinjaExpr?
    var body: [JinjaNode]
    var elseBody: [JinjaNode]
    var location: JinjaLocation
}

struct JinjaMacroParameter: Sendable {
    var name: String
    var defaultValue: JinjaExpr?
}

struct JinjaMacro: Sendable {
    var name: String
    var parameters: [JinjaMacroParameter]
    var body: [JinjaNode]
    var location: JinjaLocation
}

struct JinjaWithBinding: Sendable {
    var target: JinjaTarget
    var value: JinjaExpr
}

indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr)
    case ifChain([JinjaIfBranch], otherwise: [JinjaNode])
    case forLoop(JinjaForLoop)
    case set(JinjaTarget, JinjaExpr, JinjaLocation)
    case setBlock(String, [JinjaNode])
    case macro(JinjaMacro)
    case with([JinjaWithBinding], [JinjaNode])
    /// Hugging Face's `{% generation %}` extension: renders its body unchanged.
    case generation([JinjaNode])
    case breakLoop
    case continueLoop
}
