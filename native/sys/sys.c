/*
 * The system calls a build step makes around its container, without a process each: util-linux's mount
 * and umount and attr's getfattr cost a fork and exec apiece (several to tens of ms on a busy machine)
 * for a call of well under one. Needs no library, so it builds wherever a C compiler and Node's headers
 * are. Synchronous, and each throws an Error with the errno's name as `code` (EPERM, ENOENT, …):
 * - mount(source, target, fstype, flags, data, cwd): mount(2), with relative paths in `data` (overlay's
 *   lowerdir=…) resolved from `cwd`; `cwd` is taken on a thread of its own, so the process's stays.
 * - umount(target, flags): umount2(2).
 * - getxattr(path, name) -> string | undefined: lgetxattr(2); undefined when the file has no such
 *   attribute (or its filesystem keeps none).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <unistd.h>

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

static void throw_errno(napi_env env, int error, const char *call, const char *path) {
  char message[PATH_BYTES + 128];
  napi_value code, text, exception;
  snprintf(message, sizeof message, "%s %s: %s", call, path, strerror(error));
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_string_utf8(env, strerrorname_np(error) ? strerrorname_np(error) : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &exception);
  napi_throw(env, exception);
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

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"mount", NULL, mount_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, umount_call, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getxattr", NULL, getxattr_call, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
