/*
 * tarscan(fd, start, end) -> Promise<Buffer | undefined>: the entries of a tar lying uncompressed at
 * [start, end) of an open file, as kiln analyze lists a layer (src/analyze/layers/walk.ts: paths cleaned,
 * whiteouts and opaque markers told apart, the root and AUFS's metadata left out), read on libuv's thread
 * pool: headers only, bodies skipped. The JavaScript scan of the same tar took most of an analysis of a
 * big image (a header is some twenty small steps: the checksum, six numbers, three names, cleaning).
 *
 * It reads what nearly every layer holds: ustar and GNU headers, GNU long names and links, PAX records.
 * A tar of 32 MB or more is read in pieces by two threads (see scan_in_pieces).
 *
 * Anything else (base-256 numbers, devices, sparse files, names that need cleaning, names that are not
 * UTF-8, a bad checksum, a tar cut short) resolves to undefined, and the caller reads that layer with the
 * JavaScript scan, which has every rule and every error message: one reader of the odd cases, this one
 * only for the common ones, so the two cannot disagree on anything but speed.
 *
 * It resolves to three Buffers. The columns, little-endian: u32 count, u32 1 when some name or link is
 * not ASCII (decode them as UTF-8, else latin1), 8 bytes of 0; then f64 columns of `count` each (size,
 * mode, uid, gid, body offset from `start`) and u8 kinds (walk.ts's KIND). The names, each ended by a
 * NUL. The link targets of the hardlinks and symlinks in entry order, each ended by a NUL.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "text.h"

#define BLOCK 512
/* A read after a jump: the next header and what follows it (a run of small files' headers). */
#define READ_BYTES (16 << 10)
/* reader.ts's MAX_META_BYTES: a longer extension header goes to the JavaScript scan (and its error). */
#define MAX_META_BYTES (8 << 20)
/* Names and links longer than this go to the JavaScript scan. */
#define NAME_BYTES 4096

enum kind { FILE_KIND, HARDLINK, SYMLINK, CHAR, BLOCK_KIND, DIRECTORY, FIFO, WHITEOUT, OPAQUE };

struct scan {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int64_t start, end;
  /*
   * The columns, laid out for as many entries as the tar could hold (one per block): a 16-byte head,
   * then f64 size, mode, uid, gid and body offset and u8 kind, `capacity` of each, closed up to `count`
   * each at the end. Pages no entry reaches are never touched, so cost nothing; writing in place spares
   * growing them and a copy at the end (first touches of memory cost some 3 us a page here).
   */
  unsigned char *columns;
  uint32_t capacity, count;
  struct bytes names, links;
  int not_ascii;
  /* 1: the JavaScript scan must read this tar; -1: out of memory; 0: read. */
  int outcome;
  unsigned char *buffer;
  size_t buffer_room;
  int64_t buffer_start, buffer_end;
  /* A piece's (see scan_in_pieces): where its scan started (-1: no header in its part). */
  int64_t from;
  /* Where the scan stopped: the first entry boundary at or past where it was asked to stop, or the end. */
  int64_t stopped;
  /* 1 when it reached the end of the archive (its marker or the file's end) rather than a stop. */
  int ended;
};

/* The `length` bytes at `position` of the tar, read when the buffer does not hold them; NULL at a read error or past the end. */
static const unsigned char *at(struct scan *scan, int64_t position, size_t length) {
  if (position >= scan->buffer_start && position + (int64_t)length <= scan->buffer_end) return scan->buffer + (position - scan->buffer_start);
  size_t wanted = length > READ_BYTES ? length : READ_BYTES;
  if (position + (int64_t)wanted > scan->end - scan->start) wanted = (size_t)(scan->end - scan->start - position);
  if (wanted < length) return NULL;
  if (wanted > scan->buffer_room) {
    unsigned char *grown = realloc(scan->buffer, wanted);
    if (!grown) return NULL;
    scan->buffer = grown;
    scan->buffer_room = wanted;
  }
  size_t got = 0;
  while (got < wanted) {
    ssize_t n = pread(scan->fd, scan->buffer + got, wanted - got, scan->start + position + (int64_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  scan->buffer_start = position;
  scan->buffer_end = position + (int64_t)got;
  return got >= length ? scan->buffer : NULL;
}

/* An octal field padded with spaces or NULs on either side; -1 for anything else (scan.ts's octal). */
static int64_t octal(const unsigned char *field, int length) {
  int i = 0;
  int64_t value = 0;
  while (i < length && (field[i] == ' ' || field[i] == 0)) i++;
  for (; i < length && field[i] >= '0' && field[i] <= '7'; i++) value = value * 8 + (field[i] - '0');
  for (; i < length; i++)
    if (field[i] != ' ' && field[i] != 0) return -1;
  return value;
}

/* The header's checksum matches, summed unsigned or (as some old tars did) signed. */
static int checksum_ok(const unsigned char *header) {
  int64_t stored = octal(header + 148, 8);
  if (stored < 0) return 0;
  int64_t sum = 8 * ' ';
  for (int i = 0; i < 148; i++) sum += header[i];
  for (int i = 156; i < BLOCK; i++) sum += header[i];
  if (stored == sum) return 1;
  sum = 8 * ' ';
  for (int i = 0; i < 148; i++) sum += (signed char)header[i];
  for (int i = 156; i < BLOCK; i++) sum += (signed char)header[i];
  return stored == sum;
}

static size_t field_length(const unsigned char *field, size_t length) {
  const unsigned char *nul = memchr(field, 0, length);
  return nul ? (size_t)(nul - field) : length;
}

/*
 * A tar path cleaned as walk.ts's cleanEntryPath cleans the paths that need no normalizing: one leading
 * "./" and one trailing "/" dropped. Returns its length (0: the root), or -1 when it needs more (an
 * absolute path, an empty, "." or ".." segment): the JavaScript scan's.
 */
static long clean(const unsigned char **path, size_t length) {
  const unsigned char *p = *path;
  if (length >= 2 && p[0] == '.' && p[1] == '/') p += 2, length -= 2;
  if (length > 0 && p[length - 1] == '/') length--;
  *path = p;
  if (length == 0 || (length == 1 && p[0] == '.')) return 0;
  size_t segment = 0;
  for (size_t i = 0; i <= length; i++) {
    if (i < length && p[i] != '/') continue;
    size_t n = i - segment;
    if (n == 0 || (n == 1 && p[segment] == '.') || (n == 2 && p[segment] == '.' && p[segment + 1] == '.')) return -1;
    segment = i + 1;
  }
  return (long)length;
}

/* A name or link kept: valid UTF-8, under NAME_BYTES; 0 sends the tar to the JavaScript scan. */
static int keep_text(struct scan *scan, struct bytes *to, const unsigned char *text, size_t length) {
  int ascii;
  if (length >= NAME_BYTES || !utf8_ok(text, length, &ascii) || memchr(text, 0, length)) return 0;
  if (!ascii) scan->not_ascii = 1;
  static const unsigned char nul = 0;
  if (!put(to, text, length) || !put(to, &nul, 1)) {
    scan->outcome = -1;
    return 0;
  }
  return 1;
}

/* A PAX number (size, uid, gid): digits only, a safe integer; -1 otherwise. */
static int64_t pax_integer(const unsigned char *value, size_t length) {
  if (length == 0 || length > 15) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < length; i++) {
    if (value[i] < '0' || value[i] > '9') return -1;
    n = n * 10 + (value[i] - '0');
  }
  return n;
}

/* What the extension headers before an entry said (pointers into `meta`, the last one read of each kind). */
struct extensions {
  struct bytes path, link, long_name, long_link;
  int has_path, has_link, has_long_name, has_long_link, any;
  int64_t size, uid, gid;
};

static void reset(struct extensions *ext) {
  ext->path.length = ext->link.length = ext->long_name.length = ext->long_link.length = 0;
  ext->has_path = ext->has_link = ext->has_long_name = ext->has_long_link = ext->any = 0;
  ext->size = ext->uid = ext->gid = -1;
}

/* Reads a PAX header's records into `ext` as reader.ts's parsePax and decodeHeader read them; 0 when it must go to the JavaScript scan. */
static int read_pax(struct extensions *ext, const unsigned char *body, size_t size) {
  for (size_t at = 0; at < size;) {
    if (body[at] == 0) break;
    const unsigned char *space = memchr(body + at, ' ', size - at);
    if (!space) return 0;
    size_t digits = (size_t)(space - (body + at)), length = 0;
    if (digits == 0 || digits > 9) return 0;
    for (size_t i = 0; i < digits; i++) {
      if (body[at + i] < '0' || body[at + i] > '9') return 0;
      length = length * 10 + (body[at + i] - '0');
    }
    if (length <= digits + 1 || at + length > size || body[at + length - 1] != '\n') return 0;
    const unsigned char *record = space + 1, *end = body + at + length - 1;
    const unsigned char *eq = memchr(record, '=', (size_t)(end - record));
    if (!eq || eq == record) return 0;
    size_t key = (size_t)(eq - record), value_length = (size_t)(end - eq - 1);
    const unsigned char *value = eq + 1;
#define KEY(name) (key == sizeof name - 1 && memcmp(record, name, key) == 0)
    /* The same key again replaces the value (a Map's set); an empty value means "the header's field". */
    if (key >= 11 && memcmp(record, "GNU.sparse.", 11) == 0) return 0;
    if (KEY("path")) {
      ext->path.length = 0;
      if (!put(&ext->path, value, value_length)) return 0;
      ext->has_path = value_length > 0;
    } else if (KEY("linkpath")) {
      ext->link.length = 0;
      if (!put(&ext->link, value, value_length)) return 0;
      ext->has_link = value_length > 0;
    } else if (KEY("size") || KEY("uid") || KEY("gid")) {
      int64_t n = value_length == 0 ? -1 : pax_integer(value, value_length);
      if (value_length > 0 && n < 0) return 0;
      if (KEY("size")) ext->size = n;
      else if (KEY("uid")) ext->uid = n;
      else ext->gid = n;
    } else if (KEY("mtime")) {
      /* Checked as decodeHeader checks it (-?digits(.digits)?); its value is no column here. */
      size_t i = value_length > 0 && value[0] == '-' ? 1 : 0, whole = i;
      while (i < value_length && value[i] >= '0' && value[i] <= '9') i++;
      if (value_length > 0 && i == whole) return 0;
      if (i < value_length) {
        if (value[i] != '.' || i + 1 == value_length) return 0;
        for (i++; i < value_length; i++)
          if (value[i] < '0' || value[i] > '9') return 0;
      }
      if (i - whole > 15) return 0;
    }
#undef KEY
    at += length;
  }
  return 1;
}

/* Scans the whole tar; scan->outcome says how it ended. */
/*
 * Scans the tar from `position` (an entry boundary: where an entry's first header starts) until the
 * first entry boundary at or past `stop`, or the end of the archive; scan->outcome says how it ended,
 * scan->stopped where.
 */
static void scan_range(struct scan *scan, int64_t position, int64_t stop) {
  int64_t size = scan->end - scan->start;
  struct extensions ext;
  memset(&ext, 0, sizeof ext);
  reset(&ext);
  scan->outcome = 1;
  scan->ended = 1;
  while (position < size) {
    if (!ext.any && position >= stop) {
      scan->ended = 0;
      break;
    }
    const unsigned char *header = position + BLOCK <= size ? at(scan, position, BLOCK) : NULL;
    if (!header) goto done;
    if (header[0] == 0) {
      int zero = 1;
      for (int i = 0; i < BLOCK && zero; i++) zero = header[i] == 0;
      if (zero) break;
    }
    if (!checksum_ok(header)) goto done;
    unsigned char flag = header[156];
    if (flag == 'x' || flag == 'g' || flag == 'L' || flag == 'K') {
      int64_t meta = octal(header + 124, 12);
      if (meta < 0 || meta > MAX_META_BYTES) goto done;
      int64_t next = position + BLOCK + ((meta + BLOCK - 1) & ~(int64_t)(BLOCK - 1));
      if (next > size) goto done;
      if (flag != 'g') {
        const unsigned char *body = at(scan, position + BLOCK, (size_t)meta);
        if (!body) goto done;
        if (flag == 'x') {
          if (!read_pax(&ext, body, (size_t)meta)) goto done;
        } else {
          struct bytes *to = flag == 'L' ? &ext.long_name : &ext.long_link;
          to->length = 0;
          if (!put(to, body, field_length(body, (size_t)meta))) goto done;
          if (flag == 'L') ext.has_long_name = 1;
          else ext.has_long_link = 1;
        }
        ext.any = 1;
      }
      position = next;
      continue;
    }
    int kind;
    switch (flag) {
    case '0': case 0: case '7': kind = FILE_KIND; break;
    case '1': kind = HARDLINK; break;
    case '2': kind = SYMLINK; break;
    case '5': kind = DIRECTORY; break;
    case '6': kind = FIFO; break;
    default: goto done;
    }
    int64_t mode = octal(header + 100, 8), uid = octal(header + 108, 8), gid = octal(header + 116, 8);
    int64_t file_size = octal(header + 124, 12), mtime = octal(header + 136, 12);
    if (mode < 0 || uid < 0 || gid < 0 || file_size < 0 || mtime < 0) goto done;
    /* The path: PAX's, else GNU's long name, else ustar's prefix/name (POSIX magic) or the name. */
    unsigned char joined[BLOCK];
    const unsigned char *path;
    size_t path_length;
    if (ext.has_path) path = ext.path.data, path_length = ext.path.length;
    else if (ext.has_long_name) path = ext.long_name.data, path_length = ext.long_name.length;
    else {
      size_t name = field_length(header, 100);
      size_t prefix = memcmp(header + 257, "ustar\0", 6) == 0 ? field_length(header + 345, 155) : 0;
      if (prefix > 0) {
        memcpy(joined, header + 345, prefix);
        joined[prefix] = '/';
        memcpy(joined + prefix + 1, header, name);
        path = joined, path_length = prefix + 1 + name;
      } else path = header, path_length = name;
    }
    if (flag == 0 && path_length > 0 && path[path_length - 1] == '/') kind = DIRECTORY;
    if (kind == FILE_KIND && ext.size >= 0) file_size = ext.size;
    if (ext.uid >= 0) uid = ext.uid;
    if (ext.gid >= 0) gid = ext.gid;
    if (kind != FILE_KIND) file_size = 0;
    const unsigned char *link = NULL;
    size_t link_length = 0;
    if (kind == HARDLINK || kind == SYMLINK) {
      if (ext.has_link) link = ext.link.data, link_length = ext.link.length;
      else if (ext.has_long_link) link = ext.long_link.data, link_length = ext.long_link.length;
      else link = header + 157, link_length = field_length(header + 157, 100);
    }
    int64_t body = position + BLOCK;
    position = body + ((file_size + BLOCK - 1) & ~(int64_t)(BLOCK - 1));
    if (position > size) goto done;
    /* The extensions are spent (their bytes stay until the next is read: `path` and `link` may point there). */
    reset(&ext);

    /* The entry as walk.ts's addEntry makes it. */
    const unsigned char *name = path;
    long name_length = clean(&name, path_length);
    if (name_length < 0) goto done;
    if (name_length == 0) continue;
    const unsigned char *slash = memrchr(name, '/', (size_t)name_length);
    const unsigned char *base = slash ? slash + 1 : name;
    size_t base_length = (size_t)(name + name_length - base);
    if (base_length >= 4 && memcmp(base, ".wh.", 4) == 0) {
      if (base_length >= 8 && memcmp(base, ".wh..wh.", 8) == 0) {
        if (base_length != 12 || memcmp(base, ".wh..wh..opq", 12) != 0) continue;
        kind = OPAQUE;
      } else kind = WHITEOUT;
      link = NULL;
    } else if (kind == HARDLINK) {
      long cleaned = clean(&link, link_length);
      if (cleaned < 0) goto done;
      link_length = (size_t)cleaned;
    }
    if (!keep_text(scan, &scan->names, name, (size_t)name_length)) goto done;
    if (link && !keep_text(scan, &scan->links, link, link_length)) goto done;
    double *column = (double *)(void *)(scan->columns + 16);
    uint32_t i = scan->count++, capacity = scan->capacity;
    column[i] = (double)file_size;
    column[capacity + i] = (double)(mode & 07777);
    column[2 * (size_t)capacity + i] = (double)uid;
    column[3 * (size_t)capacity + i] = (double)gid;
    column[4 * (size_t)capacity + i] = (double)body;
    scan->columns[16 + 40 * (size_t)capacity + i] = (unsigned char)kind;
  }
  /* The end-of-archive marker, the end of the file, or the stop: read. */
  scan->outcome = 0;
  scan->stopped = position;
done:
  free(ext.path.data);
  free(ext.link.data);
  free(ext.long_name.data);
  free(ext.long_link.data);
}

/* Columns for as many entries as a tar of `size` bytes could hold (see struct scan); 0 when out of memory or too big. */
static int make_columns(struct scan *scan, int64_t size) {
  if (size / BLOCK >= UINT32_MAX) return 0;
  scan->capacity = (uint32_t)(size / BLOCK) + 1;
  scan->columns = malloc(16 + 41 * (size_t)scan->capacity);
  return scan->columns != NULL;
}

/* Appends `piece`'s entries to the scan's; 0 when out of memory. */
static int append(struct scan *scan, const struct scan *piece) {
  if (!put(&scan->names, piece->names.data, piece->names.length) || !put(&scan->links, piece->links.data, piece->links.length)) return 0;
  double *to = (double *)(void *)(scan->columns + 16), *in = (double *)(void *)(piece->columns + 16);
  for (int c = 0; c < 5; c++) memcpy(to + (size_t)c * scan->capacity + scan->count, in + (size_t)c * piece->capacity, (size_t)piece->count * 8);
  memcpy(scan->columns + 16 + 40 * (size_t)scan->capacity + scan->count, piece->columns + 16 + 40 * (size_t)piece->capacity, piece->count);
  scan->count += piece->count;
  scan->not_ascii |= piece->not_ascii;
  return 1;
}

/*
 * A big tar is scanned in pieces by two threads. Each piece of the file, but the first, starts at the
 * first header it finds past its start (a checksum, ustar's magic and a type: `plausible`), and each
 * stops at the first entry boundary past its end; then the pieces are chained: where a piece started
 * where the one before it stopped, its entries follow (a boundary determines all that comes after it);
 * where it did not (it started inside a file's body, or not at a boundary), its part is scanned again
 * from where the one before stopped. Tars smaller than this are scanned in one piece.
 */
#define PIECE_BYTES ((int64_t)16 << 20)
#define MOST_PIECES 32

struct pieces {
  struct scan *scan;
  struct scan *piece;
  int64_t *bounds;
  size_t count;
  _Atomic size_t next;
};

static void free_scan_parts(struct scan *scan) {
  free(scan->columns);
  free(scan->names.data);
  free(scan->links.data);
  free(scan->buffer);
}

static int plausible(const unsigned char *header) {
  if (memcmp(header + 257, "ustar", 5) != 0 || (header[156] != 0 && !strchr("01234567xgLK", header[156]))) return 0;
  return checksum_ok(header);
}

/* Scans the pieces not yet taken; `piece->from` is where its scan started (-1: no header in its part). */
static void *scan_pieces(void *arg) {
  struct pieces *pieces = arg;
  for (size_t k; (k = atomic_fetch_add(&pieces->next, 1)) < pieces->count;) {
    struct scan *piece = &pieces->piece[k];
    int64_t from = pieces->bounds[k], to = pieces->bounds[k + 1];
    piece->from = -1;
    piece->outcome = 1;
    for (int64_t position = from; k > 0 && position < to && position + BLOCK <= piece->end - piece->start; position += BLOCK) {
      const unsigned char *header = at(piece, position, BLOCK);
      if (!header) break;
      if (plausible(header)) {
        piece->from = position;
        break;
      }
    }
    if (k == 0) piece->from = 0;
    if (piece->from >= 0 && make_columns(piece, to - piece->from + BLOCK)) scan_range(piece, piece->from, to);
  }
  return NULL;
}

/* Scans a big tar in pieces (see PIECE_BYTES); 0 when it could not start them (the caller scans it whole). */
static int scan_in_pieces(struct scan *scan, int64_t size) {
  size_t count = (size_t)(size / PIECE_BYTES);
  if (count > MOST_PIECES) count = MOST_PIECES;
  struct pieces pieces = {scan, calloc(count, sizeof(struct scan)), malloc((count + 1) * sizeof(int64_t)), count, 0};
  pthread_t thread;
  int started = pieces.piece && pieces.bounds;
  if (started) {
    for (size_t k = 0; k <= count; k++) pieces.bounds[k] = k == count ? size : (int64_t)((size / (int64_t)count * (int64_t)k) & ~(int64_t)(BLOCK - 1));
    for (size_t k = 0; k < count; k++) {
      pieces.piece[k].fd = scan->fd;
      pieces.piece[k].start = scan->start;
      pieces.piece[k].end = scan->end;
      pieces.piece[k].buffer_start = pieces.piece[k].buffer_end = -1;
    }
    started = pthread_create(&thread, NULL, scan_pieces, &pieces) == 0;
  }
  if (started) {
    scan_pieces(&pieces);
    pthread_join(thread, NULL);
    /* The chain: where the pieces before stopped, and the entries from there. */
    int64_t position = 0;
    scan->outcome = 0;
    for (size_t k = 0; k < count && scan->outcome == 0; k++) {
      struct scan *piece = &pieces.piece[k];
      if (position >= pieces.bounds[k + 1]) continue;
      if (piece->from != position) {
        /* Scanned again from the boundary the chain reached (in the piece's memory; its read buffer kept). */
        free(piece->columns);
        free(piece->names.data);
        free(piece->links.data);
        memset(&piece->names, 0, sizeof piece->names);
        memset(&piece->links, 0, sizeof piece->links);
        piece->columns = NULL;
        piece->buffer_start = piece->buffer_end = -1;
        piece->count = 0;
        piece->not_ascii = 0;
        piece->outcome = -1;
        if (make_columns(piece, pieces.bounds[k + 1] - position + BLOCK)) scan_range(piece, position, pieces.bounds[k + 1]);
      }
      if (piece->outcome != 0) scan->outcome = piece->outcome;
      else if (!append(scan, piece)) scan->outcome = -1;
      else if (piece->ended) break;
      else position = piece->stopped;
    }
  }
  for (size_t k = 0; pieces.piece && k < count; k++) free_scan_parts(&pieces.piece[k]);
  free(pieces.piece);
  free(pieces.bounds);
  return started;
}

static void scan_tar(struct scan *scan) {
  int64_t size = scan->end - scan->start;
  scan->outcome = 1;
  if (!make_columns(scan, size)) {
    scan->outcome = size / BLOCK >= UINT32_MAX ? 1 : -1;
    return;
  }
  if (size < 2 * PIECE_BYTES || !scan_in_pieces(scan, size)) scan_range(scan, 0, INT64_MAX);
  if (scan->outcome != 0) return;
  /* The columns close up to `count` each. */
  double *column = (double *)(void *)(scan->columns + 16);
  size_t count = scan->count, capacity = scan->capacity;
  for (int c = 1; c < 5; c++) memmove(column + c * count, column + c * capacity, count * 8);
  memmove(scan->columns + 16 + 40 * count, scan->columns + 16 + 40 * capacity, count);
  unsigned char *shrunk = realloc(scan->columns, 16 + 41 * count);
  if (shrunk) scan->columns = shrunk;
}

static void scan_execute(napi_env env, void *data) {
  (void)env;
  scan_tar(data);
}


static void scan_complete(napi_env env, napi_status status, void *data) {
  struct scan *scan = data;
  napi_value result = NULL;
  if (status != napi_ok || scan->outcome == -1) {
    napi_value message, code;
    napi_create_string_utf8(env, "sys: tarscan: out of memory", NAPI_AUTO_LENGTH, &message);
    napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &result);
    napi_reject_deferred(env, scan->deferred, result);
  } else if (scan->outcome == 1) {
    napi_get_undefined(env, &result);
    napi_resolve_deferred(env, scan->deferred, result);
  } else {
    /* [columns, names, links], each Buffer owning its memory. */
    uint32_t head[4] = {scan->count, (uint32_t)scan->not_ascii, 0, 0};
    memcpy(scan->columns, head, 16);
    struct bytes parts[3] = {{scan->columns, 16 + 41 * (size_t)scan->count, 0}, scan->names, scan->links};
    napi_create_array_with_length(env, 3, &result);
    for (uint32_t k = 0; k < 3; k++) {
      napi_value part;
      if (parts[k].length == 0 || napi_create_external_buffer(env, parts[k].length, parts[k].data, free_external, NULL, &part) != napi_ok) {
        napi_create_buffer(env, 0, NULL, &part);
        free(parts[k].data);
      }
      napi_set_element(env, result, k, part);
    }
    scan->columns = scan->names.data = scan->links.data = NULL;
    napi_resolve_deferred(env, scan->deferred, result);
  }
  napi_delete_async_work(env, scan->work);
  free(scan->columns);
  free(scan->names.data);
  free(scan->links.data);
  free(scan->buffer);
  free(scan);
}

napi_value tarscan_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], promise, name;
  int32_t fd;
  int64_t start, end;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &start) != napi_ok || napi_get_value_int64(env, argv[2], &end) != napi_ok || start < 0 || end < start) {
    napi_throw_type_error(env, NULL, "sys: tarscan(fd, start, end)");
    return NULL;
  }
  struct scan *scan = calloc(1, sizeof *scan);
  if (!scan) {
    napi_throw_error(env, "ENOMEM", "sys: tarscan: out of memory");
    return NULL;
  }
  scan->fd = fd;
  scan->start = start;
  scan->end = end;
  scan->buffer_start = scan->buffer_end = -1;
  napi_create_promise(env, &scan->deferred, &promise);
  napi_create_string_utf8(env, "kiln:tarscan", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, scan_execute, scan_complete, scan, &scan->work);
  napi_queue_async_work(env, scan->work);
  return promise;
}

/*
 * tarjson(columns, names, links) -> Promise<Buffer>: the `fileList` of dive's export for a layer tarscan
 * read, from its three Buffers, as src/analyze/json.ts writes it (JSON.stringify(…, null, 2) at its depth
 * in the document), made on the thread pool: an analysis writes it while its figures are computed.
 * A big layer's list is most of the document (some 250 bytes an entry).
 */

/* Go's os.FileMode type bits, and the tar typeflag dive lists, for each kind (json.ts's GO_TYPE_BITS and TYPE_FLAGS). */
static const uint32_t GO_TYPE_BITS[] = {0, 0, 1u << 27, (1u << 26) | (1u << 21), 1u << 26, 1u << 31, 1u << 25, 0, 0};
static const unsigned TYPE_FLAGS[] = {48, 49, 50, 51, 52, 53, 54, 48, 48};

struct render {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref parts[3];
  const unsigned char *columns, *names, *links;
  struct bytes out;
  int failed;
};

static void render_execute(napi_env env, void *data) {
  (void)env;
  struct render *render = data;
  struct bytes *out = &render->out;
  uint32_t count;
  memcpy(&count, render->columns, 4);
  const double *column = (const double *)(const void *)(render->columns + 16);
  const unsigned char *kinds = render->columns + 16 + 40 * (size_t)count, *name = render->names, *link = render->links;
  int ok = 1;
  if (count == 0) ok = put_text(out, "[]");
  else ok = put_text(out, "[\n");
  for (uint32_t i = 0; i < count && ok; i++) {
    unsigned kind = kinds[i] > OPAQUE ? 0 : kinds[i];
    double size = column[i], mode = column[count + i], uid = column[2 * (size_t)count + i], gid = column[3 * (size_t)count + i];
    uint32_t bits = (uint32_t)mode, file_mode = (bits & 0777) | GO_TYPE_BITS[kind];
    if (bits & 04000) file_mode |= 1u << 23;
    if (bits & 02000) file_mode |= 1u << 22;
    if (bits & 01000) file_mode |= 1u << 20;
    ok = put_text(out, "        {\n          \"path\": ");
    size_t name_length = strlen((const char *)name);
    ok = ok && put_string(out, name, name_length);
    name += name_length + 1;
    ok = ok && put_text(out, ",\n          \"typeFlag\": ") && put_number(out, TYPE_FLAGS[kind]) && put_text(out, ",\n          \"linkName\": ");
    if (kind == HARDLINK || kind == SYMLINK) {
      size_t link_length = strlen((const char *)link);
      ok = ok && put_string(out, link, link_length);
      link += link_length + 1;
    } else ok = ok && put_text(out, "\"\"");
    ok = ok && put_text(out, ",\n          \"size\": ") && put_number(out, size) && put_text(out, ",\n          \"fileMode\": ") && put_number(out, file_mode) &&
         put_text(out, ",\n          \"uid\": ") && put_number(out, uid) && put_text(out, ",\n          \"gid\": ") && put_number(out, gid) &&
         put_text(out, kind == DIRECTORY ? ",\n          \"isDir\": true\n        }" : ",\n          \"isDir\": false\n        }") &&
         put_text(out, i + 1 < count ? ",\n" : "\n      ]");
  }
  render->failed = !ok;
}

static void render_complete(napi_env env, napi_status status, void *data) {
  struct render *render = data;
  napi_value result;
  if (status == napi_ok && !render->failed && napi_create_external_buffer(env, render->out.length, render->out.data, free_external, NULL, &result) == napi_ok) {
    render->out.data = NULL;
    napi_resolve_deferred(env, render->deferred, result);
  } else {
    napi_value message, code;
    napi_create_string_utf8(env, "sys: tarjson: out of memory", NAPI_AUTO_LENGTH, &message);
    napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, message, &result);
    napi_reject_deferred(env, render->deferred, result);
  }
  for (int k = 0; k < 3; k++) napi_delete_reference(env, render->parts[k]);
  napi_delete_async_work(env, render->work);
  free(render->out.data);
  free(render);
}

napi_value tarjson_call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], promise, name;
  void *data[3];
  size_t length[3];
  bool is_buffer;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) goto usage;
  for (int k = 0; k < 3; k++)
    if (napi_is_buffer(env, argv[k], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[k], &data[k], &length[k]) != napi_ok) goto usage;
  uint32_t count;
  if (length[0] < 16 || (memcpy(&count, data[0], 4), length[0] != 16 + 41 * (size_t)count)) goto usage;
  struct render *render = calloc(1, sizeof *render);
  if (!render) {
    napi_throw_error(env, "ENOMEM", "sys: tarjson: out of memory");
    return NULL;
  }
  /* The Buffers stay alive (referenced) while the thread reads them. */
  for (int k = 0; k < 3; k++) napi_create_reference(env, argv[k], 1, &render->parts[k]);
  render->columns = data[0];
  render->names = data[1];
  render->links = data[2];
  napi_create_promise(env, &render->deferred, &promise);
  napi_create_string_utf8(env, "kiln:tarjson", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, render_execute, render_complete, render, &render->work);
  napi_queue_async_work(env, render->work);
  return promise;
usage:
  napi_throw_type_error(env, NULL, "sys: tarjson(columns, names, links) of a tarscan");
  return NULL;
}
