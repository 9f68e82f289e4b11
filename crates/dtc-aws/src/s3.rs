//! S3: JSON-lines event inputs (`--source s3://bucket/prefix`) and the [`Destination`] of
//! Parquet and JSON-lines output (`--output s3://bucket/prefix/`).
//!
//! Inputs are streamed: an object is read chunk by chunk as the engine consumes lines (gzip is
//! detected by `dtc_io`'s line reader), never downloaded whole first; a connection that breaks
//! mid-object is resumed with a ranged GET from the last byte read, pinned to the object's
//! ETag. A written part becomes visible only when complete: small parts are one PutObject,
//! larger ones a multipart upload whose key appears at CompleteMultipartUpload; an abandoned
//! part is aborted, so no temporary key is ever needed.

use std::io::{BufRead, BufReader, Read, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use dtc_io::IoError;
use dtc_io::input::Input;
use dtc_io::sink::{Destination, PartWriter};

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
            IoError::Config(format!(
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
        let runtime = crate::runtime().map_err(IoError::Config)?;
        let client = runtime.block_on(async {
            let sdk = crate::load_sdk_config().await.map_err(IoError::Config)?;
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
        let failed = |e: String| IoError::Read {
            input: url.to_string(),
            source: std::io::Error::other(e),
        };
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
                let page = page.map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    if key == location.key && !key.ends_with('/') {
                        exact.push(key.to_string());
                    } else if let Some(rest) = key.strip_prefix(&folder)
                        && !rest.is_empty()
                        && !key.ends_with('/')
                        && !rest.split('/').any(|part| part.starts_with('.'))
                    {
                        under.push(key.to_string());
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
            .map(|key| {
                Box::new(S3Input {
                    s3: self.clone(),
                    name: format!("s3://{}/{key}", location.bucket),
                    bucket: location.bucket.clone(),
                    key,
                }) as Box<dyn Input>
            })
            .collect())
    }

    /// The destination for files under `url` (a folder: `s3://bucket/prefix/`).
    pub fn destination(&self, url: &str) -> Result<S3Destination, IoError> {
        let location = S3Url::parse(url)?;
        let mut prefix = location.key;
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Destination {
            s3: self.clone(),
            bucket: location.bucket,
            prefix,
        })
    }
}

/// One S3 object as an event input.
pub struct S3Input {
    s3: S3,
    name: String,
    bucket: String,
    key: String,
}

impl Input for S3Input {
    fn name(&self) -> &str {
        &self.name
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
        let out = self
            .s3
            .runtime
            .block_on(request.send())
            .map_err(|e| std::io::Error::other(DisplayErrorContext(&e).to_string()))?;
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
                Some(Err(e)) if self.resumes < READ_RESUMES => {
                    self.resumes += 1;
                    eprintln!(
                        "warning: reading {} broke at byte {} ({e}); resuming",
                        self.name, self.offset
                    );
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
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            committed: false,
        }))
    }
}

struct S3Part {
    s3: S3,
    bucket: String,
    key: String,
    buffer: Vec<u8>,
    /// Set once the part outgrew one buffer and a multipart upload was started.
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    committed: bool,
}

impl S3Part {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn upload_buffer(&mut self) -> std::io::Result<()> {
        let s3 = self.s3.clone();
        let body = std::mem::take(&mut self.buffer);
        let number = i32::try_from(self.parts.len() + 1)
            .map_err(|_| std::io::Error::other("too many upload parts"))?;
        let error = |e: String| std::io::Error::other(e);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = s3
                    .runtime
                    .block_on(
                        s3.client
                            .create_multipart_upload()
                            .bucket(&self.bucket)
                            .key(&self.key)
                            .send(),
                    )
                    .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
                let id = created
                    .upload_id()
                    .ok_or_else(|| error("CreateMultipartUpload returned no upload id".into()))?
                    .to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
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
            .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let s3 = self.s3.clone();
        let error = |e: String| std::io::Error::other(e);
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            s3.runtime
                .block_on(
                    s3.client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(&self.key)
                        .body(ByteStream::from(body))
                        .send(),
                )
                .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.upload_buffer()?;
        }
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        s3.runtime
            .block_on(
                s3.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(upload_id)
                    .multipart_upload(parts)
                    .send(),
            )
            .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
        self.upload_id = None;
        Ok(())
    }
}

impl Write for S3Part {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.committed {
            return Err(std::io::Error::other("part already committed"));
        }
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= self.s3.part_size {
            self.upload_buffer()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PartWriter for S3Part {
    fn commit(mut self: Box<Self>) -> Result<String, IoError> {
        if self.committed {
            return Err(IoError::Write {
                target: self.location(),
                source: std::io::Error::other("part already committed"),
            });
        }
        self.finish().map_err(|source| IoError::Write {
            target: self.location(),
            source,
        })?;
        self.committed = true;
        Ok(self.location())
    }
}

impl Drop for S3Part {
    fn drop(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            // Best effort: an abandoned upload's parts are garbage (and billed) until aborted,
            // but failing to abort must not hide the error that made us abandon it.
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
                matches!(S3Url::parse(bad), Err(IoError::Config(_))),
                "{bad}"
            );
        }
        assert!(is_s3_url("s3://x/y") && !is_s3_url("./s3/x"));
    }
}
