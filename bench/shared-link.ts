// The upstream's one link, shared by every node of a cluster: a TCP proxy (test/support/faults/throttle.ts)
// that the rollout benchmark runs on a node, in the node's namespaces, in front of the upstream
// registry. TLS passes through untouched.
//
//   node shared-link.js <listen host:port> <target host:port> <bytes per second>
//
// Prints "listening" once it accepts connections; stops on SIGTERM.
import { ThrottledProxy } from '../test/support/faults/throttle.js';

const [listen, target, rate] = process.argv.slice(2);
const address = (s: string | undefined): { host: string; port: number } => {
  const m = /^(.+):(\d+)$/.exec(s ?? '');
  if (!m) throw new Error(`shared-link: expected host:port, got '${s}'`);
  return { host: m[1], port: Number(m[2]) };
};
const bytesPerSecond = Number(rate);
if (!(bytesPerSecond > 0)) throw new Error(`shared-link: bytes per second must be positive, got '${rate}'`);
const proxy = await ThrottledProxy.start({ listen: address(listen), target: address(target), bytesPerSecond });
process.stdout.write(`listening on ${listen}, ${bytesPerSecond} B/s to ${target}\n`);
process.once('SIGTERM', () => {
  process.stdout.write(`stopping after ${proxy.bytes} bytes\n`);
  void proxy.stop().then(() => process.exit(0));
});
