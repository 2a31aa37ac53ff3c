// embed-schema SCHEMA_DIRECTORY OUTPUT_FILE SQL_FILE...
//
// Writes a Swift file holding the SQL files (those the EmbedSchema build plugin found under
// SCHEMA_DIRECTORY), each by its path there. Refuses a file whose name does not say where it
// belongs, so that a misnamed migration fails the build rather than a deployment.
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: embed-schema SCHEMA_DIRECTORY OUTPUT_FILE SQL_FILE...\n".utf8))
    exit(2)
}
let root = URL(filePath: arguments[1], directoryHint: .isDirectory)
let output = URL(filePath: arguments[2])

/// The names Schema/ may hold: the baseline's parts (100_baseline/3_queue.sql), migrations
/// after it (101_what_it_does.sql), and old_databases.sql.
func isSchemaFile(_ path: String) -> Bool {
    if path == "old_databases.sql" || path.wholeMatch(of: #/100_baseline/[1-9]_[a-z0-9_]+\.sql/#) != nil {
        return true
    }
    if let migration = path.wholeMatch(of: #/([0-9]{3})_[a-z0-9_]+\.sql/#), let version = Int(migration.1) {
        return version > 100
    }
    return false
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("embed-schema: \(message)\n".utf8))
    exit(1)
}

var paths: [String] = []
let prefix = root.standardizedFileURL.path(percentEncoded: false)
for file in arguments.dropFirst(3) {
    let absolute = URL(filePath: file).standardizedFileURL.path(percentEncoded: false)
    guard absolute.hasPrefix(prefix) else { fail("\(file) is not under \(prefix)") }
    let path = String(absolute.dropFirst(prefix.count))
    guard isSchemaFile(path) else {
        fail("Schema/\(path): a schema file is 100_baseline/N_what.sql, NNN_what.sql with NNN above 100 (a migration after the baseline) or old_databases.sql")
    }
    paths.append(path)
}
paths.sort()

var swift = """
    // Generated at build time by the EmbedSchema plugin from Schema/'s .sql files. Not in the repository.

    extension SchemaFile {
        /// Every file of Schema/, by its path there, in path order.
        public static let embedded: [SchemaFile] = [

    """
for path in paths {
    let sql: String
    do {
        sql = try String(contentsOf: root.appending(path: path), encoding: .utf8)
    } catch {
        fail("Schema/\(path): \(error.localizedDescription)")
    }
    // A raw string whose delimiter has more # than any run in the text after a quote.
    var hashes = "#"
    while sql.contains("\"" + hashes) { hashes += "#" }
    swift += "        SchemaFile(path: \"\(path)\", sql: \(hashes)\"\"\"\n\(sql)\n\"\"\"\(hashes)),\n"
}
swift += "    ]\n}\n"
do {
    try swift.write(to: output, atomically: true, encoding: .utf8)
} catch {
    fail("cannot write \(output.path(percentEncoded: false)): \(error.localizedDescription)")
}
