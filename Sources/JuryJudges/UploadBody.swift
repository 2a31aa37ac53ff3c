import AsyncHTTPClient
import Foundation
import NIOCore

/// A large request body (a batch of tens of thousands of requests) written in chunks of a
/// megabyte and sent as they are: never one contiguous buffer, which would be copied each time
/// it grew and again when sent.
struct UploadBody {
    static let chunkSize = 1 << 20

    private var chunks: [ByteBuffer] = []
    private(set) var length = 0

    mutating func append(_ bytes: some Collection<UInt8>) {
        if chunks.isEmpty || chunks[chunks.count - 1].writableBytes < bytes.count {
            chunks.append(ByteBufferAllocator().buffer(capacity: max(Self.chunkSize, bytes.count)))
        }
        chunks[chunks.count - 1].writeBytes(bytes)
        length += bytes.count
    }

    mutating func append(_ text: String) { append(text.utf8) }

    /// The body, streamed chunk by chunk, with its length known.
    var body: HTTPClientRequest.Body { .stream(Chunks(chunks: chunks), length: .known(Int64(length))) }

    private struct Chunks: AsyncSequence, Sendable {
        let chunks: [ByteBuffer]

        func makeAsyncIterator() -> Iterator { Iterator(chunks: chunks) }

        struct Iterator: AsyncIteratorProtocol {
            let chunks: [ByteBuffer]
            var next = 0

            mutating func next() async -> ByteBuffer? {
                guard next < chunks.count else { return nil }
                defer { next += 1 }
                return chunks[next]
            }
        }
    }
}
