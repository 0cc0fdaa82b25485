import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * What kiln sets up outside its own process — a mount, a runtime container — must not outlive it when it
 * is killed (kill -9, the OOM killer) in the middle. The guard is a small bash process, started on first
 * use and shared by the whole kiln process, that keeps a shell command per such thing: kiln adds one just
 * before it sets the thing up and drops it once it has undone it itself. When kiln dies, the guard's
 * stdin reaches its end and it runs the commands still held, newest first. It runs in a process group of
 * its own and ignores the terminal's signals, so a ctrl-c that kiln handles itself does not set it off.
 */
const SCRIPT = `
trap '' INT TERM HUP QUIT
declare -A undo
while IFS= read -r line; do
  case $line in
    +*) id=\${line%% *}; undo[\${id#+}]=\${line#* } ;;
    -*) unset "undo[\${line#-}]" ;;
  esac
done
for id in $(printf '%s\\n' "\${!undo[@]}" | sort -rn); do eval "\${undo[$id]}"; done
`;

/**
 * Sends one line to the guard; false when the guard is gone and took nothing. A promise where the line is
 * still on its way (Node's stream), else the line is in the pipe on return.
 */
export type GuardPipe = (line: string) => Promise<boolean> | boolean;

let guard: { readonly send: GuardPipe | undefined; next: number } | undefined;

/**
 * Starts `file` with `args` in a session of its own, its stdin a pipe it returns the sending end of (which
 * must not keep kiln alive), its output ignored; undefined to have Node's spawn do it. A build passes a
 * cheaper one than Node's fork (see builder/spawn.ts).
 */
export type GuardStarter = (file: string, args: readonly string[]) => GuardPipe | undefined;

function spawnedByNode(): GuardPipe | undefined {
  const child = spawn('bash', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  child.on('error', () => undefined); // no bash: nothing is guarded, as before there was a guard
  const { stdin } = child;
  if (!stdin) return undefined;
  stdin.on('error', () => undefined);
  // The guard must not keep kiln alive: it is waited for by no one, and it ends when kiln does.
  child.unref();
  (stdin as Socket).unref();
  return (line) => stdin.writable && new Promise<boolean>((resolve) => stdin.write(line, (err) => resolve(!err)));
}

/**
 * Has `command` (a shell command line) run if kiln dies before the returned function is called. Resolves
 * once the guard has it. Call the returned function when the thing is undone. `start` starts the guard if
 * it is not running yet.
 */
export async function guardUndo(command: string, start?: GuardStarter): Promise<() => void> {
  guard ??= { send: start?.('bash', ['-c', SCRIPT]) ?? spawnedByNode(), next: 1 };
  const { send } = guard;
  const id = guard.next++;
  if (!send || !(await send(`+${id} ${command.replace(/\n/g, ' ')}\n`))) return () => undefined;
  return () => {
    void send(`-${id}\n`);
  };
}

/** A word quoted for the shell. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}
