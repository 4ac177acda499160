//! The Redis keys of one cluster pool.
//!
//! Every key of pool `P` starts with `shoal:{P}:`; the braces are a Redis Cluster hash
//! tag, so all of a pool's keys live in one slot and its Lua scripts may touch several.

use crate::error::ClusterError;

/// The consumer group of worker hosts on every task stream.
pub(crate) const GROUP: &str = "hosts";

/// Task priorities, highest first: worker hosts read the streams in this order.
///
/// # Examples
/// ```
/// use shoal_cluster::Priority;
///
/// assert_eq!(Priority::default(), Priority::Normal);
/// assert!(Priority::High < Priority::Low); // High is read first
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Read before any other.
    High,
    /// The default.
    #[default]
    Normal,
    /// Read when nothing else waits.
    Low,
}

impl Priority {
    /// Every priority, in reading order.
    pub(crate) const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    fn index(self) -> usize {
        self as usize
    }
}

/// The keys of one pool.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pool: String,
    prefix: String,
}

impl Names {
    /// The keys of pool `pool`: a name of letters, digits, `-`, `_`, `.` and `:`.
    pub(crate) fn new(pool: &str) -> Result<Names, ClusterError> {
        let ok = !pool.is_empty()
            && pool.len() <= 200
            && pool
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return Err(ClusterError::Config(format!(
                "the pool name {pool:?} is not valid: use 1 to 200 letters, digits, '-', '_', '.' or ':'"
            )));
        }
        Ok(Names {
            pool: pool.to_owned(),
            prefix: format!("shoal:{{{pool}}}:"),
        })
    }

    /// The pool's name.
    pub(crate) fn pool(&self) -> &str {
        &self.pool
    }

    /// The task stream of a priority.
    pub(crate) fn tasks(&self, p: Priority) -> String {
        format!("{}tasks:{}", self.prefix, p.index())
    }

    /// Every task stream, highest priority first.
    pub(crate) fn all_tasks(&self) -> Vec<String> {
        Priority::ALL.iter().map(|p| self.tasks(*p)).collect()
    }

    /// The result stream of a submitter.
    pub(crate) fn results(&self, submitter: &str) -> String {
        format!("{}results:{submitter}", self.prefix)
    }

    /// Whether `key` is a result stream of this pool (a host writes results nowhere else).
    pub(crate) fn is_results(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .and_then(|k| k.strip_prefix("results:"))
            .is_some_and(|s| !s.is_empty())
    }

    /// The dead-letter stream.
    pub(crate) fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// The hash of worker hosts (host id → its last heartbeat, JSON).
    pub(crate) fn hosts(&self) -> String {
        format!("{}hosts", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag_and_results_are_recognised() {
        let n = Names::new("jobs").unwrap();
        assert_eq!(n.tasks(Priority::High), "shoal:{jobs}:tasks:0");
        assert_eq!(n.dead(), "shoal:{jobs}:dead");
        assert!(n.is_results(&n.results("abc")));
        assert!(!n.is_results("shoal:{jobs}:dead"));
        assert!(!n.is_results("shoal:{other}:results:abc"));
        assert!(Names::new("bad name").is_err());
        assert!(Names::new("").is_err());
    }
}
