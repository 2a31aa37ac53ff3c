import Foundation

/// HTML made by string, with every value from outside escaped on the way in: corpus fields,
/// rationales, labels, run and reviewer names are all untrusted text.
struct HTML: Sendable, CustomStringConvertible {
    private(set) var text: String

    /// Markup written here, in Jury's own code: never anything from the database or a request.
    init(raw: String) { text = raw }

    /// Untrusted text, escaped for an element's content or a quoted attribute value.
    init(_ untrusted: String) { text = Self.escape(untrusted) }

    var description: String { text }

    static func + (lhs: HTML, rhs: HTML) -> HTML { HTML(raw: lhs.text + rhs.text) }

    static func join(_ parts: [HTML], separator: String = "") -> HTML {
        HTML(raw: parts.map(\.text).joined(separator: separator))
    }

    /// `&`, `<`, `>`, both quotes; and the C0 controls that HTML forbids (NUL and the like), as
    /// U+FFFD. Bidirectional overrides stay as text: the stylesheet isolates every field
    /// (`unicode-bidi: isolate`), so they cannot reorder what is around them.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\t", "\r": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The address of a run's page (`page`: "/review", ...), its name percent-encoded: for a
    /// Location header as it is, for an attribute through `HTML(_:)`.
    static func runPath(_ run: String, _ page: String = "") -> String { "/runs/" + percentEncoded(run) + page }

    /// Text percent-encoded but for the unreserved characters: a path segment, a query value.
    static func percentEncoded(_ segment: String) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-._~")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// Formatting of figures for pages.
enum Figures {
    static func count(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return value < 0 ? "-" + out : out
    }

    static func percent(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "–" }
        return String(format: "%.1f%%", value * 100)
    }

    static func decimal(_ value: Double?, digits: Int = 2) -> String {
        guard let value, value.isFinite else { return "–" }
        return String(format: "%.\(digits)f", value)
    }

    static func dollars(_ value: Double) -> String { String(format: "$%.2f", value) }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite else { return "–" }
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total) s" }
        if total < 3600 { return "\(total / 60) min \(total % 60) s" }
        if total < 86400 { return "\(total / 3600) h \(total % 3600 / 60) min" }
        return "\(total / 86400) d \(total % 86400 / 3600) h"
    }
}
