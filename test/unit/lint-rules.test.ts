import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EMPTY_CONFIG, parseLintConfig } from '../../src/analyze/lint/config.js';
import type { ImageFacts, LintOptions } from '../../src/analyze/lint/context.js';
import { applyPolicy, lintDockerfile } from '../../src/analyze/lint/lint.js';
import { RULES, RULES_BY_CODE } from '../../src/analyze/lint/rules.js';
import { shellcheckInputs } from '../../src/analyze/lint/shellcheck.js';

type Options = Partial<Omit<LintOptions, 'images'>> & { images?: Record<string, ImageFacts> };

function options(extra: Options = {}): LintOptions {
  return {
    file: 'Dockerfile',
    buildArgs: new Map(),
    platform: { os: 'linux', architecture: 'amd64' },
    trustedRegistries: [],
    labelSchema: new Map(),
    strictLabels: false,
    ...extra,
    images: new Map(Object.entries(extra.images ?? {})),
  };
}

/** `line:code` of every finding, with every rule on (off-by-default ones too) and the rule's twin left out. */
function findings(source: string, code: string, extra: Options = {}): string[] {
  const run = lintDockerfile(source, options(extra));
  const twin = RULES_BY_CODE.get(code)?.twin;
  return applyPolicy(run.findings, run.dockerfile, { config: EMPTY_CONFIG, ignore: twin ? [twin] : [], enable: [code] }).map((f) => `${f.line}:${f.code}`);
}

interface Case {
  readonly code: string;
  /** A Dockerfile that triggers the rule, and the line it must be reported on. */
  readonly bad: string;
  readonly line: number;
  /** Close variants that must not trigger it. */
  readonly good: readonly string[];
  readonly options?: Options;
  readonly goodOptions?: Options;
}

const SHA = 'sha256:' + 'a'.repeat(64);
const busybox = (config: ImageFacts['config'] = {}): ImageFacts => ({ config: { Env: ['PATH=/bin'], ...config }, os: 'linux', architecture: 'amd64' });

const CASES: readonly Case[] = [
  { code: 'DL1000', bad: 'FROM a:1\nFOO bar\n', line: 2, good: ['FROM a:1\nRUN true\n'] },
  { code: 'DL1001', bad: '# hadolint ignore=DL3006\nFROM debian\n', line: 1, good: ['# a comment\nFROM debian:12\n'] },
  { code: 'DL3000', bad: 'FROM a:1\nWORKDIR app\n', line: 2, good: ['FROM a:1\nWORKDIR /app\n', 'FROM a:1\nWORKDIR $HOME/app\n', 'FROM a:1\nWORKDIR "/app"\n'] },
  { code: 'DL3001', bad: 'FROM a:1\nRUN service nginx start\n', line: 2, good: ['FROM a:1\nRUN nginx -t && echo service\n'] },
  { code: 'DL3002', bad: 'FROM a:1 AS build\nUSER root\nFROM a:1\nUSER app\n', line: 2, good: ['FROM a:1\nUSER root\nRUN make\nUSER app\n', 'FROM a:1\nUSER 0:0\nRUN make\nUSER 1000\n'] },
  { code: 'DL3003', bad: 'FROM a:1\nRUN cd /tmp && make\n', line: 2, good: ['FROM a:1\nWORKDIR /tmp\nRUN make\n'] },
  { code: 'DL3004', bad: 'FROM a:1\nRUN sudo make install\n', line: 2, good: ['FROM a:1\nRUN make install && echo sudo\n'] },
  { code: 'DL3006', bad: 'FROM debian\n', line: 1, good: ['FROM debian:12\n', 'FROM debian:12 AS base\nFROM base\n', 'FROM scratch\n', 'ARG IMAGE=debian:12\nFROM ${IMAGE}\n', `FROM debian@${SHA}\n`] },
  { code: 'DL3007', bad: 'FROM debian:latest\n', line: 1, good: ['FROM debian:12\n', `FROM debian:latest@${SHA}\n`] },
  { code: 'DL3008', bad: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends curl\n', line: 2, good: ['FROM debian:12\nARG CURL_VERSION\nRUN apt-get install -y --no-install-recommends curl=${CURL_VERSION} ./local.deb /tmp/other.deb\n', 'FROM debian:12\nRUN apt-get install -y -o Dpkg::Options::=--force-confnew curl=7.88.1-10\n'] },
  {
    code: 'DL3009',
    bad: 'FROM debian:12\nRUN apt-get update && apt-get install -y curl=7.88.1\n',
    line: 2,
    good: [
      'FROM debian:12\nRUN apt-get update && apt-get install -y curl=7.88.1 && rm -rf /var/lib/apt/lists/*\n',
      'FROM debian:12\nRUN apt-get update && apt-get install -y curl=7.88.1 && apt-get clean\n',
      'FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update && apt-get install -y curl=7.88.1\n',
      'FROM debian:12 AS build\nRUN apt-get update && apt-get install -y gcc=12\nFROM scratch\nCOPY --from=build /x /x\n',
      'FROM debian:12\nRUN <<EOF\napt-get update\napt-get install -y curl=7.88.1\nrm -rf /var/lib/apt/lists/*\nEOF\n',
    ],
  },
  { code: 'DL3010', bad: 'FROM a:1\nCOPY app.tar.gz /tmp/\nRUN tar -xzf /tmp/app.tar.gz -C /opt\n', line: 2, good: ['FROM a:1\nADD app.tar.gz /opt/\n', 'FROM a:1\nCOPY app.tar.gz /srv/\n'] },
  { code: 'DL3011', bad: 'FROM a:1\nEXPOSE 80 65536\n', line: 2, good: ['FROM a:1\nEXPOSE 80 65535/udp 8000-8002\n'] },
  { code: 'DL3012', bad: 'FROM a:1\nHEALTHCHECK CMD a\nHEALTHCHECK CMD b\n', line: 3, good: ['FROM a:1 AS one\nHEALTHCHECK CMD a\nFROM a:1\nHEALTHCHECK CMD b\n'] },
  { code: 'DL3013', bad: 'FROM python:3\nRUN pip install --no-cache-dir flask\n', line: 2, good: ['FROM python:3\nRUN pip install --no-cache-dir flask==3.0.0 "django>=4" -r requirements.txt . ./pkg\n', 'FROM python:3\nARG V=1\nRUN python3 -m pip install --no-cache-dir flask==$V\n'] },
  { code: 'DL3014', bad: 'FROM debian:12\nRUN apt-get install curl=1\n', line: 2, good: ['FROM debian:12\nRUN apt-get install -qy curl=1\n', 'FROM debian:12\nRUN apt-get -qq install curl=1\n', 'FROM debian:12\nRUN apt-get install --yes curl=1\n'] },
  { code: 'DL3015', bad: 'FROM debian:12\nRUN apt-get install -y curl=1\n', line: 2, good: ['FROM debian:12\nRUN apt-get install -y --no-install-recommends curl=1\n'] },
  { code: 'DL3016', bad: 'FROM node:20\nRUN npm install express\n', line: 2, good: ['FROM node:20\nRUN npm install express@4.19.2 @types/node@20 ./local && npm ci && npm install\n'] },
  { code: 'DL3018', bad: 'FROM alpine:3\nRUN apk add --no-cache curl\n', line: 2, good: ['FROM alpine:3\nRUN apk add --no-cache curl=8.5.0-r0 ./local.apk\n'] },
  { code: 'DL3019', bad: 'FROM alpine:3\nRUN apk add curl=8.5.0-r0\n', line: 2, good: ['FROM alpine:3\nRUN apk add --no-cache curl=8.5.0-r0\n', 'FROM alpine:3\nRUN --mount=type=cache,target=/var/cache/apk apk add curl=8.5.0-r0\n'] },
  { code: 'DL3020', bad: 'FROM a:1\nADD app.py /app/\n', line: 2, good: ['FROM a:1\nADD --checksum=sha256:0 https://example.com/a.tgz /x/\n', 'FROM a:1\nADD app.tar.gz /x/\n', 'FROM a:1\nCOPY app.py /app/\n'] },
  { code: 'DL3021', bad: 'FROM a:1\nCOPY a b /dest\n', line: 2, good: ['FROM a:1\nCOPY a b /dest/\n', 'FROM a:1\nCOPY a /dest\n'] },
  { code: 'DL3022', bad: 'FROM a:1\nCOPY --from=builder /a /a\n', line: 2, good: ['FROM a:1 AS builder\nFROM a:1\nCOPY --from=builder /a /a\n', 'FROM a:1\nCOPY --from=nginx:1.25 /a /a\n', 'FROM a:1\nFROM a:1\nCOPY --from=0 /a /a\n'] },
  { code: 'DL3023', bad: 'FROM a:1 AS app\nCOPY --from=app /a /b\n', line: 2, good: ['FROM a:1 AS build\nFROM a:1 AS app\nCOPY --from=build /a /b\n'] },
  { code: 'DL3024', bad: 'FROM a:1 AS x\nFROM a:1 AS x\n', line: 2, good: ['FROM a:1 AS x\nFROM a:1 AS y\n'] },
  { code: 'DL3025', bad: 'FROM a:1\nCMD node server.js\n', line: 2, good: ['FROM a:1\nCMD ["node", "server.js"]\nENTRYPOINT ["tini", "--"]\n'] },
  { code: 'DL3026', bad: 'FROM debian:12\n', line: 1, good: ['FROM my.registry:5000/debian:12\n', 'FROM eu.gcr.io/x/debian:12\nCOPY --from=eu.gcr.io/y/tools:1 /t /t\n', 'FROM mirror.example/debian:12\n', 'FROM scratch\n', 'FROM my.registry:5000/debian:12 AS base\nFROM base\nCOPY --from=base /a /a\n'], options: { trustedRegistries: ['my.registry:5000', '*.gcr.io', 'mirror.*'] } },
  { code: 'DL3027', bad: 'FROM debian:12\nRUN apt install -y curl\n', line: 2, good: ['FROM debian:12\nRUN apt-get install -y curl=1\n'] },
  { code: 'DL3028', bad: 'FROM ruby:3\nRUN gem install rails\n', line: 2, good: ['FROM ruby:3\nRUN gem install rails:7.1.0 && gem install bundler -v 2.5.0\n'] },
  { code: 'DL3029', bad: 'FROM --platform=linux/amd64 debian:12\n', line: 1, good: ['FROM --platform=$BUILDPLATFORM debian:12\n'] },
  { code: 'DL3030', bad: 'FROM centos:7\nRUN yum install httpd-2.4.6 && yum clean all\n', line: 2, good: ['FROM centos:7\nRUN yum install -y httpd-2.4.6 && yum clean all\n'] },
  { code: 'DL3032', bad: 'FROM centos:7\nRUN yum install -y httpd-2.4.6\n', line: 2, good: ['FROM centos:7\nRUN yum install -y httpd-2.4.6 && yum clean all\n', 'FROM centos:7\nRUN yum install -y httpd-2.4.6 && rm -rf /var/cache/yum\n'] },
  { code: 'DL3033', bad: 'FROM centos:7\nRUN yum install -y httpd && yum clean all\n', line: 2, good: ['FROM centos:7\nRUN yum install -y httpd-2.4.6 ./local.rpm && yum clean all\n'] },
  { code: 'DL3034', bad: 'FROM opensuse/leap:15\nRUN zypper install httpd=2.4 && zypper clean\n', line: 2, good: ['FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4 && zypper clean\n', 'FROM opensuse/leap:15\nRUN zypper --non-interactive install httpd=2.4 && zypper clean\n'] },
  { code: 'DL3035', bad: 'FROM opensuse/leap:15\nRUN zypper dist-upgrade -y\n', line: 2, good: ['FROM opensuse/leap:15\nRUN zypper refresh\n'] },
  { code: 'DL3036', bad: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4\n', line: 2, good: ['FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4 && zypper clean\n'] },
  { code: 'DL3037', bad: 'FROM opensuse/leap:15\nRUN zypper install -y httpd && zypper clean\n', line: 2, good: ['FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4 "curl>=8" && zypper clean\n'] },
  { code: 'DL3038', bad: 'FROM fedora:40\nRUN dnf install httpd-2.4 && dnf clean all\n', line: 2, good: ['FROM fedora:40\nRUN dnf install -y httpd-2.4 && dnf clean all\n'] },
  { code: 'DL3040', bad: 'FROM fedora:40\nRUN dnf install -y httpd-2.4\n', line: 2, good: ['FROM fedora:40\nRUN dnf install -y httpd-2.4 && dnf clean all\n', 'FROM fedora:40\nRUN --mount=type=cache,target=/var/cache/dnf dnf install -y httpd-2.4\n'] },
  { code: 'DL3041', bad: 'FROM fedora:40\nRUN dnf install -y httpd && dnf clean all\n', line: 2, good: ['FROM fedora:40\nRUN dnf install -y httpd-2.4.6 && dnf clean all\n'] },
  { code: 'DL3042', bad: 'FROM python:3\nRUN pip install flask==3.0.0\n', line: 2, good: ['FROM python:3\nRUN pip install --no-cache-dir flask==3.0.0\n', 'FROM python:3\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask==3.0.0\n', 'FROM python:3\nRUN --mount=type=cache,target=/root/.cache/pip pip install flask==3.0.0\n'] },
  { code: 'DL3043', bad: 'FROM a:1\nONBUILD ONBUILD RUN x\n', line: 2, good: ['FROM a:1\nONBUILD RUN x\n'] },
  { code: 'DL3044', bad: 'FROM a:1\nENV A=1 B=$A\n', line: 2, good: ['FROM a:1\nENV A=1\nENV B=$A\n', 'FROM a:1\nENV A=0\nENV A=1 B=$A\n'] },
  { code: 'DL3045', bad: 'FROM a:1\nCOPY app.py app/\n', line: 2, good: ['FROM a:1\nWORKDIR /srv\nCOPY app.py app/\n', 'FROM a:1 AS base\nWORKDIR /srv\nFROM base\nCOPY app.py app/\n', 'FROM b:1\nCOPY app.py app/\n'], goodOptions: { images: { 'b:1': busybox({ WorkingDir: '/srv' }) } } },
  { code: 'DL3046', bad: 'FROM a:1\nRUN useradd -u 123456 app\n', line: 2, good: ['FROM a:1\nRUN useradd -l -u 123456 app\n', 'FROM a:1\nRUN useradd -u 1000 app\n'] },
  { code: 'DL3047', bad: 'FROM a:1\nRUN wget https://example.com/a\n', line: 2, good: ['FROM a:1\nRUN wget -q https://example.com/a\n', 'FROM a:1\nRUN wget --progress=dot:giga https://example.com/a\n'] },
  { code: 'DL3048', bad: 'FROM a:1\nLABEL Invalid_Key=1\n', line: 2, good: ['FROM a:1\nLABEL org.example.key=1 version=2\n'] },
  { code: 'DL3049', bad: 'FROM a:1\nLABEL other=1\n', line: 1, good: ['FROM a:1\nLABEL version=1.0.0\n', 'FROM a:1 AS base\nLABEL version=1.0.0\nFROM base\n', 'FROM a:1 AS base\nFROM base\nLABEL version=1.0.0\n', 'FROM a:1 AS build\nFROM b:1\nLABEL version=1.0.0\nCOPY --from=build /a /a\n'], options: { labelSchema: new Map([['version', 'semver']]) } },
  { code: 'DL3050', bad: 'FROM a:1\nLABEL version=1.0.0 extra=1\n', line: 2, good: ['FROM a:1\nLABEL version=1.0.0\n'], options: { labelSchema: new Map([['version', 'semver']]), strictLabels: true } },
  { code: 'DL3051', bad: 'FROM a:1\nLABEL maintainer=""\n', line: 2, good: ['FROM a:1\nLABEL maintainer="me"\n'], options: { labelSchema: new Map([['maintainer', 'text']]) } },
  { code: 'DL3052', bad: 'FROM a:1\nLABEL documentation=not-a-url\n', line: 2, good: ['FROM a:1\nLABEL documentation=https://example.com/docs\n'], options: { labelSchema: new Map([['documentation', 'url']]) } },
  { code: 'DL3053', bad: 'FROM a:1\nLABEL created=yesterday\n', line: 2, good: ['FROM a:1\nLABEL created=2024-01-02T03:04:05Z\n', 'FROM a:1\nARG NOW\nLABEL created=$NOW\n'], options: { labelSchema: new Map([['created', 'rfc3339']]) } },
  { code: 'DL3054', bad: 'FROM a:1\nLABEL license=Apache2\n', line: 2, good: ['FROM a:1\nLABEL license=Apache-2.0\n', 'FROM a:1\nLABEL license=BSD-2-Clause-Patent\n'], options: { labelSchema: new Map([['license', 'spdx']]) } },
  { code: 'DL3055', bad: 'FROM a:1\nLABEL git-revision=abc12345\n', line: 2, good: ['FROM a:1\nLABEL git-revision=abc1234\n', `FROM a:1\nLABEL git-revision=${'0123456789abcdef0123'.repeat(2)}\n`], options: { labelSchema: new Map([['git-revision', 'hash']]) } },
  { code: 'DL3056', bad: 'FROM a:1\nLABEL version=1.0\n', line: 2, good: ['FROM a:1\nLABEL version=1.0.0-rc.1\n'], options: { labelSchema: new Map([['version', 'semver']]) } },
  { code: 'DL3057', bad: 'FROM a:1\nCMD ["x"]\n', line: 1, good: ['FROM a:1\nHEALTHCHECK CMD ["x"]\n', 'FROM a:1 AS base\nHEALTHCHECK CMD ["x"]\nFROM base\n', 'FROM a:1 AS base\nFROM base\nHEALTHCHECK CMD ["x"]\n'] },
  { code: 'DL3058', bad: 'FROM a:1\nLABEL contact=nobody\n', line: 2, good: ['FROM a:1\nLABEL contact=me@example.com\n'], options: { labelSchema: new Map([['contact', 'email']]) } },
  { code: 'DL3059', bad: 'FROM a:1\nRUN a\nRUN b\n', line: 3, good: ['FROM a:1\nRUN a && b\n', 'FROM a:1\nRUN a\nRUN --mount=type=cache,target=/c b\n', 'FROM a:1\nRUN a\nENV X=1\nRUN b\n'] },
  { code: 'DL3060', bad: 'FROM node:20\nRUN yarn install\n', line: 2, good: ['FROM node:20\nRUN yarn install && yarn cache clean\n'] },
  { code: 'DL3061', bad: 'LABEL a=b\nFROM a:1\n', line: 1, good: ['ARG X=1\nFROM a:1\n'] },
  { code: 'DL3062', bad: 'FROM golang:1.22\nRUN go install example.com/tool\n', line: 2, good: ['FROM golang:1.22\nRUN go install example.com/tool@v1.2.3 && go install ./cmd/...\n'] },
  { code: 'DL3063', bad: 'FROM a:1 AS scratch\n', line: 1, good: ['FROM a:1 AS build\n'] },
  { code: 'DL3064', bad: 'FROM a:1\nARG DB_PASSWORD\n', line: 2, good: ['FROM a:1\nARG DB_HOST\nENV KEYBOARD=us\n'] },
  { code: 'DL3064', bad: 'FROM a:1\nENV PATH=/bin AWS_ACCESS_KEY_ID=x\n', line: 2, good: ['FROM a:1\nENV AWS_REGION=eu-west-1\n'] },
  { code: 'DL3065', bad: 'FROM --platform=$TARGETPLATFORM a:1\n', line: 1, good: ['FROM --platform=$BUILDPLATFORM a:1\n'] },
  { code: 'DL3066', bad: 'FROM a:1\nUSER app\n', line: 2, good: ['FROM a:1\nUSER 1000:1000\n', 'FROM a:1\nARG UID=1000\nUSER ${UID}:1000\n', 'ARG UID=1000\nFROM a:1\nUSER $UID\n'] },
  { code: 'DL3067', bad: 'FROM a:1 AS build\nFROM scratch\nCOPY --from=build / /\n', line: 3, good: ['FROM a:1 AS build\nFROM scratch\nCOPY --from=build /app /app\n', 'FROM scratch\nCOPY / /\n'] },
  { code: 'DL4000', bad: 'FROM a:1\nMAINTAINER me\n', line: 2, good: ['FROM a:1\nLABEL maintainer=me\n'] },
  { code: 'DL4001', bad: 'FROM a:1\nRUN wget -q https://a\nRUN curl -fsS https://b\n', line: 3, good: ['FROM a:1\nRUN curl -fsS https://a\nRUN curl -fsS https://b\n', 'FROM a:1 AS one\nRUN wget -q https://a\nFROM a:1\nRUN curl -fsS https://b\n'] },
  { code: 'DL4003', bad: 'FROM a:1\nCMD ["a"]\nCMD ["b"]\n', line: 3, good: ['FROM a:1 AS x\nCMD ["a"]\nFROM a:1\nCMD ["b"]\n'] },
  { code: 'DL4004', bad: 'FROM a:1\nENTRYPOINT ["a"]\nENTRYPOINT ["b"]\n', line: 3, good: ['FROM a:1\nENTRYPOINT ["a"]\nCMD ["b"]\n'] },
  { code: 'DL4005', bad: 'FROM a:1\nRUN ln -sf /bin/bash /bin/sh\n', line: 2, good: ['FROM a:1\nSHELL ["/bin/bash", "-c"]\nRUN ln -s /bin/bash /usr/local/bin/sh2\n'] },
  { code: 'DL4006', bad: 'FROM a:1\nRUN curl -fsS https://a | tar x\n', line: 2, good: ['FROM a:1\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN curl -fsS https://a | tar x\n', 'FROM a:1\nRUN a || b 2>&1\n', 'FROM a:1\nRUN set -o pipefail && curl -fsS https://a | tar x\n'] },

  { code: 'StageNameCasing', bad: 'FROM a:1 AS Build\n', line: 1, good: ['FROM a:1 AS build\n'] },
  { code: 'FromAsCasing', bad: 'FROM a:1 as b\n', line: 1, good: ['FROM a:1 AS b\n', 'from a:1 as b\n'] },
  { code: 'NoEmptyContinuation', bad: 'FROM a:1\nRUN echo a \\\n\n  b\n', line: 2, good: ['FROM a:1\nRUN echo a \\\n  b\n'] },
  { code: 'ConsistentInstructionCasing', bad: 'FROM a:1\nRUN true\nrun false\n', line: 3, good: ['FROM a:1\nRUN true\n', 'from a:1\nrun true\n'] },
  { code: 'DuplicateStageName', bad: 'FROM a:1 AS x\nFROM a:1 AS x\n', line: 2, good: ['FROM a:1 AS x\nFROM a:1 AS y\n'] },
  { code: 'ReservedStageName', bad: 'FROM a:1 AS context\n', line: 1, good: ['FROM a:1 AS ctx\n'] },
  { code: 'JSONArgsRecommended', bad: 'FROM a:1\nCMD echo hi\n', line: 2, good: ['FROM a:1\nCMD ["echo", "hi"]\n', 'FROM a:1\nSHELL ["/bin/sh", "-c"]\nCMD echo hi\n'] },
  { code: 'MaintainerDeprecated', bad: 'FROM a:1\nMAINTAINER me\n', line: 2, good: ['FROM a:1\nLABEL org.opencontainers.image.authors=me\n'] },
  { code: 'UndefinedArgInFrom', bad: 'FROM busybox:$VERSION\n', line: 1, good: ['ARG VERSION=1.36\nFROM busybox:$VERSION\n', 'FROM --platform=$BUILDPLATFORM busybox:1\n'] },
  { code: 'WorkdirRelativePath', bad: 'FROM a:1\nWORKDIR app\n', line: 2, good: ['FROM a:1\nWORKDIR /srv\nWORKDIR app\n', 'FROM a:1 AS base\nWORKDIR /srv\nFROM base\nWORKDIR app\n'] },
  { code: 'UndefinedVar', bad: 'FROM scratch\nCOPY $SRC /x\n', line: 2, good: ['FROM scratch\nARG SRC=a\nCOPY $SRC /x\n', 'FROM scratch\nCOPY ${SRC:-a} /x\n', 'FROM b:1\nENV P=$HOME/bin\n', 'FROM unknown:1\nENV P=$HOME/bin\n'], goodOptions: { images: { 'b:1': busybox({ Env: ['PATH=/bin', 'HOME=/root'] }) } } },
  { code: 'MultipleInstructionsDisallowed', bad: 'FROM a:1\nCMD ["a"]\nCMD ["b"]\n', line: 2, good: ['FROM a:1\nCMD ["a"]\n'] },
  { code: 'LegacyKeyValueFormat', bad: 'FROM a:1\nENV A 1\n', line: 2, good: ['FROM a:1\nENV A=1\n'] },
  { code: 'InvalidBaseImagePlatform', bad: 'FROM b:1\n', line: 1, good: ['FROM c:1\n'], options: { images: { 'b:1': { config: {}, os: 'linux', architecture: 'arm64' }, 'c:1': busybox() } } },
  { code: 'RedundantTargetPlatform', bad: 'FROM --platform=$TARGETPLATFORM a:1\n', line: 1, good: ['FROM --platform=$BUILDPLATFORM a:1\n'] },
  { code: 'SecretsUsedInArgOrEnv', bad: 'FROM a:1\nARG API_KEY\n', line: 2, good: ['FROM a:1\nARG PUBLIC_KEY\nARG KEY_FILE\nENV MONKEY=1\n'] },
  { code: 'InvalidDefaultArgInFrom', bad: 'ARG TAG\nFROM busybox:${TAG}\n', line: 2, good: ['ARG TAG=1.36\nFROM busybox:${TAG}\n'] },
  { code: 'FromPlatformFlagConstDisallowed', bad: 'FROM --platform=linux/amd64 a:1\n', line: 1, good: ['FROM --platform=$BUILDPLATFORM a:1\n'] },
  { code: 'ExposeProtoCasing', bad: 'FROM a:1\nEXPOSE 80/TCP\n', line: 2, good: ['FROM a:1\nEXPOSE 80/tcp\n'] },
  { code: 'ExposeInvalidFormat', bad: 'FROM a:1\nEXPOSE 127.0.0.1:80:80\n', line: 2, good: ['FROM a:1\nEXPOSE 80\n'] },
  { code: 'CopyIgnoredFile', bad: 'FROM a:1\nCOPY secret.txt /x\n', line: 2, good: ['FROM a:1\nCOPY app.txt /x\n'], options: { ignored: (path) => path === 'secret.txt' } },

  { code: 'KL001', bad: 'FROM b:1\nCMD ["x"]\n', line: 1, good: ['FROM b:1\nUSER app\nCMD ["x"]\n', 'FROM c:1\nCMD ["x"]\n'], options: { images: { 'b:1': { ...busybox(), users: [{ name: 'root', uid: 0 }, { name: 'app', uid: 1000 }, { name: 'nobody', uid: 65534 }] }, 'c:1': { ...busybox(), users: [{ name: 'root', uid: 0 }, { name: 'nobody', uid: 65534 }] } } } },
  { code: 'KL002', bad: 'FROM big:1\n', line: 1, good: ['FROM small:1\n'], options: { images: { 'big:1': { ...busybox(), size: 100e6, smaller: { ref: 'big:1-slim', size: 20e6 } }, 'small:1': { ...busybox(), size: 20e6 } } } },
  { code: 'KL003', bad: 'FROM b:1\n', line: 1, good: [`FROM b:1@${SHA}\n`, 'FROM c:1\n'], options: { images: { 'b:1': { ...busybox(), pinned: `b:1@${SHA}` }, [`b:1@${SHA}`]: { ...busybox(), pinned: `b:1@${SHA}` }, 'c:1': busybox() } } },
  { code: 'KL004', bad: 'FROM a:1\nENV DATABASE_URL=postgres://app:s3cret@db/app\n', line: 2, good: ['FROM a:1\nENV DATABASE_URL=postgres://db/app\nARG GREETING=hello\n'] },
  { code: 'KL005', bad: 'FROM a:1\nADD https://example.com/a.tgz /x/\n', line: 2, good: [`FROM a:1\nADD --checksum=${SHA} https://example.com/a.tgz /x/\n`] },
  { code: 'KL006', bad: 'FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n', line: 3, good: ['FROM node:20\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .\n', 'FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm run build\n'] },
  { code: 'KL007', bad: 'FROM debian:12\nRUN apt-get install -y gcc libssl-dev\n', line: 2, good: ['FROM debian:12 AS build\nRUN apt-get install -y gcc libssl-dev\nFROM debian:12\nCOPY --from=build /out /out\n', 'FROM debian:12\nRUN apt-get install -y gcc && make && apt-get purge -y gcc\n', 'FROM alpine:3\nRUN apk add --virtual .build gcc musl-dev && make && apk del .build\n'] },
];

describe('lint rules: each triggers on its case and not on close variants', () => {
  it('has a case for every rule kiln lint knows', () => {
    const covered = new Set(CASES.map((c) => c.code));
    assert.deepEqual(RULES.map((r) => r.code).filter((code) => !covered.has(code)), []);
  });
  for (const testCase of CASES) {
    it(`${testCase.code}: ${RULES_BY_CODE.get(testCase.code)?.description ?? ''}`, () => {
      assert.ok(findings(testCase.bad, testCase.code, testCase.options).includes(`${testCase.line}:${testCase.code}`), `${testCase.code} not found at line ${testCase.line} in:\n${testCase.bad}\nfound: ${findings(testCase.bad, testCase.code, testCase.options).join(' ')}`);
      for (const good of testCase.good) {
        const found = findings(good, testCase.code, { ...testCase.options, ...testCase.goodOptions }).filter((f) => f.endsWith(`:${testCase.code}`));
        assert.deepEqual(found, [], `${testCase.code} fired on:\n${good}`);
      }
    });
  }
});

/** The DL codes and lines of a Dockerfile (ShellCheck and the other sources aside), hadolint's levels, or those a `.hadolint.yaml` sets. */
function dlFindings(source: string, hadolintYaml?: string): string[] {
  const config = hadolintYaml === undefined ? EMPTY_CONFIG : parseLintConfig(hadolintYaml, '.hadolint.yaml');
  const run = lintDockerfile(source, options({ trustedRegistries: config.trustedRegistries, labelSchema: config.labelSchema, strictLabels: config.strictLabels }));
  return applyPolicy(run.findings, run.dockerfile, { config, ignore: [] })
    .filter((f) => f.code.startsWith('DL'))
    .map((f) => `${f.line}:${f.code}`);
}

// hadolint's rule pages show a problematic Dockerfile and its correction; these restate them in kiln's words.
// `config` is the .hadolint.yaml a rule needs to be on (label-schema, strict-labels, trustedRegistries, or an
// override for the rules off by default).
const DOCUMENTED: readonly { readonly rule: string; readonly config?: string; readonly problem: string; readonly expected: readonly string[]; readonly fixed: string }[] = [
  { rule: 'DL1000', problem: 'FROM debian:12\nRUNN echo hi\n', expected: ['2:DL1000'], fixed: 'FROM debian:12\nRUN echo hi\n' },
  { rule: 'DL1000', problem: 'FROM debian:12\nEXPOSE\n', expected: ['2:DL1000'], fixed: 'FROM debian:12\nEXPOSE 8080\n' },
  { rule: 'DL1001', config: 'override:\n  warning:\n    - DL1001\n', problem: '# hadolint ignore=DL3006\nFROM debian\n', expected: ['1:DL1001'], fixed: 'FROM debian:12\n' },
  { rule: 'DL3000', problem: 'FROM busybox:1.36\nWORKDIR usr/src/app\n', expected: ['2:DL3000'], fixed: 'FROM busybox:1.36\nWORKDIR /usr/src/app\n' },
  { rule: 'DL3001', problem: 'FROM busybox:1.36\nRUN top\n', expected: ['2:DL3001'], fixed: 'FROM busybox:1.36\nRUN echo top\n' },
  { rule: 'DL3002', problem: 'FROM busybox:1.36\nUSER root\nRUN whoami\n', expected: ['2:DL3002', '2:DL3066'], fixed: 'FROM busybox:1.36\nUSER 0\nRUN whoami\nUSER 405\n' },
  { rule: 'DL3003', problem: 'FROM busybox:1.36\nRUN cd /usr/src/app && git clone git@github.com:x/y.git\n', expected: ['2:DL3003'], fixed: 'FROM busybox:1.36\nWORKDIR /usr/src/app\nRUN git clone git@github.com:x/y.git\n' },
  { rule: 'DL3004', problem: 'FROM debian:12\nRUN sudo apt-get install\n', expected: ['2:DL3004'], fixed: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends\n' },
  { rule: 'DL3006', problem: 'FROM debian\n', expected: ['1:DL3006'], fixed: 'FROM debian:12\n' },
  { rule: 'DL3007', problem: 'FROM debian:latest\n', expected: ['1:DL3007'], fixed: 'FROM debian:12\n' },
  { rule: 'DL3008', problem: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends python3\n', expected: ['2:DL3008'], fixed: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends python3=3.11.2-1\n' },
  { rule: 'DL3009', problem: 'FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends python3=3.11.2-1\n', expected: ['2:DL3009'], fixed: 'FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends python3=3.11.2-1 \\\n && apt-get clean \\\n && rm -rf /var/lib/apt/lists/*\n' },
  { rule: 'DL3010', problem: 'FROM debian:12\nCOPY rootfs.tar.xz /\nRUN tar xf /rootfs.tar.xz\n', expected: ['2:DL3010'], fixed: 'FROM debian:12\nADD rootfs.tar.xz /\n' },
  { rule: 'DL3011', problem: 'FROM busybox:1.36\nEXPOSE 80000\n', expected: ['2:DL3011'], fixed: 'FROM busybox:1.36\nEXPOSE 65535\n' },
  { rule: 'DL3012', problem: 'FROM busybox:1.36\nHEALTHCHECK CMD /bin/check-a\nHEALTHCHECK CMD /bin/check-b\n', expected: ['3:DL3012'], fixed: 'FROM busybox:1.36\nHEALTHCHECK CMD /bin/check-b\n' },
  { rule: 'DL3013', problem: 'FROM python:3.12\nRUN pip install --no-cache-dir django\n', expected: ['2:DL3013'], fixed: 'FROM python:3.12\nRUN pip install --no-cache-dir django==5.0.1\n' },
  { rule: 'DL3014', problem: 'FROM debian:12\nRUN apt-get install --no-install-recommends python3=3.11.2-1\n', expected: ['2:DL3014'], fixed: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends python3=3.11.2-1\n' },
  { rule: 'DL3015', problem: 'FROM debian:12\nRUN apt-get install -y python3=3.11.2-1\n', expected: ['2:DL3015'], fixed: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends python3=3.11.2-1\n' },
  { rule: 'DL3016', problem: 'FROM node:20\nRUN npm install express\n', expected: ['2:DL3016'], fixed: 'FROM node:20\nRUN npm install express@4.1.1\n' },
  { rule: 'DL3018', problem: 'FROM alpine:3.19\nRUN apk --no-cache add foo\n', expected: ['2:DL3018'], fixed: 'FROM alpine:3.19\nRUN apk --no-cache add foo=~1.23\n' },
  { rule: 'DL3019', problem: 'FROM alpine:3.19\nRUN apk add foo=1.0\n', expected: ['2:DL3019'], fixed: 'FROM alpine:3.19\nRUN apk add --no-cache foo=1.0\n' },
  { rule: 'DL3020', problem: 'FROM python:3.12\nADD requirements.txt /usr/src/app/\n', expected: ['2:DL3020'], fixed: 'FROM python:3.12\nCOPY requirements.txt /usr/src/app/\n' },
  { rule: 'DL3021', problem: 'FROM node:20\nCOPY package.json yarn.lock /my_app\n', expected: ['2:DL3021'], fixed: 'FROM node:20\nCOPY package.json yarn.lock /my_app/\n' },
  { rule: 'DL3022', problem: 'FROM debian:12\nCOPY --from=builder /usr/src/app/app /app\n', expected: ['2:DL3022'], fixed: 'FROM debian:12 AS builder\nFROM debian:12\nCOPY --from=builder /usr/src/app/app /app\n' },
  { rule: 'DL3023', problem: 'FROM debian:12 AS build\nCOPY --from=build /a /b\n', expected: ['2:DL3023'], fixed: 'FROM debian:12 AS build\nFROM debian:12\nCOPY --from=build /a /b\n' },
  { rule: 'DL3024', problem: 'FROM debian:12 AS builder\nFROM debian:12 AS builder\n', expected: ['2:DL3024'], fixed: 'FROM debian:12 AS builder\nFROM debian:12 AS builder2\n' },
  { rule: 'DL3025', problem: 'FROM busybox:1.36\nCMD my-service server\n', expected: ['2:DL3025'], fixed: 'FROM busybox:1.36\nCMD ["my-service", "server"]\n' },
  { rule: 'DL3026', config: 'trustedRegistries:\n  - my-company.com\n', problem: 'FROM randomguy/python:3.12\n', expected: ['1:DL3026'], fixed: 'FROM my-company.com/python:3.12\n' },
  { rule: 'DL3026', config: 'trustedRegistries:\n  - docker.io\n', problem: 'FROM quay.io/prometheus/busybox:1.36\n', expected: ['1:DL3026'], fixed: 'FROM busybox:1.36 AS base\nFROM docker.io/library/busybox:1.36\nCOPY --from=base /bin/busybox /bin/\n' },
  { rule: 'DL3027', problem: 'FROM debian:12\nRUN apt install -y --no-install-recommends curl=7.88.1-10\n', expected: ['2:DL3027'], fixed: 'FROM debian:12\nRUN apt-get install -y --no-install-recommends curl=7.88.1-10\n' },
  { rule: 'DL3028', problem: 'FROM ruby:3.3\nRUN gem install bundler\n', expected: ['2:DL3028'], fixed: 'FROM ruby:3.3\nRUN gem install bundler:2.0.2\n' },
  { rule: 'DL3029', problem: 'FROM --platform=linux/amd64 debian:12\n', expected: ['1:DL3029'], fixed: 'FROM debian:12\n' },
  { rule: 'DL3030', problem: 'FROM centos:7\nRUN yum install httpd-2.24.2 && yum clean all\n', expected: ['2:DL3030'], fixed: 'FROM centos:7\nRUN yum install -y httpd-2.24.2 && yum clean all\n' },
  { rule: 'DL3032', problem: 'FROM centos:7\nRUN yum install -y httpd-2.24.2\n', expected: ['2:DL3032'], fixed: 'FROM centos:7\nRUN yum install -y httpd-2.24.2 && yum clean all\n' },
  { rule: 'DL3033', problem: 'FROM centos:7\nRUN yum install -y httpd && yum clean all\n', expected: ['2:DL3033'], fixed: 'FROM centos:7\nRUN yum install -y httpd-2.24.2 && yum clean all\n' },
  { rule: 'DL3034', problem: 'FROM opensuse/leap:15\nRUN zypper install httpd=2.4.46 && zypper clean\n', expected: ['2:DL3034'], fixed: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4.46 && zypper clean\n' },
  { rule: 'DL3035', problem: 'FROM opensuse/leap:15\nRUN zypper dist-upgrade -y\n', expected: ['2:DL3035'], fixed: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4.46 && zypper clean\n' },
  { rule: 'DL3036', problem: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4.46\n', expected: ['2:DL3036'], fixed: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4.46 && zypper clean\n' },
  { rule: 'DL3037', problem: 'FROM opensuse/leap:15\nRUN zypper install -y httpd && zypper clean\n', expected: ['2:DL3037'], fixed: 'FROM opensuse/leap:15\nRUN zypper install -y httpd=2.4.46 && zypper clean\n' },
  { rule: 'DL3038', problem: 'FROM fedora:39\nRUN dnf install httpd-2.24.2 && dnf clean all\n', expected: ['2:DL3038'], fixed: 'FROM fedora:39\nRUN dnf install -y httpd-2.24.2 && dnf clean all\n' },
  { rule: 'DL3040', problem: 'FROM fedora:39\nRUN dnf install -y httpd-2.24.2\n', expected: ['2:DL3040'], fixed: 'FROM fedora:39\nRUN dnf install -y httpd-2.24.2 && dnf clean all\n' },
  { rule: 'DL3041', problem: 'FROM fedora:39\nRUN dnf install -y httpd && dnf clean all\n', expected: ['2:DL3041'], fixed: 'FROM fedora:39\nRUN dnf install -y httpd-2.24.2 && dnf clean all\n' },
  { rule: 'DL3042', problem: 'FROM python:3.12\nRUN pip install django==5.0.1\n', expected: ['2:DL3042'], fixed: 'FROM python:3.12\nRUN pip install --no-cache-dir django==5.0.1\n' },
  { rule: 'DL3043', problem: 'FROM debian:12\nONBUILD FROM debian:12\n', expected: ['2:DL3043'], fixed: 'FROM debian:12\nONBUILD RUN echo built\n' },
  { rule: 'DL3044', problem: 'FROM debian:12\nENV BLA=blubb BLUBB="${BLA}/blubb"\n', expected: ['2:DL3044'], fixed: 'FROM debian:12\nENV BLA=blubb\nENV BLUBB="${BLA}/blubb"\n' },
  { rule: 'DL3045', problem: 'FROM scratch\nCOPY bla.sh bla.sh\n', expected: ['2:DL3045'], fixed: 'FROM scratch\nWORKDIR /usr/src/app\nCOPY bla.sh bla.sh\n' },
  { rule: 'DL3046', problem: 'FROM debian:12\nRUN useradd -u 123456 foobar\n', expected: ['2:DL3046'], fixed: 'FROM debian:12\nRUN useradd -l -u 123456 foobar\n' },
  { rule: 'DL3047', problem: 'FROM debian:12\nRUN wget http://example.com/file\n', expected: ['2:DL3047'], fixed: 'FROM debian:12\nRUN wget --progress=dot:giga http://example.com/file\n' },
  { rule: 'DL3048', problem: 'FROM debian:12\nLABEL com.docker.image.key=value\n', expected: ['2:DL3048'], fixed: 'FROM debian:12\nLABEL org.example.image.key=value\n' },
  { rule: 'DL3049', config: 'label-schema:\n  version: text\n', problem: 'FROM busybox:1.36\n', expected: ['1:DL3049'], fixed: 'FROM busybox:1.36\nLABEL version="1.0.1"\n' },
  { rule: 'DL3049', config: 'label-schema:\n  version: text\n', problem: 'FROM golang:1.22 AS build\nFROM busybox:1.36\nCOPY --from=build /out /app\n', expected: ['2:DL3049'], fixed: 'FROM golang:1.22 AS build\nFROM busybox:1.36\nLABEL version="1.0.1"\nCOPY --from=build /out /app\n' },
  { rule: 'DL3050', config: 'strict-labels: true\nlabel-schema:\n  version: text\n', problem: 'FROM busybox:1.36\nLABEL version="1.0.1" superfluous="this should not be here"\n', expected: ['2:DL3050'], fixed: 'FROM busybox:1.36\nLABEL version="1.0.1"\n' },
  { rule: 'DL3051', config: 'label-schema:\n  oopsie: text\n', problem: 'FROM busybox:1.36\nLABEL oopsie=""\n', expected: ['2:DL3051'], fixed: 'FROM busybox:1.36\nLABEL oopsie="whoopsie"\n' },
  { rule: 'DL3052', config: 'label-schema:\n  documentation: url\n', problem: 'FROM busybox:1.36\nLABEL documentation="not a url"\n', expected: ['2:DL3052'], fixed: 'FROM busybox:1.36\nLABEL documentation="https://example.com/docs"\n' },
  { rule: 'DL3053', config: 'label-schema:\n  created: rfc3339\n', problem: 'FROM busybox:1.36\nLABEL created="10.03.2021"\n', expected: ['2:DL3053'], fixed: 'FROM busybox:1.36\nLABEL created="2021-03-10T10:26:33.564595127+01:00"\n' },
  { rule: 'DL3054', config: 'label-schema:\n  license: spdx\n', problem: 'FROM busybox:1.36\nLABEL license="Thou shall not copyright infringe"\n', expected: ['2:DL3054'], fixed: 'FROM busybox:1.36\nLABEL license="BSD-3-Clause"\n' },
  { rule: 'DL3055', config: 'label-schema:\n  git-revision: hash\n', problem: 'FROM busybox:1.36\nLABEL git-revision="not-a-hash"\n', expected: ['2:DL3055'], fixed: 'FROM busybox:1.36\nLABEL git-revision="2dbfae9"\n' },
  { rule: 'DL3056', config: 'label-schema:\n  version: semver\n', problem: 'FROM busybox:1.36\nLABEL version="something-other-than-a-version-number"\n', expected: ['2:DL3056'], fixed: 'FROM busybox:1.36\nLABEL version="1.0.0-rc1"\n' },
  { rule: 'DL3057', config: 'override:\n  warning:\n    - DL3057\n', problem: 'FROM busybox:1.36\nCMD ["httpd", "-f"]\n', expected: ['1:DL3057'], fixed: 'FROM busybox:1.36\nHEALTHCHECK CMD ["wget", "-q", "--spider", "http://localhost/"]\nCMD ["httpd", "-f"]\n' },
  { rule: 'DL3058', config: 'label-schema:\n  maintainer: email\n', problem: 'FROM busybox:1.36\nLABEL maintainer="not an email"\n', expected: ['2:DL3058'], fixed: 'FROM busybox:1.36\nLABEL maintainer="me@example.com"\n' },
  { rule: 'DL3059', problem: 'FROM busybox:1.36\nRUN echo one\nRUN echo two\n', expected: ['3:DL3059'], fixed: 'FROM busybox:1.36\nRUN echo one && echo two\n' },
  { rule: 'DL3060', problem: 'FROM node:20\nRUN yarn install\n', expected: ['2:DL3060'], fixed: 'FROM node:20\nRUN yarn install && yarn cache clean\n' },
  { rule: 'DL3061', problem: 'LABEL foo=bar\nFROM debian:12\n', expected: ['1:DL3061'], fixed: 'FROM debian:12\nLABEL foo=bar\n' },
  { rule: 'DL3062', problem: 'FROM golang:1.22\nRUN go install example.com/tool\n', expected: ['2:DL3062'], fixed: 'FROM golang:1.22\nRUN go install example.com/tool@v1.2.3\n' },
  { rule: 'DL3063', problem: 'FROM busybox:1.36 AS scratch\n', expected: ['1:DL3063'], fixed: 'FROM busybox:1.36 AS base\n' },
  { rule: 'DL3064', problem: 'FROM busybox:1.36\nENV GITHUB_TOKEN=ghp_0000\n', expected: ['2:DL3064'], fixed: 'FROM busybox:1.36\nRUN --mount=type=secret,id=github_token wc -c /run/secrets/github_token\n' },
  { rule: 'DL3064', problem: 'FROM busybox:1.36\nARG AWS_ACCESS_KEY_ID\n', expected: ['2:DL3064'], fixed: 'FROM busybox:1.36\nARG AWS_REGION\n' },
  { rule: 'DL3065', problem: 'FROM --platform=$TARGETPLATFORM debian:12\n', expected: ['1:DL3065'], fixed: 'FROM debian:12\n' },
  { rule: 'DL3066', problem: 'FROM busybox:1.36\nUSER nobody\n', expected: ['2:DL3066'], fixed: 'FROM busybox:1.36\nUSER 65534\n' },
  { rule: 'DL3067', problem: 'FROM debian:12 AS build\nRUN make\nFROM busybox:1.36\nCOPY --from=build / /\n', expected: ['4:DL3067'], fixed: 'FROM debian:12 AS build\nRUN make\nFROM busybox:1.36\nCOPY --from=build /usr/src/app/out /app/\n' },
  { rule: 'DL4000', problem: 'FROM busybox:1.36\nMAINTAINER Lukas <me@lukasmartinelli.ch>\n', expected: ['2:DL4000'], fixed: 'FROM busybox:1.36\nLABEL maintainer="Lukas <me@lukasmartinelli.ch>"\n' },
  { rule: 'DL4001', problem: 'FROM debian:12\nRUN wget --progress=dot:giga http://example.com/a && curl -fsSL http://example.com/b\n', expected: ['2:DL4001'], fixed: 'FROM debian:12\nRUN curl -fsSL http://example.com/a && curl -fsSL http://example.com/b\n' },
  { rule: 'DL4003', problem: 'FROM busybox:1.36\nCMD ["echo", "a"]\nCMD ["echo", "b"]\n', expected: ['3:DL4003'], fixed: 'FROM busybox:1.36\nCMD ["echo", "b"]\n' },
  { rule: 'DL4004', problem: 'FROM debian:12\nENTRYPOINT ["a"]\nENTRYPOINT ["b"]\n', expected: ['3:DL4004'], fixed: 'FROM debian:12\nENTRYPOINT ["b"]\n' },
  { rule: 'DL4005', problem: 'FROM debian:12\nRUN ln -sfv /bin/bash /bin/sh\n', expected: ['2:DL4005'], fixed: 'FROM debian:12\nSHELL ["/bin/bash", "-c"]\n' },
  { rule: 'DL4006', problem: 'FROM debian:12\nRUN wget -q -O - https://some.site | wc -l > /number\n', expected: ['2:DL4006'], fixed: 'FROM debian:12\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN wget -q -O - https://some.site | wc -l > /number\n' },
];

describe("hadolint's documented examples, restated: the same DL codes on the same lines, none once fixed", () => {
  it('has an example for every DL rule kiln lint lists', () => {
    const documented = new Set(DOCUMENTED.map((example) => example.rule));
    assert.deepEqual(RULES.filter((rule) => rule.code.startsWith('DL') && !documented.has(rule.code)).map((rule) => rule.code), []);
  });
  for (const example of DOCUMENTED) {
    it(`${example.rule}${example.config !== undefined ? ` (${example.config.trim().replace(/\n\s*/g, ' ')})` : ''}: ${example.problem.trim().split('\n').at(-1) ?? ''}`, () => {
      assert.deepEqual(dlFindings(example.problem, example.config), example.expected);
      assert.deepEqual(dlFindings(example.fixed, example.config), []);
    });
  }
});

describe("label-schema's rules over stages and LABEL instructions, as hadolint applies them", () => {
  const schema = 'strict-labels: true\nlabel-schema:\n  version: semver\n';
  it('wants the label in every stage, except one a later stage builds on or copies from while carrying it', () => {
    assert.deepEqual(dlFindings('FROM a:1 AS base\nFROM base\n', schema), ['1:DL3049', '2:DL3049']);
    assert.deepEqual(dlFindings('FROM a:1 AS base\nFROM base\nLABEL version=1.0.0\nFROM base\n', schema), ['4:DL3049']);
    assert.deepEqual(dlFindings('FROM a:1 AS base\nLABEL version=1.0.0\nFROM base AS mid\nFROM mid\n', schema), []);
    assert.deepEqual(dlFindings('FROM a:1 AS build\nFROM b:1\nLABEL version=1.0.0\nCOPY --from=build /a /a\nFROM b:1\nCOPY --from=build /a /a\n', schema), ['5:DL3049']);
  });

  it('checks every LABEL instruction as written: each one with a label outside the schema, each empty or malformed value', () => {
    assert.deepEqual(dlFindings('FROM a:1\nLABEL version=1.0.0 a=1 b=2\nLABEL c=3\nLABEL version=""\nLABEL version=v1.0\n', schema), ['2:DL3050', '3:DL3050', '4:DL3051', '4:DL3056', '5:DL3056']);
    assert.deepEqual(dlFindings('FROM a:1\nARG VERSION\nLABEL version=$VERSION\n', schema), []);
  });
});

describe('what the parser understands, the rules understand', () => {
  const codesOf = (source: string): string[] => dlFindings(source).filter((c) => !c.endsWith('DL3059'));
  it('reads a heredoc RUN as the script it is, and the body of another interpreter as data', () => {
    assert.deepEqual(codesOf('FROM debian:12\nRUN <<EOF\nset -e\napt-get install -y --no-install-recommends curl\nEOF\n'), ['2:DL3008']);
    assert.deepEqual(codesOf('FROM debian:12\nRUN <<EOF bash\ncd /tmp\nEOF\n'), ['2:DL3003']);
    assert.deepEqual(codesOf('FROM python:3.12\nRUN <<EOF python3\ncd = "apt-get install curl"\nEOF\n'), []);
    assert.deepEqual(codesOf('FROM debian:12\nRUN cat <<EOF > /etc/motd\nsudo cd vim\nEOF\n'), []);
  });

  it('follows line continuations with either escape character, and comments inside them', () => {
    assert.deepEqual(codesOf('FROM debian:12\nRUN apt-get install -y \\\n# the tools\n    --no-install-recommends \\\n    curl\n'), ['2:DL3008']);
    assert.deepEqual(codesOf('# escape=`\nFROM debian:12\nRUN apt-get install -y --no-install-recommends `\n    curl\n'), ['3:DL3008']);
  });

  it('takes a version or a package list given as a variable as pinned, and a local .deb as no package', () => {
    assert.deepEqual(codesOf('FROM debian:12\nARG PACKAGES\nRUN apt-get install -y --no-install-recommends $PACKAGES "curl=${CURL_VERSION}" ./vendor/tool.deb\n'), []);
    assert.deepEqual(codesOf('FROM alpine:3\nARG V\nRUN apk add --no-cache "curl=$V" && pip install --no-cache-dir "flask==${V}"\n'), []);
  });
});

describe('names in scope across stages, as the build sees them', () => {
  const undefinedVars = (source: string): string[] => findings(source, 'UndefinedVar').filter((f) => f.endsWith(':UndefinedVar'));
  it("passes a stage's ENV on to the stages built on it, not its ARGs", () => {
    assert.deepEqual(undefinedVars('FROM scratch AS a\nENV X=1\nFROM a\nCOPY $X /x\n'), []);
    assert.deepEqual(undefinedVars('FROM scratch AS a\nARG X=1\nFROM a\nCOPY $X /x\n'), ['4:UndefinedVar']);
    assert.deepEqual(undefinedVars('FROM scratch AS a\nENV X=1\nARG X\nFROM a\nCOPY $X /x\n'), []);
  });

  it('sees a name only from the instruction after the one that defines it', () => {
    assert.deepEqual(undefinedVars('FROM scratch\nCOPY $X /x\nENV X=1\nCOPY $X /y\n'), ['2:UndefinedVar']);
  });

  it('gives a RUN the latest value of a name (PIP_NO_CACHE_DIR set, then unset)', () => {
    const dl3042 = (source: string): string[] => findings(source, 'DL3042').filter((f) => f.endsWith(':DL3042'));
    assert.deepEqual(dl3042('FROM python:3\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask==3\n'), []);
    assert.deepEqual(dl3042('FROM python:3\nENV PIP_NO_CACHE_DIR=1\nENV PIP_NO_CACHE_DIR=0\nRUN pip install flask==3\n'), ['4:DL3042']);
  });
});

describe('hostile scripts', () => {
  it('lints a RUN of 20000 nested $(…) without running out of stack, reading the first levels for commands', () => {
    const nested = `FROM a:1\nRUN echo ${'$('.repeat(20000)}sudo true${')'.repeat(20000)}\n`;
    assert.deepEqual(findings(nested, 'DL3004').filter((f) => f.endsWith(':DL3004')), []);
    assert.deepEqual(findings('FROM a:1\nRUN echo $(echo $(sudo true))\n', 'DL3004').filter((f) => f.endsWith(':DL3004')), ['2:DL3004']);
  });

  it('lints 20,000 CMDs in a stage in seconds, each but the last reported (every kiln build runs these checks first)', () => {
    const started = Date.now();
    const repeated = findings(`FROM a:1\n${'CMD ["true"]\n'.repeat(20000)}`, 'MultipleInstructionsDisallowed').filter((f) => f.endsWith(':MultipleInstructionsDisallowed'));
    assert.equal(repeated.length, 19999);
    assert.ok(Date.now() - started < 10000, `took ${Date.now() - started} ms (a copy per instruction took a minute)`);
  });

  it("lints 5,000 ENV names and 5,000 undefined variables in well under a second (UndefinedVar's suggestions compared every pair: 20 s)", () => {
    // Two instructions, so that the time is the checks' and not the parse of 10,000 lines.
    const source = `FROM scratch\nENV ${Array.from({ length: 5000 }, (_, i) => `DEFINED_NAME_${i}=${i}`).join(' ')}\nCOPY ${Array.from({ length: 5000 }, (_, i) => `$UNDEFINED_NAME_${i}`).join(' ')} /x/\n`;
    const started = Date.now();
    const undefinedVars = lintDockerfile(source, options()).findings.filter((f) => f.code === 'UndefinedVar');
    const took = Date.now() - started;
    assert.equal(undefinedVars.length, 5000);
    assert.ok(took < 3000, `took ${took} ms`);
    // A normal scope still gets BuildKit's suggestion.
    const small = lintDockerfile('FROM scratch\nENV DEFINED_NAME=1\nCOPY $UNDEFINED_NAME /x\n', options()).findings.find((f) => f.code === 'UndefinedVar');
    assert.equal(small?.message, "Usage of undefined variable '$UNDEFINED_NAME' (did you mean $DEFINED_NAME?)");
  });
});

describe("ShellCheck's inputs", () => {
  it('export the ARG and ENV names in scope that the script uses, no others', () => {
    const run = lintDockerfile('FROM scratch\nARG FOO\nENV FOOBAR=1 UNUSED=2\nRUN echo $FOOX ${FOO} "$FOOBAR"\n', options());
    const [input] = shellcheckInputs(run.analysis);
    assert.equal(input?.text, '#!/bin/sh\nexport FOO=1\nexport FOOBAR=1\necho $FOOX ${FOO} "$FOOBAR"\n');
    assert.equal(input?.headerLines, 3);
  });
});
