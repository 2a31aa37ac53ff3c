import Foundation
import PackagePlugin

/// Embeds Schema/'s SQL in the JurySchema module at build time, so that the binary carries
/// the schema and the repository holds one text of it. This finds the .sql files; the
/// embed-schema tool writes them into a Swift source. They are its inputs, so an edit rebuilds
/// it. (Schema/ is a target's folder so that SwiftPM sees a file added or removed there and
/// asks this plugin again.)
@main
struct EmbedSchema: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let schema = target.directoryURL
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedSchema.swift")
        let files = try sqlFiles(under: schema)
        return [
            .buildCommand(
                displayName: "Embedding the SQL of \(target.name)",
                executable: try context.tool(named: "embed-schema").url,
                arguments: [schema, output].map { $0.path(percentEncoded: false) }
                    + files.map { $0.path(percentEncoded: false) },
                inputFiles: files,
                outputFiles: [output])
        ]
    }

    private func sqlFiles(under directory: URL) throws -> [URL] {
        guard let walk = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
            throw PluginError.unreadable(directory.path(percentEncoded: false))
        }
        return walk.compactMap { $0 as? URL }.filter { $0.pathExtension == "sql" }
    }
}

enum PluginError: Error, CustomStringConvertible {
    case unreadable(String)
    var description: String {
        switch self {
        case .unreadable(let path): "cannot read \(path)"
        }
    }
}
