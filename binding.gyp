{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["native/original-dst.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "socket_mark",
      "sources": ["native/socket-mark.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "splice_relay",
      "sources": ["native/splice-relay.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "release_memory",
      "sources": ["native/release-memory.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "nfqueue",
      "sources": ["native/nfqueue.c"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-lnetfilter_queue", "-lnfnetlink"]
    }
  ]
}
