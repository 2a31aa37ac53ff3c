/// The rows a statement returned, read in full, in PostgreSQL's text format.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    let values: [[String?]]
    /// The count from the command tag (`UPDATE 3` gives 3); 0 when the command has none.
    public let affectedRows: Int

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }
    public var first: PostgresRow? { values.isEmpty ? nil : self[0] }

    public subscript(index: Int) -> PostgresRow {
        PostgresRow(columns: columns, values: values[index])
    }

    public func makeIterator() -> some IteratorProtocol<PostgresRow> {
        values.lazy.map { PostgresRow(columns: columns, values: $0) }.makeIterator()
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    /// The raw text of a column, nil for NULL.
    public subscript(column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return values[index]
    }

    /// The column's value; a missing column, NULL or a value of another type is an error.
    /// (Inlinable, as `decodeIfPresent`: specialised where it is called, it needs no type metadata
    /// looked up at run time, which generic code did for every value.)
    @inlinable public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decodeIfPresent(column, as: type) else {
            throw PostgresError(code: .decoding, message: "column \(column) is NULL, expected \(T.self)")
        }
        return value
    }

    /// The column's value, or nil for NULL.
    @inlinable public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws
        -> T?
    {
        guard let index = columns.firstIndex(of: column) else {
            throw PostgresError(code: .decoding, message: "no column \(column) in the result (columns: \(columns))")
        }
        guard let text = values[index] else { return nil }
        guard let value = T(postgresText: text) else {
            throw PostgresError(code: .decoding, message: "column \(column) does not hold a \(T.self)")
        }
        return value
    }
}
