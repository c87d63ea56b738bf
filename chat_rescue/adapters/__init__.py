"""One package per platform: translate payloads in, deliver actions out."""
