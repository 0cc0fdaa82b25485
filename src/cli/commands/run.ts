import type { Command } from 'commander';
import { KilnError } from '../../errors.js';
import { ensureImage, parsePullPolicy } from '../../engine/registry.js';
import { SUPERVISE_COMMAND, runContainer, superviseContainer } from '../../engine/run.js';
import { type CommandContext, withEngine } from '../context.js';
import { collect, print } from '../io.js';
import { progressPrinter } from '../progress.js';
import { type RuntimeFlags, addRuntimeFlags, checkRuntimeFlags } from '../runtime-flags.js';
import { INSECURE_HELP, type RegistryFlags, insecure } from './registry.js';
import { readFile } from 'node:fs/promises';

interface RunFlags extends RuntimeFlags, RegistryFlags {
  pull: string;
  rm?: boolean;
  detach?: boolean;
  tty?: boolean;
  name?: string;
  interactive?: boolean;
  env?: string[];
  envFile?: string[];
  volume?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  network: string;
  hostname?: string;
  readOnly?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  addHost?: string[];
  tmpfs?: string[];
}

/** Lines of an --env-file: KEY=value or KEY (taken from kiln's environment); # comments and blanks skipped. */
async function envFile(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: Error) => {
    throw new KilnError('INVALID_ARGUMENT', `cannot read env file ${path}: ${err.message}`);
  });
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

export function registerRun(parent: Command, ctx: CommandContext): Command {
  return addRuntimeFlags(parent.command('run'), 'the container')
    .description('Create and run a new container from an image (in the foreground; --rm)')
    .argument('<IMAGE>')
    .argument('[COMMAND...]')
    .passThroughOptions()
    .option('--rm', 'automatically remove the container when it exits')
    .option('-d, --detach', 'run the container in the background and print its ID')
    .option('--name <name>', 'assign a name to the container')
    .option('-i, --interactive', 'keep STDIN open')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-e, --env <KEY=value>', 'set environment variables', collect)
    .option('--env-file <file>', 'read in a file of environment variables', collect)
    .option('-v, --volume <src:dst[:ro]>', 'bind mount a volume', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <name|uid[:group|gid]>', 'username or UID')
    .option('--entrypoint <command>', 'overwrite the default ENTRYPOINT of the image')
    .option('--network <mode>', 'network mode: none or host', 'host')
    .option('--hostname <name>', 'container host name')
    .option('--add-host <host:ip>', 'add a custom host-to-IP mapping (host:ip)', collect)
    .option('--read-only', "mount the container's root filesystem as read only")
    .option('--tmpfs <path[:options]>', 'mount a tmpfs directory', collect)
    .option('--cap-add <capability>', 'add Linux capabilities', collect)
    .option('--cap-drop <capability>', 'drop Linux capabilities', collect)
    .option('--privileged', 'give extended privileges to this container (every capability; host devices are not passed in)')
    .option('--pull <policy>', 'pull the image before running: "always", "missing" or "never"', 'missing')
    .option('--insecure-registry <host>', INSECURE_HELP, collect)
    .action((image: string, command: string[], flags: RunFlags) =>
      withEngine(ctx, async (engine) => {
        if (flags.network !== 'none' && flags.network !== 'host') throw new KilnError('INVALID_ARGUMENT', `network mode ${JSON.stringify(flags.network)} is not supported: use none or host`);
        if (flags.tty && !flags.detach && !ctx.io.stdin.isTTY) throw new KilnError('INVALID_ARGUMENT', 'the input device is not a TTY');
        const runtimeFlags = checkRuntimeFlags(flags);
        const pull = parsePullPolicy(flags.pull);
        const fileEnv = (await Promise.all((flags.envFile ?? []).map(envFile))).flat();
        // As with docker run, what a pull prints goes to stderr: stdout is the container's.
        await ensureImage(engine, image, pull, { events: progressPrinter(ctx.io.stderr), insecureRegistries: insecure(flags) });
        const result = await runContainer(engine, image, {
          cmd: command,
          remove: flags.rm ?? false,
          detach: flags.detach ?? false,
          tty: flags.tty ?? false,
          name: flags.name,
          env: [...fileEnv, ...(flags.env ?? [])],
          volumes: flags.volume ?? [],
          workdir: flags.workdir,
          user: flags.user,
          entrypoint: flags.entrypoint,
          network: flags.network,
          hostname: flags.hostname,
          extraHosts: flags.addHost ?? [],
          readOnly: flags.readOnly ?? false,
          tmpfs: flags.tmpfs ?? [],
          capAdd: flags.capAdd ?? [],
          capDrop: flags.capDrop ?? [],
          privileged: flags.privileged ?? false,
          ...runtimeFlags,
          interactive: flags.interactive ?? false,
          notice: (message) => ctx.io.stderr.write(`${message}\n`),
        });
        if (flags.detach) print(ctx.io, result.id);
        else ctx.exitCode = result.exitCode;
      }),
    );
}

/** The hidden command a detached container's supervisor process runs (see engine/run.ts). */
export function registerSupervisor(parent: Command, ctx: CommandContext): Command {
  return parent
    .command(SUPERVISE_COMMAND, { hidden: true })
    .argument('<id>')
    .argument('<runtime>')
    .argument('<remove>')
    .action((id: string, runtime: string, remove: string) =>
      withEngine(ctx, (engine) => superviseContainer(engine, id, runtime === 'crun' ? 'crun' : 'runc', remove === 'rm')),
    );
}
