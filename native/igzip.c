/*
 * gzip members through Intel's ISA-L (igzip): some four times faster than zlib for output a few percent
 * larger, which is what makes pushing (compressing at push time) as fast as skopeo's parallel gzip.
 * One synchronous function, meant for worker threads: gzipMember(bytes, level) -> ArrayBuffer.
 */
#include <node_api.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                    \
  do {                                                                                 \
    if ((call) != napi_ok) {                                                           \
      napi_throw_error(env, NULL, "igzip: " #call " failed");                           \
      goto done;                                                                       \
    }                                                                                  \
  } while (0)

static const uint32_t level_buffer_sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                              ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

/* gzipMember(bytes: Uint8Array, level: 0..3): ArrayBuffer holding one whole gzip member. */
static napi_value gzip_member(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result = NULL;
  uint8_t *level_buffer = NULL;
  uint8_t *out = NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  int32_t level;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array || napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 0 ||
      level > 3 || length > UINT32_MAX / 2) {
    napi_throw_type_error(env, NULL, "igzip: gzipMember(Uint8Array under 2 GiB, level 0 to 3)");
    goto done;
  }
  /* Deflate's worst case is stored blocks: 5 bytes per 64 KiB, plus gzip's header and trailer. */
  size_t capacity = length + length / 4096 + 1024;
  level_buffer = malloc(level_buffer_sizes[level]);
  out = malloc(capacity);
  if (level_buffer == NULL || out == NULL) {
    napi_throw_error(env, NULL, "igzip: out of memory");
    goto done;
  }
  struct isal_zstream stream;
  isal_deflate_init(&stream);
  stream.level = (uint32_t)level;
  stream.level_buf = level_buffer;
  stream.level_buf_size = level_buffer_sizes[level];
  stream.gzip_flag = IGZIP_GZIP;
  stream.end_of_stream = 1;
  stream.flush = NO_FLUSH;
  stream.next_in = data;
  stream.avail_in = (uint32_t)length;
  stream.next_out = out;
  stream.avail_out = (uint32_t)capacity;
  int status = isal_deflate(&stream);
  if (status != COMP_OK || stream.internal_state.state != ZSTATE_END) {
    napi_throw_error(env, NULL, "igzip: compression did not complete");
    goto done;
  }
  void *copy;
  CHECK(napi_create_arraybuffer(env, stream.total_out, &copy, &result));
  memcpy(copy, out, stream.total_out);
done:
  free(level_buffer);
  free(out);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "gzipMember", NAPI_AUTO_LENGTH, gzip_member, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "gzipMember", fn) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
