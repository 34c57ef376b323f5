/// Prompt-lookup drafting: find the latest earlier place where the context's last `n` tokens
/// occurred (longest `n` first) and propose the tokens that followed it there.
///
/// No second model is needed; it pays off where the output repeats its context (code edits,
/// summaries that quote, extraction), and proposes nothing elsewhere.
public struct NGramProposer: Sendable, Hashable {
    public let maximumMatch: Int
    public let minimumMatch: Int

    public init(maximumMatch: Int = 4, minimumMatch: Int = 2) {
        self.maximumMatch = max(1, maximumMatch)
        self.minimumMatch = max(1, min(minimumMatch, self.maximumMatch))
    }

    /// Appends up to `limit` draft tokens for `context` to `drafts`; returns how many.
    @discardableResult
    public func propose(_ context: [Int], limit: Int, into drafts: inout [Int]) -> Int {
        let count = context.count
        guard limit > 0, count >= minimumMatch + 1 else { return 0 }
        return context.withUnsafeBufferPointer { c -> Int in
            var n = min(maximumMatch, count - 1)
            while n >= minimumMatch {
                // Latest earlier occurrence of the suffix c[count - n ..< count], ending before the suffix itself.
                var start = count - n - 1
                while start >= 0 {
                    var equal = true
                    for j in 0..<n where c[start + j] != c[count - n + j] {
                        equal = false
                        break
                    }
                    if equal {
                        let from = start + n
                        let k = min(limit, count - from)
                        for j in 0..<k { drafts.append(c[from + j]) }
                        return k
                    }
                    start -= 1
                }
                n -= 1
            }
            return 0
        }
    }
}
