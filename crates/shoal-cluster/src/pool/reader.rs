//! The submitter's result reader: a blocking `XREAD` on a connection of its own, that
//! hands each result to its waiter and deletes what it read.
//!
//! A result entry holds one or more fields `m`, `m2`, `m3`…, each a signed
//! [`ResultMessage`] carrying the results of one task entry; each is checked on its
//! own.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;

use crate::connect::{backoff, now_ms, BLOCK};
use crate::error::TaskError;
use crate::pool::Inner;
use crate::wire::{self, Kind, ResultMessage};

/// Results read per call, at most.
const COUNT: usize = 1024;

/// Reads the result stream until the pool's runtime stops.
pub(crate) async fn read_results(inner: Arc<Inner>, mut con: ConnectionManager) {
    // From the start: results that came before the reader (none for a new
    // submitter) are not skipped.
    let mut last = "0-0".to_owned();
    let mut attempt = 0;
    loop {
        let r: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&inner.results)
            .arg(&last)
            .query_async(&mut con)
            .await;
        let reply = match r {
            Ok(r) => {
                attempt = 0;
                r
            }
            Err(_) => {
                // Redis restarting, or the connection lost: the manager reconnects;
                // nothing read is lost, the next read starts after `last`.
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let Some(reply) = reply else { continue };
        let mut read = Vec::new();
        for k in reply.keys {
            for e in k.ids {
                let mut signed = 0;
                for (field, m) in &e.map {
                    if field.starts_with('m') {
                        signed += 1;
                        handle(&inner, &e.id, Some(m)).await;
                    }
                }
                if signed == 0 {
                    handle(&inner, &e.id, None).await;
                }
                last.clone_from(&e.id);
                read.push(e.id);
            }
        }
        if !read.is_empty() {
            let mut c = inner.con.clone();
            // Read results are deleted so the stream stays small; a failure leaves
            // them for the next start of the stream to skip (they are behind `last`).
            let _: redis::RedisResult<u64> = redis::cmd("XDEL")
                .arg(&inner.results)
                .arg(&read)
                .query_async(&mut c)
                .await;
        }
    }
}

/// Checks, decodes and delivers one signed message of a result entry.
async fn handle(inner: &Inner, entry: &str, m: Option<&redis::Value>) {
    let bytes: &[u8] = match m {
        Some(redis::Value::BulkString(b)) => b,
        _ => &[],
    };
    match wire::open::<ResultMessage>(&inner.key, inner.names.pool(), Kind::Result, bytes) {
        Ok(msg) => {
            let host = msg.host;
            inner.deliver_all(msg.results.into_iter().map(|(id, outcome)| {
                (
                    id,
                    outcome.map_err(|f| TaskError::from_failure(f, host.clone())),
                )
            }));
        }
        Err(refused) => {
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
            let mut c = inner.con.clone();
            let _: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(inner.names.dead())
                .arg("*")
                .arg("reason")
                .arg(refused.to_string())
                .arg("stream")
                .arg(&inner.results)
                .arg("entry")
                .arg(entry)
                .arg("deliveries")
                .arg(0)
                .arg("host")
                .arg("")
                .arg("m")
                .arg(bytes)
                .arg("at")
                .arg(now_ms())
                .query_async(&mut c)
                .await;
        }
    }
}
