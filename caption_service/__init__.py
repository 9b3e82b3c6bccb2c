"""Images in, captions out. Owns the GPU when an engine needs one."""
