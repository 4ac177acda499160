//! Starting and supervising processes.
