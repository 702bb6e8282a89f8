//! Talking to a running agent over its unix socket (used by the CLI and the tests).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use fathom_model::Record;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::api::ObserveRequest;
use crate::status::AgentStatus;

pub const DEFAULT_SOCKET: &str = "/run/fathom/fathom.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the agent at {path}: {source} (is `fathom agent` running? see --socket)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the agent: {0}")]
    Http(#[from] hyper::Error),
    #[error("the agent answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad answer from the agent: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
}

pub struct AgentClient {
    socket: PathBuf,
}

/// Either a record, or a line the agent inserted into the stream (e.g. records lost).
#[derive(Debug, Clone)]
pub enum StreamItem {
    Record(Box<Record>),
    Notice(serde_json::Value),
}

impl AgentClient {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        AgentClient {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "fathom")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        Ok(resp)
    }

    /// GET `path` (or POST `body` to it) and decode the JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let (method, body) = match body {
            Some(b) => (Method::POST, Some(serde_json::to_vec(b)?)),
            None => (Method::GET, None),
        };
        let resp = self.send(method, path, body).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub async fn status(&self) -> Result<AgentStatus, ClientError> {
        let resp = self.send(Method::GET, "/v1/status", None).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }

    /// Stream the answer to `req`, calling `on_item` for each line; returns when the agent ends
    /// the stream (bounded query) or `on_item` returns false.
    pub async fn observe(
        &self,
        req: &ObserveRequest,
        mut on_item: impl FnMut(StreamItem) -> bool,
    ) -> Result<(), ClientError> {
        let resp = self
            .send(Method::POST, "/v1/observe", Some(serde_json::to_vec(req)?))
            .await?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.extend_from_slice(data);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = &line[..line.len() - 1];
                if line.is_empty() {
                    continue;
                }
                let item = match serde_json::from_slice::<Record>(line) {
                    Ok(r) => StreamItem::Record(Box::new(r)),
                    Err(_) => StreamItem::Notice(serde_json::from_slice(line)?),
                };
                if !on_item(item) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
