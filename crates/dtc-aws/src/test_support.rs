//! For integration tests of any crate that need a local service (DynamoDB Local, the S3
//! server, a Kafka broker): whether it is configured, and a failure, not a skip, when a CI run
//! lacks it. Compiled only with the `test-support` feature (test builds).

/// Whether the services the environment variables `flags` (each `=1`) announce are there. A
/// test calls this first and returns when it says no: a skip, noted on stderr. Under `CI=true`
/// a missing service panics instead, so that CI never passes a test it did not run.
pub fn services_up(flags: &[&str], what: &str) -> bool {
    let missing: Vec<&str> = flags
        .iter()
        .copied()
        .filter(|flag| std::env::var(flag).as_deref() != Ok("1"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} not 1: {what} not running (scripts/test.sh starts the local services)",
        missing.join(" and ")
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but {why}"
    );
    eprintln!("skipped: {why}");
    false
}
