// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST for sockets whose connection was REDIRECTed by iptables nat.
// Node exposes no getsockopt, so this addon reads the conntrack original destination of an
// accepted socket's file descriptor. One call, no allocation beyond the returned string.
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

// originalDst(fd, ipv6) -> "ip|port" string, or an errno number when the lookup fails
// (ENOENT: the connection was not redirected, i.e. someone dialled the listener directly).
static napi_value OriginalDst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  bool v6 = false;
  napi_value result;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_bool(env, argv[1], &v6) != napi_ok) {
    napi_throw_type_error(env, NULL, "originalDst(fd: number, ipv6: boolean)");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN + 8];
  if (v6) {
    struct sockaddr_in6 sa;
    socklen_t len = sizeof(sa);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) {
      napi_create_int32(env, errno, &result);
      return result;
    }
    inet_ntop(AF_INET6, &sa.sin6_addr, text, INET6_ADDRSTRLEN);
    size_t n = strlen(text);
    text[n] = '|';
    napi_value out;
    char port[8];
    int plen = 0;
    unsigned p = ntohs(sa.sin6_port);
    char rev[8];
    do { rev[plen++] = (char)('0' + p % 10); p /= 10; } while (p);
    for (int i = 0; i < plen; i++) port[i] = rev[plen - 1 - i];
    memcpy(text + n + 1, port, plen);
    napi_create_string_latin1(env, text, n + 1 + plen, &out);
    return out;
  }
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) {
    napi_create_int32(env, errno, &result);
    return result;
  }
  inet_ntop(AF_INET, &sa.sin_addr, text, INET_ADDRSTRLEN);
  size_t n = strlen(text);
  text[n] = '|';
  unsigned p = ntohs(sa.sin_port);
  char rev[8];
  int plen = 0;
  do { rev[plen++] = (char)('0' + p % 10); p /= 10; } while (p);
  for (int i = 0; i < plen; i++) text[n + 1 + i] = rev[plen - 1 - i];
  napi_create_string_latin1(env, text, n + 1 + plen, &result);
  return result;
}

// peerAddress(fd) -> "ip|port" of the peer, or an errno number. getsockopt(SO_PEERNAME) rather
// than getpeername(2), which answers ENOTCONN once the socket is in CLOSE: a client that reset
// its connection before we accepted it (an aborted upload) still has its address in the socket,
// and its record must carry it. IPv4-mapped IPv6 addresses are given as the kernel has them.
static napi_value PeerAddress(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_value result;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peerAddress(fd: number)");
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  // SO_PEERNAME wants no more room than the address takes (EINVAL otherwise): IPv6's size, then IPv4's.
  socklen_t len = sizeof(struct sockaddr_in6);
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &ss, &len);
  if (rc != 0 && errno == EINVAL) {
    len = sizeof(struct sockaddr_in);
    rc = getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &ss, &len);
  }
  if (rc != 0) {
    napi_create_int32(env, errno, &result);
    return result;
  }
  char text[INET6_ADDRSTRLEN + 8];
  unsigned p;
  if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &sa->sin6_addr, text, INET6_ADDRSTRLEN);
    p = ntohs(sa->sin6_port);
  } else if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *sa = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &sa->sin_addr, text, INET_ADDRSTRLEN);
    p = ntohs(sa->sin_port);
  } else {
    napi_create_int32(env, EAFNOSUPPORT, &result);
    return result;
  }
  size_t n = strlen(text);
  int written = snprintf(text + n, sizeof text - n, "|%u", p);
  napi_create_string_latin1(env, text, n + (size_t)written, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, OriginalDst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  napi_create_function(env, "peerAddress", NAPI_AUTO_LENGTH, PeerAddress, NULL, &fn);
  napi_set_named_property(env, exports, "peerAddress", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
