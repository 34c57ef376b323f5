// swift-tools-version: 6.1
import PackageDescription

/// Settings every InferenceKit target shares: Swift 6 language mode (complete
/// strict concurrency) and `ExistentialAny`, so each `any` is visible.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "InferenceKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "TensorCoreBLAS", targets: ["TensorCoreBLAS"]),
        .library(name: "TensorCoreOpenCL", targets: ["TensorCoreOpenCL"]),
        .library(name: "Quantization", targets: ["Quantization"]),
        .library(name: "QuantizationOpenCL", targets: ["QuantizationOpenCL"]),
        .library(name: "KVPaging", targets: ["KVPaging"]),
        .library(name: "KVPagingOpenCL", targets: ["KVPagingOpenCL"]),
        .library(name: "Scheduling", targets: ["Scheduling"]),
        .library(name: "Routing", targets: ["Routing"]),
        .library(name: "CostModel", targets: ["CostModel"]),
        .library(name: "Tokenization", targets: ["Tokenization"]),
        .library(name: "ModelRuntime", targets: ["ModelRuntime"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "GatewayServer", targets: ["GatewayServer"]),
        .executable(name: "inferkit", targets: ["inferkit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // MARK: C shims
        .systemLibrary(
            name: "CInferenceKitBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CInferenceKitOpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]
        ),

        // MARK: Compute
        .target(name: "TensorCore", swiftSettings: swiftSettings),
        .target(
            name: "TensorCoreBLAS",
            dependencies: ["TensorCore", "CInferenceKitBLAS", "CInferenceKitCPUKernels"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TensorCoreOpenCL",
            dependencies: ["TensorCore", "CInferenceKitOpenCL"],
            swiftSettings: swiftSettings
        ),
        // Quantized CPU kernels: plain C, per-function target attributes + run-time CPU dispatch (no build flags).
        .target(name: "CInferenceKitCPUKernels", linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        .target(name: "CInferenceKitQuantKernels", linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        .target(name: "Quantization", dependencies: ["TensorCore", "CInferenceKitQuantKernels"], swiftSettings: swiftSettings),
        // Quantized OpenCL kernels live apart so Quantization itself never links OpenCL.
        .target(
            name: "QuantizationOpenCL",
            dependencies: ["Quantization", "TensorCore", "TensorCoreOpenCL"],
            swiftSettings: swiftSettings
        ),
        .target(name: "KVPaging", dependencies: ["TensorCore"], swiftSettings: swiftSettings),
        .target(
            name: "KVPagingOpenCL",
            dependencies: ["KVPaging", "TensorCore", "TensorCoreOpenCL"],
            swiftSettings: swiftSettings
        ),

        // MARK: Planning, scheduling, routing
        .target(name: "CostModel", resources: [.process("Resources")], swiftSettings: swiftSettings),
        .target(name: "Scheduling", dependencies: ["KVPaging", "CostModel"], swiftSettings: swiftSettings),
        .target(
            name: "Routing",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Model runtime (integration targets: the tokenizer needs no compute code; the runtime joins the kernels)
        .target(name: "Tokenization", swiftSettings: swiftSettings),
        .target(
            name: "ModelRuntime",
            dependencies: [
                "TensorCore", "TensorCoreBLAS", "Quantization", "KVPaging", "Tokenization",
                "CInferenceKitQuantKernels", "CInferenceKitCPUKernels", "CInferenceKitBLAS",
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Engine (integration target: the scheduler driving the model runtime)
        .target(
            name: "Engine",
            dependencies: [
                "ModelRuntime", "Scheduling", "KVPaging", "Tokenization",
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // The engine's benchmarks (`inferkit bench engine`): a target of their own, so an embedder of Engine links none of it.
        .target(name: "EngineBenchmarks", dependencies: ["Engine", "ModelRuntime", "Scheduling", "KVPaging"], swiftSettings: swiftSettings),

        // MARK: HTTP gateway (integration target: Routing over Hummingbird + AsyncHTTPClient)
        .target(
            name: "GatewayServer",
            dependencies: [
                "Routing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Benchmarks and the command-line tool
        .target(
            name: "InferenceKitBenchmarks",
            dependencies: ["TensorCore", "TensorCoreBLAS", "TensorCoreOpenCL", "CInferenceKitBLAS"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "inferkit-benchmarks",
            dependencies: [
                "InferenceKitBenchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/Runner",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "inferkit",
            dependencies: [
                "TensorCore", "TensorCoreBLAS", "TensorCoreOpenCL",
                "Quantization", "KVPaging", "KVPagingOpenCL", "Scheduling", "Routing", "CostModel",
                "InferenceKitBenchmarks",
                "GatewayServer",
                "CInferenceKitBLAS", "CInferenceKitQuantKernels",
                "QuantizationOpenCL", "ModelRuntime", "Tokenization", "Engine", "EngineBenchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Examples
        .executableTarget(
            name: "BackendTour",
            dependencies: ["TensorCore", "TensorCoreBLAS", "TensorCoreOpenCL"],
            path: "Examples/BackendTour",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "OpenCLMatmul",
            dependencies: ["TensorCore", "TensorCoreOpenCL", "CInferenceKitBLAS"],
            path: "Examples/OpenCLMatmul",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "BatchedChat",
            dependencies: ["Engine", "ModelRuntime", "Tokenization"],
            path: "Examples/BatchedChat",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GenerateText",
            dependencies: ["ModelRuntime"],
            path: "Examples/GenerateText",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "SimulateServing",
            dependencies: ["Scheduling", "KVPaging", "CostModel"],
            path: "Examples/SimulateServing",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PagedAttentionOpenCL",
            dependencies: ["KVPaging", "KVPagingOpenCL", "TensorCore", "TensorCoreOpenCL"],
            path: "Examples/PagedAttentionOpenCL",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "PagedKVCache",
            dependencies: ["KVPaging", "TensorCore"],
            path: "Examples/PagedKVCache",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "PlanDeployment",
            dependencies: ["CostModel"],
            path: "Examples/PlanDeployment",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "GatewayRouting",
            dependencies: ["Routing"],
            path: "Examples/GatewayRouting",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "routing-benchmark",
            dependencies: ["Routing"],
            path: "Benchmarks/Routing",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RoutingEvaluation",
            dependencies: ["Routing"],
            path: "Examples/RoutingEvaluation",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "QuantizeMatrix",
            dependencies: ["Quantization", "TensorCore"],
            path: "Examples/QuantizeMatrix",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "BLASAttention",
            dependencies: ["TensorCore", "TensorCoreBLAS"],
            path: "Examples/BLASAttention",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "GatewayOverflow",
            dependencies: [
                "GatewayServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Examples/GatewayOverflow",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "TensorCoreTests",
            dependencies: ["TensorCore", "TensorCoreBLAS", "TensorCoreOpenCL"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QuantizationTests",
            dependencies: ["Quantization", "TensorCore"],
            exclude: ["ASan"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QuantizationOpenCLTests",
            dependencies: ["QuantizationOpenCL", "Quantization", "TensorCore", "TensorCoreOpenCL"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "InferenceKitBenchmarksTests",
            dependencies: ["InferenceKitBenchmarks", "TensorCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "KVPagingTests", dependencies: ["KVPaging", "TensorCore"], swiftSettings: swiftSettings),
        .testTarget(name: "KVPagingOpenCLTests", dependencies: ["KVPagingOpenCL", "KVPaging", "TensorCore", "TensorCoreOpenCL"], swiftSettings: swiftSettings),
        .testTarget(name: "CostModelTests", dependencies: ["CostModel"], swiftSettings: swiftSettings),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "KVPaging", "CostModel"], swiftSettings: swiftSettings),
        .testTarget(
            name: "RoutingTests",
            dependencies: ["Routing", .product(name: "MetricsTestKit", package: "swift-metrics")],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TokenizationTests",
            dependencies: ["Tokenization", "Quantization", "ModelRuntime"],
            exclude: ["Vectors"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ModelRuntimeTests",
            dependencies: ["ModelRuntime", "Engine", "Scheduling", "Tokenization", "Quantization", "KVPaging", "TensorCore", "TensorCoreBLAS", "TensorCoreOpenCL", "CInferenceKitCPUKernels"],
            exclude: ["Oracle"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: ["GatewayServer", "Routing", .product(name: "HummingbirdTLS", package: "hummingbird")],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
    ]
)
