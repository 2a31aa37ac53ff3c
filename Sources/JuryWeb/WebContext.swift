import Foundation
import HTTPTypes
import Hummingbird
import JuryStore
import NIOCore

/// A request's context: the router's, and the address of the client (what sign-in attempts
/// are counted by).
struct WebContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let client: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        client = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }
}

/// A form posted as application/x-www-form-urlencoded, of at most 64 KiB.
struct Form {
    private var fields: [String: String] = [:]

    static let limit = 64 * 1024

    init(_ request: Request) async throws {
        let contentType = request.headers[.contentType] ?? ""
        guard contentType.lowercased().hasPrefix("application/x-www-form-urlencoded") else {
            throw WebError(.unsupportedMediaType, "This address takes a form (application/x-www-form-urlencoded).")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.limit)
        } catch {
            throw WebError(.contentTooLarge, "The form is larger than \(Self.limit / 1024) KiB.")
        }
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            guard let name = parts.first else { continue }
            // The first of a repeated field counts: a form of Jury's never repeats one.
            let key = decode(name)
            if fields[key] == nil { fields[key] = parts.count > 1 ? decode(parts[1]) : "" }
        }
    }

    subscript(_ name: String) -> String? { fields[name] }

    /// A field that must be there; its absence is the caller's error.
    func required(_ name: String) throws -> String {
        guard let value = fields[name], !value.isEmpty else {
            throw WebError(.badRequest, "The form has no \(name); reload the page and try again.")
        }
        return value
    }
}

/// What a request gets instead of its page: a status and a sentence that says what went wrong.
struct WebError: Error {
    let status: HTTPResponse.Status
    let message: String
    /// Where to send a browser instead (sign-in, for a request without a session).
    var location: String? = nil

    init(_ status: HTTPResponse.Status, _ message: String, location: String? = nil) {
        self.status = status
        self.message = message
        self.location = location
    }
}
