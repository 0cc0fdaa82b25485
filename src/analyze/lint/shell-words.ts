/**
 * Just enough of a POSIX shell reader for the lint rules: a RUN script → the simple commands in it (name
 * and arguments, quotes removed, leading `VAR=value` assignments dropped), whether it pipes, and the
 * commands inside `$(…)` too. Not a shell: ShellCheck does the real analysis; this finds `apt-get install`.
 */

export interface ShellCommand {
  readonly name: string;
  readonly args: readonly string[];
}

export interface ParsedScript {
  readonly commands: readonly ShellCommand[];
  /** A `|` between commands (not `||`). */
  readonly pipes: boolean;
}

const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'while', 'until', '!', '{', '}', 'time', 'case', 'esac', 'in']);

/** How deep `$(…)` inside `$(…)` is read for commands; deeper is taken as text (no stack to overflow). */
const MAX_NESTING = 16;

/** Reads a script into commands. */
export function parseScript(text: string, depth = 0): ParsedScript {
  const inner = (body: string): readonly ShellCommand[] => (depth < MAX_NESTING ? parseScript(body, depth + 1).commands : []);
  const commands: ShellCommand[] = [];
  let pipes = false;
  let words: string[] = [];
  let word = '';
  let inWord = false;
  let pendingHeredocs: { name: string; chomp: boolean }[] = [];
  const endWord = (): void => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  const endCommand = (): void => {
    endWord();
    while (words.length > 0 && (KEYWORDS.has(words[0] ?? '') || /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? ''))) words.shift();
    const [name, ...args] = words;
    if (name !== undefined && name !== '') commands.push({ name, args });
    words = [];
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i] ?? '';
    if (ch === '\\') {
      if (text[i + 1] === '\n') i += 2;
      else {
        word += text[i + 1] ?? '';
        inWord = true;
        i += 2;
      }
      continue;
    }
    if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      word += text.slice(i + 1, end < 0 ? text.length : end);
      inWord = true;
      i = end < 0 ? text.length : end + 1;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && j + 1 < text.length) {
          word += text[j + 1] === '"' || text[j + 1] === '\\' || text[j + 1] === '$' || text[j + 1] === '`' ? (text[j + 1] ?? '') : `\\${text[j + 1] ?? ''}`;
          j += 2;
          continue;
        }
        if (text.startsWith('$(', j)) {
          const end = matchingParen(text, j + 1);
          commands.push(...inner(text.slice(j + 2, end)));
          word += text.slice(j, end + 1);
          j = end + 1;
          continue;
        }
        word += text[j] ?? '';
        j++;
      }
      inWord = true;
      i = j + 1;
      continue;
    }
    if (ch === '$' && text[i + 1] === '(') {
      const end = matchingParen(text, i + 1);
      commands.push(...inner(text.slice(i + 2, end)));
      word += text.slice(i, end + 1);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (ch === '`') {
      const end = text.indexOf('`', i + 1);
      const quoted = text.slice(i + 1, end < 0 ? text.length : end);
      commands.push(...inner(quoted));
      word += '`' + quoted + '`';
      inWord = true;
      i = end < 0 ? text.length : end + 1;
      continue;
    }
    if (ch === '#' && !inWord) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end;
      continue;
    }
    if (ch === '\n') {
      endCommand();
      i++;
      // A shell heredoc's body is data, not commands.
      for (const doc of pendingHeredocs) {
        while (i < text.length) {
          const end = text.indexOf('\n', i);
          const line = text.slice(i, end < 0 ? text.length : end);
          i = end < 0 ? text.length : end + 1;
          if ((doc.chomp ? line.replace(/^\t+/, '') : line) === doc.name) break;
        }
      }
      pendingHeredocs = [];
      continue;
    }
    if (ch === '<' && text[i + 1] === '<' && text[i + 2] !== '<') {
      endWord();
      const match = /^<<(-?)\s*(["']?)([A-Za-z0-9_.-]+)\2/.exec(text.slice(i));
      if (match) {
        pendingHeredocs.push({ name: match[3] ?? '', chomp: match[1] === '-' });
        i += match[0].length;
        continue;
      }
    }
    if (ch === '|' || ch === '&' || ch === ';' || ch === '(' || ch === ')') {
      const two = text.slice(i, i + 2);
      if (ch === '|' && two !== '||' && text[i - 1] !== '>') pipes = true;
      // `2>&1` and `>&2` are redirections, not operators.
      if (ch === '&' && (text[i - 1] === '>' || text[i - 1] === '<')) {
        word += ch;
        inWord = true;
        i++;
        continue;
      }
      endCommand();
      i += two === '&&' || two === '||' || two === ';;' ? 2 : 1;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      endWord();
      i++;
      continue;
    }
    word += ch;
    inWord = true;
    i++;
  }
  endCommand();
  return { commands, pipes };
}

/** The index of the `)` closing the `(` at `open`, or the text's end. */
function matchingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') i++;
    else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      i = end < 0 ? text.length : end;
    } else if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return i;
  }
  return text.length;
}

/** The program's name without its directory (`/usr/bin/apt-get` → `apt-get`). */
export function programName(command: ShellCommand): string {
  return command.name.slice(command.name.lastIndexOf('/') + 1);
}

/** Whether a command has a flag: a long name (`--yes`) or a short letter, also within `-qy`. */
export function hasFlag(command: ShellCommand, long: readonly string[], short: readonly string[] = []): boolean {
  return command.args.some((arg) => {
    if (arg === '--') return false;
    if (arg.startsWith('--')) return long.includes(arg.split('=')[0] ?? arg);
    if (arg.startsWith('-') && arg.length > 1) return short.some((letter) => arg.slice(1).includes(letter));
    return false;
  });
}

/**
 * The arguments that are not options, skipping the values of options that take one (`-o X`, `--opt X`).
 * `--opt=value` carries its own value.
 */
export function positionalArgs(command: ShellCommand, optionsWithValue: readonly string[] = []): string[] {
  const result: string[] = [];
  let afterDashes = false;
  for (let i = 0; i < command.args.length; i++) {
    const arg = command.args[i] ?? '';
    if (afterDashes) result.push(arg);
    else if (arg === '--') afterDashes = true;
    else if (arg.startsWith('-') && arg.length > 1) {
      if (!arg.includes('=') && optionsWithValue.includes(arg)) i++;
    } else result.push(arg);
  }
  return result;
}

/** The commands named one of `names` whose first positional argument is one of `subcommands` (any if empty). */
export function commandsOf(script: ParsedScript, names: readonly string[], subcommands: readonly string[] = [], optionsWithValue: readonly string[] = []): ShellCommand[] {
  return script.commands.filter((command) => {
    if (!names.includes(programName(command))) return false;
    if (subcommands.length === 0) return true;
    const first = positionalArgs(command, optionsWithValue)[0];
    return first !== undefined && subcommands.includes(first);
  });
}
