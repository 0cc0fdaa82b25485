import { Command, CommanderError } from 'commander';
import { KilnError, fileWriteError } from '../errors.js';
import { KILN_VERSION } from '../engine/version.js';
import { type CommandContext, createContext } from './context.js';
import { type Io, processIo } from './io.js';

export { exitWhenWritten } from './io.js';
import { withTypeScriptSources } from './stack.js';

/** Go-style `-H=false` becomes `-H false`, which commander understands. */
function splitShortAssignments(argv: readonly string[]): string[] {
  return argv.flatMap((arg) => (/^-[a-zA-Z]=/.test(arg) ? [arg.slice(0, 2), arg.slice(3)] : [arg]));
}

type Register = (program: Command, ctx: CommandContext) => void;

/**
 * The top-level commands by the module that registers them, in help's order. A command line that names
 * one loads only its module: a pull does not load the builder, the archive codecs or the container verbs
 * (some 20 ms off every command's start). Help, an unknown name, or none loads them all.
 */
const COMMAND_GROUPS: readonly { readonly names: readonly string[]; readonly load: () => Promise<Register> }[] = [
  { names: ['images'], load: async () => (await import('./commands/images.js')).registerImages },
  {
    names: ['tag', 'rmi', 'history', 'inspect'],
    load: async () => {
      const { registerTag, registerRmi, registerHistory, registerInspect } = await import('./commands/image.js');
      return (program, ctx) => [registerTag, registerRmi, registerHistory, registerInspect].forEach((register) => register(program, ctx));
    },
  },
  {
    names: ['save', 'load', 'import'],
    load: async () => {
      const { registerSave, registerLoad, registerImport } = await import('./commands/archive.js');
      return (program, ctx) => [registerSave, registerLoad, registerImport].forEach((register) => register(program, ctx));
    },
  },
  { names: ['build'], load: async () => (await import('./commands/build.js')).registerBuild },
  { names: ['lint'], load: async () => (await import('./commands/lint.js')).registerLint },
  { names: ['analyze'], load: async () => (await import('./commands/analyze.js')).registerAnalyze },
  { names: ['sbom'], load: async () => (await import('./commands/sbom.js')).registerSbom },
  { names: ['scan'], load: async () => (await import('./commands/scan.js')).registerScan },
  { names: ['pull', 'push', 'login', 'logout', 'search'], load: async () => (await import('./commands/registry.js')).registerRegistry },
  { names: ['serve'], load: async () => (await import('./commands/serve.js')).registerServe },
  {
    names: ['run', 'create'], // and the detached supervisor's hidden command, which loads everything
    load: async () => {
      const { registerRun, registerCreate, registerSupervisor } = await import('./commands/run.js');
      return (program, ctx) => [registerRun, registerCreate, registerSupervisor].forEach((register) => register(program, ctx));
    },
  },
  { names: ['ps', 'rm', 'diff', 'logs', 'attach', 'export', 'commit', 'kill', 'stop', 'start', 'restart', 'exec', 'wait', 'pause', 'unpause', 'rename', 'cp', 'top'], load: async () => (await import('./commands/containers.js')).registerContainers },
  {
    names: ['network', 'volume', 'port'],
    load: async () => {
      const { registerNetwork, registerVolume, registerPort } = await import('./commands/resources.js');
      return (program, ctx) => [registerNetwork, registerVolume, registerPort].forEach((register) => register(program, ctx));
    },
  },
  { names: ['image'], load: imageCommands },
  { names: ['container'], load: containerCommands },
  {
    names: ['system', 'events'],
    load: async () => {
      const { registerEvents, registerSystem } = await import('./commands/system.js');
      return (program, ctx) => [registerSystem, registerEvents].forEach((register) => register(program, ctx));
    },
  },
  { names: ['version'], load: async () => (await import('./commands/version.js')).registerVersion },
];

/** `kiln image …`: the image verbs again, under Docker's management-command names. */
async function imageCommands(): Promise<Register> {
  const [{ registerImages }, image, archive, { registerBuild }, { registerAnalyze }] = await Promise.all([import('./commands/images.js'), import('./commands/image.js'), import('./commands/archive.js'), import('./commands/build.js'), import('./commands/analyze.js')]);
  return (program, ctx) => {
    const group = program.command('image').description('Manage images');
    registerImages(group, ctx, 'ls').alias('list');
    image.registerTag(group, ctx);
    image.registerRmi(group, ctx, 'rm').alias('remove');
    image.registerHistory(group, ctx);
    image.registerInspect(group, ctx);
    archive.registerSave(group, ctx);
    archive.registerLoad(group, ctx);
    archive.registerImport(group, ctx);
    image.registerImagePrune(group, ctx);
    registerBuild(group, ctx);
    registerAnalyze(group, ctx);
  };
}

/** `kiln container …`: the container verbs under Docker's management-command names (`container ls`…). */
async function containerCommands(): Promise<Register> {
  const [{ registerContainers }, { registerRun, registerCreate }, { registerInspect }] = await Promise.all([import('./commands/containers.js'), import('./commands/run.js'), import('./commands/image.js')]);
  return (program, ctx) => {
    const group = program.command('container').description('Manage containers');
    registerContainers(group, ctx);
    registerRun(group, ctx);
    registerCreate(group, ctx);
    registerInspect(group, ctx);
  };
}

/** The command a command line names (after the global --root), if any. */
function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--root') i++;
    else if (!arg.startsWith('--root=')) return arg.startsWith('-') ? undefined : arg;
  }
  return undefined;
}

async function buildProgram(ctx: CommandContext, rootOption: { value?: string }, args: readonly string[]): Promise<Command> {
  const program = new Command('kiln')
    .description('A daemonless Docker image engine')
    .option('--root <dir>', 'the store directory (default: $KILN_ROOT, /var/lib/kiln as root, $XDG_DATA_HOME/kiln otherwise)')
    .configureOutput({ writeOut: (s) => ctx.io.stdout.write(s), writeErr: (s) => ctx.io.stderr.write(s) })
    .version(`kiln version ${KILN_VERSION}`, '-v, --version', 'print version information and quit')
    .showSuggestionAfterError(true)
    .enablePositionalOptions()
    .exitOverride();
  program.hook('preAction', () => {
    rootOption.value = program.opts<{ root?: string }>().root;
  });
  const name = commandName(args);
  const named = COMMAND_GROUPS.filter((group) => name !== undefined && group.names.includes(name));
  for (const register of await Promise.all((named.length > 0 ? named : COMMAND_GROUPS).map((group) => group.load()))) register(program, ctx);
  for (const command of [program, ...program.commands, ...program.commands.flatMap((c) => c.commands)]) command.exitOverride();
  return program;
}

/**
 * Runs the kiln CLI and returns the exit code: 0 on success, 1 when a command fails, 125 when the
 * command line itself is wrong (as the docker CLI does). A KilnError prints as one line, never a stack.
 */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  // `kiln images | head -1`: a reader that goes away ends kiln quietly, as it ends docker. The store stays
  // consistent whenever kiln stops (see the kill -9 tests).
  // Any other failure to write (a full disk under `kiln save > file`) ends it in one line, exit 1.
  io.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    const failure = fileWriteError(err, 'standard output');
    io.stderr.write(`Error: ${failure instanceof KilnError ? failure.message : `cannot write standard output: ${err.message}`}\n`);
    process.exit(1);
  });
  const rootOption: { value?: string } = {};
  const ctx = createContext(io, () => rootOption.value);
  const args = splitShortAssignments(argv);
  const program = await buildProgram(ctx, rootOption, args.slice(2));
  try {
    await program.parseAsync(args);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end with exit code 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : 125;
    }
    if (err instanceof KilnError) {
      io.stderr.write(`Error: ${err.message}\n`);
      return err.code === 'INVALID_ARGUMENT' ? 125 : 1;
    }
    io.stderr.write(`kiln: internal error (please report it): ${err instanceof Error ? withTypeScriptSources(err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
