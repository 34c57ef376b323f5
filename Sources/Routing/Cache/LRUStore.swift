/// A fixed-capacity least-recently-used map (value type; O(1) get/set/evict via an index-linked list).
struct LRUStore<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Node: Sendable {
        var key: Key
        var value: Value
        var prev: Int
        var next: Int
    }

    let capacity: Int
    private var nodes: [Node] = []
    private var index: [Key: Int] = [:]
    private var free: [Int] = []
    private var head = -1  // most recent
    private var tail = -1  // least recent

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { index.count }

    private mutating func unlink(_ i: Int) {
        let (p, n) = (nodes[i].prev, nodes[i].next)
        if p >= 0 { nodes[p].next = n } else { head = n }
        if n >= 0 { nodes[n].prev = p } else { tail = p }
    }

    private mutating func pushFront(_ i: Int) {
        nodes[i].prev = -1
        nodes[i].next = head
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
    }

    /// The value, marking it most recently used.
    mutating func get(_ key: Key) -> Value? {
        guard let i = index[key] else { return nil }
        unlink(i)
        pushFront(i)
        return nodes[i].value
    }

    /// Inserts or replaces; evicts the least recently used entry when full. Returns the evicted key.
    @discardableResult
    mutating func set(_ key: Key, _ value: Value) -> Key? {
        if let i = index[key] {
            nodes[i].value = value
            unlink(i)
            pushFront(i)
            return nil
        }
        var evicted: Key?
        if index.count >= capacity, tail >= 0 {
            let victim = tail
            evicted = nodes[victim].key
            unlink(victim)
            index[nodes[victim].key] = nil
            free.append(victim)
        }
        let node = Node(key: key, value: value, prev: -1, next: -1)
        let i: Int
        if let reused = free.popLast() {
            nodes[reused] = node
            i = reused
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        index[key] = i
        pushFront(i)
        return evicted
    }

    mutating func remove(_ key: Key) {
        guard let i = index.removeValue(forKey: key) else { return }
        unlink(i)
        free.append(i)
    }
}
