import Crypto
import Foundation

/// The secrets of the web app: reviewers' sign-in tokens, session cookies and CSRF tokens.
/// Each is 32 random bytes from the system's generator, in URL-safe base64; only SHA-256 of a
/// sign-in token or a session cookie is stored, so the database cannot sign anybody in.
public enum AccessToken {
    /// A new token; reviewers' are prefixed `jury_` so that a leaked one is recognisable.
    public static func make(prefix: String = "") -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return prefix
            + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// SHA-256 of the token's UTF-8, in hex: what the database keeps and looks up.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two tokens in time that does not depend on where they differ.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
