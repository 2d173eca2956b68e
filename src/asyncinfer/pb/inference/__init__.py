"""The KServe v2 / Triton inference protocol, compiled into a private descriptor pool."""
