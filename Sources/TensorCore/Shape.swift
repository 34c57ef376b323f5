/// The dimensions of a row-major tensor, outermost first.
///
/// `Shape([2, 3])` is a 2×3 matrix; the last dimension is contiguous.
public struct Shape: Sendable, Hashable, CustomStringConvertible, ExpressibleByArrayLiteral, RandomAccessCollection {
    public private(set) var dimensions: [Int]

    /// Creates a shape; every dimension must be ≥ 0.
    public init(_ dimensions: [Int]) {
        precondition(dimensions.allSatisfy { $0 >= 0 }, "Shape dimensions must be non-negative: \(dimensions)")
        self.dimensions = dimensions
    }

    /// Creates a shape, throwing ``TensorError`` for negative dimensions or an element count that overflows.
    public static func validated(_ dimensions: [Int]) throws -> Shape {
        guard dimensions.allSatisfy({ $0 >= 0 }) else {
            throw TensorError(.invalidArgument, "shape \(dimensions) has a negative dimension; every dimension must be ≥ 0")
        }
        var total = 1
        for d in dimensions {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw TensorError(.invalidArgument, "shape \(dimensions) has more elements than fit in Int")
            }
            total = p
        }
        return Shape(dimensions)
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    public var rank: Int { dimensions.count }
    /// Number of elements (1 for a scalar shape `[]`).
    public var elementCount: Int { dimensions.reduce(1, *) }

    public var startIndex: Int { dimensions.startIndex }
    public var endIndex: Int { dimensions.endIndex }
    public subscript(position: Int) -> Int { dimensions[position] }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: rank)
        var acc = 1
        for i in stride(from: rank - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= dimensions[i]
        }
        return s
    }

    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }
}
