// Zero-copy relay of a verdicted connection: once nothing needs to look at a connection's bytes
// any more (an opaque stream allowed on L3/L4 facts, past tunnel detection's payload window),
// splice(2) moves them socket → pipe → socket in the kernel, as HAProxy's tcp mode does, instead
// of every chunk being read into JavaScript and written back. Runs on Node's own event loop
// (uv_poll on the sockets' descriptors, level-triggered) while both net.Sockets stay paused with
// nothing queued, so libuv watches each descriptor through exactly one handle at a time.
//
// Semantics are the JS relay's (src/net/connection.ts): a FIN read on one side is passed on as a
// FIN (shutdown(SHUT_WR)) once the bytes before it are written; the relay ends when both
// directions finished, or at the first error, which it reports (with the side it came from) to
// JavaScript, which closes or resets the sockets and writes the record. Byte counts (read,
// written, and bytes in flight in a pipe) live in a Float64Array the caller owns.
//
// Pipes are taken only while bytes are in flight and go back to a small pool once drained, so an
// idle spliced connection holds no descriptor beyond its two sockets. When no pipe can be had
// (EMFILE), the relay hands the connection back to JavaScript (kind FALLBACK) with nothing lost.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Counter slots (Float64Array indices), shared with src/net/relay-splice.ts.
enum { C2S_READ = 0, S2C_READ = 1, C2S_PENDING = 2, S2C_PENDING = 3, C2S_WRITTEN = 4, S2C_WRITTEN = 5, SLOTS = 6 };
// How a relay ended (first argument of the end callback).
enum { END_DONE = 0, END_ERROR = 1, END_FALLBACK = 2 };
enum { SIDE_CLIENT = 0, SIDE_SERVER = 1 };

// Bytes moved per direction in one wakeup: then the event loop gets its turn (the descriptors are
// polled level-triggered, so whatever is left wakes us again).
#define BUDGET_PER_WAKEUP (1 << 20)
#define POOL_MAX 64

typedef struct {
  int src, dst;
  int pipe_r, pipe_w; // -1: none held
  size_t in_pipe;
  int eof;  // read 0 from src
  int shut; // dst got its FIN
  int slot_read, slot_pending, slot_written;
} direction_t;

typedef struct relay_s {
  napi_env env;
  napi_ref on_end;
  napi_ref counters_ref;
  napi_async_context async;
  double *counters;
  uv_poll_t poll[2]; // [SIDE_CLIENT] on the client fd, [SIDE_SERVER] on the upstream fd
  int fd[2];
  int poll_events[2];
  int closing_handles;
  direction_t c2s, s2c;
  int finished; // ended, or stopped from JavaScript: no more callbacks
  // The struct is freed when libuv is done with both poll handles and the JS handle (an
  // External) was collected, whichever comes last.
  int handles_open;
  int external_alive;
} relay_t;

static int pool[POOL_MAX][2];
static int pool_size = 0;

static int pipe_take(direction_t *d) {
  if (d->pipe_r >= 0) return 0;
  if (pool_size > 0) {
    --pool_size;
    d->pipe_r = pool[pool_size][0];
    d->pipe_w = pool[pool_size][1];
    return 0;
  }
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return -errno;
  d->pipe_r = p[0];
  d->pipe_w = p[1];
  return 0;
}

// Only an empty pipe goes back to the pool; one with bytes in it (a relay stopped or failed
// mid-flight) is closed.
static void pipe_give(direction_t *d) {
  if (d->pipe_r < 0) return;
  if (d->in_pipe == 0 && pool_size < POOL_MAX) {
    pool[pool_size][0] = d->pipe_r;
    pool[pool_size][1] = d->pipe_w;
    ++pool_size;
  } else {
    close(d->pipe_r);
    close(d->pipe_w);
  }
  d->pipe_r = d->pipe_w = -1;
  d->in_pipe = 0;
}

static const char *errno_code(int e) {
  switch (e) {
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ENOTCONN: return "ENOTCONN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    default: return "EIO";
  }
}

// Result of pumping one direction.
typedef struct {
  int err;  // errno of the failure (0: none)
  int side; // where it came from
  int fallback;
} pump_result_t;

static void set_pending(relay_t *r, direction_t *d) {
  r->counters[d->slot_pending] = (double)d->in_pipe;
}

// Moves bytes of one direction until the source has none, the destination takes no more, or the
// wakeup's budget is spent. src_side/dst_side name the sockets for errors.
static pump_result_t pump(relay_t *r, direction_t *d, int src_side, int dst_side) {
  pump_result_t res = {0, 0, 0};
  size_t moved = 0;
  for (;;) {
    if (d->in_pipe > 0) {
      ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break; // the destination is full: wait until it is writable
        res.err = n < 0 ? errno : EIO; // 0: the pipe lost bytes we counted (cannot happen)
        res.side = dst_side;
        break;
      }
      d->in_pipe -= (size_t)n;
      r->counters[d->slot_written] += (double)n;
      set_pending(r, d);
      if (d->in_pipe > 0) continue;
      pipe_give(d);
    }
    if (d->eof) {
      if (!d->shut) {
        // The FIN goes on only after every byte before it (as Node's end() after its writes).
        d->shut = 1;
        if (shutdown(d->dst, SHUT_WR) != 0 && errno != ENOTCONN) {
          res.err = errno;
          res.side = dst_side;
        }
      }
      break;
    }
    if (moved >= BUDGET_PER_WAKEUP) break;
    int e = pipe_take(d);
    if (e != 0) {
      res.fallback = 1;
      res.err = -e;
      res.side = src_side;
      break;
    }
    ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) {
      d->eof = 1;
      pipe_give(d);
      continue;
    }
    if (n < 0) {
      int err = errno;
      pipe_give(d);
      if (err == EINTR) continue;
      if (err == EAGAIN) break; // nothing to read now
      res.err = err;
      res.side = src_side;
      break;
    }
    d->in_pipe = (size_t)n;
    moved += (size_t)n;
    r->counters[d->slot_read] += (double)n;
    set_pending(r, d);
  }
  return res;
}

static void on_poll(uv_poll_t *handle, int status, int events);

static void handle_closed(uv_handle_t *handle) {
  relay_t *r = (relay_t *)handle->data;
  if (--r->closing_handles > 0) return;
  // Both poll handles are gone: nothing can call us any more. The references go now (the
  // callback refers to the object that holds the External: a cycle until then).
  r->handles_open = 0;
  napi_delete_reference(r->env, r->on_end);
  napi_delete_reference(r->env, r->counters_ref);
  napi_async_destroy(r->env, r->async);
  if (!r->external_alive) free(r);
}

static void external_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = (relay_t *)data;
  r->external_alive = 0;
  if (!r->handles_open) free(r);
}

// Start failed after the client's poll handle was initialised: only that one to close.
static void first_handle_closed(uv_handle_t *handle) {
  free(handle->data);
}

// Stops watching both descriptors (the sockets stay open: JavaScript owns and closes them) and
// lets the relay be freed once libuv is done with its handles.
static void release(relay_t *r) {
  r->finished = 1;
  pipe_give(&r->c2s);
  pipe_give(&r->s2c);
  r->closing_handles = 2;
  for (int i = 0; i < 2; i++) {
    uv_poll_stop(&r->poll[i]);
    uv_close((uv_handle_t *)&r->poll[i], handle_closed);
  }
}

// Which events each descriptor needs now: readable while its direction may read (pipe empty, no
// EOF yet), writable while the other direction has bytes in flight toward it.
static int update_polls(relay_t *r) {
  int want[2];
  want[SIDE_CLIENT] = ((!r->c2s.eof && r->c2s.in_pipe == 0) ? UV_READABLE : 0) | (r->s2c.in_pipe > 0 ? UV_WRITABLE : 0);
  want[SIDE_SERVER] = ((!r->s2c.eof && r->s2c.in_pipe == 0) ? UV_READABLE : 0) | (r->c2s.in_pipe > 0 ? UV_WRITABLE : 0);
  for (int i = 0; i < 2; i++) {
    if (want[i] == r->poll_events[i]) continue;
    int e = want[i] == 0 ? uv_poll_stop(&r->poll[i]) : uv_poll_start(&r->poll[i], want[i], on_poll);
    if (e != 0) return e;
    r->poll_events[i] = want[i];
  }
  return 0;
}

static void call_end(relay_t *r, int kind, int side, int err) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[3], result;
  napi_get_reference_value(env, r->on_end, &fn);
  napi_get_global(env, &recv); // MakeCallback wants an object as `this`
  napi_create_int32(env, kind, &argv[0]);
  napi_create_int32(env, side, &argv[1]);
  if (err != 0) napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &argv[2]);
  else napi_get_undefined(env, &argv[2]);
  napi_async_context async = r->async;
  // Released first: the callback closes the sockets, and may not find the relay watching them.
  // Except on a fallback: the callback takes the bytes in flight out with stop(), then the
  // sockets back.
  if (kind != END_FALLBACK) release(r);
  if (napi_make_callback(env, async, recv, fn, 3, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  if (!r->finished) release(r);
  napi_close_handle_scope(env, scope);
}

static void run(relay_t *r) {
  if (r->finished) return;
  pump_result_t a = pump(r, &r->c2s, SIDE_CLIENT, SIDE_SERVER);
  pump_result_t b = a.err == 0 ? pump(r, &r->s2c, SIDE_SERVER, SIDE_CLIENT) : (pump_result_t){0, 0, 0};
  pump_result_t bad = a.err != 0 ? a : b;
  if (bad.err != 0) {
    call_end(r, bad.fallback ? END_FALLBACK : END_ERROR, bad.side, bad.err);
    return;
  }
  if (r->c2s.shut && r->s2c.shut && r->c2s.in_pipe == 0 && r->s2c.in_pipe == 0) {
    call_end(r, END_DONE, 0, 0);
    return;
  }
  int e = update_polls(r);
  if (e != 0) call_end(r, END_ERROR, SIDE_CLIENT, -e);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  relay_t *r = (relay_t *)handle->data;
  (void)events;
  if (r->finished) return;
  if (status < 0) {
    // libuv stopped this poll on POLLERR: the socket has a pending error. The next splice on it
    // returns that error; when none does, SO_ERROR says what it was.
    int side = handle == &r->poll[SIDE_CLIENT] ? SIDE_CLIENT : SIDE_SERVER;
    r->poll_events[side] = 0;
    run(r);
    if (r->finished) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->fd[side], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) err = EIO;
    call_end(r, END_ERROR, side, err);
    return;
  }
  run(r);
}

static void init_direction(direction_t *d, int src, int dst, int slot_read, int slot_pending, int slot_written) {
  d->src = src;
  d->dst = dst;
  d->pipe_r = d->pipe_w = -1;
  d->in_pipe = 0;
  d->eof = 0;
  d->shut = 0;
  d->slot_read = slot_read;
  d->slot_pending = slot_pending;
  d->slot_written = slot_written;
}

// Marks the handles start() returns (N-API 8 type tags): another addon's external (an nfqueue
// handle, say) is refused with a TypeError instead of being read as a relay.
static const napi_type_tag RELAY_TAG = {0x2b7e9c41d0a35f86ULL, 0x91c4e6a2f8d03b57ULL};

// start(clientFd, upstreamFd, counters: Float64Array(6), onEnd(kind, side, code), done) -> handle,
// or a string naming why the descriptors cannot be relayed here (the caller keeps its JS relay).
// done: directions already finished by the JS relay (FIN read and passed on): 1 client → server,
// 2 server → client.
static napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t cfd = -1, ufd = -1, done = 0;
  // done is optional, but when given it must be a mask: read unchecked, a non-number would leave
  // 0 and the relay would wait on a direction JavaScript already finished.
  napi_valuetype done_type = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &done_type);
  if (done_type != napi_undefined && (napi_get_value_int32(env, argv[4], &done) != napi_ok || done < 0 || done > 3)) {
    napi_throw_type_error(env, NULL, "start(..., done?: 0..3)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_valuetype fn_type = napi_undefined;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &cfd) != napi_ok || napi_get_value_int32(env, argv[1], &ufd) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array || length < SLOTS ||
      napi_typeof(env, argv[3], &fn_type) != napi_ok || fn_type != napi_function || cfd < 0 || ufd < 0) {
    napi_throw_type_error(env, NULL, "start(clientFd: number, upstreamFd: number, counters: Float64Array(6), onEnd: function)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  relay_t *r = calloc(1, sizeof *r);
  if (r == NULL) {
    napi_value why;
    napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &why);
    return why;
  }
  r->env = env;
  r->counters = (double *)data;
  r->fd[SIDE_CLIENT] = cfd;
  r->fd[SIDE_SERVER] = ufd;
  init_direction(&r->c2s, cfd, ufd, C2S_READ, C2S_PENDING, C2S_WRITTEN);
  init_direction(&r->s2c, ufd, cfd, S2C_READ, S2C_PENDING, S2C_WRITTEN);
  if (done & 1) r->c2s.eof = r->c2s.shut = 1;
  if (done & 2) r->s2c.eof = r->s2c.shut = 1;
  // UV_EEXIST when libuv still watches a descriptor for its socket (a read or write in progress):
  // then the connection stays with the JS relay.
  int e = uv_poll_init_socket(loop, &r->poll[SIDE_CLIENT], cfd);
  if (e == 0) {
    e = uv_poll_init_socket(loop, &r->poll[SIDE_SERVER], ufd);
    if (e != 0) {
      r->poll[SIDE_CLIENT].data = r;
      uv_close((uv_handle_t *)&r->poll[SIDE_CLIENT], first_handle_closed);
      r = NULL;
    }
  } else {
    free(r);
    r = NULL;
  }
  if (r == NULL) {
    napi_value why;
    napi_create_string_utf8(env, uv_err_name(e), NAPI_AUTO_LENGTH, &why);
    return why;
  }
  r->poll[SIDE_CLIENT].data = r;
  r->poll[SIDE_SERVER].data = r;
  r->handles_open = 1;
  r->external_alive = 1;
  napi_value resource, resource_name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "sidewall.spliceRelay", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, resource, resource_name, &r->async);
  napi_create_reference(env, argv[3], 1, &r->on_end);
  napi_create_reference(env, argv[2], 1, &r->counters_ref);
  for (int i = 0; i < SLOTS; i++) r->counters[i] = 0;
  e = update_polls(r);
  napi_value handle;
  napi_create_external(env, r, external_finalized, NULL, &handle);
  napi_type_tag_object(env, handle, &RELAY_TAG);
  if (e != 0) {
    // Not started: give the descriptors back at once (the JS relay carries on).
    release(r);
    napi_value why;
    napi_create_string_utf8(env, uv_err_name(e), NAPI_AUTO_LENGTH, &why);
    return why;
  }
  return handle;
}

static relay_t *relay_of(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  bool tagged = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_check_object_type_tag(env, v, &RELAY_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, &data) != napi_ok)
    return NULL;
  return (relay_t *)data;
}

// Bytes still in a direction's pipe, read out (nonblocking) into a Buffer; null when none.
static napi_value drain_pipe(napi_env env, direction_t *d) {
  napi_value out;
  if (d->pipe_r < 0 || d->in_pipe == 0) {
    napi_get_null(env, &out);
    return out;
  }
  void *bytes = NULL;
  napi_create_buffer(env, d->in_pipe, &bytes, &out);
  size_t got = 0;
  while (got < d->in_pipe) {
    ssize_t n = read(d->pipe_r, (char *)bytes + got, d->in_pipe - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  d->in_pipe = 0;
  return out;
}

// stop(handle) -> [bytes in flight toward the server, toward the client] (Buffer or null), and no
// end callback: JavaScript takes the connection back (a capture joined it) or is ending it.
// A relay that already ended returns [null, null].
static napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  relay_t *r = argc < 1 ? NULL : relay_of(env, argv[0]);
  if (r == NULL) {
    napi_throw_type_error(env, NULL, "stop(handle)");
    return NULL;
  }
  napi_value out, nul;
  napi_create_array_with_length(env, 2, &out);
  napi_get_null(env, &nul);
  if (r->finished) {
    napi_set_element(env, out, 0, nul);
    napi_set_element(env, out, 1, nul);
    return out;
  }
  napi_set_element(env, out, 0, drain_pipe(env, &r->c2s));
  napi_set_element(env, out, 1, drain_pipe(env, &r->s2c));
  r->counters[C2S_PENDING] = 0;
  r->counters[S2C_PENDING] = 0;
  release(r);
  return out;
}

// state(handle) -> [c2s eof, c2s FIN sent, s2c eof, s2c FIN sent] as a bit mask (1, 2, 4, 8): for
// a caller taking a connection back after one direction finished.
static napi_value State(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  relay_t *r = argc < 1 ? NULL : relay_of(env, argv[0]);
  if (r == NULL) {
    napi_throw_type_error(env, NULL, "state(handle)");
    return NULL;
  }
  int mask = (r->c2s.eof ? 1 : 0) | (r->c2s.shut ? 2 : 0) | (r->s2c.eof ? 4 : 0) | (r->s2c.shut ? 8 : 0);
  napi_value out;
  napi_create_int32(env, mask, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"start", NULL, Start, NULL, NULL, NULL, napi_default, NULL},
    {"stop", NULL, Stop, NULL, NULL, NULL, napi_default, NULL},
    {"state", NULL, State, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
