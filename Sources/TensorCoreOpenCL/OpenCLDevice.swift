import Foundation
import CInferenceKitOpenCL
import TensorCore

/// One OpenCL device as reported by its platform.
public struct OpenCLDeviceInfo: Sendable, Hashable, CustomStringConvertible {
    /// The OpenCL device type.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case gpu, cpu, accelerator, other
    }

    /// Position of the platform in `clGetPlatformIDs` order.
    public let platformIndex: Int
    /// Position of the device within its platform.
    public let deviceIndex: Int
    public let platformName: String
    public let name: String
    public let vendor: String
    /// `CL_DEVICE_VERSION`, e.g. `OpenCL 3.0 PoCL …`.
    public let version: String
    public let driverVersion: String
    public let kind: Kind
    public let computeUnits: Int
    /// `CL_DEVICE_GLOBAL_MEM_SIZE` in bytes.
    public let globalMemoryBytes: UInt64
    /// `CL_DEVICE_LOCAL_MEM_SIZE` in bytes.
    public let localMemoryBytes: UInt64
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` in bytes: the largest single buffer.
    public let maxAllocationBytes: UInt64
    public let maxWorkGroupSize: Int
    public let maxClockMHz: Int
    /// The `cl_device_id` as an integer (handles of root devices are stable for the process).
    let handle: UInt

    public var description: String {
        let gib = Double(globalMemoryBytes) / Double(1 << 30)
        let kib = localMemoryBytes / 1024
        return "\(name) [\(kind.rawValue), \(vendor), \(computeUnits) compute units, " +
            "\(String(format: "%.1f", gib)) GiB global, \(kib) KiB local] on \(platformName)"
    }

    var deviceID: cl_device_id? { cl_device_id(bitPattern: handle) }
}

/// How ``OpenCLBackend`` picks a device.
public enum OpenCLDeviceSelector: Sendable, Hashable, CustomStringConvertible {
    /// The first GPU, otherwise the first device of any type.
    case automatic
    /// The first GPU.
    case gpu
    /// The first CPU device (for example PoCL).
    case cpu
    /// The first accelerator.
    case accelerator
    /// The first device whose name, vendor or platform name contains this text (case-insensitive).
    case named(String)

    /// The environment variable read by ``fromEnvironment(_:)``.
    public static let environmentVariable = "INFERENCEKIT_OPENCL_DEVICE"

    /// Parses `INFERENCEKIT_OPENCL_DEVICE`: `gpu`, `cpu`, `accelerator`, `auto`, or a name substring.
    /// Unset or empty means ``automatic``.
    public static func fromEnvironment(_ environment: [String: String]) -> OpenCLDeviceSelector {
        guard let raw = environment[environmentVariable]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else {
            return .automatic
        }
        switch raw.lowercased() {
        case "auto", "automatic": return .automatic
        case "gpu": return .gpu
        case "cpu": return .cpu
        case "accelerator": return .accelerator
        default: return .named(raw)
        }
    }

    public var description: String {
        switch self {
        case .automatic: return "automatic (GPU preferred)"
        case .gpu: return "gpu"
        case .cpu: return "cpu"
        case .accelerator: return "accelerator"
        case .named(let s): return "named \"\(s)\""
        }
    }

    /// Picks a device from `devices`, or throws `backendUnavailable` naming what exists.
    public func select(from devices: [OpenCLDeviceInfo]) throws -> OpenCLDeviceInfo {
        let chosen: OpenCLDeviceInfo?
        switch self {
        case .automatic: chosen = devices.first { $0.kind == .gpu } ?? devices.first
        case .gpu: chosen = devices.first { $0.kind == .gpu }
        case .cpu: chosen = devices.first { $0.kind == .cpu }
        case .accelerator: chosen = devices.first { $0.kind == .accelerator }
        case .named(let text):
            let needle = text.lowercased()
            chosen = devices.first {
                $0.name.lowercased().contains(needle) || $0.vendor.lowercased().contains(needle)
                    || $0.platformName.lowercased().contains(needle)
            }
        }
        if let chosen { return chosen }
        if devices.isEmpty {
            throw TensorError(.backendUnavailable, "no OpenCL device is installed on this machine; \(OpenCLStatus.installHint)")
        }
        let present = devices.map { "\($0.name) (\($0.kind.rawValue))" }.joined(separator: ", ")
        throw TensorError(.backendUnavailable, "no OpenCL device matches \(self); devices present: \(present). Choose one of these, or \(OpenCLStatus.installHint)")
    }
}

extension OpenCLDeviceInfo {
    /// Every device of every installed OpenCL platform.
    ///
    /// - Throws: ``TensorError/Code/backendUnavailable`` when no ICD, platform or device is installed
    ///   (including `CL_PLATFORM_NOT_FOUND_KHR` from the ICD loader), with what to install.
    public static func all() throws -> [OpenCLDeviceInfo] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        guard status == CL_SUCCESS, count > 0 else { throw OpenCLStatus.discoveryError(status, "clGetPlatformIDs") }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try OpenCLStatus.check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs", "listing platforms")

        var result: [OpenCLDeviceInfo] = []
        for (pi, platform) in platforms.enumerated() {
            guard let platform else { continue }
            let platformName = (try? platformString(platform, cl_platform_info(CL_PLATFORM_NAME))) ?? "platform \(pi)"
            var n: cl_uint = 0
            let ds = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            // A platform without devices reports CL_DEVICE_NOT_FOUND; skip it rather than fail.
            if ds == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try OpenCLStatus.check(ds, "clGetDeviceIDs", "counting devices of \(platformName)")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try OpenCLStatus.check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs", "listing devices of \(platformName)")
            for (di, id) in ids.enumerated() {
                guard let id else { continue }
                result.append(try describe(id, platformIndex: pi, deviceIndex: di, platformName: platformName))
            }
        }
        if result.isEmpty { throw OpenCLStatus.discoveryError(CL_DEVICE_NOT_FOUND, "clGetDeviceIDs") }
        return result
    }

    private static func describe(_ id: cl_device_id, platformIndex: Int, deviceIndex: Int, platformName: String) throws -> OpenCLDeviceInfo {
        let type: cl_device_type = try deviceValue(id, CL_DEVICE_TYPE)
        let kind: Kind
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 {
            kind = .gpu
        } else if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 {
            kind = .cpu
        } else if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 {
            kind = .accelerator
        } else {
            kind = .other
        }
        let cu: cl_uint = try deviceValue(id, CL_DEVICE_MAX_COMPUTE_UNITS)
        let global: cl_ulong = try deviceValue(id, CL_DEVICE_GLOBAL_MEM_SIZE)
        let local: cl_ulong = try deviceValue(id, CL_DEVICE_LOCAL_MEM_SIZE)
        let maxAlloc: cl_ulong = try deviceValue(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE)
        let wg: Int = try deviceValue(id, CL_DEVICE_MAX_WORK_GROUP_SIZE)
        let clock: cl_uint = try deviceValue(id, CL_DEVICE_MAX_CLOCK_FREQUENCY)
        return OpenCLDeviceInfo(
            platformIndex: platformIndex, deviceIndex: deviceIndex, platformName: platformName,
            name: try deviceString(id, CL_DEVICE_NAME), vendor: try deviceString(id, CL_DEVICE_VENDOR),
            version: try deviceString(id, CL_DEVICE_VERSION), driverVersion: try deviceString(id, CL_DRIVER_VERSION),
            kind: kind, computeUnits: Int(cu), globalMemoryBytes: global, localMemoryBytes: local,
            maxAllocationBytes: maxAlloc, maxWorkGroupSize: wg, maxClockMHz: Int(clock),
            handle: UInt(bitPattern: id))
    }

    private static func deviceValue<T: BitwiseCopyable>(_ id: cl_device_id, _ param: Int32) throws -> T {
        try withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { p in
            try OpenCLStatus.check(clGetDeviceInfo(id, cl_device_info(param), MemoryLayout<T>.size, p.baseAddress, nil), "clGetDeviceInfo", "reading device property \(param)")
            return p[0]
        }
    }

    private static func deviceString(_ id: cl_device_id, _ param: Int32) throws -> String {
        var size = 0
        try OpenCLStatus.check(clGetDeviceInfo(id, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo", "reading device property \(param)")
        var bytes = [CChar](repeating: 0, count: size + 1)
        try OpenCLStatus.check(clGetDeviceInfo(id, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo", "reading device property \(param)")
        return cString(bytes)
    }

    private static func platformString(_ id: cl_platform_id, _ param: cl_platform_info) throws -> String {
        var size = 0
        try OpenCLStatus.check(clGetPlatformInfo(id, param, 0, nil, &size), "clGetPlatformInfo")
        var bytes = [CChar](repeating: 0, count: size + 1)
        try OpenCLStatus.check(clGetPlatformInfo(id, param, size, &bytes, nil), "clGetPlatformInfo")
        return cString(bytes)
    }
}

/// Decodes a NUL-terminated C string held in `bytes` and trims surrounding whitespace.
func cString(_ bytes: [CChar]) -> String {
    let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
    let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}
