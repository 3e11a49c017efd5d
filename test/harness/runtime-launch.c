/*
 * What runc does before it execs a Kubernetes container process whose securityContext is
 * {runAsUser: 1337, runAsGroup: 1337, allowPrivilegeEscalation: false,
 *  capabilities: {drop: [ALL], add: [NET_ADMIN]}}: bounding set {NET_ADMIN}, uid/gid 1337 (caps
 * kept across setresuid with PR_SET_KEEPCAPS), then permitted and effective set to the
 * container's list (containerd CRI) — or cleared, as cri-dockerd does for non-root users
 * ("clear") — inheritable and ambient empty, no_new_privs, execve.
 * Usage: runtime-launch keep|clear PROGRAM [ARGS...]   (as root)
 */
#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: runtime-launch keep|clear PROGRAM [ARGS...]\n"); return 2; }
  int keep = strcmp(argv[1], "keep") == 0;
  int last = (int)prctl(PR_CAPBSET_READ, 0, 0, 0, 0) >= 0 ? 63 : 0;
  for (int cap = 0; cap <= last; cap++) {
    if (cap == CAP_NET_ADMIN) continue;
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) { perror("PR_CAPBSET_DROP"); return 1; }
  }
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) { perror("PR_SET_KEEPCAPS"); return 1; }
  if (setgroups(0, NULL) != 0 || setresgid(1337, 1337, 1337) != 0 || setresuid(1337, 1337, 1337) != 0) { perror("setresuid"); return 1; }
  struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (keep) data[0].permitted = data[0].effective = 1u << CAP_NET_ADMIN;
  if (syscall(SYS_capset, &header, data) != 0) { perror("capset"); return 1; }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 1; }
  execvp(argv[2], argv + 2);
  perror("execvp");
  return 127;
}
