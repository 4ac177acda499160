//! Turning the items of a call into chunk messages, on the caller's thread (so that
//! encoding runs beside the supervisor, not in it).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::Serialize;

use crate::codec;
use crate::handoff;
use crate::pool::chunk::Chunk;
use crate::pool::job::{Job, Piece};
use crate::pool::shared::Shared;
use crate::pool::{wire, TaskError};

/// Descriptors one task argument may carry (the kernel's limit for one message).
const MAX_FDS_PER_ITEM: usize = 253;

/// Encodes up to `max` items of `input` into chunks of `chunksize` items, numbered from
/// `job.submitted`, and submits them. Items that cannot be encoded fail at once.
/// Returns how many items were taken, and whether `input` ran out.
pub(crate) fn feed<A: Serialize>(
    shared: &Shared,
    job: &Arc<Job>,
    task: u32,
    chunksize: usize,
    input: &mut impl Iterator<Item = A>,
    max: u64,
) -> (u64, bool) {
    let chunksize = chunksize.max(1);
    let mut first = job.lock().submitted;
    let start = first;
    let mut chunks = Vec::new();
    let mut failed = Vec::new();
    let mut exhausted = false;
    let mut taken = 0u64;
    // The chunks without descriptors share one empty list (one allocation per call,
    // not one per chunk).
    let no_fds: Arc<Vec<OwnedFd>> = Arc::default();
    // One handoff for all the items: each item's descriptors are taken after it.
    handoff::capturing(|| {
        'outer: while taken < max {
            let id = shared.chunk_id();
            let mut msg = Vec::with_capacity(wire::CHUNK_HEADER + 16 * chunksize.min(4096));
            wire::chunk_header(&mut msg, id, task);
            let mut count = 0u32;
            while (count as usize) < chunksize && taken < max {
                let Some(a) = input.next() else {
                    exhausted = true;
                    break;
                };
                taken += 1;
                let at = msg.len();
                // Descriptors in the argument (sockets, files, shoal objects) are collected;
                // such an item travels in a chunk of its own, its descriptors beside it.
                let r = wire::push_item(&mut msg, |out| codec::bincode_append(&a, out));
                let fds = handoff::take_captured();
                let r = r.map_err(|e| format!("could not encode the argument: {e}"));
                let r = match r {
                    Ok(()) if fds.len() > MAX_FDS_PER_ITEM => Err(format!(
                    "the argument carries {} descriptors; a task takes at most {MAX_FDS_PER_ITEM}",
                    fds.len()
                )),
                    r => r,
                };
                let index = first + u64::from(count);
                match r {
                    Ok(()) if fds.is_empty() => {
                        count += 1;
                        continue;
                    }
                    Ok(()) => {
                        let item = msg.split_off(at + 4);
                        msg.truncate(at);
                        push_chunk(&mut chunks, id, job, &no_fds, first, count, msg);
                        let own = shared.chunk_id();
                        let mut msg = wire::chunk_from_items(own, task, &[&item]);
                        wire::mark_with_fds(&mut msg);
                        chunks.push(Chunk {
                            id: own,
                            job: Arc::clone(job),
                            first: index,
                            count: 1,
                            attempt: 0,
                            msg,
                            fds: Arc::new(fds),
                        });
                    }
                    Err(message) => {
                        msg.truncate(at);
                        push_chunk(&mut chunks, id, job, &no_fds, first, count, msg);
                        failed.push(Piece::failed(
                            index,
                            TaskError::Codec {
                                task: index,
                                error: crate::codec::CodecError::new(message),
                            },
                        ));
                    }
                }
                first = index + 1;
                continue 'outer;
            }
            push_chunk(&mut chunks, id, job, &no_fds, first, count, msg);
            first += u64::from(count);
            if exhausted {
                break;
            }
        }
    });
    {
        let mut st = job.lock();
        st.submitted = start + taken;
        if exhausted {
            st.input_done = true;
        }
    }
    if !failed.is_empty() {
        job.deliver(failed);
    }
    // A refused submission fails the items itself.
    let _ = shared.submit(chunks);
    (taken, exhausted)
}

/// Adds the chunk `msg` of `count` items from `first` to `chunks`, if it has any.
fn push_chunk(
    chunks: &mut Vec<Chunk>,
    id: u64,
    job: &Arc<Job>,
    no_fds: &Arc<Vec<OwnedFd>>,
    first: u64,
    count: u32,
    mut msg: Vec<u8>,
) {
    if count > 0 {
        wire::set_count(&mut msg, count);
        chunks.push(Chunk {
            id,
            job: Arc::clone(job),
            first,
            count,
            attempt: 0,
            msg,
            fds: Arc::clone(no_fds),
        });
    }
}
