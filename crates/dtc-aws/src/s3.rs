//! S3: JSON-lines event inputs (`--source s3://bucket/prefix`) and the [`Destination`] of
//! Parquet and JSON-lines output (`--output s3://bucket/prefix/`).
//!
//! Inputs are streamed: an object is read chunk by chunk as the engine consumes lines (gzip is
//! detected by `dtc_io`'s line reader), never downloaded whole first; a connection that breaks
//! mid-object is resumed with a ranged GET from the last byte read, pinned to the object's
//! ETag.
//!
//! Output parts follow the run's commit protocol (`dtc_io::output`): every part is a multipart
//! upload under its final key, sealed by uploading its last bytes but not completed, so it is
//! invisible; the run records the uploads with its commit and then completes them
//! ([`publish`]). A restart completes the uploads of a recorded commit and aborts those a run
//! left before its commit ([`S3::abort_stale_uploads`]): no part is ever half-visible, and no
//! temporary key is needed.

use std::io::{BufRead, BufReader, Read, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use dtc_io::input::Input;
use dtc_io::output::{CommitFile, Publication, cleanup, commit_file_name};
use dtc_io::sink::{Destination, PartWriter, SealedPart, part_worker};
use dtc_io::{IoError, ServiceCause};
use serde::{Deserialize, Serialize};

use crate::errors::{one_line, s3_error, summarize};

/// Bytes buffered per uploaded part; S3 wants at least 5 MiB for all but the last part.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const READ_BUFFER: usize = 256 * 1024;
/// Times a broken object read is resumed before the read fails.
const READ_RESUMES: u32 = 5;

/// Whether a command-line location names S3.
pub fn is_s3_url(location: &str) -> bool {
    location.starts_with("s3://")
}

/// `s3://bucket/key-or-prefix`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// Parses `s3://bucket` or `s3://bucket/key`.
    pub fn parse(url: &str) -> Result<S3Url, IoError> {
        let invalid = || {
            IoError::Location(format!(
                "`{url}` is not an S3 location: use s3://bucket/prefix"
            ))
        };
        let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid());
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

/// A connection to S3 (or an S3-compatible server) from the standard AWS chain.
#[derive(Clone)]
pub struct S3 {
    client: Client,
    runtime: &'static tokio::runtime::Runtime,
    part_size: usize,
}

impl S3 {
    /// Connects through the standard AWS chain; `endpoint_url` overrides its endpoint.
    /// Path-style addressing (`http://host/bucket/key`) is used whenever an endpoint is set
    /// (here or by `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), since S3-compatible servers
    /// rarely serve bucket subdomains.
    pub fn connect(endpoint_url: Option<&str>) -> Result<S3, IoError> {
        let setup = |message: String| IoError::Service {
            message,
            detail: String::new(),
            cause: ServiceCause::Setup,
        };
        let runtime = crate::runtime().map_err(setup)?;
        let client = runtime.block_on(async {
            let sdk = crate::load_sdk_config().await.map_err(setup)?;
            let custom_endpoint = endpoint_url.is_some()
                || sdk.endpoint_url().is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some();
            let mut config =
                aws_sdk_s3::config::Builder::from(&sdk).force_path_style(custom_endpoint);
            if let Some(url) = endpoint_url {
                config = config.endpoint_url(url);
            }
            Ok::<_, IoError>(Client::from_conf(config.build()))
        })?;
        Ok(S3 {
            client,
            runtime,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets the upload part size (at least 5 MiB, S3's minimum).
    pub fn with_part_size(mut self, bytes: usize) -> S3 {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// The underlying client, for tools and tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs a future on this crate's runtime (tools and tests that use [`S3::client`]).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The inputs a location names: the object itself if `url` is an object's key, else every
    /// object under it as a folder (`url` + `/`), in key order. Keys ending in `/` (folder
    /// markers) and names starting with `.` are skipped, as hidden files are locally.
    pub fn inputs(&self, url: &str) -> Result<Vec<Box<dyn Input>>, IoError> {
        let location = S3Url::parse(url)?;
        let bucket = format!("S3 bucket `{}`", location.bucket);
        let objects = self.runtime.block_on(async {
            let mut exact = Vec::new();
            let mut under = Vec::new();
            let folder = if location.key.is_empty() || location.key.ends_with('/') {
                location.key.clone()
            } else {
                format!("{}/", location.key)
            };
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&location.bucket)
                .prefix(&location.key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_error("ListObjectsV2", &bucket, &e))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    let size = object.size().and_then(|s| u64::try_from(s).ok());
                    if key == location.key && !key.ends_with('/') {
                        exact.push((key.to_string(), size));
                    } else if let Some(rest) = key.strip_prefix(&folder)
                        && !rest.is_empty()
                        && !key.ends_with('/')
                        && !rest.split('/').any(|part| part.starts_with('.'))
                    {
                        under.push((key.to_string(), size));
                    }
                }
            }
            Ok::<_, IoError>(if exact.is_empty() { under } else { exact })
        })?;
        if objects.is_empty() {
            return Err(IoError::NotFound { path: url.into() });
        }
        let mut objects = objects;
        objects.sort();
        Ok(objects
            .into_iter()
            .map(|(key, size)| {
                Box::new(S3Input {
                    s3: self.clone(),
                    name: format!("s3://{}/{key}", location.bucket),
                    bucket: location.bucket.clone(),
                    key,
                    size,
                }) as Box<dyn Input>
            })
            .collect())
    }

    /// Fails early, with one line, when the bucket of `url` cannot be written to: a run learns
    /// that before its work, not at its commit.
    pub fn check_bucket(&self, url: &str) -> Result<(), IoError> {
        let location = S3Url::parse(url)?;
        self.runtime
            .block_on(self.client.head_bucket().bucket(&location.bucket).send())
            .map(|_| ())
            .map_err(|e| {
                s3_error(
                    "HeadBucket",
                    &format!("S3 bucket `{}`", location.bucket),
                    &e,
                )
            })
    }

    /// Aborts the multipart uploads of `worker`'s parts under `url` that are not `keep`: what
    /// runs left that died before their commit (invisible, but billed until aborted). Returns
    /// how many.
    pub fn abort_stale_uploads(
        &self,
        url: &str,
        worker: u32,
        keep: &[&str],
    ) -> Result<usize, IoError> {
        let (bucket, prefix) = folder_of(url)?;
        let resource = format!("S3 location `{url}`");
        self.runtime.block_on(async {
            let mut stale = Vec::new();
            let mut key_marker: Option<String> = None;
            let mut upload_marker: Option<String> = None;
            loop {
                let out = self
                    .client
                    .list_multipart_uploads()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_key_marker(key_marker.take())
                    .set_upload_id_marker(upload_marker.take())
                    .send()
                    .await
                    .map_err(|e| s3_error("ListMultipartUploads", &resource, &e))?;
                for upload in out.uploads() {
                    let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                        continue;
                    };
                    let name = key.strip_prefix(&prefix).unwrap_or(key);
                    if part_worker(name) == Some(worker) && !keep.contains(&id) {
                        stale.push((key.to_string(), id.to_string()));
                    }
                }
                if out.is_truncated() != Some(true) {
                    break;
                }
                key_marker = out.next_key_marker().map(str::to_string);
                upload_marker = out.next_upload_id_marker().map(str::to_string);
                if key_marker.is_none() && upload_marker.is_none() {
                    break;
                }
            }
            for (key, id) in &stale {
                self.client
                    .abort_multipart_upload()
                    .bucket(&bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| s3_error("AbortMultipartUpload", &resource, &e))?;
            }
            Ok(stale.len())
        })
    }

    /// The destination for files under `url` (a folder: `s3://bucket/prefix/`).
    pub fn destination(&self, url: &str) -> Result<S3Destination, IoError> {
        let (bucket, prefix) = folder_of(url)?;
        Ok(S3Destination {
            s3: self.clone(),
            bucket,
            prefix,
        })
    }
}

/// The bucket and key prefix (empty, or ending in `/`) of a folder location.
fn folder_of(url: &str) -> Result<(String, String), IoError> {
    let location = S3Url::parse(url)?;
    let mut prefix = location.key;
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((location.bucket, prefix))
}

/// One S3 object as an event input.
pub struct S3Input {
    s3: S3,
    name: String,
    bucket: String,
    key: String,
    size: Option<u64>,
}

impl Input for S3Input {
    fn name(&self) -> &str {
        &self.name
    }

    fn checkpoint_key(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn size(&self) -> Option<u64> {
        self.size
    }

    fn open(self: Box<Self>) -> Result<Box<dyn BufRead + Send>, IoError> {
        let mut reader = ObjectReader {
            s3: self.s3,
            name: self.name,
            bucket: self.bucket,
            key: self.key,
            etag: None,
            body: None,
            chunk: Vec::new(),
            pos: 0,
            offset: 0,
            resumes: 0,
        };
        reader.start().map_err(|source| IoError::Read {
            input: reader.name.clone(),
            source,
        })?;
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, reader)))
    }
}

/// Streams an object's body chunk by chunk.
struct ObjectReader {
    s3: S3,
    name: String,
    bucket: String,
    key: String,
    /// The ETag of the first response, so a resumed read cannot mix two versions.
    etag: Option<String>,
    body: Option<ByteStream>,
    chunk: Vec<u8>,
    pos: usize,
    /// Bytes of the object delivered so far.
    offset: u64,
    resumes: u32,
}

impl ObjectReader {
    /// Opens the body at `offset` (a ranged GET after the first).
    fn start(&mut self) -> std::io::Result<()> {
        let mut request = self
            .s3
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key);
        if self.offset > 0 {
            request = request.range(format!("bytes={}-", self.offset));
        }
        if let Some(etag) = &self.etag {
            request = request.if_match(etag);
        }
        let resource = format!("S3 object `{}`", self.name);
        let out =
            self.s3.runtime.block_on(request.send()).map_err(|e| {
                std::io::Error::other(s3_error("GetObject", &resource, &e).to_string())
            })?;
        if self.etag.is_none() {
            self.etag = out.e_tag().map(str::to_string);
        }
        self.body = Some(out.body);
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match self.s3.runtime.block_on(body.next()) {
                Some(Ok(bytes)) => {
                    self.chunk.clear();
                    self.chunk.extend_from_slice(&bytes);
                    self.pos = 0;
                }
                None => {
                    self.body = None;
                    return Ok(0);
                }
                Some(Err(_)) if self.resumes < READ_RESUMES => {
                    self.resumes += 1;
                    self.start()?;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Files under an S3 prefix; see the module docs for when they become visible.
pub struct S3Destination {
    s3: S3,
    bucket: String,
    prefix: String,
}

impl Destination for S3Destination {
    fn create(&mut self, name: &str) -> Result<Box<dyn PartWriter>, IoError> {
        Ok(Box::new(S3Part {
            s3: self.s3.clone(),
            bucket: self.bucket.clone(),
            key: format!("{}{name}", self.prefix),
            name: name.to_string(),
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
            sealed: false,
        }))
    }
}

/// A sealed part's multipart upload: what completing it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StagedUpload {
    upload_id: String,
    /// `(part number, ETag)` in order.
    parts: Vec<(i32, String)>,
}

struct S3Part {
    s3: S3,
    bucket: String,
    key: String,
    name: String,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<(i32, String)>,
    bytes: u64,
    sealed: bool,
}

impl S3Part {
    fn resource(&self) -> String {
        format!("S3 object `s3://{}/{}`", self.bucket, self.key)
    }

    fn upload_id(&mut self) -> Result<String, IoError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let s3 = self.s3.clone();
        let created = s3
            .runtime
            .block_on(
                s3.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .send(),
            )
            .map_err(|e| s3_error("CreateMultipartUpload", &self.resource(), &e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| IoError::Service {
                message: format!(
                    "S3 returned no upload id for {}: is this server S3-compatible?",
                    self.resource()
                ),
                detail: format!("{created:?}"),
                cause: ServiceCause::Refused,
            })?
            .to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Uploads the buffer as the next part.
    fn upload_buffer(&mut self) -> Result<(), IoError> {
        let upload_id = self.upload_id()?;
        let s3 = self.s3.clone();
        let body = std::mem::take(&mut self.buffer);
        let number = i32::try_from(self.parts.len() + 1).map_err(|_| IoError::Service {
            message: format!("{} has too many upload parts", self.resource()),
            detail: String::new(),
            cause: ServiceCause::Refused,
        })?;
        let out = s3
            .runtime
            .block_on(
                s3.client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .map_err(|e| s3_error("UploadPart", &self.resource(), &e))?;
        self.parts
            .push((number, out.e_tag().unwrap_or_default().to_string()));
        dtc_failpoint::hit("aws.s3.part.uploaded");
        Ok(())
    }
}

impl Write for S3Part {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.sealed {
            return Err(std::io::Error::other("part already sealed"));
        }
        self.buffer.extend_from_slice(buf);
        self.bytes += buf.len() as u64;
        if self.buffer.len() >= self.s3.part_size {
            self.upload_buffer()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PartWriter for S3Part {
    fn seal(mut self: Box<Self>) -> Result<SealedPart, IoError> {
        // The last part may be smaller than S3's minimum (and a part of one part may be empty).
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.upload_buffer()?;
        }
        let staged = StagedUpload {
            upload_id: self.upload_id()?,
            parts: self.parts.clone(),
        };
        self.sealed = true;
        Ok(SealedPart {
            name: self.name.clone(),
            bytes: self.bytes,
            staged: serde_json::to_string(&staged)?,
        })
    }
}

impl Drop for S3Part {
    fn drop(&mut self) {
        if self.sealed {
            return;
        }
        if let Some(upload_id) = self.upload_id.take() {
            // Best effort: an abandoned upload's parts are garbage (and billed) until aborted,
            // but failing to abort must not hide the error that made us abandon it; the next
            // run's start aborts what is left.
            let _ = self.s3.runtime.block_on(
                self.s3
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(upload_id)
                    .send(),
            );
        }
    }
}

/// Publishes `publication` under its S3 location: completes its parts' uploads, removes the
/// parts they replace and writes the commit file. Safe to repeat after a crash at any point of
/// an earlier attempt: an upload already completed is found as its object.
pub fn publish(s3: &S3, publication: &Publication) -> Result<(), IoError> {
    let (bucket, prefix) = folder_of(&publication.location)?;
    s3.runtime.block_on(async {
        for part in &publication.parts {
            let key = format!("{prefix}{}", part.name);
            let resource = format!("S3 object `s3://{bucket}/{key}`");
            let staged: StagedUpload = serde_json::from_str(&part.staged)?;
            let parts = staged
                .parts
                .iter()
                .map(|(number, etag)| {
                    CompletedPart::builder()
                        .part_number(*number)
                        .e_tag(etag)
                        .build()
                })
                .collect();
            let completed = s3
                .client
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&staged.upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await;
            match completed {
                Ok(_) => dtc_failpoint::hit("aws.s3.publish.completed"),
                Err(e) if summarize(&e).cause == ServiceCause::Missing => {
                    // Completed by an earlier attempt: the object is there.
                    s3.client
                        .head_object()
                        .bucket(&bucket)
                        .key(&key)
                        .send()
                        .await
                        .map_err(|head| {
                            let summary = summarize(&head);
                            IoError::Service {
                                message: format!(
                                    "part {} of run {} is neither an open upload nor an object                                      ({}): the location was changed by something else than dtc",
                                    part.name,
                                    publication.run_id,
                                    one_line("S3", "HeadObject", &resource, &summary)
                                ),
                                detail: summary.detail,
                                cause: ServiceCause::Missing,
                            }
                        })?;
                }
                Err(e) => return Err(s3_error("CompleteMultipartUpload", &resource, &e)),
            }
        }
        let names = list_names(s3, &bucket, &prefix).await?;
        let (remove, commit) = cleanup(publication, names.iter().map(String::as_str));
        for name in remove {
            let key = format!("{prefix}{name}");
            s3.client
                .delete_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObject", &format!("S3 object `s3://{bucket}/{key}`"), &e))?;
            dtc_failpoint::hit("aws.s3.publish.removed");
        }
        put_commit_file(s3, &bucket, &prefix, publication.worker, &commit).await
    })
}

/// The names of the objects directly under `prefix`.
async fn list_names(s3: &S3, bucket: &str, prefix: &str) -> Result<Vec<String>, IoError> {
    let mut names = Vec::new();
    let mut pages = s3
        .client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            s3_error(
                "ListObjectsV2",
                &format!("S3 location `s3://{bucket}/{prefix}`"),
                &e,
            )
        })?;
        names.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| k.strip_prefix(prefix))
                .map(str::to_string),
        );
    }
    Ok(names)
}

async fn put_commit_file(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    worker: u32,
    commit: &CommitFile,
) -> Result<(), IoError> {
    let key = format!("{prefix}{}", commit_file_name(worker));
    s3.client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/json")
        .body(ByteStream::from(serde_json::to_vec_pretty(commit)?))
        .send()
        .await
        .map_err(|e| s3_error("PutObject", &format!("S3 object `s3://{bucket}/{key}`"), &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key() {
        assert_eq!(
            S3Url::parse("s3://b/events/2024/").unwrap(),
            S3Url {
                bucket: "b".into(),
                key: "events/2024/".into()
            }
        );
        assert_eq!(S3Url::parse("s3://b").unwrap().key, "");
        for bad in ["s3://", "s3:///key", "http://b/k", "b/k"] {
            assert!(
                matches!(S3Url::parse(bad), Err(IoError::Location(_))),
                "{bad}"
            );
        }
        assert!(is_s3_url("s3://x/y") && !is_s3_url("./s3/x"));
    }
}
