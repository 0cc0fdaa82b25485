import type { ContainerConfig } from '../oci/types.js';

/**
 * A container.Config as dockerd's JSON has it (image inspect's Config and ContainerConfig, container
 * inspect's Config): every field Go always writes, its zero value when the config lacks it, and the
 * `omitempty` ones only when set.
 */
export function containerConfigJson(config: ContainerConfig): Record<string, unknown> {
  const { Hostname = '', Domainname = '', User = '', AttachStdin = false, AttachStdout = false, AttachStderr = false, Tty = false, OpenStdin = false, StdinOnce = false } = config;
  return {
    Hostname,
    Domainname,
    User,
    AttachStdin,
    AttachStdout,
    AttachStderr,
    ...(config.ExposedPorts && Object.keys(config.ExposedPorts).length > 0 ? { ExposedPorts: config.ExposedPorts } : {}),
    Tty,
    OpenStdin,
    StdinOnce,
    Env: config.Env ?? null,
    Cmd: config.Cmd ?? null,
    ...(config.Healthcheck ? { Healthcheck: config.Healthcheck } : {}),
    ...(config.ArgsEscaped ? { ArgsEscaped: true } : {}),
    Image: config.Image ?? '',
    Volumes: config.Volumes ?? null,
    WorkingDir: config.WorkingDir ?? '',
    Entrypoint: config.Entrypoint ?? null,
    OnBuild: config.OnBuild ?? null,
    Labels: config.Labels ?? null,
    ...(config.StopSignal ? { StopSignal: config.StopSignal } : {}),
    ...(config.StopTimeout !== undefined ? { StopTimeout: config.StopTimeout } : {}),
    ...(config.Shell?.length ? { Shell: config.Shell } : {}),
  };
}
