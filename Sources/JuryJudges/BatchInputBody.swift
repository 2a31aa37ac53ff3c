import AsyncHTTPClient
import Foundation
import JuryDomain
import NIOCore

/// A batch's written input sent as a request body: `prefix`, the file's entries, `suffix`, read
/// from disk a megabyte at a time as they are sent. With a `separator`, the entries are joined
/// by it instead of each ending in a newline (Anthropic's JSON array of requests).
struct BatchInputBody: Sendable {
    static let chunkSize = 1 << 20

    let input: BatchInput
    var prefix = Data()
    var suffix = Data()
    var separator: UInt8?

    /// The bytes taken from the file: all of them, or all but the last newline when joined.
    private var fileBytes: Int { separator == nil ? input.length : max(0, input.length - 1) }

    var length: Int { prefix.count + fileBytes + suffix.count }

    var body: HTTPClientRequest.Body { .stream(Chunks(body: self), length: .known(Int64(length))) }

    private struct Chunks: AsyncSequence, Sendable {
        let body: BatchInputBody

        func makeAsyncIterator() -> Iterator { Iterator(body: body) }

        struct Iterator: AsyncIteratorProtocol {
            let body: BatchInputBody
            private var sentPrefix = false
            private var file: FileHandle?
            private var remaining: Int
            private var sentSuffix = false

            init(body: BatchInputBody) {
                self.body = body
                self.remaining = body.fileBytes
            }

            mutating func next() async throws -> ByteBuffer? {
                if !sentPrefix {
                    sentPrefix = true
                    if !body.prefix.isEmpty { return ByteBuffer(bytes: body.prefix) }
                }
                if remaining > 0 {
                    if file == nil { file = try FileHandle(forReadingFrom: body.input.file) }
                    guard var chunk = try file?.read(upToCount: Swift.min(BatchInputBody.chunkSize, remaining)),
                        !chunk.isEmpty
                    else {
                        throw JuryError(.io, "\(body.input.file.path) ended before its \(body.input.length) bytes")
                    }
                    remaining -= chunk.count
                    if let separator = body.separator {
                        for index in chunk.indices where chunk[index] == UInt8(ascii: "\n") { chunk[index] = separator }
                    }
                    if remaining == 0 { try? file?.close() }
                    return ByteBuffer(bytes: chunk)
                }
                if !sentSuffix {
                    sentSuffix = true
                    if !body.suffix.isEmpty { return ByteBuffer(bytes: body.suffix) }
                }
                return nil
            }
        }
    }
}
