//! Build-step ingest (interfaces.md, "Build steps"): the same path for `POST
//! /api/v1/build-steps`, `buildfund ingest build-steps` and the Hydra pull.
//!
//! The input is parsed on a blocking thread while the async side writes validated records in
//! chunks inside one transaction. A bad record anywhere means the parse goes on only to find
//! every other bad record, and the transaction is rolled back: nothing of the batch is stored.
//! Memory stays bounded whatever the input size: a few input chunks and a few record chunks
//! (see [`store::chunk_size`]) are in flight at a time. Each record chunk is made ready for its
//! statement on the parsing thread, so the writer keeps the database busy.
pub mod parse;
pub mod record;
pub mod store;

pub use parse::Format;
pub use record::{RecordError, StepRecord};
pub use store::{Batch, Counts};

use crate::Config;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbBackend, DbErr};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// At most this many errors are listed; the count covers all of them.
pub const MAX_LISTED_ERRORS: usize = 1000;

#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub records: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Machines of this batch that are not configured (by name or alias), with how many of the
    /// batch's records ran on each. Their steps are stored and shown as unpriced.
    pub unpriced_machines: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{count} invalid record(s); nothing was stored")]
    Invalid {
        errors: Vec<RecordError>,
        count: u64,
    },
    #[error("the input is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the input failed: {0}")]
    Read(String),
    #[error("storing the build steps failed: {0}")]
    Db(#[from] DbErr),
    /// PostgreSQL's upsert answers one row of counts; it answered none.
    #[error("storing the build steps failed: the upsert answered no counts")]
    NoCounts,
}

/// Progress of a long ingest, reported every [`PROGRESS_EVERY`] records.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub records: u64,
    pub errors: u64,
}

pub const PROGRESS_EVERY: u64 = 100_000;

struct ParseSummary {
    records: u64,
    errors: Vec<RecordError>,
    error_count: u64,
    unpriced: BTreeMap<String, u64>,
}

/// An error a reader returns when the input is over the size limit.
#[derive(Debug)]
pub struct TooLargeError(pub usize);

impl std::fmt::Display for TooLargeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLargeError {}

/// A blocking `Read` over chunks sent from async code (an HTTP body): `tokio_util`'s bridge
/// over a reader of the channel's chunks. An error sent on the channel is the read's error.
pub type ChannelReader = SyncIoBridge<StreamReader<ReceiverStream<std::io::Result<Bytes>>, Bytes>>;

/// The [`ChannelReader`] of `rx`; made on the runtime, read off it (in a blocking task).
pub fn channel_reader(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> ChannelReader {
    SyncIoBridge::new(StreamReader::new(ReceiverStream::new(rx)))
}

/// Ingests everything `reader` yields, in one transaction; the rows are stamped `now`.
pub async fn ingest<R: Read + Send + 'static>(
    db: &DatabaseConnection,
    config: Arc<Config>,
    format: Format,
    reader: R,
    now: DateTime<Utc>,
    progress: Option<Box<dyn Fn(Progress) + Send>>,
) -> Result<IngestReport, IngestError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let backend = db.get_database_backend();
    let parser = tokio::task::spawn_blocking(move || {
        parse_into(config, format, reader, (backend, now), tx, progress)
    });

    // The transaction begins with the first parsed chunk, not before: an upload that is slow
    // to send its first records (or never does) holds no connection and, on SQLite, no lock.
    let mut txn = None;
    let mut counts = Counts::default();
    let mut write_error = None;
    while let Some(batch) = rx.recv().await {
        let written = match &txn {
            Some(t) => store::write_batch(t, batch).await,
            None => match crate::db::begin_write(db).await {
                Ok(t) => store::write_batch(txn.insert(t), batch).await,
                Err(e) => Err(e.into()),
            },
        };
        match written {
            Ok(c) => {
                counts += c;
                crate::pause_points::reached("ingest.batch_written").await;
            }
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
    }
    drop(rx); // stops the parser if we stopped early
    let parsed = parser
        .await
        .map_err(|e| IngestError::Read(format!("the parser failed: {e}")));
    let rollback = |txn: Option<sea_orm::DatabaseTransaction>| async move {
        if let Some(t) = txn {
            t.rollback().await.ok();
        }
    };
    if let Some(e) = write_error {
        rollback(txn).await;
        return Err(e);
    }
    let summary = match parsed.and_then(|p| p) {
        Ok(summary) => summary,
        Err(e) => {
            rollback(txn).await;
            return Err(e);
        }
    };
    if summary.error_count > 0 {
        rollback(txn).await;
        return Err(IngestError::Invalid {
            errors: summary.errors,
            count: summary.error_count,
        });
    }
    if let Some(t) = txn {
        crate::pause_points::reached("ingest.before_commit").await;
        t.commit().await?;
    }
    Ok(IngestReport {
        records: summary.records,
        inserted: counts.inserted,
        updated: counts.updated,
        unchanged: counts.unchanged,
        unpriced_machines: summary.unpriced,
    })
}

/// Ingests records already in memory (the Hydra pull), the same way.
pub async fn ingest_records(
    db: &DatabaseConnection,
    config: &Config,
    records: Vec<StepRecord>,
    now: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let txn = crate::db::begin_write(db).await?;
    let mut counts = Counts::default();
    let mut unpriced = BTreeMap::new();
    let machines = config.machine_by_name();
    let mut chunker = Chunker::new(store::chunk_size(db.get_database_backend()));
    let mut chunks = Vec::new();
    for r in records {
        if !machines.contains_key(r.machine.as_str()) {
            *unpriced.entry(r.machine.clone()).or_insert(0) += 1;
        }
        if let Some(full) = chunker.push(r) {
            chunks.push(full);
        }
    }
    chunks.push(chunker.take());
    let mut total = 0;
    for chunk in chunks {
        total += chunk.len() as u64;
        counts += store::write_chunk(&txn, chunk, now).await?;
    }
    txn.commit().await?;
    Ok(IngestReport {
        records: total,
        inserted: counts.inserted,
        updated: counts.updated,
        unchanged: counts.unchanged,
        unpriced_machines: unpriced,
    })
}

/// Groups records into chunks of at most `size` with no key twice, so one upsert never touches
/// a row twice. A repeated key starts a new chunk: the later record wins. Keys are remembered
/// by their hash: a collision only ends a chunk early, which changes nothing but its size.
struct Chunker {
    size: usize,
    chunk: Vec<StepRecord>,
    keys: HashSet<u64>,
    hasher: RandomState,
}

impl Chunker {
    fn new(size: usize) -> Self {
        Chunker {
            size,
            chunk: Vec::new(),
            keys: HashSet::new(),
            hasher: RandomState::new(),
        }
    }

    fn push(&mut self, r: StepRecord) -> Option<Vec<StepRecord>> {
        let key = self.hasher.hash_one(r.key());
        let full = if self.chunk.len() >= self.size || self.keys.contains(&key) {
            Some(self.take())
        } else {
            None
        };
        self.keys.insert(key);
        self.chunk.push(r);
        full
    }

    fn take(&mut self) -> Vec<StepRecord> {
        self.keys.clear();
        std::mem::take(&mut self.chunk)
    }
}

fn parse_into<R: Read>(
    config: Arc<Config>,
    format: Format,
    reader: R,
    (backend, now): (DbBackend, DateTime<Utc>),
    tx: tokio::sync::mpsc::Sender<Batch>,
    progress: Option<Box<dyn Fn(Progress) + Send>>,
) -> Result<ParseSummary, IngestError> {
    let machines = config.machine_by_name();
    let mut summary = ParseSummary {
        records: 0,
        errors: Vec::new(),
        error_count: 0,
        unpriced: BTreeMap::new(),
    };
    let mut chunker = Chunker::new(store::chunk_size(backend));
    let mut writer_gone = false;
    let max_record = config.server.max_record_bytes;
    let result = parse::parse(format, reader, max_record, &mut |item| {
        summary.records += 1;
        if let (Some(report), 0) = (&progress, summary.records % PROGRESS_EVERY) {
            report(Progress {
                records: summary.records,
                errors: summary.error_count,
            });
        }
        match item {
            Ok(r) => {
                if !machines.contains_key(r.machine.as_str()) {
                    *summary.unpriced.entry(r.machine.clone()).or_insert(0) += 1;
                }
                // After the first error nothing more is written; the rest is only checked.
                if summary.error_count == 0 {
                    if let Some(full) = chunker.push(r) {
                        // Prepared here, so the writer only has to send it.
                        if tx.blocking_send(Batch::new(backend, full, now)).is_err() {
                            writer_gone = true;
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            Err(errors) => {
                summary.error_count += errors.len() as u64;
                let room = MAX_LISTED_ERRORS.saturating_sub(summary.errors.len());
                summary.errors.extend(errors.into_iter().take(room));
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = result {
        // A reader that hit the size limit says so through its error message.
        if e.message.contains("input larger than") {
            let limit = e
                .message
                .split("input larger than ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Err(IngestError::TooLarge { limit });
        }
        if e.message.starts_with("reading the input failed") {
            return Err(IngestError::Read(e.message));
        }
        summary.error_count += 1;
        if summary.errors.len() < MAX_LISTED_ERRORS {
            summary.errors.push(e);
        }
    }
    if summary.error_count == 0 && !writer_gone {
        let last = chunker.take();
        if !last.is_empty() {
            let _ = tx.blocking_send(Batch::new(backend, last, now));
        }
    }
    Ok(summary)
}
