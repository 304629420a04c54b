import Logging

/// Builds the machine a ``MachineConfiguration`` describes, runs the guest and turns
/// every outcome into an ``MinivmmExitStatus``. Messages go to `logger` (stderr); stdout only
/// carries the guest's console bytes and, for `--describe`, the resource map.
public enum MachineRunner {
    /// Builds and runs the machine; never throws and never traps on bad input.
    ///
    /// The signal watcher and the `--timeout` watchdog start first, so a stop request ends
    /// every phase: waiting for a FIFO image, a blocked stdout, the guest. Any failure after
    /// a stop request is reported as that stop (124, or 128 + the signal number).
    /// Expects ``Signals/prepareProcess()`` to have run.
    package static func run(_ configuration: MachineConfiguration, logger: Logger, stop: StopLatch) -> MinivmmExitStatus {
        let watcher: SignalWatcher
        do {
            watcher = try SignalWatcher(latch: stop)
        } catch {
            logger.error("cannot watch for SIGINT, SIGTERM and SIGHUP: \(error)")
            return .hostFailure
        }
        let watchdog = configuration.timeout.map { Watchdog(timeout: $0, latch: stop) }
        defer {
            watchdog?.cancel()
            watcher.stop()
        }
        let clock = ContinuousClock()
        let start = clock.now
        let status: MinivmmExitStatus
        do {
            let machine = try Machine(configuration: configuration, logger: logger, stop: stop)
            let ready = clock.now
            status = machine.run()
            let stopped = clock.now
            logger.info(
                "machine stopped: \(status) (exit status \(status.code)); set-up \(milliseconds(ready - start)) ms, guest run \(milliseconds(stopped - ready)) ms")
        } catch {
            guard let reason = stop.reason else {
                logger.error("\(error.message)")
                return error.status
            }
            status = Self.status(for: reason)
        }
        switch status {
        case .timeout:
            let limit = configuration.timeout.map { " of \($0)" } ?? ""
            logger.error("--timeout\(limit) expired; machine stopped")
        case .stoppedBySignal(let number):
            logger.error("stopped by \(Signals.name(number))")
        default:
            break
        }
        // Releases anything still waiting on the latch (a console write on another thread).
        stop.request(.finished)
        return status
    }

    /// The exit status for a stop request.
    static func status(for reason: StopLatch.Reason) -> MinivmmExitStatus {
        switch reason {
        case .timeout: .timeout
        case .signal(let number): .stoppedBySignal(number)
        // Only requested after the machine has stopped; never the cause of a stop.
        case .finished: .internalError
        }
    }

    /// `duration` in milliseconds with one decimal, e.g. "5.7".
    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = seconds * 10_000 + attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
