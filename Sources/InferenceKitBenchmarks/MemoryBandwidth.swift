import Dispatch
import Foundation

/// The machine's memory bandwidth, measured in the same run as the kernels.
public struct MemoryBandwidth: Sendable, Codable, Hashable {
    /// Bytes read per second, summing a buffer much larger than the last-level cache.
    public var readGBps: Double
    /// Bytes read plus bytes written per second, copying between two such buffers.
    public var copyGBps: Double
    public var threads: Int
    /// Size of the read buffer, and of each copy buffer (bytes).
    public var readBufferBytes: Int
    public var copyBufferBytes: Int

    /// Measures read and copy bandwidth with `threads` threads; the median of `repetitions` passes.
    ///
    /// The defaults (256 MiB read, 2 × 128 MiB copy) are 8× and 4× the 32 MiB L3 of the target machine, so
    /// the figures are main-memory bandwidth, not cache bandwidth.
    public static func measure(threads: Int = 2, readBytes: Int = 256 << 20, copyBytes: Int = 128 << 20, repetitions: Int = 5) -> MemoryBandwidth {
        let threads = max(1, threads)
        let readCount = readBytes / 4, copyCount = copyBytes / 4
        let src = UnsafeMutablePointer<Float>.allocate(capacity: readCount)
        let dst = UnsafeMutablePointer<Float>.allocate(capacity: copyCount)
        defer {
            src.deallocate()
            dst.deallocate()
        }
        // Touch every page first so page faults are not timed.
        for i in stride(from: 0, to: readCount, by: 1) { src[i] = Float(i & 1023) }
        dst.initialize(repeating: 0, count: copyCount)
        let s = SharedPointer(src), d = SharedPointer(dst)

        var reads = TimingSamples(), copies = TimingSamples()
        var sink: Float = 0
        for _ in 0..<repetitions {
            let partial = PartialSums(threads)
            reads.seconds.append(timeOnce {
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let (lo, hi) = chunk(readCount, t, threads)
                    partial.store(t, sumFloats(s.pointer + lo, hi - lo))
                }
            })
            sink += partial.total
            copies.seconds.append(timeOnce {
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let (lo, hi) = chunk(copyCount, t, threads)
                    (d.pointer + lo).update(from: s.pointer + lo, count: hi - lo)
                }
            })
        }
        // Keep the sums observable so the reads are not optimised away.
        if sink.isNaN { print("", terminator: "") }
        return MemoryBandwidth(
            readGBps: Double(readBytes) / (reads.median ?? .infinity) / 1e9,
            copyGBps: 2 * Double(copyBytes) / (copies.median ?? .infinity) / 1e9,
            threads: threads, readBufferBytes: readBytes, copyBufferBytes: copyBytes)
    }
}

/// A read-bandwidth probe that can be timed next to kernels (decode's baseline row).
///
/// Run `i` sums chunk `i % chunks` of the buffer with `threads` threads. Sized like decode's key/value
/// caches (one chunk per call, rotating through as many chunks as decode rotates caches), the probe moves
/// the same bytes per call from main memory and is exposed to the same scheduling noise.
final class MemoryReadProbe {
    /// Bytes read per run.
    let bytes: Int
    let chunks: Int
    let threads: Int
    private let buffer: UnsafeMutablePointer<Float>
    private var sink: Float = 0

    init(bytes: Int, chunks: Int, threads: Int = 2) {
        self.bytes = bytes
        self.chunks = max(1, chunks)
        self.threads = max(1, threads)
        let count = bytes / 4 * self.chunks
        buffer = .allocate(capacity: count)
        for i in 0..<count { buffer[i] = Float(i & 1023) }
    }

    deinit { buffer.deallocate() }

    func run(_ i: Int) {
        let count = bytes / 4, threads = threads
        let s = SharedPointer(buffer + (i % chunks) * count)
        let partial = PartialSums(threads)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let (lo, hi) = chunk(count, t, threads)
            partial.store(t, sumFloats(s.pointer + lo, hi - lo))
        }
        sink += partial.total
    }
}

private func chunk(_ count: Int, _ t: Int, _ threads: Int) -> (Int, Int) {
    let per = (count + threads - 1) / threads
    return (min(count, t * per), min(count, (t + 1) * per))
}

/// Sums with four independent vector accumulators (enough to keep loads in flight).
private func sumFloats(_ p: UnsafeMutablePointer<Float>, _ count: Int) -> Float {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 64 <= count {
        a0 += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        a1 += raw.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
        a2 += raw.loadUnaligned(fromByteOffset: 4 * (i + 32), as: SIMD16<Float>.self)
        a3 += raw.loadUnaligned(fromByteOffset: 4 * (i + 48), as: SIMD16<Float>.self)
        i += 64
    }
    var total = (a0 + a1 + a2 + a3).sum()
    while i < count {
        total += p[i]
        i += 1
    }
    return total
}

/// A buffer shared by the bandwidth threads.
///
/// `@unchecked Sendable`: threads read disjoint ranges (or write disjoint ranges of another buffer), and the
/// buffer outlives `concurrentPerform`, which returns only after every iteration.
private struct SharedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}

/// One slot per thread for the partial sums, behind a lock (written once per pass).
private final class PartialSums: Sendable {
    private let values: Mutex<[Float]>
    init(_ n: Int) { values = Mutex([Float](repeating: 0, count: n)) }
    func store(_ i: Int, _ v: Float) { values.withLock { $0[i] = v } }
    var total: Float { values.withLock { $0.reduce(0, +) } }
}

import Synchronization
