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
            let status = try Machine(configuration: configuration, logger: logger).run()
            logger.info("machine stopped: \(status) (exit status \(status.code))")
            return status
        } catch {
            logger.error("\(error.message)")
            return error.status
        }
    }
}

