//! What a location on the command line names: block stores, event sources and outputs.

use std::path::{Path, PathBuf};

use dtc_aws::s3::S3;
use dtc_io::input::{Input, InputSpec};
use dtc_store::{BlockStore, OpenMode};

use crate::error::RunError;

/// How a DynamoDB store is set up (nothing else needs options).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Create a missing DynamoDB table (on-demand billing).
    pub create_table: bool,
    /// Blocks in DynamoDB expire this many days after they end.
    pub retention_days: Option<u32>,
}

const STORE_FORMS: &str = "a directory path, `file:PATH`, `memory:` or `dynamodb://TABLE`";

/// Opens the store `uri` names. With [`OpenMode::MustExist`] a location that holds no store is
/// [`RunError::MissingStore`], with the closest existing store beside it as a suggestion.
pub fn open_store(
    uri: &str,
    mode: OpenMode,
    options: &StoreOptions,
) -> Result<Box<dyn BlockStore>, RunError> {
    if let Some((scheme, _)) = uri.split_once("://")
        && !matches!(scheme, "file" | "memory" | "dynamodb")
    {
        return Err(RunError::Usage(format!(
            "unsupported store `{uri}`: use {STORE_FORMS}"
        )));
    }
    let dynamo = dtc_aws::DynamoOptions {
        create_table: options.create_table && mode == OpenMode::CreateIfMissing,
        retention_days: options.retention_days,
        ..dtc_aws::DynamoOptions::default()
    };
    match dtc_aws::open_store(uri, mode, dynamo) {
        Ok(store) => Ok(store),
        Err(dtc_store::StoreError::Missing { location }) => Err(RunError::MissingStore {
            suggestion: sibling_store(Path::new(&location)),
            location,
        }),
        Err(dtc_store::StoreError::UnsupportedUri { .. }) => Err(RunError::Usage(format!(
            "unsupported store `{uri}`: use {STORE_FORMS}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The store directory next to `missing` whose name is closest to its name, if one is close.
fn sibling_store(missing: &Path) -> Option<String> {
    let name = missing.file_name()?.to_str()?;
    let parent = missing
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stores: Vec<String> = std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .filter(|e| dtc_store::EmbeddedStore::exists(&e.path()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    let closest = dtc_lang::suggest::closest(name, stores.iter().map(String::as_str))?;
    Some(
        missing
            .with_file_name(closest)
            .strip_prefix(".")
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| missing.with_file_name(closest))
            .display()
            .to_string(),
    )
}

/// Where window rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputLocation {
    Local(PathBuf),
    /// `s3://bucket/prefix/`.
    S3(String),
}

impl OutputLocation {
    pub fn parse(text: &str) -> OutputLocation {
        if dtc_aws::s3::is_s3_url(text) {
            OutputLocation::S3(text.to_string())
        } else {
            OutputLocation::Local(PathBuf::from(text))
        }
    }

    /// As written in a publication and shown to users.
    pub fn display(&self) -> String {
        match self {
            OutputLocation::Local(dir) => dir.display().to_string(),
            OutputLocation::S3(url) => url.clone(),
        }
    }
}

/// Connections to services, made on first use and kept for the run.
#[derive(Default)]
pub struct Services {
    s3: Option<S3>,
}

impl Services {
    pub fn s3(&mut self) -> Result<&S3, RunError> {
        if self.s3.is_none() {
            self.s3 = Some(S3::connect(None)?);
        }
        self.s3
            .as_ref()
            .ok_or_else(|| RunError::Internal("the S3 connection was not kept".into()))
    }
}

/// The inputs `sources` name, in order: S3 locations listed, the rest through `InputSpec`
/// (files, directories, stdin).
pub fn inputs(
    sources: &[String],
    services: &mut Services,
) -> Result<Vec<Box<dyn Input>>, RunError> {
    let mut inputs = Vec::new();
    for source in sources {
        if dtc_aws::s3::is_s3_url(source) {
            // A malformed location is the command line's fault, whatever the AWS set-up.
            dtc_aws::s3::S3Url::parse(source)?;
            inputs.extend(services.s3()?.inputs(source)?);
        } else {
            let spec = InputSpec::parse(std::slice::from_ref(source))
                .map_err(|e| RunError::Usage(e.to_string()))?;
            inputs.extend(spec.inputs().map_err(|e| RunError::Usage(e.to_string()))?);
        }
    }
    Ok(inputs)
}

/// Where rejected events go when the command line does not say: beside an embedded store,
/// else in the working directory.
pub fn default_dead_letters(store: &str) -> PathBuf {
    let dir = store.strip_prefix("file:").unwrap_or(store);
    if store.starts_with("memory:") || store.contains("://") {
        PathBuf::from("dtc-dead-letters.jsonl")
    } else {
        Path::new(dir).join("dead-letters.jsonl")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_store_is_never_created_and_a_sibling_is_suggested() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dtc-data");
        open_store(
            real.to_str().unwrap(),
            OpenMode::CreateIfMissing,
            &StoreOptions::default(),
        )
        .unwrap();
        let typo = dir.path().join("dtc-dta");
        match open_store(
            typo.to_str().unwrap(),
            OpenMode::MustExist,
            &StoreOptions::default(),
        ) {
            Err(RunError::MissingStore {
                location,
                suggestion,
            }) => {
                assert_eq!(location, typo.display().to_string());
                assert_eq!(suggestion, Some(real.display().to_string()));
            }
            Err(other) => panic!("expected a missing store, got {other}"),
            Ok(_) => panic!("a store was opened at a typo"),
        }
        assert!(!typo.exists());
        let far = dir.path().join("elsewhere");
        match open_store(
            far.to_str().unwrap(),
            OpenMode::MustExist,
            &StoreOptions::default(),
        ) {
            Err(RunError::MissingStore { suggestion, .. }) => assert_eq!(suggestion, None),
            _ => panic!("expected a missing store"),
        }
    }

    #[test]
    fn unknown_store_schemes_name_every_supported_form() {
        for uri in ["cassandra://x", "s3://bucket/store"] {
            let err = open_store(uri, OpenMode::CreateIfMissing, &StoreOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("dynamodb://TABLE"), "{err}");
        }
    }

    #[test]
    fn default_dead_letters_sit_beside_an_embedded_store() {
        assert_eq!(
            default_dead_letters("file:data"),
            Path::new("data/dead-letters.jsonl")
        );
        assert_eq!(
            default_dead_letters("dynamodb://t"),
            Path::new("dtc-dead-letters.jsonl")
        );
    }
}
