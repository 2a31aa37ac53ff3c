/// A SQL statement whose interpolated values become bind parameters.
///
/// `"SELECT * FROM runs WHERE name = \(name)"` sends `SELECT * FROM runs WHERE name = $1` with
/// `name` bound, so SQL built this way is parameterised by construction. Use
/// `\(unescaped: ...)` only for trusted fragments such as a table name chosen by the code.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public var sql: String
    /// Parameters in PostgreSQL's text format; nil is NULL.
    public var binds: [String?]

    public init(unsafeSQL sql: String, binds: [String?] = []) {
        self.sql = sql
        self.binds = binds
    }

    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeSQL: stringInterpolation.sql, binds: stringInterpolation.binds)
    }

    /// The SQL text only: bound values stay out of logs.
    public var description: String { sql }

    public struct StringInterpolation: StringInterpolationProtocol {
        @usableFromInline var sql = ""
        @usableFromInline var binds: [String?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            binds.append(value.postgresText)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation(_ value: (some PostgresEncodable)?) {
            binds.append(value?.postgresText)
            sql += "$\(binds.count)"
        }

        /// Arrays have an overload of their own, inlinable, so that the calling module builds
        /// the literal specialised for its element type. Through the generic one above, each
        /// element's text went through a witness table: about 9% of a worker's CPU in `jury bench`.
        @inlinable public mutating func appendInterpolation<Element: PostgresArrayElement>(_ value: [Element]) {
            binds.append(value.postgresText)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation(unescaped fragment: String) {
            sql += fragment
        }
    }
}
