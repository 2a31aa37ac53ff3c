/// Aligning text in columns, for the tables and screens the commands print.
extension String {
    /// The text, then spaces up to `width` characters; longer text stays whole.
    func leftAligned(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    /// Spaces up to `width` characters, then the text; longer text stays whole.
    func rightAligned(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// Rows under a header, one line each, in columns two spaces apart: the `figures` columns
/// aligned right, the others left.
func columns(_ header: [String], _ rows: [[String]], figures: Set<Int>) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    return ([header] + rows).map { row in
        var line = row.indices.map { column in
            figures.contains(column)
                ? row[column].rightAligned(widths[column]) : row[column].leftAligned(widths[column])
        }.joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        return line + "\n"
    }.joined()
}
