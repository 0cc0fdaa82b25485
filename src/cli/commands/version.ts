import type { Command } from 'commander';
import { versionInfo } from '../../engine/version.js';
import type { CommandContext } from '../context.js';
import { renderTemplate } from '../format/table.js';
import { print } from '../io.js';

/** `kiln version`: docker version's client block (kiln has no server; `kiln serve` reports the same). */
export function registerVersion(program: Command, ctx: CommandContext): Command {
  return program
    .command('version')
    .description('Show the kiln version information')
    .option('-f, --format <format>', 'format the output using the given Go template')
    .action((options: { format?: string }) => {
      const info = versionInfo();
      if (options.format) return print(ctx.io, renderTemplate(options.format, { Client: info }));
      print(ctx.io, [
        'Client: kiln',
        ` Version:           ${info.Version}`,
        ` API version:       ${info.ApiVersion} (minimum version ${info.MinAPIVersion})`,
        ` Node version:      v${process.versions.node}`,
        ` OS/Arch:           ${info.Os}/${info.Arch}`,
        ` gzip:              ${info.Gzip}`,
      ].join('\n'));
    });
}
