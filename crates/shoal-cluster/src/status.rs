//! [`status`]: what a cluster pool is doing, as `shoal cluster status` shows it.

use std::collections::HashMap;

use serde::Serialize;

use crate::connect::{self, now_ms};
use crate::error::ClusterError;
use crate::host::run::HostInfo;
use crate::names::{Names, Priority, GROUP};

/// A snapshot of a cluster pool, from [`status`].
///
/// # Examples
/// ```no_run
/// let s = shoal_cluster::status("redis://127.0.0.1:6379", "jobs")?;
/// println!("{} hosts, {} in flight, {} pending, {} dead-lettered",
///     s.hosts.len(), s.in_flight, s.pending, s.dead_lettered);
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The pool's name.
    pub pool: String,
    /// The worker hosts that sent a heartbeat lately (silent ones are dropped after ten
    /// leases).
    pub hosts: Vec<HostStatus>,
    /// Task entries delivered to a host and not yet answered (the consumer group's
    /// pending entries; an entry carries one or more tasks of one call).
    pub in_flight: u64,
    /// Task entries waiting for a host.
    pub pending: u64,
    /// Task entries waiting, per priority (high, normal, low).
    pub pending_by_priority: [u64; 3],
    /// Entries in the dead-letter stream.
    pub dead_lettered: u64,
}

/// One worker host, as its last heartbeat describes it.
///
/// # Examples
/// ```no_run
/// for h in shoal_cluster::status("redis://127.0.0.1:6379", "jobs")?.hosts {
///     println!("{} pid {} on {}: {} processes, {} held{}", h.id, h.pid, h.hostname,
///         h.processes, h.held, if h.alive { "" } else { " (silent)" });
/// }
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct HostStatus {
    /// The host's consumer name in the group.
    pub id: String,
    /// Its machine's name.
    pub hostname: String,
    /// Its process id.
    pub pid: u32,
    /// Processes of its local pool.
    pub processes: usize,
    /// Tasks it holds.
    pub held: usize,
    /// Tasks it finished since it started.
    pub done: u64,
    /// Milliseconds since its last heartbeat.
    pub last_seen_ms: u64,
    /// Whether it was heard from within one lease.
    pub alive: bool,
    /// Whether it is stopping (finishing its tasks, taking no more).
    pub stopping: bool,
}

/// Reads the state of pool `pool` on the Redis at `url`.
///
/// # Errors
/// [`ClusterError::Connect`] or [`ClusterError::Redis`] when Redis cannot be read.
///
/// # Examples
/// ```no_run
/// let s = shoal_cluster::status("redis://127.0.0.1:6379", "jobs")?;
/// assert!(s.hosts.iter().all(|h| h.processes >= 1));
/// # Ok::<(), shoal_cluster::ClusterError>(())
/// ```
pub fn status(url: &str, pool: &str) -> Result<Status, ClusterError> {
    let names = Names::new(pool)?;
    let client = connect::client(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Config(format!("could not start a runtime: {e}")))?;
    rt.block_on(async {
        let mut con = connect::manager(&client, url, false).await?;
        let mut st = Status {
            pool: pool.to_owned(),
            ..Status::default()
        };
        for (i, p) in Priority::ALL.iter().enumerate() {
            let s = names.tasks(*p);
            let len: u64 = redis::cmd("XLEN")
                .arg(&s)
                .query_async(&mut con)
                .await
                .map_err(|e| ClusterError::redis(format!("reading the length of {s}"), &e))?;
            // XPENDING's summary: count, first id, last id, per-consumer counts.
            let summary: redis::RedisResult<(u64, redis::Value, redis::Value, redis::Value)> =
                redis::cmd("XPENDING")
                    .arg(&s)
                    .arg(GROUP)
                    .query_async(&mut con)
                    .await;
            let held = match summary {
                Ok((n, ..)) => n,
                Err(e) if e.code() == Some("NOGROUP") => 0,
                Err(e) => {
                    return Err(ClusterError::redis(
                        format!("reading the pending tasks of {s}"),
                        &e,
                    ))
                }
            };
            // Answered tasks are deleted, so what the stream holds is either held by
            // a host or waiting for one.
            st.in_flight += held;
            st.pending_by_priority[i] = len.saturating_sub(held);
            st.pending += len.saturating_sub(held);
        }
        st.dead_lettered = redis::cmd("XLEN")
            .arg(names.dead())
            .query_async(&mut con)
            .await
            .map_err(|e| ClusterError::redis("reading the dead-letter stream", &e))?;
        let hosts: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(names.hosts())
            .query_async(&mut con)
            .await
            .map_err(|e| ClusterError::redis("reading the worker hosts", &e))?;
        let now = now_ms();
        for json in hosts.values() {
            if let Ok(i) = serde_json::from_str::<HostInfo>(json) {
                let ago = now.saturating_sub(i.seen_ms);
                st.hosts.push(HostStatus {
                    id: i.id,
                    hostname: i.hostname,
                    pid: i.pid,
                    processes: i.processes,
                    held: i.held,
                    done: i.done,
                    last_seen_ms: ago,
                    alive: ago <= i.lease_ms,
                    stopping: i.stopping,
                });
            }
        }
        st.hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(st)
    })
}
