// OpenCLMatmul — list the OpenCL devices, then time device-resident matmul on one of them against
// OpenBLAS `cblas_sgemm` on the same host, in the same run.
//
//   swift run -c release OpenCLMatmul [N | MxNxK …] [--device gpu|cpu|<name>] [--kernel tiled|vector] [--reps N] [--attention T]
//
// Kernel-only timing: operands are uploaded once; each repetition enqueues one matmul and waits for it
// (`finish()`), so transfers are excluded. OpenCL and sgemm repetitions alternate; the medians after one
// warm-up pair are reported.
import CInferenceKitBLAS
import Foundation
import TensorCore
import TensorCoreOpenCL

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// (M, N, K) of each product to time; `n` alone means n×n×n.
var sizes: [(m: Int, n: Int, k: Int)] = []
var selector = OpenCLDeviceSelector.automatic
var kernel: OpenCLBackend.MatmulKernelVariant?
var reps = 5
var attentionLengths: [Int] = []
var args = CommandLine.arguments.dropFirst().makeIterator()
while let arg = args.next() {
    switch arg {
    case "--device": selector = OpenCLDeviceSelector.fromEnvironment([OpenCLDeviceSelector.environmentVariable: args.next() ?? ""])
    case "--kernel": kernel = (args.next() ?? "").hasPrefix("tiled") ? .tiledLocalMemory : .registerBlockedVector
    case "--reps": reps = max(1, Int(args.next() ?? "") ?? reps)
    case "--attention": attentionLengths.append(max(1, Int(args.next() ?? "") ?? 512))
    default:
        let dims = arg.split(separator: "x").compactMap { Int($0) }
        guard dims.allSatisfy({ $0 > 0 }), dims.count == 1 || dims.count == 3 else {
            FileHandle.standardError.write(Data("unknown argument \(arg); give sizes as N or MxNxK\n".utf8))
            exit(2)
        }
        sizes.append(dims.count == 1 ? (dims[0], dims[0], dims[0]) : (dims[0], dims[1], dims[2]))
    }
}
if sizes.isEmpty { sizes = [(1024, 1024, 1024), (2048, 2048, 2048)] }

do {
    for d in try OpenCLBackend.devices() { print("device: \(d)") }
    let cl = try OpenCLBackend(configuration: .init(device: selector, matmulKernel: kernel))
    print("using:  \(cl.deviceDescription)\n")
    print("M×N×K             kernel" + String(repeating: " ", count: 68) + "OpenCL GFLOP/s  sgemm GFLOP/s  ratio")
    for (m, n, k) in sizes {
        let a = Tensor.random(shape: [m, k], seed: 1), b = Tensor.random(shape: [k, n], seed: 2)
        let g = try MatmulGeometry(a.shape, b.shape, transposeA: false, transposeB: false)
        let da = try cl.upload(a), db = try cl.upload(b)
        // Interleave the two so that load from other processes hits both alike.
        var clTimes: [Double] = [], blasTimes: [Double] = []
        var c = [Float](repeating: 0, count: m * n)
        let (bm, bn, bk) = (Int32(m), Int32(n), Int32(k))
        for _ in 0...reps {
            let tcl = try seconds {
                _ = try cl.matmul(da, db, transposeA: false, transposeB: false)
                try cl.finish()
            }
            let tblas = seconds {
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bm, bn, bk, 1, pa.baseAddress, bk, pb.baseAddress, bn, 0, pc.baseAddress, bn)
                        }
                    }
                }
            }
            clTimes.append(tcl)
            blasTimes.append(tblas)
        }
        // The first pair is a warm-up.
        clTimes.removeFirst()
        blasTimes.removeFirst()
        let clGF = g.flops / median(clTimes) / 1e9, blasGF = g.flops / median(blasTimes) / 1e9
        let name = cl.matmulKernelVariant(for: g).padding(toLength: 72, withPad: " ", startingAt: 0)
        let label = "\(m)×\(n)×\(k)".padding(toLength: 16, withPad: " ", startingAt: 0)
        print(String(format: "%@  %@  %14.1f  %13.1f  %5.2f", label, name, clGF, blasGF, clGF / blasGF))
    }
    // Attention (B=1, Hq=32, Hkv=8, D=128): causal prefill over T tokens, then one decode query over T keys.
    for t in attentionLengths {
        for (tq, label) in [(t, "prefill"), (1, "decode")] {
            let q = try cl.upload(Tensor.random(shape: [1, 32, tq, 128], seed: 3))
            let k = try cl.upload(Tensor.random(shape: [1, 8, t, 128], seed: 4))
            let v = try cl.upload(Tensor.random(shape: [1, 8, t, 128], seed: 5))
            let g = try AttentionGeometry(query: q.shape, key: k.shape, value: v.shape, causal: true, scale: 1 / Float(128).squareRoot())
            var times: [Double] = []
            for _ in 0...reps {
                times.append(try seconds {
                    _ = try cl.attention(query: q, key: k, value: v, causal: true, scale: g.scale)
                    try cl.finish()
                })
            }
            times.removeFirst()
            let ms = median(times) * 1000
            print(String(format: "attention %@ Tq=%d Tk=%d: %.2f ms, %.1f GFLOP/s", label, tq, t, ms, g.flops / median(times) / 1e9))
        }
    }
} catch {
    FileHandle.standardError.write(Data("OpenCLMatmul: \(error)\n".utf8))
    exit(1)
}
