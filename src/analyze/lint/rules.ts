/**
 * Every rule `kiln lint` knows: its code, default level, where it comes from and a one-line description.
 * Codes are hadolint's `DLxxxx` where hadolint has the rule (same meaning, same default level), BuildKit's
 * check names where BuildKit has the check, ShellCheck's `SCxxxx` (found by running shellcheck, so not
 * listed one by one) and `KLxxx` for kiln's own.
 */

/** hadolint's levels, highest first; `ignore` means off unless a config turns it on. */
export type Level = 'error' | 'warning' | 'info' | 'style' | 'ignore';
export const LEVELS: readonly Level[] = ['error', 'warning', 'info', 'style', 'ignore'];

export type RuleSource = 'hadolint' | 'buildkit' | 'shellcheck' | 'kiln';

export interface RuleInfo {
  readonly code: string;
  readonly level: Level;
  readonly source: RuleSource;
  readonly description: string;
  /** The hadolint rule reporting the same fault: when both fire on a line, lint shows the hadolint one. */
  readonly twin?: string;
  /** Needs the base image in the store (kiln's image-aware rules). */
  readonly image?: boolean;
  /** Off unless named (BuildKit's experimental checks). */
  readonly experimental?: boolean;
}

const dl = (code: string, level: Level, description: string): RuleInfo => ({ code, level, source: 'hadolint', description });
const bk = (code: string, description: string, twin?: string): RuleInfo => ({ code, level: 'warning', source: 'buildkit', description, ...(twin ? { twin } : {}) });
const kl = (code: string, level: Level, description: string, image = false): RuleInfo => ({ code, level, source: 'kiln', description, ...(image ? { image } : {}) });

export const RULES: readonly RuleInfo[] = [
  dl('DL1000', 'error', 'The Dockerfile does not parse.'),
  dl('DL1001', 'ignore', 'Please refrain from using inline ignore pragmas `# hadolint ignore=DLxxxx`.'),
  dl('DL3000', 'error', 'Use absolute WORKDIR.'),
  dl('DL3001', 'info', 'For some bash commands it makes no sense running them in a Docker container like ssh, vim, shutdown, service, ps, free, top, kill, mount.'),
  dl('DL3002', 'warning', 'Last user should not be root.'),
  dl('DL3003', 'warning', 'Use WORKDIR to switch to a directory.'),
  dl('DL3004', 'error', 'Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root.'),
  dl('DL3006', 'warning', 'Always tag the version of an image explicitly.'),
  dl('DL3007', 'warning', 'Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag.'),
  dl('DL3008', 'warning', 'Pin versions in apt-get install.'),
  dl('DL3009', 'info', 'Delete the apt-get lists after installing something.'),
  dl('DL3010', 'info', 'Use ADD for extracting archives into an image.'),
  dl('DL3011', 'error', 'Valid UNIX ports range from 0 to 65535.'),
  dl('DL3012', 'error', 'Multiple HEALTHCHECK instructions.'),
  dl('DL3013', 'warning', 'Pin versions in pip.'),
  dl('DL3014', 'warning', 'Use the -y switch.'),
  dl('DL3015', 'info', 'Avoid additional packages by specifying --no-install-recommends.'),
  dl('DL3016', 'warning', 'Pin versions in npm.'),
  dl('DL3018', 'warning', 'Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`.'),
  dl('DL3019', 'info', 'Use the --no-cache switch to avoid the need to use --update and remove /var/cache/apk/* when done installing packages.'),
  dl('DL3020', 'error', 'Use COPY instead of ADD for files and folders.'),
  dl('DL3021', 'error', 'COPY with more than 2 arguments requires the last argument to end with /'),
  dl('DL3022', 'warning', 'COPY --from should reference a previously defined FROM alias'),
  dl('DL3023', 'error', 'COPY --from cannot reference its own FROM alias'),
  dl('DL3024', 'error', 'FROM aliases (stage names) must be unique'),
  dl('DL3025', 'warning', 'Use arguments JSON notation for CMD and ENTRYPOINT arguments'),
  dl('DL3026', 'error', 'Use only an allowed registry in the FROM image'),
  dl('DL3027', 'warning', 'Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead'),
  dl('DL3028', 'warning', 'Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`'),
  dl('DL3029', 'warning', 'Do not use --platform flag with FROM.'),
  dl('DL3030', 'warning', 'Use the -y switch to avoid manual input `yum install -y <package>`'),
  dl('DL3032', 'warning', '`yum clean all` missing after yum command.'),
  dl('DL3033', 'warning', 'Specify version with `yum install -y <package>-<version>`'),
  dl('DL3034', 'warning', 'Non-interactive switch missing from `zypper` command: `zypper install -y`'),
  dl('DL3035', 'warning', 'Do not use `zypper dist-upgrade`.'),
  dl('DL3036', 'warning', '`zypper clean` missing after zypper use.'),
  dl('DL3037', 'warning', 'Specify version with `zypper install -y <package>[=]<version>`.'),
  dl('DL3038', 'warning', 'Use the -y switch to avoid manual input `dnf install -y <package>`'),
  dl('DL3040', 'warning', '`dnf clean all` missing after dnf command.'),
  dl('DL3041', 'warning', 'Specify version with `dnf install -y <package>-<version>`'),
  dl('DL3042', 'warning', 'Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`'),
  dl('DL3043', 'error', '`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.'),
  dl('DL3044', 'error', 'Do not refer to an environment variable within the same `ENV` statement where it is defined.'),
  dl('DL3045', 'warning', '`COPY` to a relative destination without `WORKDIR` set.'),
  dl('DL3046', 'warning', '`useradd` without flag `-l` and high UID will result in excessively large Image.'),
  dl('DL3047', 'info', '`wget` without flag `--progress` will result in excessively bloated build logs when downloading larger files.'),
  dl('DL3048', 'style', 'Invalid label key.'),
  dl('DL3049', 'info', 'Label `<label>` is missing.'),
  dl('DL3050', 'info', 'Superfluous label(s) present.'),
  dl('DL3051', 'warning', 'Label `<label>` is empty.'),
  dl('DL3052', 'warning', 'Label `<label>` is not a valid URL.'),
  dl('DL3053', 'warning', 'Label `<label>` is not a valid time format - must conform to RFC3339.'),
  dl('DL3054', 'warning', 'Label `<label>` is not a valid SPDX license identifier.'),
  dl('DL3055', 'warning', 'Label `<label>` is not a valid git hash.'),
  dl('DL3056', 'warning', 'Label `<label>` does not conform to semantic versioning.'),
  dl('DL3057', 'ignore', '`HEALTHCHECK` instruction missing.'),
  dl('DL3058', 'warning', 'Label `<label>` is not a valid email format - must conform to RFC5322.'),
  dl('DL3059', 'info', 'Multiple consecutive `RUN` instructions. Consider consolidation.'),
  dl('DL3060', 'info', '`yarn cache clean` missing after `yarn install` was run.'),
  dl('DL3061', 'error', 'Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.'),
  dl('DL3062', 'warning', 'Pin versions in go install. Instead of `go install <package>` use `go install <package>@<version>`'),
  dl('DL3063', 'warning', 'Stage name should not be a reserved word'),
  dl('DL3064', 'warning', 'Potentially sensitive data should not be used in the `ARG` or `ENV` commands'),
  dl('DL3065', 'warning', 'Setting `FROM --platform` to predefined `$TARGETPLATFORM` is redundant as this is the default behavior'),
  dl('DL3066', 'info', 'Non-numeric user-id may not be resolvable by host system'),
  dl('DL3067', 'warning', 'Do not copy an entire filesystem from another stage'),
  dl('DL4000', 'error', 'MAINTAINER is deprecated'),
  dl('DL4001', 'warning', 'Either use Wget or Curl but not both'),
  dl('DL4003', 'warning', 'Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect'),
  dl('DL4004', 'error', 'Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect'),
  dl('DL4005', 'warning', 'Use SHELL to change the default shell'),
  dl('DL4006', 'warning', 'Set the SHELL option -o pipefail before RUN with a pipe in it'),

  bk('StageNameCasing', 'Stage names should be lowercase'),
  bk('FromAsCasing', "The 'as' keyword should match the case of the 'from' keyword"),
  bk('NoEmptyContinuation', 'Empty continuation lines will become errors in a future release'),
  bk('ConsistentInstructionCasing', 'All commands within the Dockerfile should use the same casing (either upper or lower)'),
  bk('DuplicateStageName', 'Stage names should be unique', 'DL3024'),
  bk('ReservedStageName', 'Reserved words should not be used as stage names', 'DL3063'),
  bk('JSONArgsRecommended', 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals', 'DL3025'),
  bk('MaintainerDeprecated', 'The MAINTAINER instruction is deprecated, use a label instead to define an image author', 'DL4000'),
  bk('UndefinedArgInFrom', 'FROM command must use declared ARGs'),
  bk('WorkdirRelativePath', 'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes'),
  bk('UndefinedVar', 'Variables should be defined before their use'),
  bk('MultipleInstructionsDisallowed', 'Multiple instructions of the same type should not be used in the same stage'),
  bk('LegacyKeyValueFormat', 'Legacy key/value format with whitespace separator should not be used'),
  bk('InvalidBaseImagePlatform', 'Base image platform does not match expected target platform'),
  bk('RedundantTargetPlatform', 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior', 'DL3065'),
  bk('SecretsUsedInArgOrEnv', 'Sensitive data should not be used in the ARG or ENV commands', 'DL3064'),
  bk('InvalidDefaultArgInFrom', 'Default value for global ARG results in an empty or invalid base image name'),
  bk('FromPlatformFlagConstDisallowed', 'FROM --platform flag should not use a constant value'),
  bk('ExposeProtoCasing', 'Protocol in EXPOSE instruction should be lowercase'),
  bk('ExposeInvalidFormat', 'IP address and host-port mapping should not be used in EXPOSE instruction'),
  { ...bk('CopyIgnoredFile', 'Attempting to Copy file that is excluded by .dockerignore'), experimental: true },

  kl('KL001', 'warning', 'The final stage runs as root although the image has a non-root user: add USER.', true),
  kl('KL002', 'info', 'The base image is far bigger than a slim or distroless variant already in the store.', true),
  kl('KL003', 'info', 'The base image is named by a mutable tag while its digest is known: pin it (name:tag@sha256:…).', true),
  kl('KL004', 'error', 'An ARG or ENV value looks like a secret (a token, a key or a password in a URL): it stays in the image.'),
  kl('KL005', 'warning', 'ADD of a URL without --checksum: the download is not verified and busts the cache unpredictably.'),
  kl('KL006', 'info', 'COPY of the whole context before the dependency manifests: every change to any file reinstalls the dependencies.'),
  kl('KL007', 'warning', 'The final stage holds compilers or -dev packages that only a build step needs: build in a stage of its own.'),
];

export const RULES_BY_CODE: ReadonlyMap<string, RuleInfo> = new Map(RULES.map((rule) => [rule.code, rule]));

/** Where a person reads more about a rule on the web ('' for kiln's own). */
export function ruleUrl(code: string): string {
  const rule = RULES_BY_CODE.get(code);
  if (/^SC\d+$/.test(code)) return `https://www.shellcheck.net/wiki/${code}`;
  if (!rule) return '';
  switch (rule.source) {
    case 'hadolint':
      return `https://github.com/hadolint/hadolint/wiki/${code}`;
    case 'buildkit':
      return `https://docs.docker.com/go/dockerfile/rule/${code.replace(/(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/g, '-').toLowerCase()}/`;
    default:
      return ''; // kiln's own rules are described by `kiln lint --list` and docs/lint.md
  }
}

/** A finding: a rule that fired at a place in a file. */
export interface Finding {
  readonly code: string;
  readonly level: Level;
  readonly message: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly endLine?: number;
}
