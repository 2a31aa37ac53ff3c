import AsyncHTTPClient
import Foundation
import JuryDomain
import NIOCore
import NIOHTTP1

/// A batch's results (JSON Lines) read as a stream, a chunk of lines at a time: a results file
/// of 200 MB is never held whole.
struct ResultsDownload {
    /// The longest line read; a longer one is dropped as malformed.
    static let lineLimit = 8 << 20

    let client: HTTPClient
    let url: String
    let headers: [(String, String)]
    let judge: String
    let redact: (String) -> String

    /// Calls `receive` with up to `chunk` lines at a time, each with its number (from 1). Blank
    /// lines are skipped; a line over `lineLimit` bytes comes as a line saying so. Throws when
    /// the download fails or breaks off: what was received before then was passed on.
    func readLines(chunk: Int, _ receive: ([(Int, Data)]) async throws -> Void) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(600))
        } catch {
            throw JudgeError(.network, "judge \(judge): downloading the batch's results: \(redact("\(error)"))")
        }
        guard response.status == .ok else {
            let said = (try? await response.body.collect(upTo: 1 << 16)).map { String(buffer: $0) } ?? ""
            throw JudgeError(
                response.status.code == 404 ? .notFound : .server,
                "judge \(judge): downloading the batch's results: HTTP \(response.status.code) \(redact(String(said.prefix(300))))"
            )
        }
        var pending = ByteBuffer()
        var lines: [(Int, Data)] = []
        var number = 0
        var skippingLongLine = false
        func take(_ line: ByteBufferView) {
            number += 1
            if skippingLongLine {
                skippingLongLine = false
                return
            }
            if !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) {
                lines.append((number, Data(line)))
            }
        }
        do {
            for try await var part in response.body {
                pending.writeBuffer(&part)
                while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                    take(pending.readableBytesView[pending.readerIndex..<newline])
                    pending.moveReaderIndex(to: newline + 1)
                    if lines.count >= chunk {
                        do { try await receive(lines) } catch { throw Received(error: error) }
                        lines.removeAll(keepingCapacity: true)
                    }
                }
                if pending.readableBytes > Self.lineLimit {
                    // A line this long is no answer: it is dropped, up to its end.
                    number += 1
                    lines.append((number, Data("line longer than \(Self.lineLimit) bytes".utf8)))
                    pending.clear()
                    skippingLongLine = true
                }
                pending.discardReadBytes()
            }
        } catch let received as Received {
            throw received.error
        } catch let error as JudgeError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw JudgeError(.network, "judge \(judge): the batch's results broke off: \(redact("\(error)"))")
        }
        if pending.readableBytes > 0 { take(pending.readableBytesView) }
        if !lines.isEmpty { try await receive(lines) }
    }

    /// What `receive` threw, passed on as it is rather than taken for a broken download.
    private struct Received: Error {
        let error: any Error
    }
}
