/// The scheduler's tasks by id: a dictionary for tasks whose ids are handed
/// out in order (the live tasks, and the recently finished ones, which finish
/// in roughly the order they came).
///
/// Tasks added with `insert` (ids mostly increasing) go into
/// pages of `pageSize` slots indexed by id, so a queued task costs its value
/// and nothing more: no hash table sized to the next power of two above
/// 4/3 of the count, and no doubling that holds the old and the new table at
/// once. With `[TaskID: LiveTask]` a million queued tasks peaked at 783 bytes
/// each; the pages hold them at about the value's size (issue 7, workload (f)).
///
/// Everything else (tasks restored from a store, in whatever order their ids
/// come) and the survivors of a page that has mostly emptied go into a plain
/// dictionary, so a few long-lived tasks never pin mostly-empty pages: a page
/// other than the newest is kept only while at least a quarter of it is live.
struct LiveTable<Value> {
    static var pageShift: Int { 10 }
    static var pageSize: Int { 1 << pageShift }

    /// A page's slots, in storage of its own so that a read borrows a slot in
    /// place: an array's subscript is a getter, so `_read` through
    /// `slots[slot]` still copied the value out (a retain and a release of each
    /// of its references per read; `LiveTask`'s copy and destroy were about 5%
    /// of the host's samples in workload a1 with array pages). Copies of the
    /// table share pages until one of them writes (`uniquePage`), as arrays
    /// share their buffers.
    fileprivate final class Page {
        let slots: UnsafeMutablePointer<Value?>
        var count = 0

        init() {
            slots = .allocate(capacity: LiveTable.pageSize)
            slots.initialize(repeating: nil, count: LiveTable.pageSize)
        }

        init(copying other: Page) {
            slots = .allocate(capacity: LiveTable.pageSize)
            slots.initialize(from: other.slots, count: LiveTable.pageSize)
            count = other.count
        }

        deinit {
            slots.deinitialize(count: LiveTable.pageSize)
            slots.deallocate()
        }

        /// Whether `slot` holds a value, read in place.
        func holds(_ slot: Int) -> Bool { slots[slot] != nil }
    }

    /// Pages `basePage`, `basePage + 1`, ...; nil once emptied or moved to `overflow`.
    private var pages: [Page?] = []
    private var basePage: UInt64 = 0
    private var overflow: [TaskID: Value] = [:]
    private(set) var count = 0

    init() {}

    private func location(_ id: TaskID) -> (page: Int, slot: Int)? {
        let number = id >> UInt64(Self.pageShift)
        guard number >= basePage, number - basePage < UInt64(pages.count) else { return nil }
        let page = Int(number - basePage)
        guard pages[page] != nil else { return nil }
        return (page, Int(id & UInt64(Self.pageSize - 1)))
    }

    /// The page, copied first if another copy of the table shares it.
    private mutating func uniquePage(_ page: Int) -> Page {
        if !isKnownUniquelyReferenced(&pages[page]) {
            pages[page] = Page(copying: pages[page]!)
        }
        return pages[page]!
    }

    subscript(id: TaskID) -> Value? {
        // `_read`, not `get`: `live[id]?.handler` and `live[id] != nil` borrow the
        // value in place instead of copying it out.
        _read {
            if let (page, slot) = location(id), let storage = pages[page], storage.holds(slot) {
                yield storage.slots[slot]
            } else {
                yield overflow.isEmpty ? nil : overflow[id]
            }
        }
        _modify {
            // A restored id can share a page with fresh ones and still live in `overflow`.
            if let (page, slot) = location(id), pages[page]!.holds(slot) || overflow.isEmpty || overflow[id] == nil {
                let storage = uniquePage(page)
                let was = storage.holds(slot)
                yield &storage.slots[slot]
                let now = storage.holds(slot)
                if was != now { counted(page: page, added: now) }
            } else {
                let was = overflow[id] != nil
                yield &overflow[id]
                let now = overflow[id] != nil
                if was != now { count += now ? 1 : -1 }
            }
        }
    }

    /// Adds a task that is not in the table, whose id is at most a little
    /// below the largest added before (ids from the scheduler's counter, or
    /// tasks finishing in about the order they were submitted). An id far below
    /// goes to the overflow dictionary.
    mutating func insert(_ value: consuming Value, id: TaskID) {
        let number = id >> UInt64(Self.pageShift)
        if pages.isEmpty {
            basePage = number
        }
        if number < basePage {
            self[id] = value
            return
        }
        while UInt64(pages.count) <= number - basePage {
            retireNewestIfEmpty()
            pages.append(Page())
        }
        let page = Int(number - basePage)
        let slot = Int(id & UInt64(Self.pageSize - 1))
        guard pages[page] != nil, !pages[page]!.holds(slot) else {
            self[id] = value  // its page moved to overflow while sparse (or it is there already)
            return
        }
        uniquePage(page).slots[slot] = value
        counted(page: page, added: true)
    }

    @discardableResult
    mutating func removeValue(forKey id: TaskID) -> Value? {
        // Moved out in one access, not read (a copy) and then cleared.
        var taken: Value?
        swap(&self[id], &taken)
        return taken
    }

    /// After a slot of `page` filled or emptied (the page is already unique).
    private mutating func counted(page: Int, added: Bool) {
        count += added ? 1 : -1
        let storage = pages[page]!
        storage.count += added ? 1 : -1
        guard !added, page != pages.count - 1 else { return }
        if storage.count == 0 {
            pages[page] = nil
            trimFront()
        } else if storage.count < Self.pageSize / 4 {
            // Mostly finished: move the stragglers out so they don't pin the page.
            let first = (basePage + UInt64(page)) << UInt64(Self.pageShift)
            for slot in 0..<Self.pageSize {
                if let value = storage.slots[slot] { overflow[first + UInt64(slot)] = value }
            }
            pages[page] = nil
            trimFront()
        }
    }

    /// Before a new page is added: the newest page, if it already emptied, goes.
    private mutating func retireNewestIfEmpty() {
        guard let last = pages.indices.last, let storage = pages[last], storage.count == 0 else { return }
        pages[last] = nil
        trimFront()
    }

    private mutating func trimFront() {
        let empty = pages.prefix { $0 == nil }.count
        guard empty > 0 else { return }
        pages.removeFirst(empty)
        basePage += UInt64(empty)
    }
}

extension LiveTable: Sequence {
    struct Iterator: IteratorProtocol {
        fileprivate var pages: [Page?]
        fileprivate var basePage: UInt64
        fileprivate var page = 0
        fileprivate var slot = 0
        fileprivate var rest: Dictionary<TaskID, Value>.Iterator

        mutating func next() -> (key: TaskID, value: Value)? {
            while page < pages.count {
                guard let current = pages[page] else {
                    page += 1
                    continue
                }
                while slot < LiveTable.pageSize {
                    defer { slot += 1 }
                    if let value = current.slots[slot] {
                        return ((basePage + UInt64(page)) << UInt64(LiveTable.pageShift) + UInt64(slot), value)
                    }
                }
                page += 1
                slot = 0
            }
            return rest.next()
        }
    }

    func makeIterator() -> Iterator {
        Iterator(pages: pages, basePage: basePage, rest: overflow.makeIterator())
    }

    var underestimatedCount: Int { count }

    var values: LazyMapSequence<LiveTable<Value>, Value> { lazy.map(\.value) }
}
