import Foundation
import JuryBench
import JuryTestSupport
import Testing

/// Every judge in every process must be sent the same bytes for the same example.
@Suite("Prompts")
struct PromptTests {
    @Test func oneExampleRendersToIdenticalBytesInTwoProcesses() async throws {
        let binary = juryBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the jury binary first: swift build")
        let config = try writeFile(
            runYAML(models: ["a"], baseURL: "http://127.0.0.1:9/v1").replacingOccurrences(
                of: #"user: "Request: {{request}}""#,
                with: #"user: "{{request}} {{meta}} {{#meta.items}}<{{.}}>{{/meta.items}}""#))
        // Enough keys that a dictionary's order, which is seeded per process, would differ.
        let keys = (0..<40).map { #""k\#($0)": \#($0)"# }.joined(separator: ", ")
        let example = #"{"id": "e1", "request": "r", "meta": {\#(keys), "items": [1, {"z": true, "a": null}]}}"#
        var outputs: [String] = []
        for _ in 0..<2 {
            let result = try await offThePool {
                try Subprocess.run(
                    binary, ["prompt", "--config", config, example], environment: ["PATH": "/usr/bin:/bin"])
            }
            #expect(result.status == 0, "\(result.output)")
            outputs.append(result.output)
        }
        #expect(outputs[0] == outputs[1])
        let sortedKeys = (0..<40).map { "k\($0)" }.sorted().map { #""\#($0)":\#($0.dropFirst())"# }.joined(
            separator: ",")
        #expect(
            outputs[0].contains(#"r {"items":[1,{"a":null,"z":true}],\#(sortedKeys)} <1><{"a":null,"z":true}>"#),
            "\(outputs[0])")
    }
}
