import Testing

extension Tag {
    /// Tests that need a usable `/dev/kvm`.
    @Tag static var kvm: Self
}
