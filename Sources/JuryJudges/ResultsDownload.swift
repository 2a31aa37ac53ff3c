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
        let tooLong = Data("line longer than \(Self.lineLimit) bytes".utf8)
        func take(_ line: ByteBufferView) {
            if skippingLongLine {
                // The end of a line too long, said when it passed the limit.
                skippingLongLine = false
                return
            }
            number += 1
            if line.count > Self.lineLimit {
                // A line this long is no answer, however it arrived.
                lines.append((number, tooLong))
            } else if !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) {
                lines.append((number, Data(line)))
            }
        }
        // How many of pending's bytes are known to hold no newline: each part is searched once,
        // not a long line's whole prefix again at every part.
        var searched = 0
        do {
            for try await var part in response.body {
                pending.writeBuffer(&part)
                while let newline = pending.readableBytesView.dropFirst(searched).firstIndex(of: UInt8(ascii: "\n")) {
                    take(pending.readableBytesView[pending.readerIndex..<newline])
                    pending.moveReaderIndex(to: newline + 1)
                    searched = 0
                    if lines.count >= chunk {
                        do { try await receive(lines) } catch { throw Received(error: error) }
                        lines.removeAll(keepingCapacity: true)
                    }
                }
                if pending.readableBytes > Self.lineLimit {
                    // A line still open past the limit is not kept: it is dropped up to its end,
                    // and said once.
                    if !skippingLongLine {
                        take(pending.readableBytesView)
                        skippingLongLine = true
                    }
                    pending.clear()
                }
                searched = pending.readableBytes
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
