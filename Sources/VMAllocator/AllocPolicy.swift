/// Where in the managed space an ``AddressAllocator`` places a new allocation.
public enum AllocPolicy: Hashable, Sendable, Codable {
    /// The lowest address at which the request fits.
    case firstMatch
    /// The highest address at which the request fits.
    case lastMatch
    /// Exactly at the given address, which must be aligned and lie in free space.
    case exactMatch(UInt64)
}
