import Testing

@testable import JuryStore

/// What the worker stores of a judge's text: no NUL, and at most so many characters.
@Suite("Storable text")
struct StorableTextTests {
    @Test func textIsCutAtTheLimitInCharactersNotBytes() {
        #expect(Store.storable("valid", limit: 200) == "valid")
        #expect(Store.storable(String(repeating: "a", count: 250), limit: 200) == String(repeating: "a", count: 200))
        // 150 characters of two bytes each: 300 bytes, under the limit of 200 characters.
        let accented = String(repeating: "é", count: 150)
        #expect(Store.storable(accented, limit: 200) == accented)
        #expect(Store.storable(String(repeating: "é", count: 250), limit: 200) == String(repeating: "é", count: 200))
        // A flag is one character of eight bytes.
        #expect(Store.storable(String(repeating: "🇫🇷", count: 30), limit: 25).count == 25)
        #expect(Store.storable("a\u{0}b", limit: 200) == "ab")
    }
}
