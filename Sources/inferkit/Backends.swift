import ArgumentParser
import TensorCore
import TensorCoreBLAS
import TensorCoreOpenCL

/// `inferkit backends` — list compute backends and their devices.
struct Backends: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the compute backends available on this machine.")

    func run() throws {
        for entry in BackendRegistry(CommandLineBackends.providers).list() {
            print(entry)
        }
    }
}

enum CommandLineBackends {
    /// Every backend this executable links, in order of preference.
    static var providers: [BackendProvider] { [BLASBackend.provider, OpenCLBackend.provider, ReferenceBackend.provider] }
}
