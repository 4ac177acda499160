//! Cross-process synchronisation primitives living in shared memory.
