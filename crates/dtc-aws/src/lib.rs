//! AWS backends for dtc, and nothing else: the DynamoDB [`BlockStore`]
//! ([`dynamodb::DynamoStore`], `dynamodb://TABLE`), S3 event inputs ([`s3::S3::inputs`],
//! `s3://bucket/prefix`) and the S3 [`Destination`](dtc_io::sink::Destination) for Parquet
//! output ([`s3::S3Destination`]).
//!
//! The store, input and sink traits are synchronous (see `dtc_store`'s crate docs); this crate
//! drives the async AWS SDK on its own Tokio runtime, so its sync entry points must not be
//! called from inside another Tokio runtime. Endpoints, region and credentials come from the
//! standard AWS chain (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`,
//! `AWS_REGION`, `AWS_PROFILE`, …). The layout and the trade-offs are in `docs/aws.md`.

pub mod dynamodb;
mod errors;
mod retry;
pub mod s3;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::sync::OnceLock;

use dtc_store::{BlockStore, StoreError};

pub use dynamodb::{DynamoOptions, DynamoStore, FaultInjection};
pub use retry::RetryPolicy;

/// Opens the store `uri` names: `dynamodb://TABLE` here, anything else through
/// [`dtc_store::open_store`]. `options` only matter for DynamoDB, where `mode` is
/// `options.create_table`'s business.
pub fn open_store(
    uri: &str,
    mode: dtc_store::OpenMode,
    options: DynamoOptions,
) -> Result<Box<dyn BlockStore>, StoreError> {
    match uri.strip_prefix("dynamodb://") {
        Some(table) => Ok(Box::new(DynamoStore::open(table, options)?)),
        None => dtc_store::open_store(uri, mode),
    }
}

/// The runtime every blocking call of this crate runs on, started on first use. Two workers:
/// the work is waiting on the network, and the machine's cores belong to the engine.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dtc-aws")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the AWS client runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The shared AWS configuration from the standard chain, or why there is none usable.
async fn load_sdk_config() -> Result<aws_config::SdkConfig, String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    if config.region().is_none() {
        return Err(
            "no AWS region configured: set AWS_REGION (or a region in the AWS profile)".into(),
        );
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_uris_fall_back_to_the_local_stores() {
        let mode = dtc_store::OpenMode::CreateIfMissing;
        let store = open_store("memory:", mode, DynamoOptions::default()).unwrap();
        assert!(store.describe().contains("memory"));
        let err = open_store("cassandra://x", mode, DynamoOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::UnsupportedUri { .. }), "{err}");
    }

    #[test]
    fn the_runtime_is_shared() {
        let a = runtime().unwrap() as *const _;
        let b = runtime().unwrap() as *const _;
        assert_eq!(a, b);
    }
}
