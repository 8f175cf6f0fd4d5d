import NIOCore
import Testing

@testable import SwitchyardCore

@Suite("LiveTable")
struct LiveTableTests {
    private func expectSame(_ table: LiveTable<Int>, _ model: [TaskID: Int], _ ids: ClosedRange<TaskID>) {
        #expect(table.count == model.count)
        for id in ids where table[id] != model[id] {
            Issue.record("id \(id): table has \(String(describing: table[id])), model \(String(describing: model[id]))")
            return
        }
        var seen: [TaskID: Int] = [:]
        for (id, value) in table {
            #expect(seen[id] == nil, "id \(id) iterated twice")
            seen[id] = value
        }
        #expect(seen == model)
    }

    @Test func matchesADictionaryUnderRandomInsertsUpdatesAndRemovals() {
        for seed in UInt64(1)...4 {
            var random = SplitMix64(seed: seed)
            var table = LiveTable<Int>()
            var model: [TaskID: Int] = [:]
            var nextID: TaskID = 1 + TaskID(seed) * 777  // not page-aligned
            let first = nextID
            var order: [TaskID] = []  // ids in the order added; the oldest live one is found from `head`
            var head = 0
            var late = Set<TaskID>()
            func anyLive() -> TaskID? {
                guard !model.isEmpty else { return nil }
                while true {
                    let id = order[Int(random.next() % UInt64(order.count))]
                    if model[id] != nil { return id }
                }
            }
            for step in 0..<30_000 {
                switch random.next() % 10 {
                case 0..<5:
                    table.insert(step, id: nextID)
                    model[nextID] = step
                    order.append(nextID)
                    nextID += 1
                case 5..<8:
                    // Remove mostly the oldest task, as a queue does, sometimes any.
                    while head < order.count && model[order[head]] == nil { head += 1 }
                    guard head < order.count else { continue }
                    let id = random.next() % 4 == 0 ? anyLive()! : order[head]
                    #expect(table.removeValue(forKey: id) == model.removeValue(forKey: id))
                case 8:
                    guard let id = anyLive() else { continue }
                    table[id]! += 1
                    model[id]! += 1
                case 9 where random.next() % 2 == 0:
                    // A late id, as finished tasks arrive: a little below the newest, never added before.
                    let id = first + random.next() % (nextID - first + 1)
                    guard id < nextID, !late.contains(id), model[id] == nil, id + 3000 > nextID else { continue }
                    _ = late.insert(id)
                    table.insert(-step, id: id)
                    model[id] = -step
                default:
                    let id = first + random.next() % (nextID - first + 10)
                    #expect(table[id] == model[id])
                }
            }
            expectSame(table, model, first...(nextID + 10))
        }
    }

    @Test func aFewLongLivedTasksDoNotPinPagesAndStayFindable() {
        var table = LiveTable<Int>()
        let total = TaskID(LiveTable<Int>.pageSize * 20)
        for id in 1...total { table.insert(Int(id), id: id) }
        // Every 100th task stays (a scheduled task, say); the rest finish.
        for id in 1...total where id % 100 != 0 { table[id] = nil }
        var model: [TaskID: Int] = [:]
        for id in stride(from: 100, through: total, by: 100) { model[id] = Int(id) }
        expectSame(table, model, 1...total + 5)
        // And the table keeps taking fresh tasks after the sparse pages moved out.
        table.insert(-1, id: total + 1)
        model[total + 1] = -1
        expectSame(table, model, 1...total + 5)
    }

    @Test func restoredIdsSharingAPageWithFreshOnesAreKeptApart() {
        var table = LiveTable<Int>()
        // Restored from a store, in any order, before fresh ones.
        table[1000] = 1
        table[3] = 2
        table[1022] = 3
        table.insert(4, id: 1023)
        table.insert(5, id: 1024)
        #expect(table[1000] == 1 && table[3] == 2 && table[1022] == 3 && table[1023] == 4 && table[1024] == 5)
        table[1000]! += 10
        #expect(table[1000] == 11)
        #expect(table.removeValue(forKey: 1022) == 3)
        #expect(table[1022] == nil)
        #expect(table.count == 4)
        #expect(Set(table.map(\.key)) == [3, 1000, 1023, 1024])
    }

    @Test func aCopyIsIndependentOfTheOriginal() {
        // Pages are objects shared between copies until one writes: every kind of write
        // (insert, update in place, remove, a page emptied) must leave the other copy as it was.
        var original = LiveTable<Int>()
        let total = TaskID(LiveTable<Int>.pageSize * 3)
        for id in 1...total { original.insert(Int(id), id: id) }
        var model: [TaskID: Int] = [:]
        for id in 1...total { model[id] = Int(id) }
        var copy = original
        copy.insert(-1, id: total + 1)
        copy[5]! += 100
        copy[6] = nil
        for id in 1...TaskID(LiveTable<Int>.pageSize) { copy.removeValue(forKey: id) }
        expectSame(original, model, 1...total + 1)
        var copyModel = model
        copyModel[total + 1] = -1
        for id in 1...TaskID(LiveTable<Int>.pageSize) { copyModel[id] = nil }
        expectSame(copy, copyModel, 1...total + 1)
        // And the other way round: the original writes while the copy keeps its own values.
        original[total]! = 0
        #expect(copy[total] == Int(total) && original[total] == 0)
    }

    @Test func aQueuedTaskIsSmall() {
        // Workload (f) of the peers benchmark holds a million of these.
        #expect(MemoryLayout<TaskRecord>.stride <= 112)
        #expect(MemoryLayout<Scheduler<Int>.LiveTask?>.stride <= 128)
    }

    @Test func rareFieldsRoundTripAndCompareByValue() {
        var a = TaskRecord(id: 1, handler: "echo", payload: ByteBuffer(string: "x"))
        var b = a
        #expect(a == b)
        a.key = "k"
        #expect(a != b)
        b.key = "k"
        #expect(a == b && a.hashValue == b.hashValue)
        a.result = ByteBuffer(string: "r")
        a.errorMessage = "m"
        a.uniqueKey = "u"
        #expect(a.key == "k" && a.result == ByteBuffer(string: "r") && a.errorMessage == "m" && a.uniqueKey == "u")
        let copy = a
        a.key = nil
        #expect(copy.key == "k" && a.key == nil && a.uniqueKey == "u")
    }
}
