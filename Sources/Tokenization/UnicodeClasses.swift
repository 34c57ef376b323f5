/// The Unicode classes the pre-tokenizer regexes use: `\p{L}`, `\p{N}`, `\p{P}` and `\s`.
///
/// The definitions are those of Python's `regex` module, which generated llama.cpp's `unicode-data.cpp`:
/// letters, numbers and punctuation are general categories `L*`, `N*` and `P*`; `\s` is the
/// `White_Space` set listed in ``whitespace``. Categories come from the standard library's
/// `Unicode.Scalar.Properties`; the Basic Multilingual Plane is tabulated once, on first use.
struct UnicodeClass: OptionSet, Sendable {
    let rawValue: UInt8
    static let letter = UnicodeClass(rawValue: 1)
    static let number = UnicodeClass(rawValue: 2)
    static let whitespace = UnicodeClass(rawValue: 4)
    static let punctuation = UnicodeClass(rawValue: 8)
    /// `\r` or `\n`, which the llama3-style patterns treat apart from other whitespace.
    static let newline = UnicodeClass(rawValue: 16)

    /// Python `regex`'s `\s` (Unicode `White_Space`): what llama.cpp's `unicode_set_whitespace` holds.
    static let whitespaceScalars: Set<UInt32> = [
        0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680,
        0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
        0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
    ]

    /// Computes the classes of one scalar value from its general category.
    static func compute(_ value: UInt32) -> UnicodeClass {
        var result: UnicodeClass = []
        if whitespaceScalars.contains(value) { result.insert(.whitespace) }
        if value == 0x0A || value == 0x0D { result.insert(.newline) }
        guard let scalar = Unicode.Scalar(value) else { return result }  // surrogates: \p{Cs}
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            result.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            result.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            result.insert(.punctuation)
        default:
            break
        }
        return result
    }

    /// Classes of every scalar in the Basic Multilingual Plane, computed once (64 KiB).
    static let basicPlane: [UInt8] = (0..<0x10000).map { compute(UInt32($0)).rawValue }

    @inline(__always)
    static func of(_ value: UInt32) -> UnicodeClass {
        value < 0x10000 ? UnicodeClass(rawValue: basicPlane[Int(value)]) : compute(value)
    }
}

/// GPT-2's reversible map between bytes and printable Unicode characters: bytes `!`…`~`, `¡`…`¬` and
/// `®`…`ÿ` stand for themselves, the other 68 bytes take the code points from U+0100 upward in byte
/// order (so a space is `Ġ`, U+0120, and a newline `Ċ`, U+010A).
enum ByteLevel {
    /// The code point standing for each byte.
    static let scalarForByte: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                map[byte] = UInt32(byte)
            } else {
                map[byte] = next
                next += 1
            }
        }
        return map
    }()

    /// The inverse map, indexed by code point (`0..<324`); `-1` where a code point stands for no byte.
    static let byteForScalar: [Int16] = {
        var inverse = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { inverse[Int(scalar)] = Int16(byte) }
        return inverse
    }()

    /// The UTF-8 text that stands for one byte (what the BPE vocabulary spells it as).
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String(Unicode.Scalar($0)!).utf8) }
}
