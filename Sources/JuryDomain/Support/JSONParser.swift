/// Why a text is not strict JSON, and the byte offset where that shows.
public struct JSONSyntaxError: Error, Equatable, CustomStringConvertible, Sendable {
    public let reason: String
    public let offset: Int
    public var description: String { "\(reason) (at byte \(offset + 1))" }
}

extension JSONValue {
    /// Parses JSON text (RFC 8259) strictly, straight from its bytes.
    ///
    /// Stricter than Foundation's decoder: a key twice in one object, a comma before a closing
    /// bracket, invalid UTF-8, an unpaired surrogate escape and a number no Double can hold are
    /// refused, with the reason and where. And much cheaper: enqueue checks every line of a
    /// corpus of millions before writing any, and a worker decodes every payload it claims.
    /// A number is an integer when written without fraction or exponent and within Int64.
    public static func parseStrict(_ bytes: some Collection<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        // Read in place when the bytes are contiguous (a String's, an Array's), else copied once.
        let parse = { (buffer: UnsafeBufferPointer<UInt8>) in
            var parser = JSONParser(buffer)
            return Result { () throws(JSONSyntaxError) in try parser.document() }
        }
        return try (bytes.withContiguousStorageIfAvailable(parse) ?? Array(bytes).withUnsafeBufferPointer(parse)).get()
    }
}

/// A recursive-descent parser over a buffer of bytes; `JSONValue.parseStrict` is its interface.
private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var depth = 0
    /// Deeper nesting is refused rather than risking the stack (Foundation's decoder also stops at 512).
    static let maximumDepth = 512

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func document() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        let value = try self.value()
        skipWhitespace()
        guard index == bytes.count else { throw fail("text follows the JSON value") }
        return value
    }

    private func fail(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(reason: reason, offset: offset ?? index)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func value() throws(JSONSyntaxError) -> JSONValue {
        guard index < bytes.count else { throw fail("the text ends where a value should be") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("expected a value")
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(JSONSyntaxError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("expected a value") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw fail("expected a value")
        }
        index += count
        return value
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw fail("nested more than \(Self.maximumDepth) deep") }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        index += 1
        var fields: [String: JSONValue] = [:]
        // The keys' bytes, once two keys of this object compared equal as Swift strings.
        var spellings: Set<[UInt8]>?
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(fields)
        }
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw fail("expected a key in double quotes")
            }
            let keyStart = index
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
            index += 1
            skipWhitespace()
            let value = try self.value()
            if let existing = fields.index(forKey: key) {
                // Keys compare by their bytes, as in JSON and PostgreSQL; Swift's String compares
                // by Unicode equivalence, so two spellings of one letter meet here too. Those
                // are two keys: the first is kept, as Foundation's decoder keeps one, and only
                // bytes seen before make a repeat.
                var seen = spellings ?? [Array(fields.keys[existing].utf8)]
                guard seen.insert(Array(key.utf8)).inserted else {
                    throw fail("the key \"\(key.prefix(60))\" appears twice in one object", at: keyStart)
                }
                spellings = seen
            } else {
                fields[key] = value
            }
            skipWhitespace()
            guard index < bytes.count else { throw fail("the text ends inside an object") }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return .object(fields)
            }
            guard bytes[index] == UInt8(ascii: ",") else { throw fail("expected ',' or '}' in an object") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                throw fail("a comma stands before a closing bracket")
            }
        }
    }

    private mutating func array() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        index += 1
        var values: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(values)
        }
        while true {
            values.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw fail("the text ends inside an array") }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return .array(values)
            }
            guard bytes[index] == UInt8(ascii: ",") else { throw fail("expected ',' or ']' in an array") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                throw fail("a comma stands before a closing bracket")
            }
        }
    }

    /// A string at `index` (its opening quote); leaves `index` after the closing quote.
    private mutating func string() throws(JSONSyntaxError) -> String {
        let start = index + 1
        var end = start
        // The common case: no escapes, so the bytes are the string's bytes.
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                index = end + 1
                return try text(UnsafeBufferPointer(rebasing: bytes[start..<end]), at: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw fail("a control character inside a string", at: end) }
            end += 1
        }
        guard end < bytes.count else { throw fail("a string is not closed", at: start - 1) }
        var decoded = Array(bytes[start..<end])
        index = end
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try decoded.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
                    try text(buffer, at: start)
                }
            case UInt8(ascii: "\\"):
                try escape(into: &decoded)
            default:
                guard byte >= 0x20 else { throw fail("a control character inside a string") }
                decoded.append(byte)
                index += 1
            }
        }
        throw fail("a string is not closed", at: start - 1)
    }

    private func text(_ utf8: UnsafeBufferPointer<UInt8>, at offset: Int) throws(JSONSyntaxError) -> String {
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw fail("a string is not valid UTF-8", at: offset)
        }
        return text
    }

    /// An escape at `index` (its backslash), appended to `decoded` as UTF-8.
    private mutating func escape(into decoded: inout [UInt8]) throws(JSONSyntaxError) {
        guard index + 1 < bytes.count else { throw fail("a string is not closed") }
        let letter = bytes[index + 1]
        index += 2
        switch letter {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(letter)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hexQuad()
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate: a low one must follow, and the pair is one scalar.
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                else { throw fail("a \\u escape of a high surrogate without its low one") }
                index += 2
                let low = try hexQuad()
                guard (0xDC00..<0xE000).contains(low) else {
                    throw fail("a \\u escape of a high surrogate without its low one")
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw fail("a \\u escape of a low surrogate without its high one")
            }
            decoded.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            throw fail("an unknown escape \\\(Character(Unicode.Scalar(letter)))", at: index - 2)
        }
    }

    private mutating func hexQuad() throws(JSONSyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONValue {
        let start = index
        var integral = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw fail("a number needs digits", at: start) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, isDigit(bytes[index]) { throw fail("a number starts with 0", at: start) }
        } else {
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("a number needs digits after '.'") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else {
                throw fail("a number needs digits in its exponent")
            }
            skipDigits()
        }
        let token = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if integral, let integer = Int64(token) { return .integer(integer) }
        guard let double = Double(token), double.isFinite else {
            throw fail("the number \(token.prefix(40)) is out of range", at: start)
        }
        return .number(double)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }
}
