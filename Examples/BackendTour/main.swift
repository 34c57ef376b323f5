import TensorCore

// A tour of the compute backends: pick one, multiply, attend.
let registry = BackendRegistry([ReferenceBackend.provider])
for entry in registry.list() { print(entry) }
let backend = try registry.defaultBackend()
let a = Tensor.random(shape: [4, 8], seed: 1)
let b = Tensor.random(shape: [8, 3], seed: 2)
print(try backend.matmul(a, b))
