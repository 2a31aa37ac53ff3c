public import Foundation

/// A value that can be sent as a bind parameter, in PostgreSQL's text format.
public protocol PostgresEncodable: Sendable {
    /// The text form of the value; nil sends NULL.
    var postgresText: String? { get }
}

/// A value that can be read from a column in PostgreSQL's text format.
public protocol PostgresDecodable {
    init?(postgresText: String)
}

extension String: PostgresEncodable, PostgresDecodable {
    @inlinable public var postgresText: String? { self }
    @inlinable public init?(postgresText: String) { self = postgresText }
}

extension Int: PostgresEncodable, PostgresDecodable {
    @inlinable public var postgresText: String? { String(self) }
    @inlinable public init?(postgresText: String) { self.init(postgresText) }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    @inlinable public var postgresText: String? { String(self) }
    @inlinable public init?(postgresText: String) { self.init(postgresText) }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    @inlinable public var postgresText: String? { String(self) }
    @inlinable public init?(postgresText: String) { self.init(postgresText) }
}

extension Double: PostgresEncodable, PostgresDecodable {
    @inlinable public var postgresText: String? { String(self) }
    @inlinable public init?(postgresText: String) { self.init(postgresText) }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { self ? "t" : "f" }
    public init?(postgresText: String) {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    @inlinable public var postgresText: String? { self.flatMap { $0.postgresText } }
}

/// Elements that can stand in a PostgreSQL array literal.
public protocol PostgresArrayElement: PostgresEncodable {}
extension String: PostgresArrayElement {}
extension Int: PostgresArrayElement {}
extension Int64: PostgresArrayElement {}
extension Int32: PostgresArrayElement {}
extension Double: PostgresArrayElement {}
extension Bool: PostgresArrayElement {}
extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    /// An array literal such as `{"a","b\"c",NULL}`; every element is quoted so no value can break out.
    /// Built on UTF-8 bytes: `"` and `\` are single bytes that never occur inside a multi-byte
    /// character; going character by character took about 8% of `jury bench`'s CPU. Inlinable, so
    /// that callers get it specialised for their element type: generic, it looked up type metadata
    /// for every element.
    @inlinable public var postgresText: String? {
        let quote = UInt8(ascii: "\"")
        let backslash = UInt8(ascii: "\\")
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(count * 16 + 2)
        for (index, element) in enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let value = element.postgresText else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(quote)
            for byte in value.utf8 {
                if byte == quote || byte == backslash { bytes.append(backslash) }
                bytes.append(byte)
            }
            bytes.append(quote)
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// `2026-11-25 14:28:29.123456+00`: an unambiguous `timestamptz` literal.
    public var postgresText: String? {
        let whole = timeIntervalSince1970.rounded(.down)
        var seconds = time_t(whole)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let micros = Int(((timeIntervalSince1970 - whole) * 1_000_000).rounded())
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
            parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
            min(micros, 999_999))
    }

    /// Reads a `timestamptz` as the server prints it with `TimeZone = UTC` (set on every connection).
    public init?(postgresText: String) {
        // Forms: 2026-11-25 14:28:29+00 and 2026-11-25 14:28:29.123456+00
        var text = Substring(postgresText)
        guard text.hasSuffix("+00") else { return nil }
        text = text.dropLast(3)
        var fraction = 0.0
        if let dot = text.firstIndex(of: ".") {
            fraction = Double("0" + text[dot...]) ?? 0
            text = text[..<dot]
        }
        let numbers = text.split(whereSeparator: { $0 == "-" || $0 == " " || $0 == ":" }).compactMap { Int32($0) }
        guard numbers.count == 6 else { return nil }
        var parts = tm()
        parts.tm_year = numbers[0] - 1900
        parts.tm_mon = numbers[1] - 1
        parts.tm_mday = numbers[2]
        parts.tm_hour = numbers[3]
        parts.tm_min = numbers[4]
        parts.tm_sec = numbers[5]
        self.init(timeIntervalSince1970: Double(timegm(&parts)) + fraction)
    }
}

/// Enumerations stored as text (states, statuses) encode and decode by their raw value.
extension PostgresEncodable where Self: RawRepresentable, RawValue == String {
    public var postgresText: String? { rawValue }
}

extension PostgresDecodable where Self: RawRepresentable, RawValue == String {
    public init?(postgresText: String) { self.init(rawValue: postgresText) }
}
