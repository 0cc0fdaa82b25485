/**
 * The Engine API's exec routes, which `docker exec` uses: create an exec instance on a running container,
 * start it (hijacked: its output as multiplexed frames, the client's input as its stdin; or detached),
 * then inspect it for the exit code. Instances live in this server's memory, as dockerd's do.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { execInContainer, findContainer, isRunning, resizeExec } from '../engine/containers.js';
import type { Engine } from '../engine/engine.js';
import type { ExecStreams } from '../runtime/runtime.js';
import type { ConsoleSize } from '../runtime/spec.js';
import { KilnError } from '../errors.js';
import { consoleSize, frame, plainStream } from './containers.js';
import type { Decoded } from './json.js';
import { execConfig, execStartCheck, readJsonBody } from './request.js';
import type { Call } from './server.js';

type ExecConfig = Decoded<typeof execConfig>;

interface ExecInstance {
  readonly id: string;
  readonly containerId: string;
  readonly config: ExecConfig;
  running: boolean;
  exitCode: number | null;
  /** A terminal's size asked for before the process started. */
  size?: ConsoleSize;
}

/** The hijacked (or plain) connection an exec's streams go through. */
export interface ExecConnection {
  readonly upgraded: boolean;
  head(text: string): unknown;
  write(data: Buffer): unknown;
  end(): unknown;
  readonly input?: Readable;
}

/** dockerd's answer to an exec route's request without a body. */
export const EMPTY_BODY = 'got EOF while reading request body';

/** Instances kept (for inspect after they end) at most: a long-running server forgets the oldest ended ones. */
const KEPT_INSTANCES = 1000;

export class Execs {
  private readonly instances = new Map<string, ExecInstance>();

  /** `POST /containers/{id}/exec`. */
  async create({ engine, params, req, res }: Call): Promise<void> {
    const config = (await readJsonBody(req, execConfig, { contentType: true, empty: EMPTY_BODY })) ?? {};
    if (!config.Cmd?.length) throw new KilnError('INVALID_ARGUMENT', 'No exec command specified');
    const container = findContainer(engine, params[0] ?? '');
    if (!isRunning(container)) throw new KilnError('CONFLICT', `Container ${container.id} is not running`);
    for (const [oldId, old] of this.instances) {
      if (this.instances.size < KEPT_INSTANCES) break;
      if (!old.running && old.exitCode !== null) this.instances.delete(oldId);
    }
    const id = randomBytes(32).toString('hex');
    this.instances.set(id, { id, containerId: container.id, config, running: false, exitCode: null });
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ Id: id }));
  }

  /** `POST /exec/{id}/start` without a hijack: with `Detach`, started and left running; else its output is the body. */
  async startPlain({ engine, params, req, res }: Call): Promise<void> {
    const body = await readJsonBody(req, execStartCheck, { contentType: true, empty: EMPTY_BODY });
    if (!body?.Detach) {
      await this.start(engine, params[0] ?? '', plainStream(res));
      return;
    }
    await this.run(engine, this.unstarted(params[0] ?? ''), true);
    res.writeHead(200).end();
  }

  /**
   * `POST /exec/{id}/start`: the process's output as multiplexed frames (raw with a terminal); with a
   * hijack and AttachStdin, the client's input as its stdin.
   */
  async start(engine: Engine, id: string, connection: ExecConnection): Promise<void> {
    const instance = this.unstarted(id);
    connection.head(connection.upgraded ? 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n' : '');
    try {
      await this.run(engine, instance, false, {
        ...(instance.config.AttachStdin && connection.input ? { stdin: connection.input } : {}),
        output: (stream, chunk) => {
          if (instance.config.Tty) connection.write(chunk);
          else if (stream === 'stdout' ? instance.config.AttachStdout !== false : instance.config.AttachStderr !== false) connection.write(frame(stream === 'stdout' ? 1 : 2, chunk));
        },
        ...(instance.size ? { consoleSize: instance.size } : {}),
      });
    } finally {
      connection.input?.resume();
      connection.end();
    }
  }

  /** `POST /exec/{id}/resize`: now if the process runs with a terminal, else from its start. */
  async resize({ engine, params, query, res }: Call): Promise<void> {
    const size = consoleSize(query);
    const instance = this.find(params[0] ?? '');
    if (instance.running && instance.config.Tty) await resizeExec(engine, instance.containerId, instance.id, size);
    else instance.size = size;
    res.writeHead(200).end();
  }

  /** `GET /exec/{id}/json`. */
  inspect({ params, res }: Call): void {
    const instance = this.find(params[0] ?? '');
    const [entrypoint = '', ...args] = instance.config.Cmd ?? [];
    const body = {
      ID: instance.id,
      Running: instance.running,
      ExitCode: instance.exitCode,
      ProcessConfig: { tty: instance.config.Tty ?? false, entrypoint, arguments: args, privileged: false, user: instance.config.User ?? '' },
      OpenStdin: instance.config.AttachStdin ?? false,
      OpenStdout: instance.config.AttachStdout ?? true,
      OpenStderr: instance.config.AttachStderr ?? true,
      CanRemove: false,
      ContainerID: instance.containerId,
      DetachKeys: '',
      Pid: 0,
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private find(id: string): ExecInstance {
    const instance = this.instances.get(id);
    if (!instance) throw new KilnError('NOT_FOUND', `No such exec instance: ${id}`);
    return instance;
  }

  /** An instance not started yet: each runs once. */
  private unstarted(id: string): ExecInstance {
    const instance = this.find(id);
    if (instance.running || instance.exitCode !== null) throw new KilnError('CONFLICT', `Exec ${id} has already been started`);
    return instance;
  }

  /**
   * Runs the instance's process. A failure to run it (its container stopped meanwhile) is the exit code
   * 126, as with dockerd; with streams its message goes to the client's stderr, else it is thrown.
   */
  private async run(engine: Engine, instance: ExecInstance, detach: boolean, streams?: ExecStreams): Promise<void> {
    const { config } = instance;
    instance.running = true;
    try {
      instance.exitCode = await execInContainer(
        engine,
        instance.containerId,
        {
          cmd: config.Cmd ?? [],
          interactive: config.AttachStdin ?? false,
          tty: instance.config.Tty ?? false,
          detach,
          id: instance.id,
          env: config.Env ?? [],
          ...(config.User ? { user: config.User } : {}),
          ...(config.WorkingDir ? { workdir: config.WorkingDir } : {}),
        },
        streams,
      );
    } catch (err) {
      instance.exitCode = 126;
      if (!streams || !(err instanceof KilnError)) throw err;
      streams.output('stderr', Buffer.from(`Error: ${err.message}\n`));
    } finally {
      instance.running = false;
    }
  }
}
