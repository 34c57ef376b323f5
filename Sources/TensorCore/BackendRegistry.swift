import Foundation

/// How to discover and create one kind of backend.
///
/// Each backend module exposes a provider (`ReferenceBackend.provider`,
/// `BLASBackend.provider`, `OpenCLBackend.provider`); a program builds a
/// ``BackendRegistry`` from the providers of the modules it links.
public struct BackendProvider: Sendable {
    /// Selection name (`reference`, `blas`, `opencl`).
    public let name: String
    /// One line about what the backend is.
    public let summary: String
    /// Creates the backend, or throws ``TensorError`` (``TensorError/Code/backendUnavailable``) saying why not.
    public let make: @Sendable () throws -> any ComputeBackend

    public init(name: String, summary: String, make: @escaping @Sendable () throws -> any ComputeBackend) {
        self.name = name
        self.summary = summary
        self.make = make
    }
}

extension ReferenceBackend {
    /// The provider for the reference backend (always available).
    public static let provider = BackendProvider(name: "reference", summary: "plain Swift oracle, Float64 accumulation") {
        ReferenceBackend()
    }
}

/// Run-time backend selection: list what is available, choose by name or by
/// the `INFERENCEKIT_BACKEND` environment variable.
public struct BackendRegistry: Sendable {
    /// The environment variable that names the default backend.
    public static let environmentVariable = "INFERENCEKIT_BACKEND"

    public let providers: [BackendProvider]

    /// Providers in order of preference (the first available one is the default).
    public init(_ providers: [BackendProvider]) {
        self.providers = providers
    }

    /// One line per provider: available with its device, or why not.
    public struct Entry: Sendable, CustomStringConvertible {
        public let name: String
        public let summary: String
        /// The device description when available.
        public let device: String?
        /// Why the backend cannot be created here.
        public let unavailableReason: String?
        public var isAvailable: Bool { device != nil }
        public var description: String {
            "\(name): " + (device.map { "available — \($0)" } ?? "unavailable — \(unavailableReason ?? "unknown reason")")
        }
    }

    /// Probes every provider (creating each backend once).
    public func list() -> [Entry] {
        providers.map { p in
            do {
                let backend = try p.make()
                return Entry(name: p.name, summary: p.summary, device: backend.deviceDescription, unavailableReason: nil)
            } catch {
                return Entry(name: p.name, summary: p.summary, device: nil, unavailableReason: "\(error)")
            }
        }
    }

    /// Creates the backend called `name` (case-insensitive).
    public func backend(named name: String) throws -> any ComputeBackend {
        let key = name.lowercased()
        guard let p = providers.first(where: { $0.name == key }) else {
            throw TensorError(.backendUnavailable, "unknown backend '\(name)'; choose one of: \(providers.map(\.name).joined(separator: ", "))")
        }
        return try p.make()
    }

    /// The backend named by `INFERENCEKIT_BACKEND` when set, otherwise the first provider that can be created.
    public func defaultBackend(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> any ComputeBackend {
        if let requested = environment[Self.environmentVariable], !requested.isEmpty {
            return try backend(named: requested)
        }
        var reasons: [String] = []
        for p in providers {
            do { return try p.make() } catch { reasons.append("\(p.name): \(error)") }
        }
        throw TensorError(.backendUnavailable, "no backend could be created (\(reasons.joined(separator: "; ")))")
    }
}
