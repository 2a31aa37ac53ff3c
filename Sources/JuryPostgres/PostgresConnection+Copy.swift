import CLibPQ

extension PostgresConnection {
    /// Streams rows into a `COPY ... FROM STDIN` statement.
    ///
    /// `produce` is called until it returns nil; each call returns a chunk of COPY text-format
    /// data (tab-separated columns, one row a line). An error thrown by `produce` aborts the
    /// COPY, so nothing it sent is kept, and is rethrown. Returns the number of rows copied.
    @discardableResult
    public func copyIn(_ statement: String, produce: () async throws -> [UInt8]?) async throws -> Int {
        try await onQueue { connection in
            let result = PQexec(connection.rawHandle, statement)
            guard let result, PQresultStatus(result) == PGRES_COPY_IN else {
                defer { if let result { PQclear(result) } }
                if let result { throw connection.serverError(result) }
                throw connection.connectionError()
            }
            PQclear(result)
        }
        do {
            while let chunk = try await produce() {
                guard !chunk.isEmpty else { continue }
                try await onQueue { connection in
                    let sent = chunk.withUnsafeBufferPointer { buffer in
                        buffer.withMemoryRebound(to: CChar.self) {
                            PQputCopyData(connection.rawHandle, $0.baseAddress, Int32($0.count))
                        }
                    }
                    guard sent == 1 else { throw connection.copyError() }
                }
            }
        } catch {
            try? await onQueue { connection in
                _ = PQputCopyEnd(connection.rawHandle, "aborted by the client")
                connection.discardResults()
            }
            throw error
        }
        return try await onQueue { connection in
            guard PQputCopyEnd(connection.rawHandle, nil) == 1 else { throw connection.copyError() }
            var copied = 0
            var failure: PostgresError?
            while let result = PQgetResult(connection.rawHandle) {
                do {
                    copied += try connection.readResult(result).affectedRows
                } catch let error as PostgresError {
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            return copied
        }
    }

    private func copyError() -> PostgresError {
        PostgresError(code: .copy, message: lastErrorMessage())
    }

    private func discardResults() {
        while let result = PQgetResult(rawHandle) { PQclear(result) }
    }
}
