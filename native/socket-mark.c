// SO_MARK for the proxy's own sockets: the pod's iptables rules recognise the sidecar by this
// mark (set with CAP_NET_ADMIN, which app containers do not get) instead of by uid/gid, which a
// root app can take with setgid(2). Node exposes no setsockopt and creates a socket only as it
// connects, so the mark could not be set before the SYN leaves: this addon creates the socket
// with the mark already set (optionally bound) and hands the descriptor to net.Socket / dgram.
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "ESOCKETMARK";
  }
}

// Throws an Error whose .code is the errno name and whose message says what failed and why.
static void throw_errno(napi_env env, const char *what, int e) {
  char message[256];
  if (e == EPERM) {
    snprintf(message, sizeof message, "%s: %s (the sidecar needs CAP_NET_ADMIN in the pod's network namespace to mark its sockets)", what, strerror(e));
  } else {
    snprintf(message, sizeof message, "%s: %s", what, strerror(e));
  }
  napi_throw_error(env, errno_code(e), message);
}

static bool get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

// setSocketMark(fd, mark): setsockopt(SO_MARK) on an existing socket.
static napi_value SetSocketMark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  uint32_t mark = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !get_u32(env, argv[1], &mark)) {
    napi_throw_type_error(env, NULL, "setSocketMark(fd: number, mark: number)");
    return NULL;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) throw_errno(env, "setsockopt(SO_MARK)", errno);
  return NULL;
}

// socketMark(fd) -> the socket's mark (getsockopt SO_MARK; for checks and tests).
static napi_value SocketMark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "socketMark(fd: number)");
    return NULL;
  }
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) {
    throw_errno(env, "getsockopt(SO_MARK)", errno);
    return NULL;
  }
  napi_value out;
  napi_create_uint32(env, mark, &out);
  return out;
}

// markedSocket(ipv6, udp, mark, address?, port?) -> fd: a non-blocking, close-on-exec socket with
// SO_MARK set; bound to address:port when an address is given (SO_REUSEADDR, and IPV6_V6ONLY for
// IPv6, as Node's own listeners). On any failure the descriptor is closed and an Error thrown.
static napi_value MarkedSocket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool v6 = false, udp = false;
  uint32_t mark = 0, port = 0;
  char address[INET6_ADDRSTRLEN + 1] = {0};
  bool bind_it = false;
  if (argc < 3 || napi_get_value_bool(env, argv[0], &v6) != napi_ok || napi_get_value_bool(env, argv[1], &udp) != napi_ok ||
      !get_u32(env, argv[2], &mark)) {
    napi_throw_type_error(env, NULL, "markedSocket(ipv6: boolean, udp: boolean, mark: number, address?: string, port?: number)");
    return NULL;
  }
  if (argc >= 4) {
    napi_valuetype t = napi_undefined;
    napi_typeof(env, argv[3], &t);
    // An address that is not a string must not silently leave the socket unbound.
    if (t != napi_string && t != napi_undefined && t != napi_null) {
      napi_throw_type_error(env, NULL, "markedSocket: address must be an IP address");
      return NULL;
    }
    if (t == napi_string) {
      size_t n = 0;
      if (napi_get_value_string_latin1(env, argv[3], address, sizeof address, &n) != napi_ok || n >= sizeof address - 1) {
        napi_throw_type_error(env, NULL, "markedSocket: address must be an IP address");
        return NULL;
      }
      bind_it = true;
      if (argc < 5 || !get_u32(env, argv[4], &port) || port > 65535) {
        napi_throw_type_error(env, NULL, "markedSocket: port must be 0-65535");
        return NULL;
      }
    }
  }
  int domain = v6 ? AF_INET6 : AF_INET;
  int fd = socket(domain, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket()", errno);
    return NULL;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int e = errno;
    close(fd);
    throw_errno(env, "setsockopt(SO_MARK)", e);
    return NULL;
  }
  if (bind_it) {
    int one = 1;
    if (!udp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    char what[96];
    snprintf(what, sizeof what, "bind %s%s%s:%u", v6 ? "[" : "", address, v6 ? "]" : "", port);
    if (v6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      struct sockaddr_in6 sa;
      memset(&sa, 0, sizeof sa);
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons((uint16_t)port);
      if (inet_pton(AF_INET6, address, &sa.sin6_addr) != 1) {
        close(fd);
        napi_throw_type_error(env, NULL, "markedSocket: not an IPv6 address");
        return NULL;
      }
      rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
      struct sockaddr_in sa;
      memset(&sa, 0, sizeof sa);
      sa.sin_family = AF_INET;
      sa.sin_port = htons((uint16_t)port);
      if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        close(fd);
        napi_throw_type_error(env, NULL, "markedSocket: not an IPv4 address");
        return NULL;
      }
      rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    if (rc != 0) {
      int e = errno;
      close(fd);
      throw_errno(env, what, e);
      return NULL;
    }
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

// closeFd(fd): for a descriptor markedSocket made that was never handed to Node.
static napi_value CloseFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "closeFd(fd: number)");
    return NULL;
  }
  // Never the standard descriptors, whatever the caller computed.
  if (fd > 2) close(fd);
  return NULL;
}

// socketError(fd) -> the socket's pending error (getsockopt SO_ERROR; 0 if none). Reading it
// clears it. The JS relay asks at each EOF: libuv reports bytes followed by an RST that arrive in
// the same wakeup as bytes + EOF (a short read, then POLLHUP) and never reads the ECONNRESET the
// kernel keeps for the next read, so a reset would otherwise be passed on as a FIN.
static napi_value SocketError(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "socketError(fd: number)");
    return NULL;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    throw_errno(env, "getsockopt(SO_ERROR)", errno);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, err, &out);
  return out;
}

// resetOnClose(fd) -> 0, or the errno of setsockopt. SO_LINGER {on, 0 s}: the close(2) that
// follows sends an RST whatever the socket's state, bytes still queued included, where a plain
// close sends (or leaves queued) a FIN. libuv's uv_tcp_close_reset does the same but refuses a
// handle that had shutdown() asked of it (Node's end(), still waiting on its queued writes): then
// the socket closed with a FIN after whatever part of the stream was in the kernel, and the peer
// took a stream cut short for a complete one.
static napi_value ResetOnClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "resetOnClose(fd: number)");
    return NULL;
  }
  struct linger lg = {1, 0};
  int rc = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0 ? 0 : errno;
  napi_value out;
  napi_create_int32(env, rc, &out);
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  struct { const char *name; napi_callback fn; } fns[] = {
    {"setSocketMark", SetSocketMark},
    {"socketMark", SocketMark},
    {"socketError", SocketError},
    {"resetOnClose", ResetOnClose},
    {"markedSocket", MarkedSocket},
    {"closeFd", CloseFd},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
