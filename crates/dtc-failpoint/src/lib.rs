//! Crash points for the kill-and-restart tests, and nothing else.
//!
//! Code on the run's path calls [`hit`] with a name at the places where a crash matters (inside
//! the sort, between a store commit and an output's publish, at a rename, during an upload).
//! Without the `enabled` feature `hit` is an empty inline function: release builds carry no
//! failpoint code. With it, a test arms one point ([`arm`]) and the process kills itself with
//! SIGKILL when that point is reached, as `kill -9` would: no destructor runs, no buffer is
//! flushed, nothing is unlocked.
//!
//! A point is either the N-th hit of any failpoint (so a soak can spread crashes over a whole
//! run without naming points) or the N-th hit of one named point.

/// Which hit kills the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The N-th (1-based) hit of any failpoint.
    Nth(u64),
    /// The N-th (1-based) hit of the failpoint with this name.
    Named(String, u64),
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `N` or `NAME:N`.
    fn from_str(text: &str) -> Result<Target, String> {
        let number = |n: &str| {
            n.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{n}` is not a hit number (1, 2, ...)"))
        };
        match text.rsplit_once(':') {
            Some((name, n)) if !name.is_empty() => Ok(Target::Named(name.to_string(), number(n)?)),
            _ => Ok(Target::Nth(number(text)?)),
        }
    }
}

/// Whether this build has failpoints.
pub const ENABLED: bool = cfg!(feature = "enabled");

#[cfg(feature = "enabled")]
mod imp {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Target;

    static HITS: AtomicU64 = AtomicU64::new(0);
    static ARMED: Mutex<Option<(Target, u64)>> = Mutex::new(None);

    pub fn arm(target: Target) {
        *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some((target, 0));
    }

    pub fn hits() -> u64 {
        HITS.load(Ordering::SeqCst)
    }

    pub fn hit(name: &'static str) {
        let n = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        let fire = match armed.as_mut() {
            Some((Target::Nth(at), _)) => n == *at,
            Some((Target::Named(point, at), seen)) if point == name => {
                *seen += 1;
                *seen == *at
            }
            _ => false,
        };
        if fire {
            // Written unbuffered, so a test can tell where its process died.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "failpoint: killed at {name} (hit {n})");
            // SAFETY: kill(2) on our own pid with SIGKILL; it does not return.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Arms `target`; the process dies when it is reached. Without failpoints in the build this
/// says so, so that a test never believes it crashed a run it did not.
pub fn arm(target: Target) -> Result<(), &'static str> {
    #[cfg(feature = "enabled")]
    {
        imp::arm(target);
        Ok(())
    }
    #[cfg(not(feature = "enabled"))]
    {
        let _ = target;
        Err("this dtc was built without failpoints (they exist in test builds only)")
    }
}

/// Failpoints hit so far in this process (0 without failpoints).
pub fn hits() -> u64 {
    #[cfg(feature = "enabled")]
    {
        imp::hits()
    }
    #[cfg(not(feature = "enabled"))]
    {
        0
    }
}

/// A place where a crash matters. Names are `crate.stage.point`, e.g. `runtime.commit.published`.
#[inline(always)]
pub fn hit(name: &'static str) {
    #[cfg(feature = "enabled")]
    imp::hit(name);
    #[cfg(not(feature = "enabled"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("7".parse::<Target>(), Ok(Target::Nth(7)));
        assert_eq!(
            "runtime.commit:2".parse::<Target>(),
            Ok(Target::Named("runtime.commit".into(), 2))
        );
        assert!("0".parse::<Target>().is_err());
        assert!("x:0".parse::<Target>().is_err());
        assert!("x:y".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
    }
}
