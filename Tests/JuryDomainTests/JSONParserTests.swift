import Foundation
import JuryDomain
import Testing

@Suite("Strict JSON parser")
struct JSONParserTests {
    /// A small seeded generator (SplitMix64), so that a failure can be replayed.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func randomString(_ random: inout Seeded) -> String {
        let pieces = [
            "a", "Z", " ", "é", "e\u{301}", "\"", "\\", "/", "\n", "\t", "\u{1}", "😀", "中", "\u{7F}", "{", "]",
        ]
        return (0..<Int.random(in: 0...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }

    static func randomValue(depth: Int, _ random: inout Seeded) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2:
            return .integer(
                Int64.random(in: Int64.min...Int64.max, using: &random) >> Int64.random(in: 0...62, using: &random))
        case 3: return .number(Double.random(in: -1e6...1e6, using: &random).rounded() + 0.5)
        case 4: return .string(randomString(&random))
        case 5:
            return .array(
                (0..<Int.random(in: 0...4, using: &random)).map { _ in randomValue(depth: depth + 1, &random) })
        default:
            var fields: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                // ASCII keys: two spellings of one key are a case of their own, below.
                fields["k\(Int.random(in: 0...20, using: &random))"] = randomValue(depth: depth + 1, &random)
            }
            return .object(fields)
        }
    }

    @Test func readsWhatFoundationWritesAndAgreesWithFoundationsReading() throws {
        var random = Seeded(state: 20_261_126)
        for _ in 0..<2000 {
            let value = Self.randomValue(depth: 0, &random)
            let text = Data(value.jsonText.utf8)
            let parsed = try JSONValue.parseStrict(text)
            #expect(parsed == value, "\(value.jsonText)")
            #expect(parsed == (try JSONValue.parse(text)), "\(value.jsonText)")
        }
    }

    @Test(arguments: [
        (
            #" {"a" : [1, -0, 0.5e-3, 2E+2, true, false, null, ""]} "#,
            JSONValue.object([
                "a": .array([
                    .integer(1), .integer(0), .number(0.0005), .number(200), .bool(true), .bool(false), .null,
                    .string(""),
                ])
            ])
        ),
        (#""\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\""#, .string("é😀/\u{8}\u{C}\n\r\t\"\\")),
        ("9223372036854775807", .integer(Int64.max)),
        ("-9223372036854775808", .integer(Int64.min)),
        ("9223372036854775808", .number(9_223_372_036_854_775_808)),
        ("1.0", .number(1)),
        ("[]", .array([])),
        ("{}", .object([:])),
        // Two spellings of é are two keys to JSON; Swift's dictionary holds one, the first.
        ("{\"\u{E9}\": 1, \"e\u{301}\": 2}", .object(["\u{E9}": .integer(1)])),
    ])
    func readsValidJSON(text: String, expected: JSONValue) throws {
        #expect(try JSONValue.parseStrict(Array(text.utf8)) == expected)
    }

    @Test(arguments: [
        ("", "the text ends where a value should be"),
        ("   ", "the text ends where a value should be"),
        ("[1, 2,]", "a comma stands before a closing bracket"),
        (#"{"a": 1,}"#, "a comma stands before a closing bracket"),
        (#"{"a": 1, "a": 2}"#, "the key \"a\" appears twice in one object"),
        (#"{"x": {"k": 1, "k": 2}}"#, "the key \"k\" appears twice in one object"),
        ("{\"\u{E9}\": 1, \"e\u{301}\": 2, \"e\u{301}\": 3}", "appears twice in one object"),
        (#"{'a': 1}"#, "expected a key in double quotes"),
        (#"{"a" 1}"#, "expected ':' after a key"),
        (#"{"a": 1 "b": 2}"#, "expected ',' or '}' in an object"),
        ("[1 2]", "expected ',' or ']' in an array"),
        (#"{"a": 1"#, "the text ends inside an object"),
        ("[1", "the text ends inside an array"),
        (#""open"#, "a string is not closed"),
        (#""esc\"#, "a string is not closed"),
        ("\"tab\there\"", "a control character inside a string"),
        (#""\x""#, "an unknown escape \\x"),
        (#""\u12""#, "a \\u escape needs four hex digits"),
        (#""\ud800""#, "a \\u escape of a high surrogate without its low one"),
        (#""\ud800\u0041""#, "a \\u escape of a high surrogate without its low one"),
        (#""\udc00""#, "a \\u escape of a low surrogate without its high one"),
        ("01", "a number starts with 0"),
        ("-", "a number needs digits"),
        ("1.", "a number needs digits after '.'"),
        ("1e", "a number needs digits in its exponent"),
        ("1e400", "the number 1e400 is out of range"),
        ("NaN", "expected a value"),
        ("nul", "expected a value"),
        ("true false", "text follows the JSON value"),
        ("truth", "expected a value"),
        (#"{"a": 1} trailing"#, "text follows the JSON value"),
        (String(repeating: "[", count: 513) + String(repeating: "]", count: 513), "nested more than 512 deep"),
    ])
    func refusesWhatIsNotStrictJSON(text: String, reason: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parseStrict(Array(text.utf8)) }
        do {
            _ = try JSONValue.parseStrict(Array(text.utf8))
        } catch {
            #expect(error.reason.contains(reason), "\(text): \(error)")
        }
    }

    @Test func refusesInvalidUTF8AndSaysWhere() {
        let bytes: [UInt8] = Array(#"{"a": "ok", "b": ""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        do {
            _ = try JSONValue.parseStrict(bytes)
            Issue.record("invalid UTF-8 was read")
        } catch {
            #expect(error.reason == "a string is not valid UTF-8")
            #expect(error.offset == 18)  // the string's first byte
        }
        // Valid nesting 512 deep is read.
        let deep = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try JSONValue.parseStrict(Array(deep.utf8)) }
    }
}
