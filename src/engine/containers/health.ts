/**
 * Health checks, as dockerd runs them: the image's HEALTHCHECK, or `--health-*`, probed in a running
 * container by the kiln process that waits for it (a detached container's supervisor, or `kiln run` in
 * the foreground), there being no daemon. The state is a file in the container's bundle, written whole at
 * each change, which inspect and ps read: State.Health, `Up 3 minutes (healthy)`.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, readTextIfPresent } from '../../errors.js';
import { goDuration } from '../../dockerfile/instructions.js';
import type { ContainerRow } from '../../meta/db.js';
import type { ContainerConfig, HealthConfig } from '../../oci/types.js';
import type { Engine } from '../engine.js';
import { recordEvent } from '../events.js';
import { execInContainer } from './exec.js';
import { containerBundle, findContainer, isRunning, settingsOf } from './records.js';

/** State.Health as dockerd has it. */
export interface HealthState {
  readonly Status: 'starting' | 'healthy' | 'unhealthy';
  readonly FailingStreak: number;
  readonly Log: readonly { readonly Start: string; readonly End: string; readonly ExitCode: number; readonly Output: string }[];
}

/** dockerd's defaults (nanoseconds), and how much of a probe's output and of the log it keeps. */
const DEFAULT_INTERVAL = 30e9;
const DEFAULT_TIMEOUT = 30e9;
const DEFAULT_START_INTERVAL = 5e9;
const DEFAULT_RETRIES = 3;
const MAX_OUTPUT = 4096;
const MAX_LOG = 5;

/**
 * The check a container runs: the request's settings over the image's (a field the request leaves 0 or
 * empty is the image's, as dockerd merges them); undefined for none, or NONE.
 */
export function effectiveHealthcheck(requested: HealthConfig | undefined, image: ContainerConfig): HealthConfig | undefined {
  const base = image.Healthcheck ?? {};
  const own = requested ?? {};
  const merged: HealthConfig = {
    Test: own.Test?.length ? own.Test : base.Test,
    Interval: own.Interval || base.Interval,
    Timeout: own.Timeout || base.Timeout,
    StartPeriod: own.StartPeriod || base.StartPeriod,
    StartInterval: own.StartInterval || base.StartInterval,
    Retries: own.Retries || base.Retries,
  };
  const test = merged.Test ?? [];
  return test.length === 0 || test[0] === 'NONE' ? undefined : merged;
}

/** A request's health check, checked as dockerd checks it (its words). */
export function checkHealthcheck(health: HealthConfig): HealthConfig {
  for (const [field, value] of [['Interval', health.Interval], ['Timeout', health.Timeout], ['StartPeriod', health.StartPeriod], ['StartInterval', health.StartInterval]] as const) {
    if (value !== undefined && value !== 0 && value < 1e6) throw new KilnError('INVALID_ARGUMENT', `${field} in Healthcheck cannot be less than 1ms`);
  }
  if ((health.Retries ?? 0) < 0) throw new KilnError('INVALID_ARGUMENT', 'Retries in Healthcheck cannot be negative');
  const kind = health.Test?.[0];
  if (kind !== undefined && !['NONE', 'CMD', 'CMD-SHELL'].includes(kind)) throw new KilnError('INVALID_ARGUMENT', `unknown type of health check ${JSON.stringify(kind)}: use CMD, CMD-SHELL or NONE`);
  return health;
}

/** `--health-interval 5s` and its kin: a Go duration, in nanoseconds, refused in the docker CLI's words (Go's) when it is none. */
export function healthDuration(text: string, flag: string): number {
  const nanoseconds = goDuration(text);
  if (nanoseconds !== undefined) return nanoseconds;
  const unit = /^\d+(?:\.\d+)?([^\d.]*)/.exec(text)?.[1];
  const why = unit === '' ? `missing unit in duration ${JSON.stringify(text)}` : unit !== undefined ? `unknown unit ${JSON.stringify(unit)} in duration ${JSON.stringify(text)}` : `invalid duration ${JSON.stringify(text)}`;
  throw new KilnError('INVALID_ARGUMENT', `invalid argument ${JSON.stringify(text)} for "${flag}" flag: time: ${why}`);
}

/** A duration as Go prints one (300ms, 30s, 1m30s), for dockerd's words on a probe past its timeout. */
function goDurationText(nanoseconds: number): string {
  const shown = (value: number): string => String(Number(value.toFixed(9)));
  if (nanoseconds < 1e3) return `${nanoseconds}${nanoseconds === 0 ? 's' : 'ns'}`;
  if (nanoseconds < 1e6) return `${shown(nanoseconds / 1e3)}µs`;
  if (nanoseconds < 1e9) return `${shown(nanoseconds / 1e6)}ms`;
  const hours = Math.floor(nanoseconds / 3600e9);
  const minutes = Math.floor((nanoseconds % 3600e9) / 60e9);
  return `${hours ? `${hours}h` : ''}${hours || minutes ? `${minutes}m` : ''}${shown((nanoseconds % 60e9) / 1e9)}s`;
}

function healthFile(engine: Engine, id: string): string {
  return join(containerBundle(engine, id), 'health.json');
}

/** The container's health, once it has started with a check. */
export function containerHealth(engine: Engine, id: string): HealthState | undefined {
  const text = readTextIfPresent(healthFile(engine, id));
  return text === undefined ? undefined : (JSON.parse(text) as HealthState);
}

/** ps's words for it: ` (healthy)`, ` (health: starting)`, ` (unhealthy)`. */
export function healthSuffix(health: HealthState | undefined): string {
  if (!health) return '';
  return health.Status === 'starting' ? ' (health: starting)' : ` (${health.Status})`;
}

async function writeHealth(engine: Engine, id: string, state: HealthState): Promise<void> {
  const file = healthFile(engine, id);
  await writeFile(`${file}.tmp`, JSON.stringify(state));
  await rename(`${file}.tmp`, file);
}

/**
 * Sets a container's health as a start leaves it, before its process runs: `starting` with a check
 * (the one returned, else undefined), none without. The health of an earlier run goes.
 */
export async function startingHealth(engine: Engine, container: ContainerRow, image: ContainerConfig): Promise<HealthConfig | undefined> {
  const check = effectiveHealthcheck(settingsOf(container).healthcheck, image);
  if (check) await writeHealth(engine, container.id, STARTING);
  else await rm(healthFile(engine, container.id), { force: true });
  return check;
}

const STARTING: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };

/**
 * Probes a container that has just been started with `check` (its state `starting`); `stop` ends
 * it (when the container has exited) and waits for a probe under way. A probe runs the test in the
 * container every interval (start interval during the start period); one past its timeout is killed
 * and fails; `retries` failures in a row make it unhealthy (failures during the start period count
 * only once it has been healthy), a success healthy.
 */
export function monitorHealth(engine: Engine, container: ContainerRow, check: HealthConfig, shell: readonly string[] | undefined): { stop(): Promise<void> } {
  const settings = settingsOf(container);
  const interval = (check.Interval || DEFAULT_INTERVAL) / 1e6;
  const startInterval = (check.StartInterval || DEFAULT_START_INTERVAL) / 1e6;
  const timeoutNs = check.Timeout || DEFAULT_TIMEOUT;
  const timeout = timeoutNs / 1e6;
  const retries = check.Retries || DEFAULT_RETRIES;
  const startPeriodEnds = Date.now() + (check.StartPeriod ?? 0) / 1e6;
  const test = check.Test ?? [];
  // CMD-SHELL runs in the image's SHELL, as dockerd runs it.
  const cmd = test[0] === 'CMD-SHELL' ? [...(shell?.length ? shell : ['/bin/sh', '-c']), test.slice(1).join(' ')] : test.slice(1);
  let state = STARTING;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let probing: Promise<void> = Promise.resolve();
  /** The probe under way's: aborted past its timeout, or when the container has exited. */
  let abort = new AbortController();

  const probe = async (): Promise<void> => {
    const current = findContainer(engine, container.id);
    if (!isRunning(current) || current.paused) return;
    const start = new Date().toISOString();
    const output: Buffer[] = [];
    let size = 0;
    abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), timeout);
    let exitCode: number;
    try {
      exitCode = await execInContainer(engine, container.id, { cmd, interactive: false, tty: false, detach: false, env: [], signal: abort.signal }, {
        output: (_stream, chunk) => {
          if (size < MAX_OUTPUT) output.push(chunk.subarray(0, MAX_OUTPUT - size));
          size += chunk.length;
        },
      });
    } catch (err) {
      exitCode = -1;
      output.push(Buffer.from(err instanceof Error ? err.message : String(err)));
    } finally {
      clearTimeout(deadline);
    }
    if (stopped) return;
    const timedOut = abort.signal.aborted;
    const result = { Start: start, End: new Date().toISOString(), ExitCode: timedOut ? -1 : exitCode, Output: timedOut ? `Health check exceeded timeout (${goDurationText(timeoutNs)})` : Buffer.concat(output).toString() };
    const healthy = !timedOut && exitCode === 0;
    const inStartPeriod = Date.now() < startPeriodEnds && state.Status === 'starting';
    const streak = healthy ? 0 : inStartPeriod ? state.FailingStreak : state.FailingStreak + 1;
    const status = healthy ? 'healthy' : streak >= retries ? 'unhealthy' : state.Status;
    const previous = state.Status;
    state = { Status: status, FailingStreak: streak, Log: [...state.Log, result].slice(-MAX_LOG) };
    await writeHealth(engine, container.id, state);
    if (status !== previous) recordEvent(engine, 'container', `health_status: ${status}`, container.id, { image: settings.image, name: container.name, ...settings.labels });
  };

  const schedule = (): void => {
    if (stopped) return;
    const wait = state.Status === 'starting' && Date.now() < startPeriodEnds ? startInterval : interval;
    timer = setTimeout(() => {
      probing = probe().finally(schedule);
    }, wait);
  };
  schedule();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      abort.abort();
      await probing.catch(() => undefined);
    },
  };
}
