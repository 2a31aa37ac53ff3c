/// One file of this folder, as the build embedded it: its path here, and its text.
///
/// This folder is the JurySchema module so that SwiftPM watches it: the EmbedSchema plugin
/// (Plugins/) writes every .sql file here into `SchemaFile.embedded` at build time, and a file
/// added or removed is seen at the next build. The SQL is the truth; JuryStore reads it from
/// here (`Schema` in Migrations.swift).
public struct SchemaFile: Sendable {
    public let path: String
    public let sql: String

    public init(path: String, sql: String) {
        self.path = path
        self.sql = sql
    }
}
