import Foundation
public import JuryDomain

extension RunConfig {
    /// Reads and validates a run's YAML file; the error names the file and the field at fault.
    public static func load(path: String) throws -> RunConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw JuryError(.io, "cannot read the run config \(path)")
        }
        return try parse(yaml: text, file: path)
    }
}
