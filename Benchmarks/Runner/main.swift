// The benchmark harness entry point; shares its code with `inferkit bench`.
import InferenceKitBenchmarks
print("inferkit-benchmarks: see `inferkit bench --help`")
