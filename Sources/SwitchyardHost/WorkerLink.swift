import NIOCore
import SwitchyardCore

/// The host's end of one worker's socketpair.
final class WorkerLink: ChannelInboundHandler {
    typealias InboundIn = [Frame]

    private let dispatcher: Dispatcher
    let slot: Int
    let generation: Int

    init(dispatcher: Dispatcher, slot: Int, generation: Int) {
        self.dispatcher = dispatcher
        self.slot = slot
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            for frame in unwrapInboundIn(data) {
                dispatcher.workerSaid(try WorkerToHost(frame: frame), slot: slot, generation: generation)
            }
        } catch {
            dispatcher.logger.error(
                "worker broke the link protocol; stopping it", metadata: ["worker": "\(slot)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        dispatcher.workerLinkClosed(slot: slot, generation: generation)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        dispatcher.logger.error("worker link error", metadata: ["worker": "\(slot)", "error": "\(error)"])
        context.close(promise: nil)
    }
}
