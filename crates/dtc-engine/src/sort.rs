//! Per-identity event-time ordering for batch runs, in bounded memory.
//!
//! Events are buffered up to a byte budget, sorted by (identity, time, input order) and spilled
//! to a temporary file as a sorted run; at the end the runs are merged. Identities come out in
//! an [`IdentityOrder`]: by name (the block stores' key order, so a batch's records are written
//! from left to right through the store's B-tree instead of at random places), or in order of
//! first appearance in the input (Blurr's text output relies on it). Either way the result does
//! not depend on how input files interleave users.
//!
//! Memory: while reading, the buffer budget (events encoded, see [`EventSorter`]) and, while
//! it is sorted, a second copy of its index; while merging, the unspilled buffer only if
//! nothing was spilled (so at most the budget), else one decoded event and a read buffer per
//! run (events are handed over as they leave the merge, so not even one identity's events are
//! held together); in both, the identity table (one entry per distinct identity).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, Utc};
use dtc_io::RawValue;
use dtc_plan::codec;
use dtc_plan::value::{Str, Value};

use crate::error::EngineError;
use crate::event::Event;

/// Numbers identities in order of first appearance.
///
/// Looked up once per event, and an identity's events seldom follow each other in the input,
/// so nearly every lookup misses the CPU caches. Hence a table of its own rather than a general
/// hash map: open addressing over 32-byte slots that each hold a name (inline up to
/// [`Str::INLINE_CAP`] bytes), part of its hash and its id, at most half full, so that a lookup
/// mostly reads one cache line and nothing else, and [`Interner::prefetch`] can fetch that line
/// ahead while other work for the event goes on.
pub struct Interner {
    /// A power of two in length; free slots have the id [`FREE`].
    slots: Vec<Slot>,
    /// foldhash, randomly seeded: several times faster than SipHash on short keys.
    hasher: foldhash::fast::RandomState,
    names: Vec<Arc<str>>,
}

/// One table slot: aligned so that it never straddles two cache lines.
#[derive(Clone)]
#[repr(align(32))]
struct Slot {
    name: Str,
    /// The high half of the name's hash: most mismatches are told apart without comparing.
    tag: u32,
    id: u32,
}

/// The id of a free slot; no identity gets it (see [`Interner::intern_hashed`]).
const FREE: u32 = u32::MAX;

const FREE_SLOT: Slot = Slot {
    name: Str::EMPTY,
    tag: 0,
    id: FREE,
};

/// A name's hash in an [`Interner`], for [`Interner::intern_hashed`].
#[derive(Debug, Clone, Copy)]
pub struct NameHash(u64);

impl Default for Interner {
    fn default() -> Self {
        Interner {
            slots: vec![FREE_SLOT; 1024],
            hasher: foldhash::fast::RandomState::default(),
            names: Vec::new(),
        }
    }
}

impl Interner {
    pub fn hash(&self, name: &str) -> NameHash {
        NameHash(self.hasher.hash_one(name))
    }

    /// Starts fetching the slot where a lookup of the name with `hash` begins.
    pub fn prefetch(&self, hash: NameHash) {
        prefetch(&self.slots, self.home(hash));
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        self.intern_hashed(name, self.hash(name))
    }

    /// [`Interner::intern`] with the name's [`Interner::hash`].
    pub fn intern_hashed(&mut self, name: &str, hash: NameHash) -> u32 {
        let tag = (hash.0 >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        loop {
            let slot = &self.slots[at];
            if slot.id == FREE {
                break;
            }
            if slot.tag == tag && slot.name.as_str() == name {
                return slot.id;
            }
            at = (at + 1) & mask;
        }
        // Ids count the names: the four-billionth identity would take the free mark, and an
        // input never names that many (it would take hundreds of gigabytes of table first).
        let id = self.names.len() as u32;
        let shared: Arc<str> = Arc::from(name);
        self.slots[at] = Slot {
            name: Str::from(Arc::clone(&shared)),
            tag,
            id,
        };
        self.names.push(shared);
        if self.names.len() * 2 > self.slots.len() {
            self.grow();
        }
        id
    }

    fn home(&self, hash: NameHash) -> usize {
        hash.0 as usize & (self.slots.len() - 1)
    }

    /// Doubles the table, placing every name again.
    fn grow(&mut self) {
        let doubled = vec![FREE_SLOT; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|s| s.id != FREE) {
            let hash = self.hash(&slot.name);
            let mut at = self.home(hash);
            while self.slots[at].id != FREE {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }

    pub fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.names.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Each identity's position in `order`, indexed by id.
    fn ranks(&self, order: IdentityOrder) -> Vec<u32> {
        let mut ranks: Vec<u32> = (0..self.names.len() as u32).collect();
        if order == IdentityOrder::Name {
            let mut by_name = ranks.clone();
            by_name.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
            for (rank, id) in by_name.into_iter().enumerate() {
                ranks[id as usize] = rank as u32;
            }
        }
        ranks
    }
}

/// The order in which [`SortedEvents`] yields identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentityOrder {
    /// Byte order of the identity strings, which is the stores' key order.
    #[default]
    Name,
    /// Order of each identity's first event in the input.
    FirstAppearance,
}

/// The merge order: (identity id, time), compared with the id replaced by its rank. Equal keys
/// come out in input order without a sequence number: a run holds them in input order, and
/// the merge breaks ties between runs by run number, which is input order too.
type Key = (u32, i64);

/// `key` in output order: the identity's rank instead of its id.
fn ranked((id, time): Key, ranks: &[u32]) -> Key {
    (ranks.get(id as usize).copied().unwrap_or(u32::MAX), time)
}

/// Sorts events by identity (in an [`IdentityOrder`]), time and input order.
///
/// Buffered events are kept encoded, back to back in one byte arena (the spill format), with a
/// small index entry each: a few large allocations instead of a vector and strings per event,
/// so the budget is what the buffer really takes, more events fit before a spill, and freeing
/// a spilled buffer leaves no fragmented heap behind.
///
/// Neither an index entry nor an event carries its input order: the index is built in input
/// order and sorted stably, and between sorted runs the earlier run holds the earlier input
/// (the merge breaks ties by run number).
pub struct EventSorter {
    budget_bytes: usize,
    arena: Vec<u8>,
    index: Vec<Entry>,
    spill_dir: tempfile::TempDir,
    runs: Vec<PathBuf>,
    interner: Interner,
    order: IdentityOrder,
    identity_path: Option<usize>,
}

/// One buffered event: the identity (its id until the buffer is sorted, then its rank), the
/// time, and where its bytes lie in the arena.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    identity: u32,
    len: u32,
    time: i64,
    start: usize,
}

impl Entry {
    fn bytes<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        arena
            .get(self.start..self.start + self.len as usize)
            .unwrap_or_default()
    }
}

impl EventSorter {
    /// `budget_bytes`: approximate memory for buffered events before a run is spilled to a
    /// temporary directory created inside `spill_parent`.
    pub fn new(
        budget_bytes: usize,
        spill_parent: &Path,
        order: IdentityOrder,
    ) -> Result<Self, EngineError> {
        let spill_dir = tempfile::Builder::new()
            .prefix("dtc-sort-")
            .tempdir_in(spill_parent)
            .map_err(|source| EngineError::Spill {
                path: spill_parent.to_path_buf(),
                source,
            })?;
        Ok(EventSorter {
            budget_bytes,
            arena: Vec::new(),
            index: Vec::new(),
            spill_dir,
            runs: Vec::new(),
            interner: Interner::default(),
            order,
            identity_path: None,
        })
    }

    /// Declares that the value at `index` of an event's values is its identity whenever it is
    /// that string (`Identity: source.<path>`). Such a value is not buffered or spilled but
    /// restored from the identity table: it is a fifth of a typical event's bytes.
    pub fn identity_path(&mut self, index: usize) {
        self.identity_path = Some(index);
    }

    /// Buffers `event` (its values are left as they were).
    pub fn push(&mut self, identity: &str, event: &mut Event) -> Result<(), EngineError> {
        let id = self.interner.intern(identity);
        let start = self.arena.len();
        let time = event.time.timestamp_micros();
        let elided = self.identity_path.and_then(|path| {
            let value = event.values.get_mut(path)?;
            matches!(value, Value::Str(s) if s.as_str() == identity)
                .then(|| (path, std::mem::take(value)))
        });
        let encoded = encode_event(id, time, event, elided.is_some(), &mut self.arena);
        if let Some((path, value)) = elided {
            event.values[path] = value;
        }
        encoded.map_err(|e| corrupt(self.spill_dir.path(), e.to_string()))?;
        self.index_last(id, time, start)
    }

    /// The hash [`EventSorter::push_raw`] takes with `identity`. The identity's entry in the
    /// identity table is fetched from memory meanwhile: give the event's other work (parsing
    /// its time) the time to hide the wait.
    pub fn prefetch_identity(&self, identity: &str) -> NameHash {
        let hash = self.interner.hash(identity);
        self.interner.prefetch(hash);
        hash
    }

    /// Buffers an event given by the scalars of its JSON line as the extractor found them
    /// (the same bytes [`EventSorter::push`] buffers for their values): `identity` (with its
    /// [`EventSorter::prefetch_identity`] hash) is the string at the identity path (see [`EventSorter::identity_path`]), which is elided, and
    /// the positions where `dropped` is true are left out as null.
    pub fn push_raw(
        &mut self,
        (identity, hash): (&str, NameHash),
        time: DateTime<Utc>,
        line: &[u8],
        raw: &[RawValue],
        dropped: &[bool],
    ) -> Result<(), EngineError> {
        let id = self.interner.intern_hashed(identity, hash);
        let start = self.arena.len();
        let micros = time.timestamp_micros();
        let out = &mut self.arena;
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&micros.to_le_bytes());
        // As `push` does: a value left out is not elided, so it is not restored either.
        let is_dropped = |i: usize| dropped.get(i).copied().unwrap_or(false);
        let elided = self.identity_path.filter(|&path| !is_dropped(path));
        out.push(if elided.is_some() { IDENTITY_ELIDED } else { 0 });
        let row = codec::SparseRow::begin(raw.len(), out);
        for (i, value) in raw.iter().enumerate() {
            if is_dropped(i) || elided == Some(i) {
                continue;
            }
            match *value {
                RawValue::Null => {}
                RawValue::Bool(b) => row.bool(i, b, out),
                RawValue::Int(n) => row.int(i, n, out),
                RawValue::Float(f) => row.float(i, f, out),
                RawValue::Str { start, end } => {
                    let bytes = line.get(start as usize..end as usize).unwrap_or_default();
                    row.str(i, bytes, out);
                }
            }
        }
        self.index_last(id, micros, start)
    }

    /// Indexes the event just encoded at `start` of the arena, and spills when the buffer is
    /// full.
    fn index_last(&mut self, identity: u32, time: i64, start: usize) -> Result<(), EngineError> {
        let len = u32::try_from(self.arena.len() - start).map_err(|_| {
            self.arena.truncate(start);
            corrupt(
                self.spill_dir.path(),
                "an event is larger than 4 GiB encoded".into(),
            )
        })?;
        self.index.push(Entry {
            identity,
            len,
            time,
            start,
        });
        if self.buffered_bytes() >= self.budget_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn buffered_bytes(&self) -> usize {
        self.arena.len() + self.index.len() * std::mem::size_of::<Entry>()
    }

    /// Sorted runs written so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Sorts the buffer in output order. Ranks among the identities seen so far order them as
    /// the final ranks do, so runs spilled at different times merge consistently.
    ///
    /// A counting sort by rank (linear in the events), then each identity's events by time:
    /// those are in input order, which is mostly time order, and the stable adaptive sort
    /// finds such runs in linear time too. Both sorts are stable, so equal times stay in input
    /// order. The scatter needs a second index for the moment (a fraction of the budget).
    fn sort_buffer(&mut self, ranks: &[u32]) {
        let rank_of = |id: u32| ranks.get(id as usize).map_or(ranks.len(), |&r| r as usize);
        // `starts[r]`: where rank r's events begin in the sorted index (one slot more for ids
        // without a rank, which a consistent interner never hands out).
        let mut starts = vec![0usize; ranks.len() + 2];
        for entry in &self.index {
            starts[rank_of(entry.identity) + 1] += 1;
        }
        for r in 1..starts.len() {
            starts[r] += starts[r - 1];
        }
        let mut sorted = vec![Entry::default(); self.index.len()];
        let mut next = starts.clone();
        for entry in &self.index {
            let rank = rank_of(entry.identity);
            sorted[next[rank]] = Entry {
                identity: rank as u32,
                ..*entry
            };
            next[rank] += 1;
        }
        for group in starts.windows(2) {
            sorted[group[0]..group[1]].sort_by_key(|e| e.time);
        }
        self.index = sorted;
    }

    fn spill(&mut self) -> Result<(), EngineError> {
        self.sort_buffer(&self.interner.ranks(self.order));
        let path = self
            .spill_dir
            .path()
            .join(format!("run-{:05}", self.runs.len()));
        let io_err = |source| EngineError::Spill {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for (i, entry) in self.index.iter().enumerate() {
            // In key order the events are scattered over the arena (see `Source::next_into`).
            if let Some(ahead) = self.index.get(i + PREFETCH_DISTANCE) {
                prefetch(&self.arena, ahead.start);
            }
            let bytes = entry.bytes(&self.arena);
            out.write_all(&entry.len.to_le_bytes())
                .and_then(|_| out.write_all(bytes))
                .map_err(io_err)?;
        }
        out.flush().map_err(io_err)?;
        self.arena.clear();
        self.index.clear();
        self.runs.push(path);
        Ok(())
    }

    /// Ends input; returns the events grouped by identity, in order.
    pub fn finish(mut self) -> Result<SortedEvents, EngineError> {
        if !self.runs.is_empty() {
            // The merge runs alongside the store and the window operator: once the input did
            // not fit, the rest goes to disk too and the buffer's memory is returned, rather
            // than holding up to a whole budget for the tail of the input.
            if !self.index.is_empty() {
                self.spill()?;
            }
            self.arena = Vec::new();
            self.index = Vec::new();
        }
        let ranks = self.interner.ranks(self.order);
        self.sort_buffer(&ranks);
        let mut sources = Vec::with_capacity(self.runs.len() + 1);
        for path in &self.runs {
            let file = File::open(path).map_err(|source| EngineError::Spill {
                path: path.clone(),
                source,
            })?;
            sources.push(Source::Run {
                reader: BufReader::with_capacity(1 << 16, file),
                path: path.clone(),
                buf: Vec::new(),
            });
        }
        sources.push(Source::Memory {
            arena: std::mem::take(&mut self.arena),
            index: std::mem::take(&mut self.index).into_iter(),
            path: self.spill_dir.path().to_path_buf(),
        });
        let mut merged = SortedEvents {
            heap: BinaryHeap::new(),
            heads: sources.iter().map(|_| None).collect(),
            sources,
            restore: Restore {
                ranks,
                names: self.interner,
                identity_path: self.identity_path,
            },
            _spill_dir: self.spill_dir,
        };
        for source in 0..merged.sources.len() {
            let next = read_next(
                &mut merged.sources,
                &mut merged.heads,
                &merged.restore,
                source,
            )?;
            if let Some(entry) = next {
                merged.heap.push(entry);
            }
        }
        Ok(merged)
    }
}

enum Source {
    /// The events still buffered at the end, decoded one at a time.
    Memory {
        arena: Vec<u8>,
        index: std::vec::IntoIter<Entry>,
        /// Named in errors (the buffer stands for a run that was not spilled).
        path: PathBuf,
    },
    Run {
        reader: BufReader<File>,
        path: PathBuf,
        buf: Vec<u8>,
    },
}

impl Source {
    /// Decodes the source's next event into `head` (reusing the event there); `false` at the
    /// end of the source.
    fn next_into(
        &mut self,
        head: &mut Option<Head>,
        restore: &Restore,
    ) -> Result<bool, EngineError> {
        let (bytes, path) = match self {
            Source::Memory { arena, index, path } => {
                let Some(entry) = index.next() else {
                    return Ok(false);
                };
                // The index is in key order, the arena in arrival order: each event is a cache
                // miss unless it is fetched ahead while the events before it are applied.
                if let Some(ahead) = index.as_slice().get(PREFETCH_DISTANCE) {
                    prefetch(arena, ahead.start);
                }
                (entry.bytes(arena), &*path)
            }
            Source::Run { reader, path, buf } => {
                let spill_err = |source| EngineError::Spill {
                    path: path.clone(),
                    source,
                };
                // Nearly every record lies whole in the read buffer: decoded there, it is not
                // copied out first. One that straddles the buffer's end is read into `buf`.
                let available = reader.fill_buf().map_err(spill_err)?;
                if let Some((record, used)) = buffered_record(available) {
                    let decoded = decode_event_into(record, head, restore);
                    reader.consume(used);
                    return decoded
                        .map(|()| true)
                        .map_err(|detail| corrupt(path, detail));
                }
                let mut len = [0u8; 4];
                match reader.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                    Err(source) => return Err(spill_err(source)),
                }
                buf.resize(u32::from_le_bytes(len) as usize, 0);
                reader.read_exact(buf).map_err(spill_err)?;
                (&buf[..], &*path)
            }
        };
        decode_event_into(bytes, head, restore).map_err(|detail| corrupt(path, detail))?;
        Ok(true)
    }
}

fn corrupt(path: &Path, detail: String) -> EngineError {
    EngineError::SpillCorrupt {
        path: path.to_path_buf(),
        detail,
    }
}

/// Decodes `source`'s next event into its head and returns the event's heap entry; at the end
/// of the source, clears the head and returns `None`.
/// (Takes the merge's fields rather than the merge, so that the heap can stay borrowed.)
fn read_next(
    sources: &mut [Source],
    heads: &mut [Option<Head>],
    restore: &Restore,
    source: usize,
) -> Result<Option<Reverse<(Key, usize)>>, EngineError> {
    let head = &mut heads[source];
    if sources[source].next_into(head, restore)?
        && let Some(head) = head
    {
        return Ok(Some(Reverse((
            ranked((head.id, head.micros), &restore.ranks),
            source,
        ))));
    }
    *head = None;
    Ok(None)
}

/// The length-prefixed record at the start of `available` and the bytes it takes with its
/// prefix, if it lies whole there.
fn buffered_record(available: &[u8]) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(available.get(..4)?.try_into().ok()?) as usize;
    let record = available.get(4..4 + len)?;
    Some((record, 4 + len))
}

/// How many events ahead of the one decoded the in-memory source fetches.
const PREFETCH_DISTANCE: usize = 16;

#[cfg(target_arch = "x86_64")]
fn prefetch<T>(items: &[T], at: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    if let Some(b) = items.get(at) {
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never faults: it only
        // hints the cache, even for an address it cannot load.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(b).cast()) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch<T>(_items: &[T], _at: usize) {}

/// The merged, sorted events, one identity at a time: [`SortedEvents::next_identity`] names
/// it, [`SortedEvents::for_each_event`] hands over its events.
///
/// Each source's next event is decoded into the same place as the one before it, so a merge
/// allocates nothing per event and most strings of an event (the identity's session, the event
/// name) are the previous event's, kept rather than decoded again.
pub struct SortedEvents {
    /// Ranked keys of the sources' next events.
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    /// Each source's next event; `None` once the source is exhausted.
    heads: Vec<Option<Head>>,
    sources: Vec<Source>,
    restore: Restore,
    _spill_dir: tempfile::TempDir,
}

/// A source's next event, with what decoding the event after it reuses.
#[derive(Debug, Clone, PartialEq)]
struct Head {
    id: u32,
    /// The event's time as spilled.
    micros: i64,
    /// The event's identity value was elided and restored from the identity table.
    restored_identity: bool,
    event: Event,
}

/// What decoding needs besides the record: the ranks for its merge key, and the identity
/// table and path to restore an elided identity value (see [`EventSorter::identity_path`]).
struct Restore {
    ranks: Vec<u32>,
    names: Interner,
    identity_path: Option<usize>,
}

impl SortedEvents {
    /// The rank of the next event's identity, and its source.
    fn peek(&self) -> Option<(u32, usize)> {
        self.heap
            .peek()
            .map(|Reverse(((rank, _), source))| (*rank, *source))
    }

    /// The identity whose events [`SortedEvents::for_each_event`] yields next; `None` once all
    /// events were yielded.
    pub fn next_identity(&self) -> Option<Arc<str>> {
        let (_, source) = self.peek()?;
        let head = self.heads.get(source)?.as_ref()?;
        self.restore.names.name(head.id).cloned()
    }

    /// Calls `f` with each event of the next identity, in (time, input order).
    pub fn for_each_event(&mut self, mut f: impl FnMut(&Event)) -> Result<(), EngineError> {
        let Some((rank, _)) = self.peek() else {
            return Ok(());
        };
        // The source just read from stays at the top and is sifted down from there, rather than
        // popped and pushed again: it is usually still the smallest (a run holds an identity's
        // events together, and runs of time-ordered input hold consecutive stretches of time).
        while let Some(mut top) = self.heap.peek_mut() {
            let Reverse(((next_rank, _), source)) = *top;
            if next_rank != rank {
                break;
            }
            if let Some(head) = &self.heads[source] {
                f(&head.event);
            }
            match read_next(&mut self.sources, &mut self.heads, &self.restore, source)? {
                Some(entry) => *top = entry,
                None => {
                    PeekMut::pop(top);
                }
            }
        }
        Ok(())
    }

    /// Distinct identities seen in the input.
    pub fn identities(&self) -> usize {
        self.restore.names.len()
    }
}

/// Flag bits of a spilled event.
const HAS_WHOLE: u8 = 1;
/// The identity's value was left out at the identity path (see [`EventSorter::identity_path`]).
const IDENTITY_ELIDED: u8 = 2;

/// Appends one event in the spill format to `out`; `micros` is its time, `identity_elided`
/// says that its identity value was taken out of its values.
fn encode_event(
    id: u32,
    micros: i64,
    event: &Event,
    identity_elided: bool,
    out: &mut Vec<u8>,
) -> Result<(), codec::CodecError> {
    let start = out.len();
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&micros.to_le_bytes());
    let whole = if event.whole.is_some() { HAS_WHOLE } else { 0 };
    let elided = if identity_elided { IDENTITY_ELIDED } else { 0 };
    out.push(whole | elided);
    let encoded =
        codec::encode_sparse_values(&event.values, out).and_then(|()| match &event.whole {
            Some(whole) => codec::encode_value(whole, out),
            None => Ok(()),
        });
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

/// Decodes one event into `slot`, reusing the event there: its vector, and its strings where
/// the new event has the same (see [`codec::decode_sparse_values_into`]).
fn decode_event_into(
    bytes: &[u8],
    slot: &mut Option<Head>,
    restore: &Restore,
) -> Result<(), String> {
    let header = 4 + 8 + 1;
    if bytes.len() < header {
        return Err(format!("record of {} bytes is too short", bytes.len()));
    }
    let mut u32b = [0u8; 4];
    let mut u64b = [0u8; 8];
    u32b.copy_from_slice(&bytes[0..4]);
    let id = u32::from_le_bytes(u32b);
    u64b.copy_from_slice(&bytes[4..12]);
    let micros = i64::from_le_bytes(u64b);
    let flags = bytes[12];
    let has_whole = flags & HAS_WHOLE != 0;
    let body = &bytes[header..];
    let time = time_from_micros(micros, slot.as_ref().map(|h| (h.micros, h.event.time)))
        .ok_or_else(|| format!("time {micros} µs is out of range"))?;
    let head = slot.get_or_insert_with(|| Head {
        id,
        micros,
        restored_identity: false,
        event: Event {
            time,
            values: Vec::new(),
            whole: None,
        },
    });
    let same_identity = head.id == id && head.restored_identity;
    let event = &mut head.event;
    let elided = if flags & IDENTITY_ELIDED != 0 {
        let path = restore
            .identity_path
            .ok_or("an event without its identity value, but no identity path")?;
        let name = restore
            .names
            .name(id)
            .ok_or_else(|| format!("identity {id} is not in the identity table"))?;
        // The previous event's value, the same string for all but an identity's first event:
        // kept rather than built again.
        let kept = event.values.get_mut(path).map(std::mem::take);
        Some((path, name, kept))
    } else {
        None
    };
    let restored_identity = elided.is_some();
    let used =
        codec::decode_sparse_values_into(body, &mut event.values).map_err(|e| e.to_string())?;
    if let Some((path, name, kept)) = elided {
        let value = event
            .values
            .get_mut(path)
            .ok_or_else(|| format!("identity path {path} is past the event's values"))?;
        *value = match kept {
            // Restored for the previous event of this identity: its name, not compared again.
            Some(Value::Str(s)) if same_identity || *s == **name => Value::Str(s),
            _ => Value::Str(Str::from(&**name)),
        };
    }
    let rest = &body[used..];
    event.whole = if has_whole {
        Some(codec::decode_value(rest).map_err(|e| e.to_string())?)
    } else if rest.is_empty() {
        None
    } else {
        return Err(format!("{} unexpected bytes after the values", rest.len()));
    };
    event.time = time;
    head.id = id;
    head.micros = micros;
    head.restored_identity = restored_identity;
    Ok(())
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The time `micros` after the epoch, built on `near` (another time and its micros) when both
/// fall on one UTC day. Finding the calendar date is most of the cost of
/// [`DateTime::from_timestamp_micros`], and an identity's consecutive events mostly share it.
fn time_from_micros(micros: i64, near: Option<(i64, DateTime<Utc>)>) -> Option<DateTime<Utc>> {
    match near {
        Some((near_micros, near_time))
            if near_micros.div_euclid(MICROS_PER_DAY) == micros.div_euclid(MICROS_PER_DAY) =>
        {
            let of_day = micros.rem_euclid(MICROS_PER_DAY);
            let time = NaiveTime::from_num_seconds_from_midnight_opt(
                (of_day / 1_000_000) as u32,
                (of_day % 1_000_000) as u32 * 1_000,
            )?;
            Some(near_time.date_naive().and_time(time).and_utc())
        }
        _ => DateTime::from_timestamp_micros(micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtc_plan::value::Value;

    fn ev(secs: i64, tag: &str) -> Event {
        Event {
            time: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
            values: vec![Value::str(tag), Value::Int(secs)],
            whole: None,
        }
    }

    fn drain(mut sorted: SortedEvents) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        while let Some(id) = sorted.next_identity() {
            let mut tags = Vec::new();
            sorted
                .for_each_event(|e| {
                    tags.push(match &e.values[0] {
                        Value::Str(s) => s.to_string(),
                        other => format!("{other:?}"),
                    })
                })
                .expect("merge");
            out.push((id.to_string(), tags));
        }
        out
    }

    fn run(budget: usize, order: IdentityOrder) -> (Vec<(String, Vec<String>)>, usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sorter = EventSorter::new(budget, dir.path(), order).expect("sorter");
        let input = [
            ("b", ev(10, "b10")),
            ("a", ev(30, "a30")),
            ("a", ev(10, "a10-first")),
            ("b", ev(5, "b5")),
            ("a", ev(10, "a10-second")),
            ("a", ev(20, "a20")),
        ];
        for (id, mut e) in input {
            sorter.push(id, &mut e).expect("push");
        }
        let runs = sorter.spilled_runs();
        (drain(sorter.finish().expect("finish")), runs)
    }

    fn expected_a() -> (String, Vec<String>) {
        let tags = ["a10-first", "a10-second", "a20", "a30"];
        ("a".to_string(), tags.map(String::from).to_vec())
    }

    fn expected_b() -> (String, Vec<String>) {
        ("b".to_string(), vec!["b5".to_string(), "b10".to_string()])
    }

    #[test]
    fn interner_numbers_short_and_long_names_alike() {
        let mut interner = Interner::default();
        // Around the length up to which a `Str` is inline.
        let long = "x".repeat(24);
        let names = ["a", "", &long, &"y".repeat(23), "a\0", "a"];
        let ids: Vec<u32> = names.iter().map(|n| interner.intern(n)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 0]);
        assert_eq!(interner.intern(&long.clone()), 2);
        assert_eq!(interner.name(4).map(|n| &**n), Some("a\0"));
        assert_eq!(interner.len(), 5);
    }

    /// Ids stay those of first appearance while the table doubles several times, for names
    /// kept inline and names on the heap, looked up with and without a prefetched hash.
    #[test]
    fn interner_keeps_ids_as_its_table_grows() {
        let mut interner = Interner::default();
        let name = |i: usize| {
            if i.is_multiple_of(3) {
                format!("a long identity name, past the inline length: {i}")
            } else {
                format!("U{i:08X}")
            }
        };
        let count = 10_000;
        for i in 0..count {
            assert_eq!(interner.intern(&name(i)) as usize, i);
        }
        assert!(
            interner.slots.len() >= 2 * count,
            "{}",
            interner.slots.len()
        );
        for i in (0..count).rev() {
            let hash = interner.hash(&name(i));
            interner.prefetch(hash);
            assert_eq!(interner.intern_hashed(&name(i), hash) as usize, i);
            assert_eq!(
                interner.name(i as u32).map(|n| n.to_string()),
                Some(name(i))
            );
        }
        assert_eq!(interner.len(), count);
    }

    #[test]
    fn groups_by_first_appearance_then_time_then_input_order() {
        let (out, runs) = run(usize::MAX, IdentityOrder::FirstAppearance);
        assert_eq!(runs, 0);
        assert_eq!(out, vec![expected_b(), expected_a()]);
    }

    #[test]
    fn groups_by_name_then_time_then_input_order() {
        let (out, runs) = run(usize::MAX, IdentityOrder::Name);
        assert_eq!(runs, 0);
        assert_eq!(out, vec![expected_a(), expected_b()]);
    }

    fn no_restore() -> Restore {
        Restore {
            ranks: Vec::new(),
            names: Interner::default(),
            identity_path: None,
        }
    }

    #[test]
    fn spilled_events_round_trip_with_and_without_the_whole_event() {
        let mut buf = Vec::new();
        let mut with_whole = ev(7, "x");
        with_whole.whole = Some(Value::list(vec![Value::Int(1), Value::str("w")]));
        let restore = no_restore();
        // Decoded into a fresh slot and into one holding another event, as the merge does.
        let mut reused = None;
        for event in [ev(7, "x"), with_whole, ev(8, "y"), ev(8, "y")] {
            buf.clear();
            encode_event(9, event.time.timestamp_micros(), &event, false, &mut buf)
                .expect("encode");
            let mut fresh = None;
            decode_event_into(&buf, &mut fresh, &restore).expect("decode");
            let decoded = |head: &Option<Head>| head.as_ref().map(|h| (h.id, h.event.clone()));
            assert_eq!(decoded(&fresh), Some((9, event.clone())));
            decode_event_into(&buf, &mut reused, &restore).expect("decode into a used slot");
            assert_eq!(decoded(&reused), Some((9, event)));
        }
        buf.clear();
        let event = ev(7, "x");
        encode_event(9, event.time.timestamp_micros(), &event, false, &mut buf).expect("encode");
        buf.push(0);
        assert!(
            decode_event_into(&buf, &mut None, &restore).is_err(),
            "trailing bytes are corruption"
        );
        buf.clear();
        encode_event(9, event.time.timestamp_micros(), &event, true, &mut buf).expect("encode");
        let err = decode_event_into(&buf, &mut None, &restore).expect_err("no identity path");
        assert!(err.contains("no identity path"), "{err}");
    }

    /// Built on a nearby time or not, a time is chrono's: on the same day and on the days
    /// around it, before and after the epoch, at the ends of a day and of chrono's range.
    #[test]
    fn times_built_on_a_nearby_time_are_chronos() {
        let day = MICROS_PER_DAY;
        let mut micros = vec![
            0,
            1,
            -1,
            day - 1,
            day,
            -day,
            -day - 1,
            1_514_764_859_123_456,
        ];
        micros.extend([
            i64::MIN,
            i64::MAX,
            DateTime::<Utc>::MAX_UTC.timestamp_micros(),
        ]);
        let offsets = [0, 1, -1, 999_999, day / 2, day - 1, day, -day, 3 * day + 7];
        for &base in &micros {
            for &offset in &offsets {
                let Some(target) = base.checked_add(offset) else {
                    continue;
                };
                let near = DateTime::from_timestamp_micros(base).map(|t| (base, t));
                assert_eq!(
                    time_from_micros(target, near),
                    DateTime::from_timestamp_micros(target),
                    "{target} near {base}"
                );
            }
        }
    }

    /// With an identity path, a value equal to the identity is left out of the buffer and the
    /// runs and restored on the way out; other values there (another string, a number, null)
    /// are kept as they are. In memory and spilled, and across identities, so that a restored
    /// value is never the previous identity's.
    #[test]
    fn identity_values_are_restored_from_the_identity_table() {
        let event = |secs: i64, identity: Value| Event {
            time: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
            values: vec![identity, Value::Int(secs)],
            whole: None,
        };
        let long = "a-long-identity-name-past-the-inline-size";
        let input = [
            ("b", event(1, Value::str("b"))),
            (long, event(2, Value::str(long))),
            ("b", event(3, Value::str("not b"))),
            ("a", event(4, Value::str("a"))),
            ("a", event(5, Value::Int(7))),
            ("b", event(6, Value::str("b"))),
            ("a", event(7, Value::Null)),
            ("a", event(8, Value::str("a"))),
            (long, event(9, Value::str(long))),
        ];
        for budget in [usize::MAX, 1] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut sorter =
                EventSorter::new(budget, dir.path(), IdentityOrder::Name).expect("sorter");
            sorter.identity_path(0);
            for (id, e) in &input {
                let mut pushed = e.clone();
                sorter.push(id, &mut pushed).expect("push");
                assert_eq!(&pushed, e, "push leaves the values as they were");
            }
            let mut sorted = sorter.finish().expect("finish");
            let mut out = Vec::new();
            while let Some(id) = sorted.next_identity() {
                sorted
                    .for_each_event(|e| out.push((id.to_string(), e.clone())))
                    .expect("merge");
            }
            let mut expected: Vec<(String, Event)> = input
                .iter()
                .map(|(id, e)| (id.to_string(), e.clone()))
                .collect();
            expected.sort_by_key(|(id, e)| (id.clone(), e.time));
            assert_eq!(out, expected, "budget {budget}");
        }
    }

    /// The counting sort against a plain comparison sort, over identities without a rank,
    /// equal times and times out of input order.
    #[test]
    fn buffer_sort_orders_by_rank_then_time_then_input_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sorter =
            EventSorter::new(usize::MAX, dir.path(), IdentityOrder::Name).expect("sorter");
        let ranks = [2, 0, 1];
        let mut state = 7u64;
        let mut random = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        sorter.index = (0..2_000)
            .map(|start| Entry {
                identity: random(4) as u32,
                len: 0,
                time: random(50) as i64 - 25,
                start,
            })
            .collect();
        let mut expected = sorter.index.clone();
        expected.sort_by_key(|e| {
            let rank = ranks.get(e.identity as usize).map_or(3, |&r| r);
            (rank, e.time, e.start)
        });
        sorter.sort_buffer(&ranks);
        let order = |index: &[Entry]| index.iter().map(|e| e.start).collect::<Vec<_>>();
        assert_eq!(order(&sorter.index), order(&expected));
        let identities: Vec<u32> = sorter.index.iter().map(|e| e.identity).collect();
        assert!(identities.is_sorted(), "ids are replaced by their ranks");
    }

    #[test]
    fn run_records_are_read_whole_in_the_buffer_or_across_its_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("run");
        let events: Vec<Event> = (0..20).map(|i| ev(i, &"x".repeat(i as usize))).collect();
        let mut bytes = Vec::new();
        for e in &events {
            let mut record = Vec::new();
            encode_event(3, e.time.timestamp_micros(), e, false, &mut record).expect("encode");
            bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&record);
        }
        std::fs::write(&path, &bytes).expect("write run");
        // Buffers smaller than, about as large as, and larger than a record.
        for capacity in [1, 7, 40, 1 << 16] {
            let file = File::open(&path).expect("open run");
            let mut source = Source::Run {
                reader: BufReader::with_capacity(capacity, file),
                path: path.clone(),
                buf: Vec::new(),
            };
            let mut head = None;
            let mut read = Vec::new();
            while source.next_into(&mut head, &no_restore()).expect("read") {
                read.push(head.clone().expect("an event").event);
            }
            assert_eq!(read, events, "buffer of {capacity} bytes");
        }
    }

    #[test]
    fn spilling_gives_the_same_order_as_memory() {
        // `a` first appears after `b` was spilled: its rank among the identities seen later
        // must still sort it before `b` when the runs are merged.
        for order in [IdentityOrder::Name, IdentityOrder::FirstAppearance] {
            let (in_memory, _) = run(usize::MAX, order);
            let (spilled, runs) = run(1, order);
            assert!(
                runs >= 5,
                "a 1-byte budget spills every event, got {runs} runs"
            );
            assert_eq!(spilled, in_memory, "{order:?}");
        }
    }
}
