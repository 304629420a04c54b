import Glibc
import Logging

/// Builds the machine a ``MachineConfiguration`` describes, runs the guest and turns
/// every outcome into an ``MinivmmExitStatus``. Messages go to `logger` (stderr); stdout only
/// carries the guest's console bytes and, for `--describe`, the resource map.
public enum MachineRunner {
    /// Builds and runs the machine; never throws and never traps on bad input.
    public static func run(_ configuration: MachineConfiguration, logger: Logger) -> MinivmmExitStatus {
        // A reader that goes away (`minivmm guest.bin | head -1`) must not kill the
        // monitor: console writes then fail with EPIPE and are dropped.
        signal(SIGPIPE, SIG_IGN)
        do {
            let clock = ContinuousClock()
            let start = clock.now
            let machine = try Machine(configuration: configuration, logger: logger)
            let ready = clock.now
            let status = machine.run()
            let stopped = clock.now
            logger.info(
                "machine stopped: \(status) (exit status \(status.code)); set-up \(milliseconds(ready - start)) ms, guest run \(milliseconds(stopped - ready)) ms")
            return status
        } catch {
            logger.error("\(error.message)")
            return error.status
        }
    }

    /// `duration` in milliseconds with one decimal, e.g. "5.7".
    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = seconds * 10_000 + attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
