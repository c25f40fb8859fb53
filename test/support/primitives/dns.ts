// A tiny authoritative DNS server on 127.0.0.1 for tests: answers A queries for the names it
// is given (one address or several), SRV queries for the SRV names it is given, NXDOMAIN for the
// rest. Lets the node agent's real busybox `nslookup` path, and the fill's replica lookup, run
// without a cluster.
import { createSocket, type Socket } from 'node:dgram';

export interface SrvRecord {
  readonly target: string;
  readonly port: number;
}

export interface DnsServer {
  readonly port: number;
  /** Set or change the IPv4 address (or addresses) a name resolves to. */
  set(name: string, ipv4: string | readonly string[]): void;
  /** Set or change the SRV records of a name. */
  setSrv(name: string, records: readonly SrvRecord[]): void;
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

function encodeName(name: string): Buffer {
  const parts = name
    .replace(/\.$/, '')
    .split('.')
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/** A resource record answering the question (its name as a pointer to the question's). */
function record(type: number, data: Buffer): Buffer {
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(5, 6); // TTL
  rr.writeUInt16BE(data.length, 10);
  return Buffer.concat([rr, data]);
}

export async function startDns(port = 53): Promise<DnsServer> {
  const records = new Map<string, readonly string[]>();
  const srv = new Map<string, readonly SrvRecord[]>();
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const key = name.replace(/\.$/, '');
    const addresses = records.get(key);
    const services = srv.get(key);
    const known = addresses !== undefined || services !== undefined;
    const answers: Buffer[] = [];
    if (qtype === 1) for (const a of addresses ?? []) answers.push(record(1, Buffer.from(a.split('.').map(Number))));
    if (qtype === 33)
      for (const s of services ?? []) {
        const fixed = Buffer.alloc(6);
        fixed.writeUInt16BE(0, 0); // priority
        fixed.writeUInt16BE(100, 2); // weight
        fixed.writeUInt16BE(s.port, 4);
        answers.push(record(33, Buffer.concat([fixed, encodeName(s.target)])));
      }
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR, AA, RD echoed, RCODE
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    socket.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve());
  });
  return {
    port: socket.address().port,
    set: (name, ipv4) => void records.set(name.toLowerCase(), typeof ipv4 === 'string' ? [ipv4] : ipv4),
    setSrv: (name, rs) => void srv.set(name.toLowerCase(), rs),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
