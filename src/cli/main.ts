import { Command, CommanderError } from 'commander';
import { KilnError } from '../errors.js';
import { registerImport, registerLoad, registerSave } from './commands/archive.js';
import { registerHistory, registerImagePrune, registerInspect, registerRmi, registerTag } from './commands/image.js';
import { registerImages } from './commands/images.js';
import { registerRun, registerSupervisor } from './commands/run.js';
import { registerContainers } from './commands/containers.js';
import { registerBuild } from './commands/build.js';
import { registerRegistry } from './commands/registry.js';
import { registerServe } from './commands/serve.js';
import { registerSystem, registerVersion } from './commands/system.js';
import { KILN_VERSION } from '../engine/version.js';
import { type CommandContext, createContext } from './context.js';
import { type Io, processIo } from './io.js';

/** Go-style `-H=false` becomes `-H false`, which commander understands. */
function splitShortAssignments(argv: readonly string[]): string[] {
  return argv.flatMap((arg) => (/^-[a-zA-Z]=/.test(arg) ? [arg.slice(0, 2), arg.slice(3)] : [arg]));
}

function buildProgram(ctx: CommandContext, rootOption: { value?: string }): Command {
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
  registerImages(program, ctx);
  registerTag(program, ctx);
  registerRmi(program, ctx);
  registerHistory(program, ctx);
  registerInspect(program, ctx);
  registerSave(program, ctx);
  registerLoad(program, ctx);
  registerImport(program, ctx);
  registerBuild(program, ctx);
  registerRegistry(program, ctx);
  registerServe(program, ctx);
  registerRun(program, ctx);
  registerSupervisor(program, ctx);
  registerContainers(program, ctx);

  const image = program.command('image').description('Manage images');
  registerImages(image, ctx, 'ls').alias('list');
  registerTag(image, ctx);
  registerRmi(image, ctx, 'rm').alias('remove');
  registerHistory(image, ctx);
  registerInspect(image, ctx);
  registerSave(image, ctx);
  registerLoad(image, ctx);
  registerImport(image, ctx);
  registerImagePrune(image, ctx);
  registerBuild(image, ctx);

  registerSystem(program, ctx);
  registerVersion(program, ctx);
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
  io.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  const rootOption: { value?: string } = {};
  const ctx = createContext(io, () => rootOption.value);
  const program = buildProgram(ctx, rootOption);
  try {
    await program.parseAsync(splitShortAssignments(argv));
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
    io.stderr.write(`kiln: internal error (please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
