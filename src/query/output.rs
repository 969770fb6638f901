//! Writing query results, batch by batch as they are computed, to standard output, a local file
//! or an object in any store the lake supports.
//!
//! Files and objects appear whole or not at all: local files through object_store's temporary
//! file + rename, cloud objects through a (multipart) upload completed only at the end.

use std::io::IsTerminal;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::error::{QueryError, Result};
use super::format::{OutputFormat, TextEncoder};
use crate::lake::Lake;

/// Where results go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Standard output.
    Stdout,
    /// One object (or local file) at `path` in `store`'s object store.
    Object {
        store: Lake,
        path: Path,
        /// The location as the user gave it, for messages.
        display: String,
    },
}

impl Destination {
    /// `None` or `-` is standard output; anything else is a local path or an object store URL
    /// (`s3://bucket/jobs/list.jsonl`, `file:///tmp/x.csv`), whose folder is created if needed.
    /// Cloud credentials come from the environment and `options` (the lake's `[storage]`
    /// options, so server-side encryption settings apply to exports too).
    pub fn parse(output: Option<&str>, options: &[(String, String)]) -> Result<Destination> {
        let location = match output {
            None | Some("-") => return Ok(Destination::Stdout),
            Some(l) => l,
        };
        let usage = |why: &str| QueryError::Usage(format!("--output {location}: {why}"));
        let (parent, name) = match location.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => (".", location),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(usage("name a file, not a folder"));
        }
        let parent = match parent {
            "" => "/",
            // `s3://bucket/x.csv` splits into `s3:/` and the name; keep the bucket.
            p if p.ends_with(':') || p.ends_with(":/") => {
                return Err(usage("name a file inside a bucket or container"));
            }
            p => p,
        };
        let store = Lake::open_with_options(parent, options.iter().cloned())?;
        if let Ok(dir) = store.url().to_file_path() {
            writable(&dir)
                .map_err(|e| usage(&format!("cannot write in {}: {e}", dir.display())))?;
        }
        let path = store.path(name);
        Ok(Destination::Object {
            store,
            path,
            display: location.to_string(),
        })
    }

    /// Refuses binary output to a terminal (it would garble it); pipes and files are fine.
    pub fn check_format(&self, format: OutputFormat) -> Result<()> {
        if format.is_binary()
            && matches!(self, Destination::Stdout)
            && std::io::stdout().is_terminal()
        {
            return Err(QueryError::Usage(format!(
                "{} output is binary: give --output FILE (or pipe standard output elsewhere)",
                format.name()
            )));
        }
        Ok(())
    }

    fn name(&self) -> String {
        match self {
            Destination::Stdout => "standard output".to_string(),
            Destination::Object { display, .. } => display.clone(),
        }
    }
}

/// Creates `dir` if needed and proves a file can be made in it. object_store's local upload
/// retries for ever where a file cannot be created although its folder exists (`/proc`).
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(".wxcc-output-")
        .tempfile_in(dir)
        .map(drop)
}

/// Streams `batches` in `format` to `destination` and returns the number of rows written.
pub async fn write_stream(
    batches: SendableRecordBatchStream,
    format: OutputFormat,
    destination: &Destination,
) -> Result<usize> {
    destination.check_format(format)?;
    let name = destination.name();
    match destination {
        Destination::Stdout => write_to(batches, format, tokio::io::stdout(), &name).await,
        Destination::Object { store, path, .. } => {
            let mut writer = Upload {
                inner: BufWriter::new(Arc::clone(store.store()), path.clone()),
                closing: false,
            };
            match write_to(batches, format, &mut writer, &name).await {
                Ok(rows) => Ok(rows),
                // A failed close (the object cannot be put: a directory there, a full disk)
                // cleans up after itself; aborting then would panic.
                Err(e) if writer.closing => Err(e),
                Err(e) => {
                    // Nothing half-written stays behind.
                    if let Err(abort) = writer.inner.abort().await {
                        tracing::warn!(%abort, output = %name, "could not abort the upload");
                    }
                    Err(e)
                }
            }
        }
    }
}

/// object_store's buffered upload, noting when its close began: it must not be aborted after.
struct Upload {
    inner: BufWriter,
    closing: bool,
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.closing = true;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Encodes and writes every batch, then flushes and closes `sink`.
async fn write_to<W: AsyncWrite + Unpin + Send>(
    batches: SendableRecordBatchStream,
    format: OutputFormat,
    mut sink: W,
    name: &str,
) -> Result<usize> {
    if format == OutputFormat::Parquet {
        return write_parquet(batches, sink, name).await;
    }
    let io = |source: std::io::Error| QueryError::Write {
        destination: name.to_string(),
        source,
    };
    let rows = write_text(batches, format, &mut sink, name).await?;
    sink.shutdown().await.map_err(io)?;
    Ok(rows)
}

async fn write_text<W: AsyncWrite + Unpin + Send>(
    mut batches: SendableRecordBatchStream,
    format: OutputFormat,
    sink: &mut W,
    name: &str,
) -> Result<usize> {
    let io = |source: std::io::Error| QueryError::Write {
        destination: name.to_string(),
        source,
    };
    let mut encoder = TextEncoder::new(format);
    sink.write_all(&encoder.begin()).await.map_err(io)?;
    let (mut rows, mut any) = (0, false);
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(QueryError::sql)?;
        rows += batch.num_rows();
        any = true;
        sink.write_all(&encoder.batch(&batch)?).await.map_err(io)?;
    }
    if !any {
        // An empty result still gets its header (CSV) or column names (table).
        let empty = RecordBatch::new_empty(batches.schema());
        sink.write_all(&encoder.batch(&empty)?).await.map_err(io)?;
    }
    sink.write_all(&encoder.finish()?).await.map_err(io)?;
    Ok(rows)
}

async fn write_parquet<W: AsyncWrite + Unpin + Send>(
    mut batches: SendableRecordBatchStream,
    sink: W,
    name: &str,
) -> Result<usize> {
    let parquet = |source| QueryError::Parquet {
        destination: name.to_string(),
        source,
    };
    let schema = plain_strings(&batches.schema());
    let mut writer = AsyncArrowWriter::try_new(sink, Arc::clone(&schema), Some(properties()))
        .map_err(parquet)?;
    let mut rows = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(QueryError::sql)?;
        rows += batch.num_rows();
        let batch = conform(&batch, &schema).map_err(|source| QueryError::Format {
            format: "parquet",
            source,
        })?;
        writer.write(&batch).await.map_err(parquet)?;
    }
    // Closing the Parquet writer also shuts the sink down (completing an upload).
    writer.close().await.map_err(parquet)?;
    Ok(rows)
}

/// `schema` with string views as plain UTF-8: the file's embedded Arrow schema then names the
/// type every Parquet reader knows (the values are the same).
fn plain_strings(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => f.as_ref().clone().with_data_type(DataType::Utf8),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// Result files: ZSTD with page statistics, like the lake's own files.
fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use object_store::ObjectStoreExt;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn stream(batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![
            Field::new("task_id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
        ))
    }

    fn batch(ids: &[&str]) -> RecordBatch {
        let schema = stream(vec![]).schema();
        let n: Int64Array = (0..ids.len() as i64).map(Some).collect();
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(n)],
        )
        .expect("batch")
    }

    async fn written(dir: &std::path::Path, file: &str) -> Bytes {
        Bytes::from(std::fs::read(dir.join(file)).expect("output file exists"))
    }

    #[tokio::test]
    async fn csv_across_batches_has_one_header() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("sub/out.csv");
        let dest = Destination::parse(out.to_str(), &[]).expect("destination");
        let rows = write_stream(
            stream(vec![batch(&["a", "b"]), batch(&["c"])]),
            OutputFormat::Csv,
            &dest,
        )
        .await
        .expect("written");
        assert_eq!(rows, 3);
        let text =
            String::from_utf8(written(tmp.path(), "sub/out.csv").await.to_vec()).expect("utf8");
        assert_eq!(text, "task_id,n\na,0\nb,1\nc,0\n");
    }

    /// An output that cannot be put (a directory is there) is an error naming it, for every
    /// format; it used to panic when the failed close was then aborted.
    #[tokio::test]
    async fn an_output_that_cannot_be_written_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("taken");
        std::fs::create_dir(&out).expect("dir");
        let dest = Destination::parse(out.to_str(), &[]).expect("destination");
        for format in [OutputFormat::Csv, OutputFormat::Parquet] {
            let err = write_stream(stream(vec![batch(&["a"])]), format, &dest)
                .await
                .expect_err("a directory is in the way");
            assert!(err.to_string().contains("taken"), "{err}");
        }
    }

    /// A folder that exists but takes no new files (`/proc`) is refused before any query runs;
    /// object_store's local upload used to retry for ever there.
    #[test]
    #[cfg(target_os = "linux")]
    fn an_output_folder_that_takes_no_files_is_refused_up_front() {
        let err = Destination::parse(Some("/proc/wxcc-results.csv"), &[])
            .expect_err("/proc takes no files");
        assert!(err.to_string().contains("cannot write in /proc"), "{err}");
    }

    #[tokio::test]
    async fn json_across_batches_is_one_valid_array() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("out.json");
        let dest = Destination::parse(out.to_str(), &[]).expect("destination");
        write_stream(
            stream(vec![batch(&["a"]), batch(&[]), batch(&["b", "c"])]),
            OutputFormat::Json,
            &dest,
        )
        .await
        .expect("written");
        let v: serde_json::Value =
            serde_json::from_slice(&written(tmp.path(), "out.json").await).expect("valid json");
        let ids: Vec<&str> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["task_id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn parquet_output_reads_back_with_a_plain_reader() {
        let lake = Lake::open("memory://").expect("memory");
        let dest = Destination::Object {
            store: lake.clone(),
            path: lake.path("jobs/out.parquet"),
            display: "memory:///jobs/out.parquet".into(),
        };
        let rows = write_stream(
            stream(vec![batch(&["a", "b"])]),
            OutputFormat::Parquet,
            &dest,
        )
        .await
        .expect("written");
        assert_eq!(rows, 2);
        let bytes = lake
            .store()
            .get(&lake.path("jobs/out.parquet"))
            .await
            .expect("object")
            .bytes()
            .await
            .expect("bytes");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader");
        let total: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn output_must_name_a_file() {
        for bad in ["dir/", "s3://bucket/", "s3://bucket"] {
            assert!(Destination::parse(Some(bad), &[]).is_err(), "{bad}");
        }
        assert!(matches!(
            Destination::parse(Some("-"), &[]),
            Ok(Destination::Stdout)
        ));
        assert!(matches!(
            Destination::parse(None, &[]),
            Ok(Destination::Stdout)
        ));
    }
}
