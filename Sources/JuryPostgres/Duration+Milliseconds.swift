extension Duration {
    /// The duration in whole milliseconds, rounded down: what libpq and the server's settings take.
    var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
