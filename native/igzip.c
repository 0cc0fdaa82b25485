/*
 * gzip through Intel's ISA-L (igzip): compression some four times faster than zlib's for output a few
 * percent larger, decompression about twice as fast. Both synchronous, for calls on small pieces or in
 * worker threads:
 * - gzipMember(bytes, level) -> ArrayBuffer: one whole gzip member.
 * - new Gunzip(): write(chunk) -> ArrayBuffer[] (each full, GUNZIP_OUTPUT bytes), end() -> Uint8Array[]
 *   (the rest), for a stream of one or more members, read as zlib's gunzip in Node reads them.
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

/* Output comes in buffers of this size: whole ones can be moved to another thread without a copy. */
#define GUNZIP_OUTPUT (1 << 20)

/*
 * A Gunzip's state. Lifecycle: made by the constructor, freed with its JS object. `output` is the
 * ArrayBuffer being filled (held by `output_ref`), handed out once full or at the end.
 */
typedef struct {
  struct inflate_state inflate;
  napi_ref output_ref;
  uint8_t *output;
  size_t output_used;
  int in_member;      /* between a member's header and its trailer */
  int members_done;
  int ended;          /* a zero byte came where a member would start: the rest is ignored */
} gunzip_t;

static void gunzip_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  gunzip_t *gunzip = data;
  if (gunzip->output_ref != NULL) napi_delete_reference(env, gunzip->output_ref);
  free(gunzip);
}

static napi_value gunzip_new(napi_env env, napi_callback_info info) {
  napi_value self;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  gunzip_t *gunzip = calloc(1, sizeof *gunzip);
  if (gunzip == NULL) {
    napi_throw_error(env, NULL, "igzip: out of memory");
    return NULL;
  }
  isal_inflate_init(&gunzip->inflate);
  if (napi_wrap(env, self, gunzip, gunzip_finalize, NULL, NULL) != napi_ok) {
    free(gunzip);
    napi_throw_error(env, NULL, "igzip: napi_wrap failed");
    return NULL;
  }
  return self;
}

/* zlib's words for the same faults, so that messages read the same whichever library is used. */
static const char *inflate_error(int status) {
  switch (status) {
    case ISAL_INVALID_BLOCK: return "invalid block type";
    case ISAL_INVALID_SYMBOL: return "invalid code";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "incorrect header check";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check";
    case ISAL_NEED_DICT: return "need dictionary";
    default: return "invalid gzip data";
  }
}

/* Appends the output buffer to `list` and lets go of it. */
static int hand_out(napi_env env, gunzip_t *gunzip, napi_value list, int partial) {
  napi_value buffer, item;
  uint32_t length;
  if (napi_get_reference_value(env, gunzip->output_ref, &buffer) != napi_ok || napi_get_array_length(env, list, &length) != napi_ok) return 0;
  item = buffer;
  if (partial && napi_create_typedarray(env, napi_uint8_array, gunzip->output_used, buffer, 0, &item) != napi_ok) return 0;
  if (napi_set_element(env, list, length, item) != napi_ok) return 0;
  napi_delete_reference(env, gunzip->output_ref);
  gunzip->output_ref = NULL;
  gunzip->output = NULL;
  return 1;
}

/*
 * Inflates all of the pending input (none at the end) into `list`. Returns 0 with an exception pending
 * on failure. After a member, a zero byte ends the data (padding; whatever follows is ignored) and
 * anything else starts another member, as zlib's gunzip does in Node.
 */
static int drain(napi_env env, gunzip_t *gunzip, napi_value list) {
  struct inflate_state *state = &gunzip->inflate;
  for (;;) {
    if (!gunzip->in_member) {
      if (gunzip->members_done > 0 && state->avail_in > 0 && *state->next_in == 0) gunzip->ended = 1;
      if (gunzip->ended || state->avail_in == 0) return 1;
      uint8_t *next_in = state->next_in;
      uint32_t avail_in = state->avail_in;
      isal_inflate_reset(state);
      state->crc_flag = ISAL_GZIP;
      state->next_in = next_in;
      state->avail_in = avail_in;
      gunzip->in_member = 1;
    }
    if (gunzip->output == NULL) {
      napi_value buffer;
      void *data;
      if (napi_create_arraybuffer(env, GUNZIP_OUTPUT, &data, &buffer) != napi_ok ||
          napi_create_reference(env, buffer, 1, &gunzip->output_ref) != napi_ok) {
        napi_throw_error(env, NULL, "igzip: out of memory");
        return 0;
      }
      gunzip->output = data;
      gunzip->output_used = 0;
    }
    state->next_out = gunzip->output + gunzip->output_used;
    state->avail_out = (uint32_t)(GUNZIP_OUTPUT - gunzip->output_used);
    uint32_t avail_in = state->avail_in, avail_out = state->avail_out;
    int status = isal_inflate(state);
    gunzip->output_used = GUNZIP_OUTPUT - state->avail_out;
    if (status < 0 || status == ISAL_NEED_DICT) {
      napi_throw_error(env, NULL, inflate_error(status));
      return 0;
    }
    int full = state->avail_out == 0;
    if (full && !hand_out(env, gunzip, list, 0)) {
      napi_throw_error(env, NULL, "igzip: could not hand out output");
      return 0;
    }
    if (state->block_state == ISAL_BLOCK_FINISH) {
      gunzip->in_member = 0;
      gunzip->members_done++;
    } else if (!full && state->avail_in == 0) {
      return 1; /* needs more input */
    } else if (state->avail_in == avail_in && state->avail_out == avail_out) {
      napi_throw_error(env, NULL, "igzip: inflate made no progress");
      return 0;
    }
  }
}

static gunzip_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "igzip: not a Gunzip");
    return NULL;
  }
  return data;
}

static napi_value gunzip_write(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], list;
  napi_typedarray_type type;
  size_t length;
  void *data;
  gunzip_t *gunzip = unwrap(env, info, &argc, argv);
  if (gunzip == NULL) return NULL;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array || length > UINT32_MAX) {
    napi_throw_type_error(env, NULL, "igzip: write(Uint8Array under 4 GiB)");
    return NULL;
  }
  if (napi_create_array(env, &list) != napi_ok) return NULL;
  gunzip->inflate.next_in = data;
  gunzip->inflate.avail_in = (uint32_t)length;
  int ok = drain(env, gunzip, list);
  gunzip->inflate.next_in = NULL; /* the chunk is the caller's again */
  gunzip->inflate.avail_in = 0;
  return ok ? list : NULL;
}

static napi_value gunzip_end(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value list;
  gunzip_t *gunzip = unwrap(env, info, &argc, NULL);
  if (gunzip == NULL || napi_create_array(env, &list) != napi_ok) return NULL;
  gunzip->inflate.avail_in = 0;
  if (gunzip->in_member && !drain(env, gunzip, list)) return NULL;
  if (gunzip->in_member || gunzip->members_done == 0) {
    napi_throw_error(env, NULL, "unexpected end of file");
    return NULL;
  }
  if (gunzip->output != NULL && gunzip->output_used > 0 && !hand_out(env, gunzip, list, 1)) {
    napi_throw_error(env, NULL, "igzip: could not hand out output");
    return NULL;
  }
  return list;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, gunzip_class;
  napi_property_descriptor methods[] = {
      {"write", NULL, gunzip_write, NULL, NULL, NULL, napi_default, NULL},
      {"end", NULL, gunzip_end, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_create_function(env, "gzipMember", NAPI_AUTO_LENGTH, gzip_member, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "gzipMember", fn) != napi_ok ||
      napi_define_class(env, "Gunzip", NAPI_AUTO_LENGTH, gunzip_new, NULL, 2, methods, &gunzip_class) != napi_ok ||
      napi_set_named_property(env, exports, "Gunzip", gunzip_class) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
