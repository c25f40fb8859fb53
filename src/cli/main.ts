/**
 * The CLI entry point: wires commander and is the one place errors become exit codes.
 * Each command lives in its own file here, owns its options' resolution (through
 * options.ts) and its output, and is imported lazily, so `synth` never loads the
 * Kubernetes client and `validate` never loads cdk8s.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import {
  ClusterError,
  EXIT_INTERNAL,
  EXIT_INVALID,
  EXIT_OK,
  EXIT_USAGE,
  SpecError,
  StaleOutputError,
  UsageError,
} from '../api/errors.js';
import { FILL_SPOOL_PATH } from '../construct/front.js';
import { DISTRIBUTION_PORT, FILL_METRICS_PORT, FRONT_FILL_PORT } from '../construct/ports.js';
import { CONTROLLER_DEFAULTS } from '../controller/config.js';
import { FILL_DEFAULTS } from '../fill/protocol.js';
import type { CheckCommandOptions } from './check.js';
import type { ControllerCommandOptions } from './controller.js';
import type { ControllerManifestsCommandOptions } from './controller-manifests.js';
import type { CrdCommandOptions } from './crd.js';
import type { FillCommandOptions } from './fill.js';
import type { KeeperCommandOptions } from './keeper.js';
import type { SynthCommandOptions } from './synth.js';
import type { ValidateCommandOptions } from './validate.js';
import type { WarmCommandOptions } from './warm.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number of 0 or more.');
  return n;
}

function atLeastOne(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number, 1 or more.');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of seconds, 1 or more.');
  return n;
}

const namespaceOption = () =>
  new Option('-n, --namespace <ns>', "namespace of the mirrors' objects (env NAMESPACE; default kube-extra)");
const nodeAgentNamespaceOption = () =>
  new Option(
    '--node-agent-namespace <ns>',
    "namespace of the node agents, Pod Security privileged (env NODE_AGENT_NAMESPACE; default the namespace with '-node', kube-extra-node)",
  );
const mirrorsOption = () =>
  new Option('-m, --mirrors <dir>', 'directory of RegistryMirror YAML files (env MIRRORS_DIR; default mirrors)');
const outOption = () =>
  new Option('-o, --out <dir>', 'output directory (env CDK8S_OUTDIR, then cdk8s.yaml `output`; default dist)');

/** The allowlist (docs/security.md); unset allows any value, an empty list none. */
const policyOptions = () => [
  new Option(
    '--allowed-upstreams <hosts>',
    'comma-separated upstreamUrl hosts mirrors may name, *.domain for a domain (env ALLOWED_UPSTREAMS, cdk8s.yaml allowedUpstreams; default any)',
  ),
  new Option(
    '--allowed-masquerades <hosts>',
    'comma-separated masqueradeUrl hosts mirrors may name (env ALLOWED_MASQUERADES, cdk8s.yaml allowedMasquerades; default any)',
  ),
  new Option(
    '--allowed-image-registries <registries>',
    'comma-separated imageRegistry values mirrors may name, exactly; host/* for every path under host (env ALLOWED_IMAGE_REGISTRIES, cdk8s.yaml allowedImageRegistries; default any)',
  ),
  new Option(
    '--allowed-image-digests <digests>',
    'comma-separated sha256:<hex> digests imageDigests may pin (env ALLOWED_IMAGE_DIGESTS, cdk8s.yaml allowedImageDigests; default any)',
  ),
  new Option(
    '--allowed-image-pull-secrets <names>',
    'comma-separated Secret names imagePullSecrets may name (env ALLOWED_IMAGE_PULL_SECRETS, cdk8s.yaml allowedImagePullSecrets; default any)',
  ),
  new Option(
    '--allowed-priority-classes <names>',
    'comma-separated priorityClassName values mirrors may name (env ALLOWED_PRIORITY_CLASSES, cdk8s.yaml allowedPriorityClasses; default any)',
  ),
  new Option(
    '--allowed-object-storage-endpoints <endpoints>',
    'comma-separated objectStorage.s3 endpoints mirrors may name, host[:port] for https (s3.<region>.amazonaws.com for AWS), http://host[:port] to admit plain http (env ALLOWED_OBJECT_STORAGE_ENDPOINTS, cdk8s.yaml allowedObjectStorageEndpoints; default any)',
  ),
];
/** The node agent's image: the platform's, never a spec's. */
const nodeAgentImageOption = (what = 'the image every node agent runs (root on every node)') =>
  new Option(
    '--node-agent-image <image>',
    `${what}: <registry>/<path>:<tag>[@sha256:<hex>] (env NODE_AGENT_IMAGE, cdk8s.yaml nodeAgentImage; default docker.io/library/busybox:1.37.0)`,
  );
/** Commands that check specs against the allowlist (controller-manifests writes it into the cluster). */
const POLICY_COMMANDS = ['synth', 'validate', 'check', 'controller', 'controller-manifests'];

export function buildCli(): Command {
  const program = new Command('mirror-synth')
    .description(
      'Synthesize in-cluster registry mirrors (CNCF Distribution pull-through caches plus containerd node configuration) from RegistryMirror specs.',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('synth', { isDefault: true })
    .description(
      "synthesize mirrors/ (or the cluster's RegistryMirrors) into dist/; nothing is written unless every spec is valid",
    )
    .addOption(mirrorsOption())
    .addOption(outOption())
    .addOption(namespaceOption())
    .addOption(nodeAgentNamespaceOption())
    .option(
      '--cluster-domain <domain>',
      'cluster DNS domain the node agent resolves the mirror in (env CLUSTER_DOMAIN; default cluster.local)',
    )
    .option(
      '--node-runtime <runtime>',
      'what the node agent configures: containerd, k3s, rke2 or cri-o (env NODE_RUNTIME; default containerd)',
    )
    .addOption(nodeAgentImageOption())
    .option(
      '--fill-image <image>',
      "the mirror-synth image: the streaming fill (spec.fill: streaming) and the size bound's keeper run it (env FILL_IMAGE, cdk8s.yaml fillImage; no default: required by mirrors with spec.fill: streaming or spec.cache.maxSize; without it, no keeper)",
    )
    .option('--from-cluster', 'read RegistryMirror resources from the cluster instead of --mirrors')
    .option('--kubeconfig <file>', 'kubeconfig for --from-cluster (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--json', 'print a JSON summary')
    .option('-q, --quiet', 'print nothing on success')
    .option(
      '--format <format>',
      'plain (dist/ with kustomization.yaml) or helm (a chart, as `cdk8s synth --format helm`)',
    )
    .option('--chart-version <semver>', 'the chart version, with --format helm')
    .action(async (opts: SynthCommandOptions) => {
      const { synth } = await import('./synth.js');
      await synth(opts);
    });

  program
    .command('validate')
    .description('validate the mirror specs without writing anything')
    .addOption(mirrorsOption())
    .option('--fill-image <image>', 'as for synth')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (opts: ValidateCommandOptions) => {
      const { validate } = await import('./validate.js');
      await validate(opts);
    });

  program
    .command('check')
    .description('exit non-zero with a summary when dist/ is not what the mirrors synthesize to (for CI)')
    .addOption(mirrorsOption())
    .addOption(outOption())
    .addOption(namespaceOption())
    .addOption(nodeAgentNamespaceOption())
    .option('--cluster-domain <domain>', 'as for synth')
    .option('--node-runtime <runtime>', 'as for synth')
    .addOption(nodeAgentImageOption())
    .option('--fill-image <image>', 'as for synth')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (opts: CheckCommandOptions) => {
      const { check } = await import('./check.js');
      await check(opts);
    });

  program
    .command('crd')
    .description('print the RegistryMirror CustomResourceDefinition')
    .addOption(new Option('--output <format>', 'yaml or json').choices(['yaml', 'json']).default('yaml'))
    .action(async (opts: CrdCommandOptions) => {
      const { crd } = await import('./crd.js');
      crd(opts);
    });

  program
    .command('controller')
    .description('run in the cluster: watch RegistryMirrors and apply their synthesized objects on every change')
    .addOption(namespaceOption())
    .addOption(nodeAgentNamespaceOption())
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option(
      '--seconds-between-streams <n>',
      `wait before reconnecting after the API server fails or while the CRD is missing (env SECONDS_BETWEEN_STREAMS; default ${CONTROLLER_DEFAULTS.secondsBetweenStreams})`,
      positiveInt,
    )
    .option(
      '--metrics-bind-address <addr>',
      'address of /metrics, and of /healthz and /readyz unless set apart: [host]:port, or 0 for off (default :8080)',
    )
    .option(
      '--health-probe-bind-address <addr>',
      'address of /healthz and /readyz: [host]:port (default: the metrics address)',
    )
    .option(
      '--metrics-port <port>',
      'same as --metrics-bind-address :<port> (kept for existing manifests)',
      positiveInt,
    )
    .option('--no-leader-election', 'do not take a Lease before reconciling (run one replica only)')
    .option('--probe-port <port>', 'same as --health-probe-bind-address :<port>', positiveInt)
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease (default: --namespace)')
    .option(
      '--lease-duration <seconds>',
      `a standby takes the Lease when its holder has not renewed it for this long (default ${CONTROLLER_DEFAULTS.leaseDurationSeconds})`,
      seconds,
    )
    .option(
      '--renew-deadline <seconds>',
      `the leader exits (code 1) when it could not renew the Lease for this long; less than --lease-duration (default ${CONTROLLER_DEFAULTS.renewDeadlineSeconds})`,
      seconds,
    )
    .option(
      '--retry-period <seconds>',
      `between Lease attempts (default ${CONTROLLER_DEFAULTS.retryPeriodSeconds})`,
      seconds,
    )
    .option(
      '--request-timeout <seconds>',
      `deadline of every API request; a Lease renew has at most what is left of --renew-deadline (default ${CONTROLLER_DEFAULTS.requestTimeoutSeconds})`,
      seconds,
    )
    .option(
      '--watch-idle-timeout <seconds>',
      `restart a watch that receives nothing, not even a bookmark, for this long (default ${CONTROLLER_DEFAULTS.watchIdleTimeoutSeconds})`,
      seconds,
    )
    .option(
      '--stall-timeout <seconds>',
      `/healthz fails when a reconcile runs this long, or mirrors wait and none starts or ends for this long (default ${CONTROLLER_DEFAULTS.stallSeconds})`,
      seconds,
    )
    .option(
      '--cluster-domain <domain>',
      `as for synth (env CLUSTER_DOMAIN; default ${CONTROLLER_DEFAULTS.clusterDomain})`,
    )
    .option('--node-runtime <runtime>', `as for synth (env NODE_RUNTIME; default ${CONTROLLER_DEFAULTS.nodeRuntime})`)
    .addOption(nodeAgentImageOption())
    .option(
      '--fill-image <image>',
      "the image of the fill of mirrors with spec.fill: streaming (env FILL_IMAGE, which controller-manifests sets to the controller's own image)",
    )
    .option(
      '--takeover',
      "take mirrors over from the original mirror-operator, deleting its objects (env TAKEOVER=true; needs controller-manifests --takeover's RBAC)",
    )
    .option('--log-level <level>', 'debug, info, warn or error', CONTROLLER_DEFAULTS.logLevel)
    .action(async (opts: ControllerCommandOptions) => {
      const { controller } = await import('./controller.js');
      await controller(opts);
    });

  program
    .command('fill')
    .description(
      'run in a cache pod (spec.fill: streaming): stream one fetch of each digest from Distribution to every node asking for it',
    )
    .option('--listen <host:port>', 'where the front sends its cache misses', `127.0.0.1:${FRONT_FILL_PORT}`)
    .option('--distribution <url>', "Distribution's registry API in the pod", `http://127.0.0.1:${DISTRIBUTION_PORT}`)
    .option(
      '--spool <dir>',
      "transfers in progress, on the cache volume (emptied of the fill's own files at start; a directory holding anything else is refused)",
      FILL_SPOOL_PATH,
    )
    .option(
      '--max-clients <n>',
      'clients fed at once, every digest together; one more is answered 503 (the front falls back)',
      atLeastOne,
      FILL_DEFAULTS.maxClients,
    )
    .option(
      '--max-transfers <n>',
      'digests fetched at once; a client asking for one more is answered 503',
      atLeastOne,
      FILL_DEFAULTS.maxTransfers,
    )
    .option(
      '--client-timeout <seconds>',
      'cut a client that takes nothing of what it was sent for this long',
      seconds,
      FILL_DEFAULTS.clientTimeoutSeconds,
    )
    .option(
      '--spool-min-free <size>',
      'free space the spool leaves on its filesystem, a share (10%) or a size (2Gi): a transfer that does not fit above it is answered 503',
      FILL_DEFAULTS.spoolMinFree,
    )
    .option('--pod-name <name>', "this replica's pod name (env POD_NAME)")
    .option(
      '--peers <list>',
      'the replicas, name=host:port,...: a digest another replica owns is fetched from its front',
    )
    .option(
      '--peers-srv <name>',
      `the replicas from this DNS SRV name (the headless Service's http port), looked up every ${FILL_DEFAULTS.peersSrvIntervalSeconds} s`,
    )
    .option(
      '--metrics-listen <[host]:port>',
      `where Prometheus scrapes the fill's /metrics (registry_mirror_fill_*), e.g. :${FILL_METRICS_PORT} (default: none)`,
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: FillCommandOptions) => {
      const { fill } = await import('./fill.js');
      await fill(opts);
    });

  program
    .command('keeper')
    .description(
      'run in a cache pod (spec.cache.maxSize): keep the store under its size bound, evicting the least recently used images',
    )
    .option('--store <dir>', "the cache volume (Distribution's root directory)", '/var/lib/registry')
    .requiredOption('--max-size <size>', 'the bound, a size such as 15Gi: the volume holds at most this much')
    .option(
      '--object-storage',
      "Distribution's store is in a bucket (spec.objectStorage): the volume holds the front's copy and the spool only",
    )
    .option(
      '--log-listen <host:port>',
      'where the front sends each request it served (UDP), for recency',
      '127.0.0.1:5515',
    )
    .option(
      '--metrics-listen <[host]:port>',
      "where Prometheus scrapes the keeper's /metrics (registry_mirror_keeper_*), e.g. :9102 (default: none)",
    )
    .option(
      '--interval <seconds>',
      'seconds between scans of the volume (and soon after each request served)',
      seconds,
      10,
    )
    .option(
      '--guard <seconds>',
      'an image used more recently than this is never evicted (it may be being pulled)',
      seconds,
      2,
    )
    .option('--grace <seconds>', "seconds between removing a blob's links and its data", seconds, 1)
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: KeeperCommandOptions) => {
      const { keeper } = await import('./keeper.js');
      await keeper(opts);
    });

  program
    .command('warm')
    .description(
      "run in a cache pod (spec.cache.pinned): fetch the pinned images through the pod's front, keep them current, write their digests",
    )
    .option(
      '--pinned <file>',
      'the list: {"images": [...], "refreshInterval": "1h"}',
      '/etc/mirror-synth/pinned/pinned.json',
    )
    .option('--registry <url>', "the pod's front", 'http://127.0.0.1:5000')
    .option(
      '--pinned-digests <file>',
      'where the digests of the pinned images go, which eviction keeps',
      '/var/lib/registry/mirror-synth/pinned.json',
    )
    .option('--refresh-interval <duration>', 'how often tags are looked up again, unless the list says', '1h')
    .option('--poll-seconds <seconds>', 'how often the list file is read', seconds, 5)
    .option('--listen <[host]:port>', 'where /metrics and /status are served, e.g. :9103 (default: none)')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: WarmCommandOptions) => {
      const { warm } = await import('./warm.js');
      await warm(opts);
    });

  program
    .command('controller-manifests')
    .description("print the controller's own manifests (Namespace, ServiceAccount, RBAC, Deployment)")
    .addOption(namespaceOption())
    .addOption(nodeAgentNamespaceOption())
    .requiredOption('--image <image>', "controller image, built from this repository's Dockerfile")
    .addOption(nodeAgentImageOption('the image the controller gives every node agent (its NODE_AGENT_IMAGE)'))
    .option('--monitoring', "add the controller's PodMonitor and PrometheusRule (needs the Prometheus Operator)")
    .option(
      '--takeover',
      'run the controller with --takeover and grant what it needs: delete on pods and persistentvolumeclaims (remove it once every mirror has moved)',
    )
    .option(
      '--format <format>',
      'plain (YAML on stdout) or helm (a chart in --out, the CRD in crds/) (cdk8s.yaml synthConfig.format; default plain)',
    )
    .option('--chart-version <semver>', 'the chart version, with --format helm')
    .option('-o, --out <dir>', 'the chart directory, with --format helm')
    .action(async (opts: ControllerManifestsCommandOptions) => {
      const { controllerManifestsCommand } = await import('./controller-manifests.js');
      await controllerManifestsCommand(opts);
    });

  for (const cmd of program.commands.filter((c) => POLICY_COMMANDS.includes(c.name()))) {
    for (const option of policyOptions()) cmd.addOption(option);
  }
  return program;
}

/** Run the CLI; returns the exit code. Never throws for user errors and never prints their stack. */
export async function main(
  argv: readonly string[],
  err: (line: string) => void = (l) => console.error(l),
): Promise<number> {
  try {
    const program = buildCli();
    // A mistyped command would otherwise reach the default command as an argument.
    const first = argv[2];
    if (
      first !== undefined &&
      first !== 'help' &&
      !first.startsWith('-') &&
      !program.commands.some((c) => c.name() === first || c.aliases().includes(first))
    ) {
      throw new UsageError(
        `unknown command '${first}'; commands: ${program.commands.map((c) => c.name()).join(', ')} (see mirror-synth --help)`,
      );
    }
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE; // commander already printed
    if (e instanceof SpecError) {
      err(`error: invalid mirror spec${e.problems.length > 1 ? 's' : ''}; nothing was written.\n${e.message}`);
      return EXIT_INVALID;
    }
    if (e instanceof StaleOutputError) {
      err(e.message);
      return EXIT_INVALID;
    }
    if (e instanceof UsageError) {
      err(`error: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof ClusterError) {
      err(`error: ${e.message}`);
      return EXIT_INVALID;
    }
    err(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    return EXIT_INTERNAL;
  }
}
