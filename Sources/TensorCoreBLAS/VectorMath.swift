// Vectorised loops over contiguous Float32 rows, written with the standard
// library's SIMD types (no `import simd`, which is Apple-only). Each helper
// processes 16 lanes at a time and finishes the tail with scalars.

/// Sixteen Float32 lanes: one AVX-512 register, or four SSE registers on the default x86-64 target.
typealias Vec = SIMD16<Float>
/// Integer lanes matching ``Vec`` (bit manipulation in ``exp2Vec(_:)``).
typealias IVec = SIMD16<Int32>

@inline(__always)
func loadVec(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always)
func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// Lane-wise maximum. NaN in `a` propagates.
@inline(__always)
func maxVec(_ a: Vec, _ b: Vec) -> Vec {
    a.replacing(with: b, where: a .< b)
}

/// `2^x` lane-wise, for `x ≤ 127` (the only range the kernels need: they exponentiate
/// differences from a running maximum, or `-|x|`). Lanes below −126 give exactly 0,
/// NaN gives NaN. Relative error ≈ 2e-7 (a degree-7 Taylor series of `2^r`, |r| ≤ ½).
@inline(__always)
func exp2Vec(_ x: Vec) -> Vec {
    let lo = Vec(repeating: -126), hi = Vec(repeating: 127)
    var c = x.replacing(with: lo, where: x .< lo)
    c = c.replacing(with: hi, where: c .> hi)
    // Round to nearest with the 1.5·2^23 trick: t's low mantissa bits hold n.
    let magic = Vec(repeating: 12_582_912)
    let t = c + magic
    let n = t - magic
    let r = c - n                                   // r ∈ [−½, ½]
    // 2^r = e^(r ln2) = Σ (r ln2)^k / k!, k ≤ 7 (truncation error < 6e-9).
    var p = Vec(repeating: 1.525_273_4e-5)          // ln2^7/7!
    p = p * r + Vec(repeating: 1.540_353_0e-4)      // ln2^6/6!
    p = p * r + Vec(repeating: 1.333_355_8e-3)      // ln2^5/5!
    p = p * r + Vec(repeating: 9.618_129_1e-3)      // ln2^4/4!
    p = p * r + Vec(repeating: 5.550_410_9e-2)      // ln2^3/3!
    p = p * r + Vec(repeating: 2.402_265_1e-1)      // ln2^2/2!
    p = p * r + Vec(repeating: 6.931_471_8e-1)      // ln2
    p = p * r + Vec(repeating: 1)
    let nBits = unsafeBitCast(t, to: IVec.self) &- IVec(repeating: 0x4B40_0000)
    let scale = unsafeBitCast((nBits &+ IVec(repeating: 127)) &<< IVec(repeating: 23), to: Vec.self)
    let result = p * scale
    return result.replacing(with: 0, where: x .< lo)
}

/// `e^x` lane-wise for `x ≤ 88`.
@inline(__always)
func expVec(_ x: Vec) -> Vec {
    exp2Vec(x * Vec(repeating: log2e))
}

let log2e: Float = 1.442_695_04

/// Scalar `2^x` with the same polynomial as ``exp2Vec(_:)`` (tails of rows).
@inline(__always)
func exp2Scalar(_ x: Float) -> Float {
    exp2Vec(Vec(repeating: x))[0]
}

/// Maximum of `p[0..<count]` (`count ≥ 1`).
@inline(__always)
func rowMax(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    if count >= 16 {
        var acc = loadVec(p)
        i = 16
        while i + 16 <= count {
            acc = maxVec(acc, loadVec(p + i))
            i += 16
        }
        m = acc.max()
        if acc != acc { m = .nan }   // a NaN lane
    }
    while i < count {
        let v = p[i]
        if v > m || v.isNaN { m = v }
        if m.isNaN { return m }
        i += 1
    }
    return m
}

/// Writes `2^(p[j] − shift)` back into `p[0..<count]` and returns their sum.
@inline(__always)
func exp2ShiftedSum(_ p: UnsafeMutablePointer<Float>, _ count: Int, shift: Float) -> Float {
    let s = Vec(repeating: shift)
    var acc0 = Vec(), acc1 = Vec()
    var i = 0
    while i + 32 <= count {
        let e0 = exp2Vec(loadVec(p + i) - s)
        let e1 = exp2Vec(loadVec(p + i + 16) - s)
        storeVec(e0, p + i)
        storeVec(e1, p + i + 16)
        acc0 += e0
        acc1 += e1
        i += 32
    }
    if i + 16 <= count {
        let e0 = exp2Vec(loadVec(p + i) - s)
        storeVec(e0, p + i)
        acc0 += e0
        i += 16
    }
    var total = (acc0 + acc1).sum()
    while i < count {
        let e = exp2Scalar(p[i] - shift)
        p[i] = e
        total += e
        i += 1
    }
    return total
}

/// `p[0..<count] *= factor`.
@inline(__always)
func scaleRow(_ p: UnsafeMutablePointer<Float>, _ count: Int, by factor: Float) {
    let f = Vec(repeating: factor)
    var i = 0
    while i + 16 <= count {
        storeVec(loadVec(p + i) * f, p + i)
        i += 16
    }
    while i < count {
        p[i] *= factor
        i += 1
    }
}

/// `dst[0..<count] = src[0..<count] * factor`.
@inline(__always)
func scaleRow(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, _ count: Int, by factor: Float) {
    let f = Vec(repeating: factor)
    var i = 0
    while i + 16 <= count {
        storeVec(loadVec(src + i) * f, dst + i)
        i += 16
    }
    while i < count {
        dst[i] = src[i] * factor
        i += 1
    }
}
