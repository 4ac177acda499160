//! The optional progress bar of `map` and `imap` (feature `progress`, indicatif).
//!
//! Without the feature this is a no-op of size zero, so callers need no `cfg`.

/// Items between two updates of the bar: drawing is rate-limited by indicatif, but even
/// its bookkeeping would cost more than a trivial task.
#[cfg(feature = "progress")]
const STEP: u64 = 256;

/// A progress bar, or nothing.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
    #[cfg(feature = "progress")]
    pending: u64,
}

impl Progress {
    /// A bar over `len` items (a spinner when unknown) if `enabled`.
    #[cfg(feature = "progress")]
    pub(crate) fn new(enabled: bool, len: Option<u64>) -> Progress {
        let bar = enabled.then(|| {
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            match len {
                Some(n) => indicatif::ProgressBar::new(n).with_style(style),
                None => indicatif::ProgressBar::new_spinner(),
            }
        });
        Progress { bar, pending: 0 }
    }

    /// Without the feature: nothing.
    #[cfg(not(feature = "progress"))]
    pub(crate) fn new(_enabled: bool, _len: Option<u64>) -> Progress {
        Progress {}
    }

    /// One more item done.
    #[inline]
    pub(crate) fn advance(&mut self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            self.pending += 1;
            if self.pending >= STEP {
                bar.inc(self.pending);
                self.pending = 0;
            }
        }
    }

    /// `n` more items done.
    #[inline]
    pub(crate) fn advance_by(&mut self, n: u64) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            self.pending += n;
            if self.pending >= STEP {
                bar.inc(self.pending);
                self.pending = 0;
            }
        }
        #[cfg(not(feature = "progress"))]
        let _ = n;
    }

    /// The work is over: show the final count and leave the bar.
    pub(crate) fn finish(&mut self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = self.bar.take() {
            bar.inc(self.pending);
            bar.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_counts_and_finishes() {
        let mut p = Progress::new(true, Some(1000));
        for _ in 0..1000 {
            p.advance();
        }
        p.finish();
        let mut off = Progress::new(false, None);
        off.advance();
    }
}
