// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST for sockets whose connection was REDIRECTed by iptables nat.
// Node exposes no getsockopt, so this addon reads the conntrack original destination of an
// accepted socket's file descriptor. One call, no allocation beyond the returned string.
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
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

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, OriginalDst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
