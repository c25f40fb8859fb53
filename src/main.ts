/**
 * The CLI entry point: wires commander and is the one place errors become exit codes.
 * Each command lives in src/commands/ and is imported lazily, so `synth` never loads
 * the Kubernetes client.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { CrdCommandOptions } from './commands/crd.js';
import type { CheckCommandOptions, SynthCommandOptions } from './commands/synth.js';
import type { ValidateCommandOptions } from './commands/validate.js';
import { SpecError, StaleOutputError, UsageError } from './errors.js';

/** The controller command's flags as commander parses them. */
interface ControllerFlags {
  readonly kubeconfig?: string;
  readonly namespace?: string;
  readonly secondsBetweenStreams?: number;
  readonly metricsPort: number;
  readonly leaderElection: boolean;
  readonly logLevel: string;
  readonly clusterDomain?: string;
  readonly probePort?: number;
  readonly leaseNamespace?: string;
}

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number of 0 or more.');
  return n;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number of seconds, got '${raw}'`);
  return n;
}

const namespaceOption = () =>
  new Option('-n, --namespace <ns>', "namespace of the mirrors' objects (env NAMESPACE; default kube-extra)");
const mirrorsOption = () =>
  new Option('-m, --mirrors <dir>', 'directory of RegistryMirror YAML files (env MIRRORS_DIR; default mirrors)');
const outOption = () =>
  new Option('-o, --out <dir>', 'output directory (env CDK8S_OUTDIR, then cdk8s.yaml `output`; default dist)');

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
    .option(
      '--cluster-domain <domain>',
      'cluster DNS domain the node agent resolves the mirror in (env CLUSTER_DOMAIN; default cluster.local)',
    )
    .option('--from-cluster', 'read RegistryMirror resources from the cluster instead of --mirrors')
    .option('--kubeconfig <file>', 'kubeconfig for --from-cluster (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--json', 'print a JSON summary')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (opts: SynthCommandOptions) => {
      const { synth } = await import('./commands/synth.js');
      await synth(opts);
    });

  program
    .command('validate')
    .description('validate the mirror specs without writing anything')
    .addOption(mirrorsOption())
    .option('-q, --quiet', 'print nothing on success')
    .action(async (opts: ValidateCommandOptions) => {
      const { validate } = await import('./commands/validate.js');
      await validate(opts);
    });

  program
    .command('check')
    .description('exit non-zero with a summary when dist/ is not what the mirrors synthesize to (for CI)')
    .addOption(mirrorsOption())
    .addOption(outOption())
    .addOption(namespaceOption())
    .option('--cluster-domain <domain>', 'as for synth')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (opts: CheckCommandOptions) => {
      const { check } = await import('./commands/synth.js');
      await check(opts);
    });

  program
    .command('crd')
    .description('print the RegistryMirror CustomResourceDefinition')
    .addOption(new Option('--output <format>', 'yaml or json').choices(['yaml', 'json']).default('yaml'))
    .action(async (opts: CrdCommandOptions) => {
      const { crd } = await import('./commands/crd.js');
      crd(opts);
    });

  program
    .command('controller')
    .description('run in the cluster: watch RegistryMirrors and apply their synthesized objects on every change')
    .addOption(namespaceOption())
    .option('--kubeconfig <file>', 'kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option(
      '--seconds-between-streams <n>',
      'wait before reconnecting after the API server fails or while the CRD is missing (env SECONDS_BETWEEN_STREAMS; default 30)',
      positiveInt,
    )
    .option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz', positiveInt, 8080)
    .option('--no-leader-election', 'do not take a Lease before reconciling (run one replica only)')
    .option(
      '--probe-port <port>',
      'serve /healthz and /readyz on their own port (default: the metrics port)',
      positiveInt,
    )
    .option('--lease-namespace <ns>', 'namespace of the leader-election Lease (default: --namespace)')
    .option('--cluster-domain <domain>', 'as for synth (env CLUSTER_DOMAIN; default cluster.local)')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: ControllerFlags) => {
      const [{ controller }, { resolveNamespace, resolveClusterDomain }] = await Promise.all([
        import('./commands/controller.js'),
        import('./options.js'),
      ]);
      await controller({
        kubeconfig: opts.kubeconfig,
        namespace: resolveNamespace(opts.namespace),
        secondsBetweenStreams: opts.secondsBetweenStreams ?? envInt('SECONDS_BETWEEN_STREAMS', 30),
        metricsPort: opts.metricsPort,
        leaderElection: opts.leaderElection,
        logLevel: opts.logLevel,
        clusterDomain: resolveClusterDomain(opts.clusterDomain),
        ...(opts.probePort !== undefined ? { probePort: opts.probePort } : {}),
        ...(opts.leaseNamespace ? { leaseNamespace: opts.leaseNamespace } : {}),
      });
    });

  program
    .command('controller-manifests')
    .description("print the controller's own manifests (Namespace, ServiceAccount, RBAC, Deployment)")
    .addOption(namespaceOption())
    .requiredOption('--image <image>', "controller image, built from this repository's Dockerfile")
    .action(async (opts: { namespace?: string; image: string }) => {
      const [{ controllerManifests }, { resolveNamespace }, { toYaml }] = await Promise.all([
        import('./commands/controller-manifests.js'),
        import('./options.js'),
        import('./app.js'),
      ]);
      process.stdout.write(
        toYaml(
          controllerManifests({ namespace: resolveNamespace(opts.namespace), image: opts.image }),
          '# mirror-synth controller, generated by mirror-synth.',
        ),
      );
    });

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
    const userFacing = (e as { userFacing?: boolean } | null)?.userFacing === true;
    if (userFacing) {
      err(`error: ${(e as Error).message}`);
      return EXIT_INVALID;
    }
    err(`internal error: ${(e as Error)?.stack ?? String(e)}`);
    return 70;
  }
}
