import ArgumentParser
import Foundation
import JuryDomain
import JuryRuntime

struct Prompt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the prompt every judge of a run would be sent for one example, and its hash.",
        discussion: """
            The example is one corpus line (a JSON object with an "id"). The prompt is a pure function of \
            the example: the same bytes in every process and on every machine; fields holding objects or \
            arrays render as canonical JSON (keys sorted). The hash is the one stored with each vote.
            """)
    @Option(help: "The run's YAML file.") var config: String
    @Argument(help: "The example: one JSONL line.") var example: String

    func run() throws {
        let runConfig = try RunConfig.load(path: config)
        guard case .object(var fields) = try? JSONValue.parse(Array(example.utf8)) else {
            throw ValidationError("the example must be a JSON object, as a line of a corpus")
        }
        let id: String
        switch fields["id"] {
        case .string(let text): id = text
        case .integer(let number): id = String(number)
        default: throw ValidationError("the example needs an \"id\" (a string or an integer)")
        }
        for key in ["id", "human_label", "source_label"] { fields.removeValue(forKey: key) }
        let request = try PromptRenderer(config: runConfig).render(id: id, payload: .object(fields))
        print(
            "# system\n\(request.system)\n# user\n\(request.user)\n# labels\n\(request.labels.joined(separator: " "))")
        print("# hash\n\(request.promptHash)")
    }
}
