#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// Raises this process's soft limit on open files (RLIMIT_NOFILE) to what
/// `maxConnections` needs, up to the hard limit: a soft limit of 1024 (a
/// common default) would otherwise make accept fail with EMFILE before the
/// connection limit refuses anyone with a clear error. Logs a warning when the
/// hard limit is too low.
func raiseDescriptorLimit(for configuration: HostConfiguration, logger: Logger) {
    // Connections, two descriptors per worker (its socket and its status board),
    // and room for the store, the listener, probes and plugins.
    let needed = rlim_t(configuration.maxConnections + 2 * configuration.workers + 128)
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < needed else { return }
    let wanted = min(needed, limit.rlim_max)
    if wanted > limit.rlim_cur {
        var raised = limit
        raised.rlim_cur = wanted
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    if limit.rlim_cur < needed {
        logger.warning(
            "open-file limit is \(limit.rlim_cur) (hard \(limit.rlim_max)); --max-connections \(configuration.maxConnections) needs about \(needed): raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit) or lower --max-connections"
        )
    } else {
        logger.debug("raised the open-file limit to \(limit.rlim_cur) for --max-connections")
    }
}
