// TLS and basic auth for test servers: a throw-away CA and server certificate made with openssl,
// and an htpasswd file. Used by the upstream registry and by the fault injectors that speak TLS.
import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface TestCA {
  /** PEM of the self-signed CA: give it to clients as SSL_CERT_FILE or hosts.toml `ca`. */
  readonly caCert: string;
  /** Server certificate for 127.0.0.1 and localhost, signed by the CA. */
  readonly cert: string;
  readonly key: string;
}

/** A throw-away CA and a server certificate for 127.0.0.1/localhost, made with openssl in `dir`. */
export async function makeTestCA(dir: string): Promise<TestCA> {
  await mkdir(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=mirror-synth test CA',
  ]);
  await openssl(['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(
    p('server.ext'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.pem'),
    '-days',
    '2',
    '-extfile',
    p('server.ext'),
  ]);
  return { caCert: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** An htpasswd file with one bcrypt entry (Distribution accepts bcrypt only), made with `htpasswd -B`. */
export async function writeHtpasswd(file: string, username: string, password: string): Promise<void> {
  // -i reads the password from stdin so it never shows in a process list.
  const child = spawn('htpasswd', ['-niB', username], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(password + '\n');
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`htpasswd failed (exit ${code}): ${err}`);
  await writeFile(file, out.trim() + '\n', { mode: 0o600 });
}
