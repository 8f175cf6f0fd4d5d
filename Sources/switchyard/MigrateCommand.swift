import ArgumentParser
import Logging
import SwitchyardHost

/// `switchyard migrate URL`: brings a shared PostgreSQL queue's schema up to
/// this version, for operators who migrate before they roll hosts out (hosts
/// also migrate at start; both are safe to run at once).
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the schema of a PostgreSQL task queue.",
        discussion: """
            Applies the schema versions the database lacks, each once, under a lock, and prints the \
            version it is at. Hosts started with `serve --store postgres://...` do the same at start; \
            run this first to migrate apart from them. Refuses a database migrated by a newer Switchyard.
            """)

    @Argument(help: "The database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require].")
    var url: String

    func validate() throws {
        guard HostConfiguration.StoreKind.isPostgresURL(url) else {
            throw ValidationError("expected a postgres:// URL, e.g. postgres://switchyard@db.example:5432/switchyard")
        }
    }

    func run() async throws {
        var logger = Logger(label: "switchyard")
        logger.logLevel = .warning
        do {
            #if PostgreSQL
            let queue = try PostgresTaskQueue(url: url, logger: logger)
            let version = try await queue.migrateOnce()
            print(
                version.from == version.to
                    ? "\(queue.displayURL): schema version \(version.to); nothing to do"
                    : "\(queue.displayURL): schema version \(version.to) (was \(version.from))")
            #else
            _ = logger
            printError("error: \(ConfigurationError.postgresNotBuilt)")
            throw ExitCode(2)
            #endif
        } catch let error as StoreError {
            printError("error: \(error.description)")
            throw ExitCode(2)
        }
    }
}
