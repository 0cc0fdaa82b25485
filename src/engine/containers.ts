/**
 * The container verbs, one module per concern under containers/: their records and settings, create,
 * start (and the detached supervisor), the verbs on a running process, logs, exec, files (cp, export,
 * diff, commit), inspect and ps, removal, and top/stats.
 */
export * from './containers/records.js';
export * from './containers/create.js';
export * from './containers/mounts.js';
export * from './containers/start.js';
export * from './containers/lifecycle.js';
export * from './containers/logs.js';
export * from './containers/exec.js';
export * from './containers/files.js';
export * from './containers/inspect.js';
export * from './containers/remove.js';
export * from './containers/top.js';
export * from './containers/stats.js';
export * from './containers/health.js';
