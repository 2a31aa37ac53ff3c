public import Foundation

/// Any JSON value, decoded without losing the difference between `true`, `1` and `"1"`.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        // Each failed attempt throws, which is slow: try the kinds in the order corpora use them most.
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else {
            self = .array(try container.decode([JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses JSON text.
    public static func parse(_ data: some DataProtocol) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(data))
    }

    /// Compact JSON text with sorted keys.
    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("null".utf8), as: UTF8.self)
    }

    /// Whether a string or key anywhere inside holds U+0000, which PostgreSQL cannot store.
    public var containsNUL: Bool {
        switch self {
        case .string(let value): return value.utf8.contains(0)
        case .array(let values): return values.contains { $0.containsNUL }
        case .object(let fields): return fields.contains { $0.key.utf8.contains(0) || $0.value.containsNUL }
        default: return false
        }
    }
}

extension JSONValue {
    /// The value at a path of object keys, if every step is an object that has the key.
    public subscript(_ path: String...) -> JSONValue? {
        var value: JSONValue? = self
        for key in path {
            guard case .object(let fields) = value else { return nil }
            value = fields[key]
        }
        return value
    }

    /// A string's text, or a number's, for fields that providers write either way.
    public var text: String? {
        switch self {
        case .string(let value): return value
        case .integer(let value): return String(value)
        case .number(let value): return String(value)
        default: return nil
        }
    }
}

extension JSONValue {
    /// This value with `other` laid over it: objects merge key by key, all the way down; any
    /// other value of `other` replaces this one.
    public func merging(_ other: JSONValue) -> JSONValue {
        guard case .object(var fields) = self, case .object(let overlay) = other else { return other }
        for (key, value) in overlay {
            fields[key] = fields[key].map { $0.merging(value) } ?? value
        }
        return .object(fields)
    }
}

/// Literals, for bodies and parameters written in code.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
