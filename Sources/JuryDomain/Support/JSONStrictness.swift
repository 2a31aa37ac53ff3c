import Foundation

/// What Foundation's JSON decoder lets pass but Jury refuses: a key twice in one object, and a
/// comma before a closing bracket.
///
/// The decoder keeps one of two values for a key without a word, so an answer such as
/// `{"label":"valid","label":"ambiguous"}` would count as whichever it kept; and it reads
/// `[1, 2,]`, which is not JSON. Keys compare by their decoded bytes.
public enum JSONStrictness {
    /// What is wrong, or nil. Input that is otherwise not well-formed JSON returns nil: the
    /// decoder that reads it afterwards says what is wrong with it.
    public static func problem(in bytes: some Collection<UInt8>) -> String? {
        let bytes = Array(bytes)
        // One entry per open container: the keys seen, for objects; nil for arrays.
        var stack: [Set<[UInt8]>?] = []
        var expectingKey = false
        var afterComma = false
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if afterComma, byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                return "a comma stands before a closing bracket"
            }
            if !(byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D) {
                afterComma = byte == UInt8(ascii: ",")
            }
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
                    if !keys.insert(Array(key.utf8)).inserted {
                        return "the key \"\(key.prefix(60))\" appears twice in one object"
                    }
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
