// A tiny authoritative DNS server on 127.0.0.1 for tests: answers A queries for the names it
// is given, NXDOMAIN for the rest. Lets the node agent's real busybox `nslookup` path run
// without a cluster.
import { createSocket, type Socket } from 'node:dgram';

export interface DnsServer {
  readonly port: number;
  /** Set or change the IPv4 address a name resolves to. */
  set(name: string, ipv4: string): void;
  close(): Promise<void>;
}

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  while (msg[i] !== 0) {
    const len = msg[i];
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += len + 1;
  }
  return { name: labels.join('.').toLowerCase(), end: i + 1 };
}

export async function startDns(port = 53): Promise<DnsServer> {
  const records = new Map<string, string>();
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const address = records.get(name.replace(/\.$/, ''));
    const answer = address !== undefined && qtype === 1;
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (address === undefined ? 3 : 0), 2); // QR, AA, RD echoed, RCODE
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer ? 1 : 0, 6);
    const parts = [header, question];
    if (answer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(5, 6); // TTL
      rr.writeUInt16BE(4, 10);
      address.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
      parts.push(rr);
    }
    socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve());
  });
  return {
    port: socket.address().port,
    set: (name, ipv4) => void records.set(name.toLowerCase(), ipv4),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
