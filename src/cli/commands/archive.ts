import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { KilnError } from '../../errors.js';
import { loadImages, loadMessage, saveImagesAsTar, saveImagesToDirectory } from '../../engine/archive.js';
import { importImage } from '../../engine/import.js';
import { type CommandContext, withEngine } from '../context.js';
import { collect, print, writeFileAtomically } from '../io.js';

const SAVE_FORMATS = { docker: 'docker', 'oci-archive': 'oci', 'oci-dir': 'oci' } as const;

export function registerSave(parent: Command, ctx: CommandContext, name = 'save'): Command {
  return parent
    .command(name)
    .description('Save one or more images to a tar archive (streamed to STDOUT by default)')
    .argument('<IMAGE...>')
    .option('-o, --output <file>', 'write to a file, instead of STDOUT')
    .option('--format <format>', 'docker (Docker ≥ 25 layout, also a valid OCI archive), oci-archive, or oci-dir', 'docker')
    .action((images: string[], options: { output?: string; format: string }) =>
      withEngine(ctx, async (engine) => {
        if (!(options.format in SAVE_FORMATS)) throw new KilnError('INVALID_ARGUMENT', `unknown save format ${JSON.stringify(options.format)}: use docker, oci-archive or oci-dir`);
        const format = SAVE_FORMATS[options.format as keyof typeof SAVE_FORMATS];
        if (options.format === 'oci-dir') {
          const directory = options.output;
          if (!directory) throw new KilnError('INVALID_ARGUMENT', '--format oci-dir needs -o DIRECTORY');
          await saveImagesToDirectory(engine, images, format, directory);
          return;
        }
        if (!options.output && ctx.io.stdout.isTTY) throw new KilnError('INVALID_ARGUMENT', 'cowardly refusing to save to a terminal. Use the -o flag or redirect');
        const output = options.output;
        await saveImagesAsTar(engine, images, format, (tar) => (output ? writeFileAtomically(output, tar) : pipeline(tar, ctx.io.stdout, { end: false })));
      }),
    );
}


export function registerLoad(parent: Command, ctx: CommandContext, name = 'load'): Command {
  return parent
    .command(name)
    .description('Load images from a tar archive or OCI layout (STDIN by default)')
    .option('-i, --input <file>', 'read from a tar archive file or an OCI layout directory, instead of STDIN')
    .option('-q, --quiet', 'suppress the load progress (kiln prints none; the result lines remain, as in Docker)')
    .action((options: { input?: string }) =>
      withEngine(ctx, async (engine) => {
        if (!options.input && ctx.io.stdin.isTTY) throw new KilnError('INVALID_ARGUMENT', 'requested load from stdin, but stdin is empty');
        const source = options.input ? { path: options.input } : { stream: ctx.io.stdin as AsyncIterable<Uint8Array>, description: 'archive on stdin' };
        await loadImages(engine, source, (event) => print(ctx.io, loadMessage(event)));
      }),
    );
}

export function registerImport(parent: Command, ctx: CommandContext, name = 'import'): Command {
  return parent
    .command(name)
    .description('Import the contents from a tarball (file, - for STDIN, or a directory) to create a filesystem image')
    .argument('<file|-|dir>')
    .argument('[REPOSITORY[:TAG]]')
    .option('-c, --change <instruction>', 'apply Dockerfile instruction to the created image', collect)
    .option('-m, --message <message>', 'set commit message for imported image')
    .option('--platform <platform>', 'set platform (os/arch[/variant]) if the image is multi-platform capable')
    .action((file: string, reference: string | undefined, options: { change?: string[]; message?: string; platform?: string }) =>
      withEngine(ctx, async (engine) => {
        const source = file === '-' ? { stream: ctx.io.stdin as AsyncIterable<Uint8Array> } : { path: file };
        const id = await importImage(engine, source, { reference, changes: options.change ?? [], message: options.message, platform: options.platform });
        print(ctx.io, id);
      }),
    );
}
