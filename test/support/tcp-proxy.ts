// A TCP proxy on loopback, for peers that vanish: freeze() stops it passing
// bytes both ways while every connection stays open, as when a phone loses
// its network or a NAT drops the mapping (no FIN, no RST).
import net from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** From now on nothing passes, in either direction; nothing is closed. */
  freeze(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const pairs: Array<[net.Socket, net.Socket]> = [];
  let connections = 0;
  let frozen = false;
  const track = (socket: net.Socket, peer: () => net.Socket) => {
    sockets.add(socket);
    // A reset on one side ends the other, as a real path would.
    socket.on("error", () => peer().destroy());
    socket.on("close", () => {
      sockets.delete(socket);
      peer().destroy();
    });
  };
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(targetPort, targetHost);
    // Without it, Nagle's algorithm and delayed ACKs hold small HTTP/2 frames back for tens of ms.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    track(client, () => upstream);
    track(upstream, () => client);
    if (frozen) return;
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Unread bytes stay in the kernel: neither end sees them, neither end is told.
        client.pause();
        upstream.pause();
      }
    },
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      return closed;
    },
  };
}
