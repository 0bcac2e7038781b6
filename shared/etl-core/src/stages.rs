//! The threads of one run. Reading and typing run on the caller's thread; one worker per
//! engine thread runs the steps and row rules on whole batches in parallel; one writer
//! puts their results back in input order and writes the data and quarantine files.
//!
//! Bounded channels keep a few batches in flight, so memory stays flat. Order is kept
//! where it matters: dedup takes batches in input order (see [`crate::ordered`]), and the
//! writer handles messages by their sequence number, so files and the quarantine list
//! rows as the input did, however many workers ran.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use polars::prelude::*;

use crate::batch::Typer;
use crate::error::{EtlError, PolarsContext};
use crate::quality::Quality;
use crate::raw::RawRecords;
use crate::read::{Layout, Record, RecordVisitor, field_text};
use crate::steps::{CompiledStep, Outcome};
use crate::write::{
    OutputFile, PartitionedWriter, QuarantineRows, QuarantineWriter, RawReject,
    reject_long_partitions,
};

/// Messages waiting in each channel.
const IN_FLIGHT: usize = 2;

/// What the reader hands the workers: the records refused since the last message (sent
/// along, not one message each, so a file full of bad rows does not flood the channels),
/// then a batch, if any.
struct Message {
    rejects: Vec<RawReject>,
    /// `number` counts batches only: stateful steps take them in this order. The batch's
    /// records as read go along, for the rows the steps will reject.
    batch: Option<(DataFrame, u64, RawRecords)>,
}

/// What the workers hand the writer, in the order it is written.
struct Output {
    rejects: Vec<RawReject>,
    batch: Option<Processed>,
}

struct Processed {
    kept: DataFrame,
    /// Rows the steps and rules rejected, as quarantine rows.
    rejected: Option<QuarantineRows>,
    duplicates: u64,
}

enum ToWriter {
    /// With its place in the input: the reader's message number.
    Item(u64, Output),
    /// Every worker is done: close the files. A writer that never gets it (a stage
    /// failed) stops without finishing them.
    Finish,
}

/// Everything a run writes and counts, once the last batch went through.
pub(crate) struct Finished {
    pub written: Written,
    pub quality: Quality,
    pub rows_in: u64,
}

/// What the writer wrote and counted.
pub(crate) struct Written {
    pub outputs: Vec<OutputFile>,
    pub quarantine: QuarantineWriter,
    pub rows_out: u64,
    pub duplicates: u64,
}

/// The parts of a run the stages share or own.
pub(crate) struct Stages<'a> {
    pub steps: &'a [CompiledStep],
    pub quality: Quality,
    pub output_schema: &'a Schema,
    /// The output's partition columns: a value too long for a path quarantines its row.
    pub partition_by: &'a [String],
    pub writer: PartitionedWriter,
    pub quarantine: QuarantineWriter,
    pub typer: Typer,
    pub batch_size: usize,
    pub workers: usize,
}

/// Runs `read` on this thread, feeding the records it visits through the stages. Of the
/// failures, the one earliest in the input is returned (see [`Blame`]), whichever thread
/// met it first: a run with several workers names the same record as a run with one.
pub(crate) fn run<T>(
    stages: Stages<'_>,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, EtlError>,
) -> Result<(T, Finished), EtlError> {
    let Stages {
        steps,
        quality,
        output_schema,
        partition_by,
        writer,
        quarantine,
        typer,
        batch_size,
        workers,
    } = stages;
    let workers = workers.max(1);
    // One batch per worker and a channel's worth: enough to keep every thread busy.
    let control = Control::new((workers + IN_FLIGHT) as u64);
    let quality = RwLock::new(quality);
    let (tx, rx) = sync_channel::<(u64, Message)>(IN_FLIGHT);
    let rx = Mutex::new(rx);
    let (out_tx, out_rx) = sync_channel::<ToWriter>(IN_FLIGHT);
    let mut reader = Reader {
        typer,
        raw: RawRecords::new(0, batch_size.max(1), 0),
        layout: None,
        batch_size: batch_size.max(1),
        rows_in: 0,
        rejects: Vec::new(),
        sent: 0,
        batches: 0,
        stopped: false,
        tx,
        control: &control,
    };
    let (read, written) = std::thread::scope(|scope| {
        let control = &control;
        let writing = scope.spawn(move || {
            let written = write_in_order(writer, quarantine, &out_rx, control);
            written.map_err(|(blame, e)| control.fail(blame, e)).ok()
        });
        let processing: Vec<_> = (0..workers)
            .map(|_| {
                let (rx, out, quality) = (&rx, out_tx.clone(), &quality);
                scope.spawn(move || {
                    // The message in hand, for a panic to be blamed on.
                    let current = Cell::new(None);
                    let work = AssertUnwindSafe(|| {
                        process(
                            steps,
                            quality,
                            output_schema,
                            partition_by,
                            rx,
                            &out,
                            &current,
                        )
                    });
                    let result = std::panic::catch_unwind(work).unwrap_or_else(|_| {
                        let (seq, batch) = current.get().unzip();
                        let blame = seq.map_or(Blame::Stage, Blame::At);
                        let e = EtlError::engine("a processing thread panicked");
                        Err(WorkerFailure::new(blame, batch.flatten(), e))
                    });
                    if let Err(failure) = result {
                        let WorkerFailure {
                            blame,
                            batch,
                            error,
                        } = *failure;
                        control.fail(blame, error);
                        // Workers waiting at a dedup step for this batch's turn give up.
                        steps.iter().for_each(|s| s.abort_after(batch));
                        return false;
                    }
                    true
                })
            })
            .collect();
        let read = read(&mut reader).and_then(|t| reader.send_batch().map(|()| t));
        let read = read.and_then(|t| reader.send_rejects().map(|()| t));
        let (rows_in, sent, stopped) = (reader.rows_in, reader.sent, reader.stopped);
        // Closing the channel ends the workers' loops once they took every batch.
        drop(reader);
        let read = read
            .map_err(|e| {
                // A read error lies past every message sent.
                let blame = if stopped {
                    Blame::Consequence
                } else {
                    Blame::At(sent)
                };
                control.fail(blame, e);
            })
            .ok();
        // Join every worker (no short circuit) before deciding whether the run finished.
        let joined: Vec<bool> = processing
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect();
        let all_processed = joined.iter().all(|ok| *ok);
        if read.is_some() && all_processed {
            // Every worker sent its last item before it returned, so this comes last.
            let _ = out_tx.send(ToWriter::Finish);
        }
        drop(out_tx);
        let written = writing.join().unwrap_or_else(|_| {
            control.fail(
                Blame::Stage,
                EtlError::engine("the writing thread panicked"),
            );
            None
        });
        (read.map(|t| (t, rows_in)), written)
    });
    if let Some(e) = control.take_error() {
        return Err(e);
    }
    let ((value, rows_in), written) = read
        .zip(written)
        .ok_or_else(|| EtlError::engine("a stage stopped without an error"))?;
    let quality = quality
        .into_inner()
        .map_err(|_| EtlError::engine("a processing thread panicked"))?;
    Ok((
        value,
        Finished {
            written,
            quality,
            rows_in,
        },
    ))
}

/// Where a failure lies, to report the one a single-threaded run would have met. Failures
/// compare by this order: the earliest in the input first, then a writer's own, and last
/// the failures that only follow from another (a channel closed, a turn that never came).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Blame {
    /// At the reader's message with this number (one batch, or rejects), or where the
    /// reader stopped.
    At(u64),
    /// In a stage, not tied to a place in the input (the writer's file system).
    Stage,
    Consequence,
}

/// What the stages tell each other: the run's first error, and how many batches the
/// writer has written (the reader stays at most [`Control::ahead`] batches in front, so a
/// slow batch cannot make the writer hold an unbounded queue of later ones).
struct Control {
    state: Mutex<ControlState>,
    changed: Condvar,
    ahead: u64,
}

struct ControlState {
    error: Option<(Blame, EtlError)>,
    batches_written: u64,
}

impl Control {
    fn new(ahead: u64) -> Self {
        Self {
            state: Mutex::new(ControlState {
                error: None,
                batches_written: 0,
            }),
            changed: Condvar::new(),
            ahead,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the error earliest in the input; of two as early, the first reported.
    fn fail(&self, blame: Blame, e: EtlError) {
        let mut state = self.lock();
        if state.error.as_ref().is_none_or(|(kept, _)| blame < *kept) {
            state.error = Some((blame, e));
        }
        drop(state);
        self.changed.notify_all();
    }

    fn batch_written(&self) {
        self.lock().batches_written += 1;
        self.changed.notify_all();
    }

    /// Waits until batch `number` may be sent; false once a stage failed.
    fn room_for(&self, number: u64) -> bool {
        let mut state = self.lock();
        while state.error.is_none() && number >= state.batches_written + self.ahead {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.error.is_none()
    }

    fn take_error(&self) -> Option<EtlError> {
        self.lock().error.take().map(|(_, e)| e)
    }
}

/// The reading stage: types records into batches and sends them on.
pub(crate) struct Reader<'a> {
    typer: Typer,
    /// The bytes of the records in `typer`, row for row; each row's key is its record's.
    raw: RawRecords,
    layout: Option<Arc<Layout>>,
    batch_size: usize,
    rows_in: u64,
    /// Refused records waiting for the next message.
    rejects: Vec<RawReject>,
    /// Messages sent, which numbers them.
    sent: u64,
    batches: u64,
    /// Reading stopped because another stage failed.
    stopped: bool,
    tx: SyncSender<(u64, Message)>,
    control: &'a Control,
}

impl Reader<'_> {
    fn send(&mut self, message: Message) -> Result<(), EtlError> {
        // Workers only hang up when one failed; its error is the one reported.
        if self.tx.send((self.sent, message)).is_err() {
            self.stopped = true;
            return Err(EtlError::engine("the processing threads stopped"));
        }
        self.sent += 1;
        Ok(())
    }

    fn reject(&mut self, reject: RawReject) -> Result<(), EtlError> {
        self.rejects.push(reject);
        if self.rejects.len() >= self.batch_size {
            self.send_rejects()?;
        }
        Ok(())
    }

    /// Sends refused records that no batch took along.
    fn send_rejects(&mut self) -> Result<(), EtlError> {
        if self.rejects.is_empty() {
            return Ok(());
        }
        let rejects = std::mem::take(&mut self.rejects);
        self.send(Message {
            rejects,
            batch: None,
        })
    }

    fn send_batch(&mut self) -> Result<(), EtlError> {
        if self.typer.len() == 0 {
            return Ok(());
        }
        let df = self
            .typer
            .finish()
            .context(|| "building a batch".to_string())?;
        let number = self.batches;
        if !self.control.room_for(number) {
            self.stopped = true;
            return Err(EtlError::engine("the processing threads stopped"));
        }
        self.batches += 1;
        // The next batch's bytes will be about this one's: reserve them at once.
        let next = RawRecords::new(
            self.raw.next_key(),
            self.batch_size,
            self.raw.byte_len() + self.raw.byte_len() / 8,
        );
        let mut raw = std::mem::replace(&mut self.raw, next);
        raw.set_layout(self.layout.clone());
        let rejects = std::mem::take(&mut self.rejects);
        self.send(Message {
            rejects,
            batch: Some((df, number, raw)),
        })
    }
}

impl RecordVisitor for Reader<'_> {
    fn record(&mut self, line: u64, record: &dyn Record) -> Result<(), EtlError> {
        self.rows_in += 1;
        match self.typer.push(self.raw.next_key(), record) {
            Ok(()) => self.raw.push(line, record.raw()),
            Err(reject) => {
                let fields = (0..self.typer.width())
                    .map(|i| field_text(record.field(i)))
                    .collect();
                self.reject(RawReject {
                    line,
                    fields,
                    raw: None,
                    code: reject.code,
                    reason: reject.reason,
                })?;
            }
        }
        if self.typer.len() >= self.batch_size {
            self.send_batch()?;
        }
        Ok(())
    }

    fn malformed(&mut self, line: u64, raw: &str, reason: String) -> Result<(), EtlError> {
        self.rows_in += 1;
        self.reject(RawReject {
            line,
            fields: Vec::new(),
            raw: Some(raw.to_string()),
            code: "malformed_record".into(),
            reason,
        })
    }

    fn layout(&mut self, layout: Layout) {
        self.layout = Some(Arc::new(layout));
    }
}

/// How a worker failed: where, the batch number it held (for dedup's turns), and why.
struct WorkerFailure {
    blame: Blame,
    batch: Option<u64>,
    error: EtlError,
}

impl WorkerFailure {
    fn new(blame: Blame, batch: Option<u64>, error: EtlError) -> Box<Self> {
        Box::new(Self {
            blame,
            batch,
            error,
        })
    }
}

/// A worker: takes messages until the reader is done, runs steps and row rules on batches.
/// `current` holds the message in hand and its batch number.
fn process(
    steps: &[CompiledStep],
    quality: &RwLock<Quality>,
    output_schema: &Schema,
    partition_by: &[String],
    rx: &Mutex<Receiver<(u64, Message)>>,
    out: &SyncSender<ToWriter>,
    current: &Cell<Option<(u64, Option<u64>)>>,
) -> Result<(), Box<WorkerFailure>> {
    let poisoned = || EtlError::engine("a processing thread panicked");
    loop {
        let next = rx
            .lock()
            .map_err(|_| WorkerFailure::new(Blame::Consequence, None, poisoned()))?
            .recv();
        let Ok((seq, message)) = next else {
            return Ok(());
        };
        let number = message.batch.as_ref().map(|(_, n, _)| *n);
        current.set(Some((seq, number)));
        let output = process_one(steps, quality, output_schema, partition_by, message)
            .map_err(|e| WorkerFailure::new(Blame::At(seq), number, e))?;
        // The writer only hangs up when it failed; its error is the one reported.
        out.send(ToWriter::Item(seq, output)).map_err(|_| {
            let e = EtlError::engine("the writing thread stopped");
            WorkerFailure::new(Blame::Consequence, number, e)
        })?;
    }
}

/// Runs the steps and row rules on one message's batch.
fn process_one(
    steps: &[CompiledStep],
    quality: &RwLock<Quality>,
    output_schema: &Schema,
    partition_by: &[String],
    message: Message,
) -> Result<Output, EtlError> {
    let poisoned = || EtlError::engine("a processing thread panicked");
    let Some((mut df, number, raw)) = message.batch else {
        return Ok(Output {
            rejects: message.rejects,
            batch: None,
        });
    };
    let mut outcome = Outcome::default();
    for step in steps {
        df = step
            .apply(df, &mut outcome, Some(number))
            .map_err(|e| raw.locate(e))?;
    }
    df = reject_long_partitions(df, partition_by, &mut outcome.rejected)
        .context(|| "checking partition values".to_string())?;
    let (kept, tally) = quality
        .read()
        .map_err(|_| poisoned())?
        .check_batch(df, &mut outcome.rejected)?;
    quality.write().map_err(|_| poisoned())?.add(tally, &kept)?;
    let rejected = raw.quarantine(outcome.rejected)?;
    drop(raw);
    Ok(Output {
        rejects: message.rejects,
        batch: Some(Processed {
            kept: conform(kept, output_schema)?,
            rejected,
            duplicates: outcome.duplicates,
        }),
    })
}

/// Casts a batch to the output schema where an expression typed it differently (an
/// all-null batch, say), so every row group of a file has one schema.
fn conform(df: DataFrame, schema: &Schema) -> Result<DataFrame, EtlError> {
    let mut columns = Vec::with_capacity(schema.len());
    for (name, dtype) in schema.iter() {
        let c = df
            .column(name)
            .context(|| format!("output column {name}"))?;
        columns.push(if c.dtype() == dtype {
            c.clone()
        } else {
            c.cast(dtype).context(|| format!("output column {name}"))?
        });
    }
    DataFrame::new(df.height(), columns).context(|| "assembling output".to_string())
}

/// The writer: puts the workers' results back in input order, then writes them.
fn write_in_order(
    mut writer: PartitionedWriter,
    mut quarantine: QuarantineWriter,
    rx: &Receiver<ToWriter>,
    control: &Control,
) -> Result<Written, (Blame, EtlError)> {
    let own = |e| (Blame::Stage, e);
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    let (mut rows_out, mut duplicates) = (0u64, 0u64);
    for message in rx {
        let (seq, output) = match message {
            ToWriter::Item(seq, output) => (seq, output),
            ToWriter::Finish if waiting.is_empty() => {
                return Ok(Written {
                    outputs: writer.finish().map_err(own)?,
                    quarantine,
                    rows_out,
                    duplicates,
                });
            }
            ToWriter::Finish => {
                let e = EtlError::engine("a processed batch went missing");
                return Err(own(e));
            }
        };
        waiting.insert(seq, output);
        while let Some(output) = waiting.remove(&next) {
            next += 1;
            for r in output.rejects {
                quarantine.push_raw(r).map_err(own)?;
            }
            if let Some(batch) = output.batch {
                duplicates += batch.duplicates;
                if let Some(rows) = batch.rejected {
                    quarantine.push_rows(rows).map_err(own)?;
                }
                rows_out += batch.kept.height() as u64;
                writer.write(batch.kept).map_err(own)?;
                control.batch_written();
            }
        }
    }
    let e = EtlError::engine("processing stopped before the end of the input");
    Err((Blame::Consequence, e))
}
