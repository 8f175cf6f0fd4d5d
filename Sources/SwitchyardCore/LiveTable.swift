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

    fileprivate struct Page {
        var slots: ContiguousArray<Value?>
        var count = 0
        init() { slots = ContiguousArray(repeating: nil, count: LiveTable.pageSize) }
        /// A page emptied or moved to `overflow`. Pages are not optional:
        /// reading a value through `pages[page]` copies it out (loads it to
        /// switch on the optional), while `pages[page].slots[slot]` borrows it.
        private init(retired: Void) { slots = [] }
        static var retired: Page { Page(retired: ()) }
        var isRetired: Bool { slots.isEmpty }
        /// Whether `slot` holds a value. Not `slots[slot] == nil` through a getter:
        /// that copies the value out (a retain and a release of each of its references).
        func holds(_ slot: Int) -> Bool { slots[slot] != nil }
    }

    /// Pages `basePage`, `basePage + 1`, ...; `.retired` once emptied or moved to `overflow`.
    private var pages: [Page] = []
    private var basePage: UInt64 = 0
    private var overflow: [TaskID: Value] = [:]
    private(set) var count = 0

    init() {}

    private func location(_ id: TaskID) -> (page: Int, slot: Int)? {
        let number = id >> UInt64(Self.pageShift)
        guard number >= basePage, number - basePage < UInt64(pages.count) else { return nil }
        let page = Int(number - basePage)
        guard !pages[page].isRetired else { return nil }
        return (page, Int(id & UInt64(Self.pageSize - 1)))
    }

    subscript(id: TaskID) -> Value? {
        // `_read`, not `get`: `live[id]?.handler` and `live[id] != nil` borrow the
        // value in place instead of copying it out.
        _read {
            if let (page, slot) = location(id), pages[page].holds(slot) {
                yield pages[page].slots[slot]
            } else {
                yield overflow.isEmpty ? nil : overflow[id]
            }
        }
        _modify {
            // A restored id can share a page with fresh ones and still live in `overflow`.
            if let (page, slot) = location(id), pages[page].holds(slot) || overflow.isEmpty || overflow[id] == nil {
                let was = pages[page].holds(slot)
                yield &pages[page].slots[slot]
                let now = pages[page].holds(slot)
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
        guard !pages[page].isRetired, !pages[page].holds(slot) else {
            self[id] = value  // its page moved to overflow while sparse (or it is there already)
            return
        }
        pages[page].slots[slot] = value
        counted(page: page, added: true)
    }

    @discardableResult
    mutating func removeValue(forKey id: TaskID) -> Value? {
        // Moved out in one access, not read (a copy) and then cleared.
        var taken: Value?
        swap(&self[id], &taken)
        return taken
    }

    private mutating func counted(page: Int, added: Bool) {
        count += added ? 1 : -1
        pages[page].count += added ? 1 : -1
        guard !added, page != pages.count - 1 else { return }
        let live = pages[page].count
        if live == 0 {
            pages[page] = .retired
            trimFront()
        } else if live < Self.pageSize / 4 {
            // Mostly finished: move the stragglers out so they don't pin the page.
            let first = (basePage + UInt64(page)) << UInt64(Self.pageShift)
            for (slot, value) in pages[page].slots.enumerated() {
                if let value { overflow[first + UInt64(slot)] = value }
            }
            pages[page] = .retired
            trimFront()
        }
    }

    /// Before a new page is added: the newest page, if it already emptied, goes.
    private mutating func retireNewestIfEmpty() {
        guard let last = pages.indices.last, !pages[last].isRetired, pages[last].count == 0 else { return }
        pages[last] = .retired
        trimFront()
    }

    private mutating func trimFront() {
        let empty = pages.prefix { $0.isRetired }.count
        guard empty > 0 else { return }
        pages.removeFirst(empty)
        basePage += UInt64(empty)
    }
}

extension LiveTable: Sequence {
    struct Iterator: IteratorProtocol {
        fileprivate var pages: [Page]
        fileprivate var basePage: UInt64
        fileprivate var page = 0
        fileprivate var slot = 0
        fileprivate var rest: Dictionary<TaskID, Value>.Iterator

        mutating func next() -> (key: TaskID, value: Value)? {
            while page < pages.count {
                let current = pages[page]
                guard !current.isRetired else {
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
