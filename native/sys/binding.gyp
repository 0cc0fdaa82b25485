{
  "targets": [
    {
      "target_name": "sys",
      "sources": ["sys.c", "tarscan.c", "figures.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
