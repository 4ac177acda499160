//! Connections to Redis, the Lua scripts of the protocol, and retrying.
//!
//! Each side keeps two connection managers (they reconnect by themselves after Redis
//! restarts): one for commands, and one of its own for the blocking reader, whose
//! `BLOCK` would otherwise hold up every command behind it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::ClusterError;

/// How long a blocking read waits in Redis before it returns empty-handed.
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);

/// Stores the results of a batch of task entries and acknowledges the entries, in that
/// order, only for the entries still pending (the first results of an entry win; later
/// ones are dropped). Redis does not roll a script back, so the results are written
/// before any acknowledgement: a failed write leaves the entries pending, never
/// acknowledged without their results. The results of all the entries going to one
/// submitter travel in one result entry (fields `m`, `m2`, `m3`…), and each task
/// stream gets one `XACK` and one `XDEL` for all its entries: one call per batch, a
/// few stream operations per batch instead of four per task.
///
/// KEYS: the streams, each once. ARGV: group, then per task entry the index (in KEYS)
/// of its task stream, the index of its result stream, its entry id, and its signed
/// results. Returns how many entries were answered.
const COMPLETE: &str = r"
local group = ARGV[1]
local out, outs, acks, streams = {}, {}, {}, {}
local n = 0
for i = 2, #ARGV, 4 do
  local t, r, entry = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2]
  local p = redis.call('XPENDING', KEYS[t], group, entry, entry, 1)
  if #p > 0 then
    local f = out[r]
    if not f then
      f = {}
      out[r] = f
      table.insert(outs, r)
    end
    local k = #f / 2 + 1
    f[#f + 1] = k == 1 and 'm' or ('m' .. k)
    f[#f + 1] = ARGV[i + 3]
    local a = acks[t]
    if not a then
      a = {}
      acks[t] = a
      table.insert(streams, t)
    end
    a[#a + 1] = entry
    n = n + 1
  end
end
for _, r in ipairs(outs) do
  redis.call('XADD', KEYS[r], '*', unpack(out[r]))
end
for _, t in ipairs(streams) do
  redis.call('XACK', KEYS[t], group, unpack(acks[t]))
  redis.call('XDEL', KEYS[t], unpack(acks[t]))
end
return n
";

/// Moves a pending task entry to the dead-letter stream (with, when a third key is
/// given, a failure result for its submitter), then acknowledges it.
///
/// KEYS: task stream, dead-letter stream, [result stream]. ARGV: group, entry id,
/// reason, deliveries, host, original message or '', [signed result].
const DEAD_LETTER: &str = r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'reason', ARGV[3], 'stream', KEYS[1], 'entry', ARGV[2],
  'deliveries', ARGV[4], 'host', ARGV[5], 'm', ARGV[6])
if #KEYS == 3 then redis.call('XADD', KEYS[3], '*', 'm', ARGV[7]) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

/// Renews the leases of the entries a consumer still owns (resets their idle time
/// without counting a delivery); returns the ids it no longer owns.
///
/// KEYS: task stream. ARGV: group, consumer, ids...
const RENEW: &str = r"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 0 then
    table.insert(lost, ARGV[i])
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  end
end
return lost
";

/// The protocol's scripts, loaded once per side.
#[derive(Clone)]
pub(crate) struct Scripts {
    pub(crate) complete: redis::Script,
    pub(crate) dead_letter: redis::Script,
    pub(crate) renew: redis::Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            complete: redis::Script::new(COMPLETE),
            dead_letter: redis::Script::new(DEAD_LETTER),
            renew: redis::Script::new(RENEW),
        }
    }
}

/// The Redis URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// A client for `url` (`redis://`, `rediss://` for TLS, `redis+unix://`; user and
/// password in the URL's userinfo).
pub(crate) fn client(url: &str) -> Result<redis::Client, ClusterError> {
    if url.starts_with("rediss://") {
        // rustls needs one process-wide crypto provider; another part of the program
        // may have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    redis::Client::open(url).map_err(|e| {
        ClusterError::Connect(format!("the redis url {} is not valid: {e}", redact(url)))
    })
}

/// A connection manager for commands (`blocking`: for the blocking reader, whose
/// replies may take [`BLOCK`]).
pub(crate) async fn manager(
    client: &redis::Client,
    url: &str,
    blocking: bool,
) -> Result<ConnectionManager, ClusterError> {
    let response = if blocking {
        BLOCK + Duration::from_secs(10)
    } else {
        Duration::from_secs(10)
    };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(8)
        .set_max_delay(Duration::from_secs(1));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| {
            ClusterError::Connect(format!(
                "could not connect to redis at {}: {e}",
                redact(url)
            ))
        })
}

/// Creates the consumer group on every task stream of a pool, from the start of the
/// stream (tasks submitted before any host started are read too).
pub(crate) async fn ensure_groups(
    con: &mut ConnectionManager,
    streams: &[String],
) -> Result<(), ClusterError> {
    for s in streams {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s)
            .arg(crate::names::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(con)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => {
                return Err(ClusterError::redis(
                    format!("creating the consumer group of {s}"),
                    &e,
                ))
            }
        }
    }
    Ok(())
}

/// The pause before retry `attempt` (0, 1, …) of a command that failed on the
/// connection: 50 ms doubling to 1 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(5)).min(Duration::from_secs(1))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 16 random hex digits (from the kernel's generator), for submitter and host ids.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        // Without the device, time and pid are unique enough for one machine.
        b = (now_ms() ^ (u64::from(std::process::id()) << 40)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a failed command is worth retrying (the connection, not the command).
pub(crate) fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING") | Some("TRYAGAIN") | Some("BUSY"))
}
