{
  "targets": [
    {
      "target_name": "max_cert_list",
      "sources": ["max_cert_list.cc"],
      # node.h's NODE_MODULE_INIT casts its init function (a warning of node.h's, not ours)
      "cflags_cc": ["-Wno-cast-function-type"]
    }
  ]
}
