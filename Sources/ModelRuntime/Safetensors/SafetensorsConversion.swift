/// Element conversions from a safetensors data section to Float32.
///
/// Sources may be unaligned (the format does not require the data section
/// to be aligned), so every load is `loadUnaligned`. Values are little-endian
/// in the file; on a little-endian host that is a plain load.
enum SafetensorsConversion {
    /// Every IEEE half-precision bit pattern widened to Float32 (256 KiB, built once on first use).
    ///
    /// A table lookup is exact by construction and does not depend on the
    /// target having F16C; it runs at about a nanosecond an element.
    static let float16Table: [Float] = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }

    /// Copies `count` little-endian Float32 values.
    static func copyF32(from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        #if _endian(little)
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        #else
        for i in 0..<count {
            destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
        #endif
    }

    /// Widens `count` little-endian IEEE half-precision values.
    static func convertF16(from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        float16Table.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = table[Int(bits)]
            }
        }
    }

    /// Widens `count` little-endian bfloat16 values: a bfloat16 is the high 16 bits of a Float32.
    static func convertBF16(from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            destination[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    }
}
