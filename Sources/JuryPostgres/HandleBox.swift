/// Carries a libpq handle across the continuation before the connection object owns it.
struct HandleBox: @unchecked Sendable {
    let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }
}
