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
