/*
 * The system calls a build step makes around its container, without a process each: util-linux's mount
 * and umount and attr's getfattr cost a fork and exec apiece (several to tens of ms on a busy machine)
 * for a call of well under one. Needs no library, so it builds wherever a C compiler and Node's headers
 * are. Synchronous but for walk, and each fails with an Error whose `code` is the errno's name (EPERM, ENOENT, …):
 * - mount(source, target, fstype, flags, data, cwd): mount(2), with relative paths in `data` (overlay's
 *   lowerdir=…) resolved from `cwd`; `cwd` is taken on a thread of its own, so the process's stays.
 * - umount(target, flags): umount2(2).
 * - getxattr(path, name) -> string | undefined: lgetxattr(2); undefined when the file has no such
 *   attribute (or its filesystem keeps none).
 * - listdir(path) -> Buffer: a directory's entries, each with its lstat(2) (and readlink(2) for a
 *   symlink), packed in one buffer: a build context of 20,000 files costs a call per directory, not a
 *   stat promise per file. Per entry, little-endian: u32 mode, uid, gid, nlink; f64 size and mtime
 *   (seconds, to the millisecond, as Node's Number(mtimeMs) / 1000); u16 lengths of the name, of the
 *   stat key and of the link target; then those bytes. The stat key is Node's BigIntStats
 *   `dev:ino:size:mtimeNs:ctimeNs` in decimal.
 * - spawn(file, args, flags) -> [pid, stdin, stdout, stderr]: posix_spawnp(3) of `file` (searched in
 *   PATH) with `args` (args[0] included), signals at their defaults. Its stdin is /dev/null, or with flag 1
 *   a pipe whose write end comes back; its stdout and stderr /dev/null, or with flag 2 pipes whose read
 *   ends come back (-1 for those not asked for); flag 4: in a new session (Node's `detached`). glibc's
 *   posix_spawn runs the child in the parent's memory until it execs (a vfork), where Node's spawn forks:
 *   copying the page tables of a 60-100 MB process blocks its thread 5-10 ms.
 * - watch(pid, stdout, stderr, onEvent): reads a spawned child's output pipes to their end and then
 *   reaps it, on a thread of its own; the event loop gets onEvent(1 or 2, Buffer) for each chunk read from
 *   stdout or stderr, in the order read, then onEvent(0, code, signal) once: the exit code (-1 when
 *   killed) and the signal that killed it (0 when none), or onEvent(-1, errno) when waitpid(2) fails.
 *   Until then the loop stays alive. Reading the pipes through Node's net.Socket loads Node's net and
 *   stream modules (some 5 ms of a cold build's first RUN) and a socket per pipe.
 * - walk(path) -> Promise<Buffer | undefined>: every entry below a directory, as listdir packs them but
 *   with the path from `path` ('/'-separated) for the name, depth first, a directory before what it
 *   holds and each directory's entries in the order of their names as JavaScript strings compare
 *   (UTF-16 code units); on libuv's thread pool, so the event loop runs meanwhile, and the later half
 *   of the subdirectories of the first directory that has two or more on a second thread. A directory's
 *   u32 after its gid is not its link count but the length in bytes of the entries below it (which
 *   follow it; UINT32_MAX when longer), so a reader finds a path without reading every entry. Symlinks are not
 *   followed. Undefined when a name is not UTF-8 (the caller walks it itself); rejects with the errno
 *   of the first entry it cannot read. A context of 20,000 files costs one call and one buffer: no
 *   round trip and no JavaScript object per directory.
 * - sha256(data) -> string: the hex SHA-256 of a string (as UTF-8), a Uint8Array, or an array of those
 *   one after another, through the OpenSSL that Node links and exports; absent when this Node exports
 *   none. Loading node:crypto for a hash costs a short command some 7 ms (its ciphers and streams come
 *   with it); a call here costs what hashing the bytes does.
 * - sha256Start() -> state, sha256Add(state, data), sha256End(state) -> string: the same, piece by piece
 *   (a blob as it is written); the state is a Buffer, so a copy of it (Buffer.from) hashes on apart.
 * - hashranges(path, ranges) -> Promise<Buffer | undefined>: the SHA-256 of each range of a file (a
 *   Float64Array of offset, length pairs), 32 bytes each one after another, on the thread pool (kiln
 *   analyze compares the contents of a few files while it computes its figures); undefined when a range
 *   runs past the file's end. Absent with sha256.
 * - tarscan(fd, start, end), tarjson(columns, names, links): see tarscan.c; figures(layers): figures.c.
 * - readfile(path, latin1) -> Buffer | string: a whole file, read into memory mapped and populated in one
 *   call; as a string (latin1) that memory backs it, not a copy. On this kind of machine each first touch
 *   of a page costs some 10 us: reading the CLI's bundle (0.6-0.9 MB) and its code cache through
 *   readFileSync touched each page twice over (the Buffer, then the string), some 3-5 ms at every start.
 * - sealedcopy(path) -> fd: a copy of the file in memory (memfd_create(2)), executable and sealed against
 *   any change (F_SEAL_SEAL, SHRINK, GROW, WRITE, no more), close-on-exec. runc and crun re-execute
 *   themselves from such a copy at every start unless they already run from one (CVE-2019-5736: a
 *   container must not overwrite the host's runtime through /proc/self/exe); run from /proc/self/fd/FD,
 *   they skip that copy and the second exec.
 * - kmsgend() -> fd: the kernel log, /dev/kmsg, opened for reading without blocking (close-on-exec) and
 *   positioned after its last record, so that reads return only the records written after the call: an
 *   OOM kill is looked for among those (Node has no lseek, and the records' times are on the kernel's own
 *   clock, which drifts from CLOCK_MONOTONIC: 42 ms behind it after 17 hours here).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "text.h"

#define PATH_BYTES 8192

/* A string argument copied into `out` (`present` 0 for null or undefined, when `optional`); 0 when invalid or too long. */
static int string_arg(napi_env env, napi_value value, char *out, size_t size, int optional, int *present) {
  napi_valuetype type;
  size_t length;
  *present = 0;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (optional && (type == napi_null || type == napi_undefined)) return 1;
  if (type != napi_string || napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok || length >= size - 1) return 0;
  *present = 1;
  return 1;
}

/* An Error `<call> <path>: <strerror>` whose code is the errno's name. */
static napi_value errno_error(napi_env env, int error, const char *call, const char *path) {
  char message[PATH_BYTES * 2 + 128];
  napi_value code, text, exception;
  snprintf(message, sizeof message, "%s %s: %s", call, path, strerror(error));
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_string_utf8(env, strerrorname_np(error) ? strerrorname_np(error) : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &exception);
  return exception;
}

static void throw_errno(napi_env env, int error, const char *call, const char *path) {
  napi_throw(env, errno_error(env, error, call, path));
}

struct mount_call {
  const char *source, *target, *fstype, *data, *cwd;
  unsigned long flags;
  int error;
};

/* On its own thread: unshare the filesystem context (cwd) from the process, move to cwd, mount. */
static void *mount_thread(void *arg) {
  struct mount_call *call = arg;
  call->error = 0;
  if (call->cwd != NULL && (unshare(CLONE_FS) != 0 || chdir(call->cwd) != 0)) {
    call->error = errno;
    return NULL;
  }
  if (mount(call->source, call->target, call->fstype, call->flags, call->data) != 0) call->error = errno;
  return NULL;
}

static napi_value mount_call(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  static char source[PATH_BYTES], target[PATH_BYTES], fstype[64], data[PATH_BYTES * 2], cwd[PATH_BYTES];
  int has_source, has_target, has_fstype, has_data, has_cwd;
  double flags;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6 ||
      !string_arg(env, argv[0], source, sizeof source, 1, &has_source) ||
      !string_arg(env, argv[1], target, sizeof target, 0, &has_target) ||
      !string_arg(env, argv[2], fstype, sizeof fstype, 1, &has_fstype) ||
      napi_get_value_double(env, argv[3], &flags) != napi_ok || flags < 0 ||
      !string_arg(env, argv[4], data, sizeof data, 1, &has_data) ||
      !string_arg(env, argv[5], cwd, sizeof cwd, 1, &has_cwd)) {
    napi_throw_type_error(env, NULL, "sys: mount(source, target, fstype, flags, data, cwd)");
    return NULL;
  }
  struct mount_call call = {has_source ? source : NULL, target, has_fstype ? fstype : NULL,
                            has_data ? data : NULL, has_cwd ? cwd : NULL, (unsigned long)flags, 0};
  pthread_t thread;
  int started = pthread_create(&thread, NULL, mount_thread, &call);
  if (started != 0) {
    throw_errno(env, started, "mount", target);
    return NULL;
  }
  pthread_join(thread, NULL);
  if (call.error != 0) throw_errno(env, call.error, "mount", target);
  return NULL;
}

static napi_value umount_call(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  static char target[PATH_BYTES];
  int has_target;
  int32_t flags;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      !string_arg(env, argv[0], target, sizeof target, 0, &has_target) ||
      napi_get_value_int32(env, argv[1], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "sys: umount(target, flags)");
    return NULL;
  }
  if (umount2(target, flags) != 0) throw_errno(env, errno, "umount", target);
  return NULL;
}

static napi_value getxattr_call(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result = NULL;
  static char path[PATH_BYTES], name[256], value[4096];
  int has_path, has_name;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      !string_arg(env, argv[0], path, sizeof path, 0, &has_path) ||
      !string_arg(env, argv[1], name, sizeof name, 0, &has_name)) {
    napi_throw_type_error(env, NULL, "sys: getxattr(path, name)");
    return NULL;
  }
  ssize_t length = lgetxattr(path, name, value, sizeof value);
  if (length < 0) {
    if (errno == ENODATA || errno == ENOTSUP) napi_get_undefined(env, &result);
    else throw_errno(env, errno, "getxattr", path);
    return result;
  }
  napi_create_string_utf8(env, value, (size_t)length, &result);
  return result;
}

/* Appends the decimal digits of `value` (it may be negative) to `out`; returns their count. */
static int put_decimal(char *out, __int128 value) {
  char digits[48];
  int count = 0, length = 0;
  int negative = value < 0;
  if (negative) value = -value;
  /* In 64 bits once it fits: 128-bit division is a library call, and a context has tens of thousands of stats. */
  while (value > (__int128)UINT64_MAX) {
    digits[count++] = (char)('0' + (int)(value % 10));
    value /= 10;
  }
  uint64_t rest = (uint64_t)value;
  do {
    digits[count++] = (char)('0' + (int)(rest % 10));
    rest /= 10;
  } while (rest > 0);
  if (negative) out[length++] = '-';
  while (count > 0) out[length++] = digits[--count];
  return length;
}

/* Appends the decimal digits of a time in nanoseconds (it may be negative) to `out`; returns their count. */
static int put_nanoseconds(char *out, int64_t seconds, long nanoseconds) {
  return put_decimal(out, (__int128)seconds * 1000000000 + nanoseconds);
}

struct packed {
  char *bytes;
  size_t length, capacity;
};

static int reserve(struct packed *buffer, size_t more) {
  if (buffer->length + more <= buffer->capacity) return 1;
  size_t capacity = buffer->capacity * 2 > buffer->length + more ? buffer->capacity * 2 : buffer->length + more;
  char *grown = realloc(buffer->bytes, capacity);
  if (grown == NULL) return 0;
  buffer->bytes = grown;
  buffer->capacity = capacity;
  return 1;
}

static void put_u32(char *out, uint32_t value) { memcpy(out, &value, 4); }
static void put_u16(char *out, uint16_t value) { memcpy(out, &value, 2); }
static void put_f64(char *out, double value) { memcpy(out, &value, 8); }

/* Packs one entry of the directory open as `dirfd` under the name `label` (its `label_length` bytes);
 * its st_mode into `mode`. An errno on failure. */
static int pack_entry(struct packed *buffer, int dirfd, const char *name, const char *label, size_t label_length, mode_t *mode) {
  struct stat st;
  char key[160], target[PATH_BYTES];
  ssize_t target_length = 0;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (S_ISLNK(st.st_mode)) {
    target_length = readlinkat(dirfd, name, target, sizeof target);
    if (target_length < 0) return errno;
    if ((size_t)target_length >= sizeof target) return ENAMETOOLONG;
  }
  int key_length = put_decimal(key, st.st_dev);
  key[key_length++] = ':';
  key_length += put_decimal(key + key_length, st.st_ino);
  key[key_length++] = ':';
  key_length += put_decimal(key + key_length, st.st_size);
  key[key_length++] = ':';
  key_length += put_nanoseconds(key + key_length, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  key[key_length++] = ':';
  key_length += put_nanoseconds(key + key_length, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  if (label_length > UINT16_MAX) return ENAMETOOLONG;
  if (!reserve(buffer, 38 + label_length + (size_t)key_length + (size_t)target_length)) return ENOMEM;
  char *out = buffer->bytes + buffer->length;
  /* Milliseconds truncated toward zero, as Node's BigIntStats mtimeMs is (128 bits, a library call, only before 1970). */
  int64_t ms = st.st_mtim.tv_sec >= 0 ? (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000
                                      : (int64_t)(((__int128)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec) / 1000000);
  put_u32(out, st.st_mode);
  put_u32(out + 4, st.st_uid);
  put_u32(out + 8, st.st_gid);
  put_u32(out + 12, st.st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)st.st_nlink);
  put_f64(out + 16, (double)st.st_size);
  put_f64(out + 24, (double)ms / 1000);
  put_u16(out + 32, (uint16_t)label_length);
  put_u16(out + 34, (uint16_t)key_length);
  put_u16(out + 36, (uint16_t)target_length);
  memcpy(out + 38, label, label_length);
  memcpy(out + 38 + label_length, key, (size_t)key_length);
  memcpy(out + 38 + label_length + key_length, target, (size_t)target_length);
  buffer->length += 38 + label_length + (size_t)key_length + (size_t)target_length;
  *mode = st.st_mode;
  return 0;
}

/* The directory's next entry other than . and ..; NULL at its end, or on a failure with `*error` set to its errno. */
static struct dirent *next_entry(DIR *dir, int *error) {
  for (;;) {
    errno = 0;
    struct dirent *entry = readdir(dir);
    if (entry == NULL) {
      *error = errno;
      return NULL;
    }
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) return entry;
  }
}

static napi_value listdir_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result = NULL;
  static char path[PATH_BYTES];
  int has_path;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !string_arg(env, argv[0], path, sizeof path, 0, &has_path)) {
    napi_throw_type_error(env, NULL, "sys: listdir(path)");
    return NULL;
  }
  DIR *dir = opendir(path);
  if (dir == NULL) {
    throw_errno(env, errno, "scandir", path);
    return NULL;
  }
  struct packed buffer = {NULL, 0, 0};
  int error = 0;
  for (struct dirent *entry; (entry = next_entry(dir, &error)) != NULL;) {
    mode_t mode;
    error = pack_entry(&buffer, dirfd(dir), entry->d_name, entry->d_name, strlen(entry->d_name), &mode);
    if (error != 0) break;
  }
  closedir(dir);
  if (error != 0) throw_errno(env, error, "lstat", path);
  else napi_create_buffer_copy(env, buffer.length, buffer.length > 0 ? buffer.bytes : "", NULL, &result);
  free(buffer.bytes);
  return result;
}

extern char **environ;

#define MAX_ARGS 1024

#define SPAWN_STDIN_PIPE 1
#define SPAWN_OUTPUT_PIPES 2
#define SPAWN_SESSION 4

static napi_value spawn_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result = NULL;
  static char file[PATH_BYTES];
  int has_file;
  int32_t flags;
  uint32_t count = 0;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      !string_arg(env, argv[0], file, sizeof file, 0, &has_file) ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok || count == 0 || count > MAX_ARGS ||
      napi_get_value_int32(env, argv[2], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "sys: spawn(file, args, flags)");
    return NULL;
  }
  char **args = calloc(count + 1, sizeof *args);
  int ok = args != NULL;
  for (uint32_t i = 0; ok && i < count; i++) {
    napi_value item;
    size_t length;
    ok = napi_get_element(env, argv[1], i, &item) == napi_ok &&
         napi_get_value_string_utf8(env, item, NULL, 0, &length) == napi_ok &&
         (args[i] = malloc(length + 1)) != NULL &&
         napi_get_value_string_utf8(env, item, args[i], length + 1, &length) == napi_ok;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, error = 0;
  pid_t pid = 0;
  if (!ok) {
    napi_throw_type_error(env, NULL, "sys: spawn(file, args, flags): the arguments must be strings");
  } else if (((flags & SPAWN_STDIN_PIPE) && pipe2(in, O_CLOEXEC) != 0) ||
             ((flags & SPAWN_OUTPUT_PIPES) && (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0))) {
    error = errno;
  } else {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&actions);
    if (flags & SPAWN_STDIN_PIPE) posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    else posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (flags & SPAWN_OUTPUT_PIPES) {
      posix_spawn_file_actions_adddup2(&actions, out[1], 1);
      posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    } else {
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | ((flags & SPAWN_SESSION) ? POSIX_SPAWN_SETSID : 0));
    error = posix_spawnp(&pid, file, &actions, &attributes, args, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  for (uint32_t i = 0; args != NULL && i < count; i++) free(args[i]);
  free(args);
  /* The child's ends are the child's alone. */
  if (in[0] >= 0) close(in[0]);
  if (out[1] >= 0) close(out[1]);
  if (err[1] >= 0) close(err[1]);
  if (!ok || error != 0) {
    if (in[1] >= 0) close(in[1]);
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    if (ok) throw_errno(env, error, "spawn", file);
    return NULL;
  }
  napi_value values[4];
  napi_create_array_with_length(env, 4, &result);
  napi_create_int32(env, pid, &values[0]);
  napi_create_int32(env, in[1], &values[1]);
  napi_create_int32(env, out[0], &values[2]);
  napi_create_int32(env, err[0], &values[3]);
  for (uint32_t i = 0; i < 4; i++) napi_set_element(env, result, i, values[i]);
  return result;
}

/* A child that watch_call's thread reads the output of and reaps. */
struct watched {
  pid_t pid;
  int fds[2];
  napi_threadsafe_function deliver;
};

/* What the thread hands the event loop: a chunk read from stream 1 or 2, the exit (stream 0), or
 * waitpid's failure (stream -1, its errno in code). */
struct watch_event {
  int stream;
  int code;
  int signal;
  size_t length;
  char bytes[];
};

#define WATCH_CHUNK 65536

static void watch_deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  struct watch_event *event = data;
  if (env != NULL && callback != NULL) {
    napi_value args[3], recv;
    void *copy;
    napi_get_undefined(env, &recv);
    napi_create_int32(env, event->stream, &args[0]);
    if (event->stream > 0) napi_create_buffer_copy(env, event->length, event->bytes, &copy, &args[1]);
    else napi_create_int32(env, event->code, &args[1]);
    napi_create_int32(env, event->signal, &args[2]);
    napi_call_function(env, recv, callback, 3, args, NULL);
  }
  free(event);
}

static void watch_post(struct watched *watched, struct watch_event *event) {
  if (napi_call_threadsafe_function(watched->deliver, event, napi_tsfn_blocking) != napi_ok) free(event);
}

static void *watch_thread(void *arg) {
  struct watched *watched = arg;
  struct pollfd polls[2] = {{watched->fds[0], POLLIN, 0}, {watched->fds[1], POLLIN, 0}};
  int open = (polls[0].fd >= 0) + (polls[1].fd >= 0);
  while (open > 0) {
    if (poll(polls, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (polls[i].fd < 0 || polls[i].revents == 0) continue;
      struct watch_event *event = malloc(sizeof *event + WATCH_CHUNK);
      ssize_t got = event != NULL ? read(polls[i].fd, event->bytes, WATCH_CHUNK) : -1;
      if (got > 0) {
        event->stream = i + 1, event->code = 0, event->signal = 0, event->length = (size_t)got;
        watch_post(watched, event);
        continue;
      }
      int error = got < 0 ? errno : 0;
      free(event);
      if (got < 0 && (error == EINTR || error == EAGAIN)) continue;
      close(polls[i].fd); /* the end, or a pipe that cannot be read: either way nothing more comes */
      polls[i].fd = -1;
      open--;
    }
  }
  for (int i = 0; i < 2; i++)
    if (polls[i].fd >= 0) close(polls[i].fd);
  int status = 0;
  pid_t done;
  do done = waitpid(watched->pid, &status, 0);
  while (done < 0 && errno == EINTR);
  struct watch_event *end = malloc(sizeof *end);
  if (end != NULL) {
    end->length = 0;
    if (done < 0) end->stream = -1, end->code = errno, end->signal = 0;
    else end->stream = 0, end->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1, end->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    watch_post(watched, end);
  }
  napi_release_threadsafe_function(watched->deliver, napi_tsfn_release);
  free(watched);
  return NULL;
}

static napi_value watch_call(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  int32_t pid, out, err;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0 ||
      napi_get_value_int32(env, argv[1], &out) != napi_ok || napi_get_value_int32(env, argv[2], &err) != napi_ok ||
      napi_typeof(env, argv[3], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "sys: watch(pid, stdout, stderr, onEvent)");
    return NULL;
  }
  /* The descriptors are the thread's from here: closed as it ends, or here when it cannot start. */
  struct watched *watched = malloc(sizeof *watched);
  if (watched == NULL) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    throw_errno(env, ENOMEM, "watch", "");
    return NULL;
  }
  watched->pid = pid, watched->fds[0] = out, watched->fds[1] = err;
  napi_create_string_utf8(env, "kiln:watch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, watch_deliver, &watched->deliver) != napi_ok) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    free(watched);
    napi_throw_error(env, NULL, "sys: watch: cannot make its threadsafe function");
    return NULL;
  }
  /* The thread takes no signal: they go to Node's own threads, as before it. */
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  pthread_t thread;
  int started = pthread_create(&thread, NULL, watch_thread, watched);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  if (started != 0) {
    napi_release_threadsafe_function(watched->deliver, napi_tsfn_abort);
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    free(watched);
    throw_errno(env, started, "pthread_create", "watch");
    return NULL;
  }
  pthread_detach(thread);
  return NULL;
}

/* Whether `name` is well-formed UTF-8. */
static int is_utf8(const unsigned char *name) {
  int ascii;
  return utf8_ok(name, strlen((const char *)name), &ascii);
}

/* Two names as JavaScript's `<` orders them (qsort's comparison of pointers to them). */
static int utf16_order(const void *a, const void *b) {
  const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;
  return utf16_compare(x, (uint32_t)strlen((const char *)x), y, (uint32_t)strlen((const char *)y));
}

/* What one thread of a walk packs, and where it failed. */
struct walker {
  struct packed buffer;
  int not_utf8;
  const char *call;
  char failed[PATH_BYTES];
  /* Whether it may hand half of a directory's subdirectories to a second thread (once per walk: the
   * first directory with two or more; a context is mostly one or two trees of many). */
  int may_share;
};

struct walk_job {
  napi_async_work work;
  napi_deferred deferred;
  char root[PATH_BYTES];
  struct walker walker;
  int error;
};

/* Grows `*bytes` (of `*room` bytes) to hold `need`; 0 when out of memory. */
static int grow(void **bytes, size_t *room, size_t need) {
  if (need <= *room) return 1;
  size_t size = *room * 2 > need ? *room * 2 : need;
  void *grown = realloc(*bytes, size);
  if (grown == NULL) return 0;
  *bytes = grown;
  *room = size;
  return 1;
}

static int walk_directory(struct walker *walker, int fd, char *label, size_t label_length);

/* Writes into the directory's record at `record` the length of what was packed from `below` on (see walk). */
static void put_span(struct packed *buffer, size_t record, size_t below) {
  size_t length = buffer->length - below;
  put_u32(buffer->bytes + record + 12, length >= UINT32_MAX ? UINT32_MAX : (uint32_t)length);
}

/* A second thread walking the subdirectories of one directory from `from` on, each into a walker of its
 * own; the first thread packs the directory's entries themselves and takes each subtree from here. */
struct helper {
  pthread_t thread;
  int dirfd;
  char *const *names;
  size_t from, count;
  const char *label;
  size_t label_length;
  struct walker *trees;
  int *errors, *walked;
};

static void *helper_thread(void *arg) {
  struct helper *helper = arg;
  char label[PATH_BYTES];
  memcpy(label, helper->label, helper->label_length);
  for (size_t i = helper->from; i < helper->count; i++) {
    size_t k = i - helper->from, name_length = strlen(helper->names[i]);
    struct stat st;
    /* What fails here is left to the first thread, which meets it again and says where. */
    if (helper->label_length + name_length + 2 > PATH_BYTES) continue;
    if (fstatat(helper->dirfd, helper->names[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    int child = openat(helper->dirfd, helper->names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0) continue;
    memcpy(label + helper->label_length, helper->names[i], name_length);
    label[helper->label_length + name_length] = '/';
    helper->errors[k] = walk_directory(&helper->trees[k], child, label, helper->label_length + name_length + 1);
    helper->walked[k] = 1;
    if (helper->errors[k] != 0) break;
  }
  return NULL;
}

/* Packs the entries of the directory open as `fd` (which it closes), their paths starting with
 * `label` (`label_length` bytes, '/'-ended unless empty; PATH_BYTES long), then what each directory holds. */
static int walk_directory(struct walker *walker, int fd, char *label, size_t label_length) {
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    close(fd);
    walker->call = "scandir";
    return errno;
  }
  /* The names one after another in `arena`, each after its d_type byte and at its offset; sorted
   * through pointers once all are read. */
  char *arena = NULL, **names = NULL;
  size_t *offsets = NULL;
  size_t used = 0, room = 0, count = 0, capacity = 0, directories = 0;
  int error = 0;
  struct dirent *entry;
  while ((entry = next_entry(dir, &error)) != NULL) {
    if (!is_utf8((const unsigned char *)entry->d_name)) {
      walker->not_utf8 = 1;
      error = EILSEQ;
      break;
    }
    size_t size = strlen(entry->d_name) + 2;
    size_t offsets_room = capacity * sizeof *offsets;
    if (!grow((void **)&arena, &room, used + size) || !grow((void **)&offsets, &offsets_room, (count + 1) * sizeof *offsets)) {
      error = ENOMEM;
      break;
    }
    capacity = offsets_room / sizeof *offsets;
    arena[used] = (char)entry->d_type;
    memcpy(arena + used + 1, entry->d_name, size - 1);
    offsets[count++] = used + 1;
    used += size;
    if (entry->d_type == DT_DIR) directories++;
  }
  if (entry == NULL && error != 0) walker->call = "scandir";
  if (error == 0 && count > 0 && (names = malloc(count * sizeof *names)) == NULL) error = ENOMEM;
  if (error == 0) {
    for (size_t i = 0; i < count; i++) names[i] = arena + offsets[i];
    qsort(names, count, sizeof *names, utf16_order);
  }
  /* The second half of the subdirectories (by d_type; where a file system gives none, no help) to a second thread. */
  struct helper helper = {0};
  int helping = 0;
  if (error == 0 && walker->may_share && directories >= 2) {
    walker->may_share = 0;
    size_t seen = 0, from = 0;
    while (from < count && (names[from][-1] != DT_DIR || seen++ < directories / 2)) from++;
    helper = (struct helper){.dirfd = dirfd(dir), .names = names, .from = from, .count = count, .label = label, .label_length = label_length};
    helper.trees = calloc(count - from, sizeof *helper.trees);
    helper.errors = calloc(count - from, sizeof *helper.errors);
    helper.walked = calloc(count - from, sizeof *helper.walked);
    helping = helper.trees != NULL && helper.errors != NULL && helper.walked != NULL && pthread_create(&helper.thread, NULL, helper_thread, &helper) == 0;
  }
  int joined = 0;
  for (size_t i = 0; i < count && error == 0; i++) {
    size_t name_length = strlen(names[i]);
    if (label_length + name_length + 2 > PATH_BYTES) {
      error = ENAMETOOLONG;
      break;
    }
    memcpy(label + label_length, names[i], name_length + 1);
    mode_t mode;
    size_t record = walker->buffer.length;
    error = pack_entry(&walker->buffer, dirfd(dir), names[i], label, label_length + name_length, &mode);
    if (error != 0) {
      walker->call = "lstat";
      break;
    }
    if (!S_ISDIR(mode)) continue;
    /* The record's link count becomes the length of what follows below it, once that is packed. */
    size_t below = walker->buffer.length;
    label[label_length + name_length] = '/';
    if (helping && i >= helper.from) {
      if (!joined) joined = pthread_join(helper.thread, NULL) == 0;
      struct walker *tree = &helper.trees[i - helper.from];
      if (helper.walked[i - helper.from]) {
        if ((error = helper.errors[i - helper.from]) != 0) {
          walker->not_utf8 |= tree->not_utf8;
          walker->call = tree->call;
          memcpy(walker->failed, tree->failed, sizeof walker->failed);
        } else if (!reserve(&walker->buffer, tree->buffer.length)) {
          error = ENOMEM;
        } else {
          memcpy(walker->buffer.bytes + walker->buffer.length, tree->buffer.bytes, tree->buffer.length);
          walker->buffer.length += tree->buffer.length;
          put_span(&walker->buffer, record, below);
        }
        continue;
      }
    }
    int child = openat(dirfd(dir), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0) {
      error = errno;
      walker->call = "scandir";
      break;
    }
    error = walk_directory(walker, child, label, label_length + name_length + 1);
    if (error == 0) put_span(&walker->buffer, record, below);
  }
  /* The second thread reads `names` and the directory: it ends before they go. */
  if (helping && !joined) pthread_join(helper.thread, NULL);
  if (helper.trees != NULL)
    for (size_t k = 0; k < count - helper.from; k++) free(helper.trees[k].buffer.bytes);
  free(helper.trees);
  free(helper.errors);
  free(helper.walked);
  /* The path of the entry that failed stays in `label` for the message. */
  if (error != 0 && walker->failed[0] == 0) {
    memcpy(walker->failed, label, label_length);
    walker->failed[label_length] = 0;
  }
  free(names);
  free(offsets);
  free(arena);
  closedir(dir);
  return error;
}

static void walk_execute(napi_env env, void *data) {
  (void)env;
  struct walk_job *job = data;
  char label[PATH_BYTES];
  label[0] = 0;
  job->walker.failed[0] = 0;
  job->walker.may_share = 1;
  if (!reserve(&job->walker.buffer, 1 << 16)) {
    job->error = ENOMEM;
    return;
  }
  int fd = open(job->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    job->error = errno;
    job->walker.call = "scandir";
    return;
  }
  job->error = walk_directory(&job->walker, fd, label, 0);
}


static void walk_complete(napi_env env, napi_status status, void *data) {
  struct walk_job *job = data;
  napi_value result;
  struct packed *buffer = &job->walker.buffer;
  if (status == napi_ok && job->walker.not_utf8) {
    napi_get_undefined(env, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else if (status == napi_ok && job->error == 0) {
    /* The listing becomes the Buffer's memory (no copy of a few MB); freed with it. */
    if (buffer->length > 0 && napi_create_external_buffer(env, buffer->length, buffer->bytes, free_external, NULL, &result) == napi_ok) buffer->bytes = NULL;
    else napi_create_buffer_copy(env, buffer->length, buffer->length > 0 ? buffer->bytes : "", NULL, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    char path[PATH_BYTES * 2 + 2];
    snprintf(path, sizeof path, "%s/%s", job->root, job->walker.failed);
    napi_reject_deferred(env, job->deferred, errno_error(env, status == napi_ok ? job->error : EIO, job->walker.call ? job->walker.call : "walk", path));
  }
  napi_delete_async_work(env, job->work);
  free(buffer->bytes);
  free(job);
}

static napi_value walk_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise, name;
  int has_path;
  struct walk_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "sys: walk: out of memory");
    return NULL;
  }
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !string_arg(env, argv[0], job->root, sizeof job->root, 0, &has_path)) {
    free(job);
    napi_throw_type_error(env, NULL, "sys: walk(path)");
    return NULL;
  }
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "kiln:walk", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, walk_execute, walk_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/*
 * OpenSSL's SHA-256 from the process that loads the addon (Node's binary exports its OpenSSL). Weak, so
 * the addon loads where they are not exported; `sha256` is then left out. The context is opaque here:
 * OpenSSL's SHA256_CTX is 112 bytes, the room below more.
 */
extern int SHA256_Init(void *context) __attribute__((weak));
extern int SHA256_Update(void *context, const void *data, size_t length) __attribute__((weak));
extern int SHA256_Final(unsigned char *digest, void *context) __attribute__((weak));

/* Adds a string's UTF-8 or a Uint8Array's bytes to the hash; 0 (an exception pending) for anything else. */
static int sha256_part(napi_env env, void *context, napi_value part) {
  napi_valuetype type;
  napi_typedarray_type kind;
  bool is_array = false;
  size_t length;
  void *data;
  char small[4096];
  napi_typeof(env, part, &type);
  if (type == napi_string) {
    napi_get_value_string_utf8(env, part, NULL, 0, &length);
    char *text = length < sizeof small ? small : malloc(length + 1);
    if (!text) {
      napi_throw_error(env, "ENOMEM", "sys: sha256: out of memory");
      return 0;
    }
    napi_get_value_string_utf8(env, part, text, length + 1, &length);
    SHA256_Update(context, text, length);
    if (text != small) free(text);
    return 1;
  }
  if (napi_is_typedarray(env, part, &is_array) != napi_ok || !is_array ||
      napi_get_typedarray_info(env, part, &kind, &length, &data, NULL, NULL) != napi_ok || kind != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "sys: sha256 hashes a string, a Uint8Array or an array of them");
    return 0;
  }
  SHA256_Update(context, data, length);
  return 1;
}

/* A hash's state: OpenSSL's SHA256_CTX (112 bytes) in a Buffer of JavaScript's, which copies by its bytes. */
#define SHA256_STATE_BYTES 128

static void *sha256_state(napi_env env, napi_value value) {
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, value, &data, &length) != napi_ok || length != SHA256_STATE_BYTES) {
    napi_throw_type_error(env, NULL, "sys: not a sha256 state (from sha256Start)");
    return NULL;
  }
  return data;
}

static napi_value sha256_start_call(napi_env env, napi_callback_info info) {
  napi_value result;
  void *state;
  (void)info;
  if (napi_create_buffer(env, SHA256_STATE_BYTES, &state, &result) != napi_ok) return NULL;
  memset(state, 0, SHA256_STATE_BYTES);
  SHA256_Init(state);
  return result;
}

/* The state a call gets first, with its other `count - 1` arguments in `argv`; NULL (an exception pending) when wrong. */
static void *state_arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < count) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return sha256_state(env, argv[0]);
}

static napi_value sha256_add_call(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *state = state_arguments(env, info, 2, argv, "sys: sha256Add(state, data)");
  if (state) sha256_part(env, state, argv[1]);
  return NULL;
}

static napi_value hex_digest(napi_env env, void *state) {
  static const char digits[] = "0123456789abcdef";
  unsigned char digest[32];
  char hex[64];
  napi_value result;
  SHA256_Final(digest, state);
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  napi_create_string_latin1(env, hex, 64, &result);
  return result;
}

static napi_value sha256_end_call(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *state = state_arguments(env, info, 1, argv, "sys: sha256End(state)");
  return state ? hex_digest(env, state) : NULL;
}

static napi_value sha256_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint64_t state[SHA256_STATE_BYTES / 8];
  bool is_array = false;
  uint32_t count = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "sys: sha256(data)");
    return NULL;
  }
  SHA256_Init(state);
  napi_is_array(env, argv[0], &is_array);
  if (!is_array) {
    if (!sha256_part(env, state, argv[0])) return NULL;
  } else {
    napi_get_array_length(env, argv[0], &count);
    for (uint32_t i = 0; i < count; i++) {
      napi_value part;
      if (napi_get_element(env, argv[0], i, &part) != napi_ok || !sha256_part(env, state, part)) return NULL;
    }
  }
  return hex_digest(env, state);
}

/* A hashranges call: the file, its ranges (offset, length pairs), and the digests made. */
struct hash_job {
  napi_async_work work;
  napi_deferred deferred;
  char path[PATH_BYTES];
  size_t count;
  double *ranges;
  unsigned char *digests;
  /* 0: hashed; -1: a range runs past the file's end; else the errno. */
  int outcome;
};

static void hash_execute(napi_env env, void *data) {
  (void)env;
  struct hash_job *job = data;
  size_t room = 1 << 20;
  unsigned char *buffer = malloc(room);
  int fd = buffer ? open(job->path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0) {
    job->outcome = buffer ? errno : ENOMEM;
    free(buffer);
    return;
  }
  uint64_t state[SHA256_STATE_BYTES / 8];
  for (size_t i = 0; i < job->count && job->outcome == 0; i++) {
    off_t offset = (off_t)job->ranges[2 * i];
    size_t left = (size_t)job->ranges[2 * i + 1];
    SHA256_Init(state);
    while (left > 0) {
      ssize_t n = pread(fd, buffer, left < room ? left : room, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        job->outcome = n == 0 ? -1 : errno;
        break;
      }
      SHA256_Update(state, buffer, (size_t)n);
      offset += n;
      left -= (size_t)n;
    }
    SHA256_Final(job->digests + 32 * i, state);
  }
  close(fd);
  free(buffer);
}

static void hash_complete(napi_env env, napi_status status, void *data) {
  struct hash_job *job = data;
  napi_value result;
  if (status == napi_ok && job->outcome == 0 && napi_create_external_buffer(env, 32 * job->count, job->digests, free_external, NULL, &result) == napi_ok) {
    job->digests = NULL;
    napi_resolve_deferred(env, job->deferred, result);
  } else if (status == napi_ok && job->outcome == -1) {
    napi_get_undefined(env, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else napi_reject_deferred(env, job->deferred, errno_error(env, status == napi_ok && job->outcome > 0 ? job->outcome : ENOMEM, "read", job->path));
  napi_delete_async_work(env, job->work);
  free(job->ranges);
  free(job->digests);
  free(job);
}

static napi_value hashranges_call(napi_env env, napi_callback_info info) {
  size_t argc = 2, length = 0;
  napi_value argv[2], promise, name;
  napi_typedarray_type kind;
  void *ranges = NULL;
  int has_path;
  bool is_array = false;
  struct hash_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, "ENOMEM", "sys: hashranges: out of memory");
    return NULL;
  }
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !string_arg(env, argv[0], job->path, sizeof job->path, 0, &has_path) ||
      napi_is_typedarray(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_typedarray_info(env, argv[1], &kind, &length, &ranges, NULL, NULL) != napi_ok ||
      kind != napi_float64_array || length % 2 != 0) {
    free(job);
    napi_throw_type_error(env, NULL, "sys: hashranges(path, Float64Array of offset, length pairs)");
    return NULL;
  }
  job->count = length / 2;
  job->ranges = malloc(length * sizeof(double) + 1);
  job->digests = malloc(32 * job->count + 1);
  if (!job->ranges || !job->digests) {
    free(job->ranges);
    free(job->digests);
    free(job);
    napi_throw_error(env, "ENOMEM", "sys: hashranges: out of memory");
    return NULL;
  }
  memcpy(job->ranges, ranges, length * sizeof(double));
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "kiln:hashranges", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, hash_execute, hash_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/*
 * Node's external latin1 strings (Node 20.4 and later); weak, so the addon loads on an older Node, where
 * readfile copies its string.
 */
extern napi_status node_api_create_external_string_latin1(napi_env env, char *text, size_t length, napi_finalize finalize, void *hint, napi_value *result, bool *copied) __attribute__((weak));

static void unmap_file(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value readfile_call(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result = NULL;
  char path[PATH_BYTES];
  int has_path, fd;
  bool latin1 = false, copied = true;
  struct stat status;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !string_arg(env, argv[0], path, sizeof path, 0, &has_path)) {
    napi_throw_type_error(env, NULL, "sys: readfile(path, latin1)");
    return NULL;
  }
  if (argc > 1) napi_get_value_bool(env, argv[1], &latin1);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  int error = fstat(fd, &status) != 0 ? errno : S_ISREG(status.st_mode) ? 0 : EINVAL;
  if (error) {
    close(fd);
    throw_errno(env, error, "read", path);
    return NULL;
  }
  size_t size = (size_t)status.st_size, room = size > 0 ? size : 1, done = 0;
  /* Populated at once: one call maps every page, where touching them one by one costs each a fault. */
  char *memory = mmap(NULL, room, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (memory == MAP_FAILED) {
    error = errno;
    close(fd);
    throw_errno(env, error, "mmap", path);
    return NULL;
  }
  while (done < size) {
    ssize_t got = read(fd, memory + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      error = got < 0 ? errno : EIO; /* shorter than its size: it changed while read */
      close(fd);
      munmap(memory, room);
      throw_errno(env, error, "read", path);
      return NULL;
    }
    done += (size_t)got;
  }
  close(fd);
  if (!latin1) {
    if (napi_create_external_buffer(env, size, memory, unmap_file, (void *)(uintptr_t)room, &result) != napi_ok) munmap(memory, room);
    return result;
  }
  if (node_api_create_external_string_latin1 == NULL ||
      node_api_create_external_string_latin1(env, memory, size, unmap_file, (void *)(uintptr_t)room, &result, &copied) != napi_ok) {
    napi_create_string_latin1(env, memory, size, &result);
    copied = true;
  }
  if (copied) munmap(memory, room);
  return result;
}

/* The seals runc and crun look for on /proc/self/exe: exactly these, an exec seal would not match. */
#define RUNTIME_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static napi_value kmsgend_call(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", "/dev/kmsg");
    return NULL;
  }
  if (lseek(fd, 0, SEEK_END) < 0) {
    int error = errno;
    close(fd);
    throw_errno(env, error, "lseek", "/dev/kmsg");
    return NULL;
  }
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value sealedcopy_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[PATH_BYTES];
  int has_path;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !string_arg(env, argv[0], path, sizeof path, 0, &has_path)) {
    napi_throw_type_error(env, NULL, "sys: sealedcopy(path)");
    return NULL;
  }
  int source = open(path, O_RDONLY | O_CLOEXEC);
  if (source < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  /* MFD_EXEC says so where the kernel asks (6.3 and later); an older one refuses the flag it does not know. */
  int copy = memfd_create("kiln-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (copy < 0 && errno == EINVAL) copy = memfd_create("kiln-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int error = copy < 0 ? errno : 0;
  struct stat st;
  if (error == 0 && fstat(source, &st) != 0) error = errno;
  for (off_t left = error == 0 ? st.st_size : 0; left > 0;) {
    ssize_t sent = sendfile(copy, source, NULL, left);
    if (sent <= 0) {
      error = sent < 0 ? errno : EIO;
      break;
    }
    left -= sent;
  }
  if (error == 0 && fcntl(copy, F_ADD_SEALS, RUNTIME_SEALS) != 0) error = errno;
  if (error == 0 && fcntl(copy, F_GET_SEALS) != RUNTIME_SEALS) error = EPERM;
  close(source);
  if (error != 0) {
    if (copy >= 0) close(copy);
    throw_errno(env, error, "sealedcopy", path);
    return NULL;
  }
  napi_create_int32(env, copy, &result);
  return result;
}

/*
 * Ends the process at once with the code given (_exit): what Node would do after (free the environment,
 * join its threads, run exit handlers) leaves nothing on disk, and costs a command about a millisecond.
 */
static napi_value exitnow_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1) napi_get_value_int32(env, argv[0], &code);
  _exit(code);
}

/* tarscan.c */
napi_value tarscan_call(napi_env env, napi_callback_info info);
napi_value tarjson_call(napi_env env, napi_callback_info info);
/* figures.c */
napi_value figures_call(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"mount", NULL, mount_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, umount_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getxattr", NULL, getxattr_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listdir", NULL, listdir_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spawn", NULL, spawn_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"walk", NULL, walk_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealedcopy", NULL, sealedcopy_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exitnow", NULL, exitnow_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kmsgend", NULL, kmsgend_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readfile", NULL, readfile_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tarscan", NULL, tarscan_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tarjson", NULL, tarjson_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"figures", NULL, figures_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256", NULL, sha256_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256Start", NULL, sha256_start_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256Add", NULL, sha256_add_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256End", NULL, sha256_end_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hashranges", NULL, hashranges_call, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  size_t count = sizeof properties / sizeof properties[0];
  /* The sha256 calls and hashranges are last: left out when this Node exports no SHA-256. */
  if (!SHA256_Init || !SHA256_Update || !SHA256_Final) count -= 5;
  napi_define_properties(env, exports, count, properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
