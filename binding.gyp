{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["native/original-dst.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
