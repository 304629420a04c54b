import CKVM
import Glibc

/// Which pages of one memory slot the guest wrote since the last ``VirtualMachine/dirtyLog(slot:pageCount:)``
/// (or since dirty logging started), one bit per 4 KiB page, as `KVM_GET_DIRTY_LOG`
/// reports it.
public struct DirtyBitmap: Hashable, Sendable {
    /// The granularity of the log: KVM tracks 4 KiB pages, even where the guest maps
    /// 2 MiB pages.
    public static let pageSize = 4096

    /// The number of pages the bitmap covers (the slot's size / ``pageSize``).
    public let pageCount: Int
    /// The bitmap as KVM returns it: bit `p % 64` of word `p / 64` is page `p`; bits at
    /// and beyond ``pageCount`` are zero.
    public let words: [UInt64]

    /// A bitmap of `pageCount` pages from KVM's words; bits beyond `pageCount` are dropped.
    ///
    /// - Complexity: O(n) in the number of words.
    public init(pageCount: Int, words: [UInt64]) {
        let pageCount = max(0, pageCount)
        var words = Array(words.prefix((pageCount + 63) / 64))
        words.append(contentsOf: repeatElement(0, count: (pageCount + 63) / 64 - words.count))
        if pageCount % 64 != 0, let last = words.indices.last {
            words[last] &= (UInt64(1) << UInt64(pageCount % 64)) - 1
        }
        self.pageCount = pageCount
        self.words = words
    }

    /// Whether page `page` (the slot's offset / ``pageSize``) was written; false for pages
    /// outside `0..<pageCount`.
    public func isDirty(_ page: Int) -> Bool {
        guard page >= 0, page < pageCount else { return false }
        return words[page / 64] & (UInt64(1) << UInt64(page % 64)) != 0
    }

    /// The number of dirty pages.
    ///
    /// - Complexity: O(n) in the number of words.
    public var count: Int {
        words.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// Whether no page is dirty.
    ///
    /// - Complexity: O(n) in the number of words.
    public var isEmpty: Bool {
        words.allSatisfy { $0 == 0 }
    }

    /// The dirty pages' numbers in increasing order.
    public var dirtyPages: DirtyPages {
        DirtyPages(words: words)
    }

    /// The dirty pages of a ``DirtyBitmap``, in increasing order.
    ///
    /// Iterating costs O(w + d) for w words and d dirty pages: whole clean words are
    /// skipped, so a sparse diff of a large slot is cheap.
    public struct DirtyPages: Sequence, Sendable {
        let words: [UInt64]

        /// An iterator over the dirty page numbers.
        public func makeIterator() -> Iterator {
            Iterator(words: words)
        }

        /// Yields each set bit's page number.
        public struct Iterator: IteratorProtocol, Sendable {
            let words: [UInt64]
            var wordIndex = 0
            var remaining: UInt64

            init(words: [UInt64]) {
                self.words = words
                remaining = words.first ?? 0
            }

            /// The next dirty page, or nil at the end.
            public mutating func next() -> Int? {
                while remaining == 0 {
                    wordIndex += 1
                    guard wordIndex < words.count else { return nil }
                    remaining = words[wordIndex]
                }
                let bit = remaining.trailingZeroBitCount
                remaining &= remaining - 1
                return wordIndex * 64 + bit
            }
        }
    }
}

extension VirtualMachine {
    /// Returns and resets the dirty-page log of memory slot `slot` (`KVM_GET_DIRTY_LOG`).
    /// The slot must have been added with ``MemoryRegionFlags/logDirtyPages``; pages
    /// written before that are not reported.
    ///
    /// Fetching is clearing: without manual protection (`KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`,
    /// not enabled by this module) KVM hands back the bitmap and write-protects the pages
    /// again in the same call, so the writes it reports are reported once only. Call it
    /// when the result is going to be used (e.g. right before writing an incremental
    /// snapshot's pages); a result that is dropped, or a write of the diff that fails,
    /// loses those pages from every later log, and the next snapshot must then be a full
    /// one. The trade-off of this simple form: one ioctl and no separate clear step, at
    /// the price of that coupling; manual protection would decouple fetch and clear at the
    /// cost of a second ioctl (`KVM_CLEAR_DIRTY_LOG`) per round.
    ///
    /// - Parameter pageCount: the slot's size in 4 KiB pages. KVM writes one bit per page
    ///   of the slot as it knows it, whatever this says, so the bitmap is placed just
    ///   before an inaccessible guard page: a `pageCount` smaller than the slot makes the
    ///   call fail with `EFAULT` (or `EINVAL` when the difference stays within the last
    ///   64-page word) instead of writing past the buffer; in both cases KVM may already
    ///   have reset the log. A larger one reports the extra pages clean.
    /// - Throws: ``KVMError/failed(operation:errno:)``: `ENOENT` for a slot without dirty
    ///   logging, `EINVAL` for a slot that does not exist or a `pageCount` below 1.
    /// - Complexity: O(n) in `pageCount` / 64; one ioctl plus one mmap and munmap.
    public func dirtyLog(slot: UInt32, pageCount: Int) throws(KVMError) -> DirtyBitmap {
        let operation = "KVM_GET_DIRTY_LOG"
        let systemPageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        // KVM writes whole 64-bit words (ALIGN(npages, BITS_PER_LONG) / 8 bytes).
        let wordCount = pageCount > 0 ? (pageCount - 1) / 64 + 1 : 0
        guard wordCount > 0, wordCount <= (Int.max - 2 * systemPageSize) / 8 else {
            throw .failed(operation: operation, errno: .invalidArgument)
        }
        let byteCount = wordCount * 8
        let dataSize = (byteCount + systemPageSize - 1) / systemPageSize * systemPageSize
        let mappingSize = dataSize + systemPageSize
        guard let mapping = mmap(nil, mappingSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            mapping != MAP_FAILED
        else { throw lastError("mmap (dirty bitmap)") }
        defer { munmap(mapping, mappingSize) }
        let guardPage = mapping.advanced(by: dataSize)
        guard mprotect(guardPage, systemPageSize, PROT_NONE) == 0 else { throw lastError("mprotect (dirty bitmap)") }

        // The bitmap ends exactly where the guard page starts.
        let bitmap = guardPage.advanced(by: -byteCount)
        var log = kvm_dirty_log()
        log.slot = slot
        log.dirty_bitmap = bitmap
        try ioctl(fileDescriptor, CKVM_GET_DIRTY_LOG, operation, &log)

        let words = (0..<wordCount).map { bitmap.load(fromByteOffset: $0 * 8, as: UInt64.self) }
        // Bits past pageCount in the last word are pages of a larger slot than stated.
        if pageCount % 64 != 0, words[wordCount - 1] >> UInt64(pageCount % 64) != 0 {
            throw .failed(operation: "\(operation) (slot \(slot) has more than \(pageCount) pages)", errno: .invalidArgument)
        }
        return DirtyBitmap(pageCount: pageCount, words: words)
    }
}
