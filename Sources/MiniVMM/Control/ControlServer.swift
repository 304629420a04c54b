import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SystemPackage

/// Why the control API's socket could not be opened.
package enum ControlServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Something already exists at the path; nothing was touched.
    case pathInUse(String)
    /// The host refused a call (bind, chmod, stat).
    case host(HostError)

    /// One line for stderr.
    package var description: String {
        switch self {
        case .pathInUse(let path): "'\(path)' already exists"
        case .host(let error): "\(error)"
        }
    }
}

/// The control API's server: HTTP/1.1 on a Unix-domain socket, through SwiftNIO's HTTP/1
/// pipeline, answering with ``ControlAPI`` over a ``VMControl``.
///
/// It owns everything it uses — one event-loop thread for the sockets and one worker
/// thread that runs requests one at a time (``VMControl`` calls may block, e.g. while a
/// pause waits for the vCPUs, and must never block the event loop) — and shares nothing
/// with any other server. ``stop()`` closes every connection and unlinks the socket.
package final class ControlServer: Sendable {
    /// How long a connection may stay idle before the server closes it.
    package static let defaultIdleTimeout: Duration = .seconds(30)

    /// The socket's path.
    package let path: String
    private let group: MultiThreadedEventLoopGroup
    private let worker: NIOThreadPool
    private let channel: any Channel
    /// The socket file as bound, so ``stop()`` unlinks only the file it created.
    private let identity: (device: UInt64, inode: UInt64)
    private let stopped = Mutex(false)
    private let logger: Logger

    /// Binds a socket at `path` (which must not exist), makes it mode 0600 and starts
    /// serving `control`.
    ///
    /// - Throws: ``ControlServerError/pathInUse(_:)`` if anything exists at `path` (it is
    ///   left untouched), ``ControlServerError/host(_:)`` if the host refuses a call.
    package init(
        path: String, control: any VMControl, logger: Logger, idleTimeout: Duration = ControlServer.defaultIdleTimeout
    ) throws(ControlServerError) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = NIOThreadPool(numberOfThreads: 1)
        worker.start()
        let api = ControlAPI(control: control)
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout.components.seconds) * 1_000_000_000
            + Int64(idleTimeout.components.attoseconds / 1_000_000_000))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: idle))
                    // Parser errors are answered by ControlHTTPHandler, with a fault body.
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
                    try pipeline.addHandler(ControlHTTPHandler(api: api, worker: worker, logger: logger))
                }
            }
        let channel: any Channel
        let identity: (device: UInt64, inode: UInt64)
        do {
            channel = try Self.bind(bootstrap, path: path)
            identity = try Self.secure(path)
        } catch {
            try? group.syncShutdownGracefully()
            try? worker.syncShutdownGracefully()
            throw error
        }
        self.path = path
        self.group = group
        self.worker = worker
        self.channel = channel
        self.identity = identity
        self.logger = logger
        logger.debug("control API listening on \(path)")
    }

    /// Binds without ever replacing an existing file: bind(2) fails with `EADDRINUSE` when
    /// the path exists. The umask makes the socket 0600 from its first moment, so no client
    /// of another user can connect between bind and chmod; no other thread creates files
    /// while the machine is being set up.
    private static func bind(_ bootstrap: ServerBootstrap, path: String) throws(ControlServerError) -> any Channel {
        let previous = umask(0o177)
        defer { umask(previous) }
        do {
            return try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).wait()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EEXIST {
            throw .pathInUse(path)
        } catch let error as IOError {
            throw .host(HostError("bind \(path)", Errno(rawValue: error.errnoCode)))
        } catch is SocketAddressError {
            throw .host(HostError("bind \(path)", .fileNameTooLong))
        } catch {
            throw .host(HostError("bind \(path)", .ioError))
        }
    }

    /// Sets mode 0600 explicitly (whatever the umask did) and records the file's identity.
    private static func secure(_ path: String) throws(ControlServerError) -> (device: UInt64, inode: UInt64) {
        guard chmod(path, 0o600) == 0 else { throw .host(HostError("chmod \(path)", Errno(rawValue: errno))) }
        var status = stat()
        guard lstat(path, &status) == 0 else { throw .host(HostError("stat \(path)", Errno(rawValue: errno))) }
        return (UInt64(status.st_dev), UInt64(status.st_ino))
    }

    /// Checks, touching nothing, that a socket can be created at `path`: nothing exists
    /// there and its directory does. The command line asks this before KVM is opened; bind(2)
    /// asks again (it never replaces a file), so a path taken in between is still refused.
    ///
    /// - Throws: ``ConfigurationError/apiSocketExists(_:)`` or
    ///   ``ConfigurationError/invalidAPISocketPath(_:reason:)``.
    package static func checkPathAvailable(_ path: String) throws(ConfigurationError) {
        var status = stat()
        if lstat(path, &status) == 0 { throw .apiSocketExists(path) }
        let directory = path.lastIndex(of: "/").map { index in index == path.startIndex ? "/" : String(path[..<index]) } ?? "."
        guard stat(directory, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw .invalidAPISocketPath(path, reason: "the directory '\(directory)' does not exist")
        }
    }

    /// Stops accepting, closes every connection, waits for the request in progress, and
    /// unlinks the socket if it is still the file this server created. Idempotent; call it
    /// from outside the server's threads.
    package func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        try? channel.close().wait()
        // Closes the connections too; a request already on the worker finishes first.
        try? group.syncShutdownGracefully()
        try? worker.syncShutdownGracefully()
        var status = stat()
        if lstat(path, &status) == 0, UInt64(status.st_dev) == identity.device, UInt64(status.st_ino) == identity.inode {
            unlink(path)
        }
        logger.debug("control API on \(path) stopped")
    }

    deinit {
        stop()
    }
}

/// One connection's request handling: collects a request (refusing a body over the limit
/// as soon as it is exceeded), runs it on the worker thread, writes the response.
///
/// With NIO's pipelining assistance a connection reads its next request only after the
/// current response is written, and the one worker thread runs one request at a time across
/// all connections: requests are serialised.
private final class ControlHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: ControlAPI
    private let worker: NIOThreadPool
    private let logger: Logger
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// The request was refused while still arriving (too large); the rest is ignored and
    /// the connection closes after the response.
    private var refused = false
    /// A response has been started and not yet ended.
    private var responding = false
    /// Body bytes dropped after a 413.
    private var discarded = 0
    /// The most body bytes read and dropped after a 413 before the connection is closed.
    private static let maximumDiscardedBytes = 1 << 20

    init(api: ControlAPI, worker: NIOThreadPool, logger: Logger) {
        self.api = api
        self.worker = worker
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            refused = false
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > ControlAPI.maximumBodyBytes {
                refuseTooLarge(context: context, bytes: length)
            }
        case .body(let buffer):
            if refused {
                // Read and dropped, so the client can finish sending and see the 413 (closing
                // while it still sends would reset the connection and lose the answer); a
                // client that sends far more is cut off.
                discarded += buffer.readableBytes
                if discarded > Self.maximumDiscardedBytes { context.close(promise: nil) }
                return
            }
            if body.count + buffer.readableBytes > ControlAPI.maximumBodyBytes {
                // Chunked bodies have no declared length: refuse at the first byte too many.
                refuseTooLarge(context: context, bytes: body.count + buffer.readableBytes)
                return
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            if refused {
                context.close(promise: nil)
                return
            }
            guard let head else { return }
            self.head = nil
            let request = ControlRequest(method: head.method.rawValue, target: head.uri, body: body)
            body = []
            let keepAlive = head.isKeepAlive
            let isHead = head.method == .HEAD
            let api = api
            responding = true
            worker.runIfActive(eventLoop: context.eventLoop) { api.respond(to: request) }
                .assumeIsolated()
                .whenComplete { result in
                    let response: ControlResponse
                    switch result {
                    case .success(let answer): response = answer
                    case .failure:
                        // The worker is gone only while the server stops, with the machine.
                        response = .fault(500, "minivmm is stopping; the VM can no longer be controlled.")
                    }
                    self.logger.debug("control API: \(request.method) \(ControlAPI.printable(request.target)) → \(response.status)")
                    self.write(response, keepAlive: keepAlive, omitBody: isHead, context: context)
                }
        }
    }

    /// Answers 413 at once (`Connection: close`); the connection closes when the request
    /// ends, or at once if the body announced is far too large to read and drop.
    private func refuseTooLarge(context: ChannelHandlerContext, bytes: Int) {
        refused = true
        head = nil
        body = []
        discarded = 0
        responding = true
        write(
            .fault(413, "The request body is \(bytes) bytes or more; send at most \(ControlAPI.maximumBodyBytes) bytes."),
            keepAlive: false, closeWhenWritten: bytes > Self.maximumDiscardedBytes, context: context)
    }

    /// Writes `response`, then closes the connection unless `keepAlive` or told not to; the
    /// answer to a HEAD request has the headers but, by RFC 9110, no body.
    private func write(
        _ response: ControlResponse, keepAlive: Bool, omitBody: Bool = false, closeWhenWritten: Bool = true,
        context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        // 204 has no body and, by RFC 9110, no Content-Length.
        if response.status != 204 {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(response.body.count))
        }
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty && !omitBody {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        responding = false
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive && closeWhenWritten {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The idle timeout: close, unless a request is being answered.
        if event is IdleStateHandler.IdleStateEvent {
            if !responding { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request: answer 400 (431 for oversized headers) unless a response is
        // under way, then close; the decoder cannot continue after a parse error.
        if let parserError = error as? HTTPParserError, !responding {
            let status = parserError == .headerOverflow ? 431 : 400
            let message = status == 431
                ? "The request headers are too large; send smaller headers."
                : "The request is not valid HTTP/1.1; send a well-formed request."
            write(.fault(status, message), keepAlive: false, context: context)
            return
        }
        context.close(promise: nil)
    }
}
