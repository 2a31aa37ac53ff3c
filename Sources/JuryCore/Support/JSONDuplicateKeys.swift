import Foundation

/// Finds a key that appears twice in one JSON object.
///
/// JSON decoders keep one of the two values without a word, so an answer such as
/// `{"label":"valid","label":"ambiguous"}` would count as whichever the decoder kept. Jury
/// refuses such input instead. Keys compare by their decoded bytes.
enum JSONDuplicateKeys {
    /// The first repeated key, or nil. Input that is not well-formed JSON returns nil: the
    /// decoder that reads it afterwards says what is wrong with it.
    static func first(in bytes: some Collection<UInt8>) -> String? {
        let bytes = Array(bytes)
        // One entry per open container: the keys seen, for objects; nil for arrays.
        var stack: [Set<[UInt8]>?] = []
        var expectingKey = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "{"):
                stack.append([])
                expectingKey = true
            case UInt8(ascii: "["):
                stack.append(nil)
                expectingKey = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard !stack.isEmpty else { return nil }
                stack.removeLast()
                expectingKey = false
            case UInt8(ascii: ","):
                expectingKey = stack.last.map { $0 != nil } ?? false
            case UInt8(ascii: "\""):
                var end = index + 1
                while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                    end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard end < bytes.count else { return nil }
                if expectingKey, var keys = stack.last ?? nil {
                    let raw = Array(bytes[index...end])
                    guard let key = try? JSONDecoder().decode(String.self, from: Data(raw)) else { return nil }
                    if !keys.insert(Array(key.utf8)).inserted { return key }
                    stack[stack.count - 1] = keys
                    expectingKey = false
                }
                index = end
            default:
                break
            }
            index += 1
        }
        return nil
    }
}
