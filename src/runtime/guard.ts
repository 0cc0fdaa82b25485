import { type ChildProcess, spawn } from 'node:child_process';
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

let guard: { readonly child: ChildProcess; next: number } | undefined;

function started(): { readonly child: ChildProcess; next: number } | undefined {
  if (!guard) {
    const child = spawn('bash', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    child.on('error', () => undefined); // no bash: nothing is guarded, as before there was a guard
    child.stdin?.on('error', () => undefined);
    // The guard must not keep kiln alive: it is waited for by no one, and it ends when kiln does.
    child.unref();
    (child.stdin as Socket | null)?.unref();
    guard = { child, next: 1 };
  }
  return guard.child.stdin?.writable ? guard : undefined;
}

/**
 * Has `command` (a shell command line) run if kiln dies before the returned function is called. Resolves
 * once the guard has it. Call the returned function when the thing is undone.
 */
export async function guardUndo(command: string): Promise<() => void> {
  const current = started();
  if (!current?.child.stdin) return () => undefined;
  const { stdin } = current.child;
  const id = current.next++;
  await new Promise<void>((resolve) => stdin.write(`+${id} ${command.replace(/\n/g, ' ')}\n`, () => resolve()));
  return () => {
    if (stdin.writable) stdin.write(`-${id}\n`);
  };
}

/** A word quoted for the shell. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}
