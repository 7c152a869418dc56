//! Work spread over the machine's cores, with results in a fixed order.

/// The cores this process may use, asked of the system once. Each
/// `std::thread::available_parallelism` call reads the process's cgroup files again (three
/// files opened and read under a container): a 10-login plan asked 14 times.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Applies `work` to every item on up to one thread per core, each thread taking the next
/// items not yet taken; returns the results in the order of `items`.
///
/// Threads take items a block at a time (a block is a 64th of a thread's share, so the
/// threads still even out uneven work) and keep each block's results together: the results
/// are then put in order with one allocation of the exact size. Collected one by one into
/// growing lists and sorted, 100,000 results were copied three times into fresh memory,
/// and fresh memory costs its zeroing (a tenth of a plan of 100,000 small files).
pub fn map_in_order<I, O, F>(items: Vec<I>, work: F) -> Vec<O>
where
    I: Send,
    O: Send,
    F: Fn(I) -> O + Sync,
{
    map_in_blocks(items, work).into_vec()
}

/// The results of [`map_in_blocks`]: in the order of the items, in the blocks the threads
/// made them in.
pub struct InOrder<O>(Vec<Vec<O>>);

impl<O> InOrder<O> {
    /// How many results.
    pub fn len(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Vec::is_empty)
    }

    /// The results, in order.
    pub fn iter(&self) -> impl Iterator<Item = &O> {
        self.0.iter().flatten()
    }

    /// The results, in order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut O> {
        self.0.iter_mut().flatten()
    }

    /// The results in one list (moved into one allocation of the exact size).
    pub fn into_vec(self) -> Vec<O> {
        let mut blocks = self.0;
        if blocks.len() == 1 {
            return blocks.pop().unwrap_or_default();
        }
        let mut out = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
        for block in blocks {
            out.extend(block);
        }
        out
    }
}

impl<O> IntoIterator for InOrder<O> {
    type Item = O;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<O>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

/// [`map_in_order`], the results left in the blocks the threads made them in: a caller that
/// goes through them in order needs no list of them all (for 100,000 files hashed, 12 MB
/// copied into fresh memory at the end of a plan's hashing, a quarter of what came after it).
pub fn map_in_blocks<I, O, F>(items: Vec<I>, work: F) -> InOrder<O>
where
    I: Send,
    O: Send,
    F: Fn(I) -> O + Sync,
{
    let mut blocks = Vec::new();
    in_blocks(items, work, |first, results| blocks.push((first, results)));
    blocks.sort_unstable_by_key(|(first, _)| *first);
    InOrder(blocks.into_iter().map(|(_, results)| results).collect())
}

/// [`map_in_order`], each result handed to `consume` on the calling thread, in the order of
/// `items`, as soon as it and every result before it are made: what is done with the
/// results (merging 100,000 parsed files, a thirtieth of a `validate`) overlaps the work
/// instead of following it on one core while the others wait.
pub fn map_each_in_order<I, O, F>(items: Vec<I>, work: F, mut consume: impl FnMut(O))
where
    I: Send,
    O: Send,
    F: Fn(I) -> O + Sync,
{
    // Blocks come in the order they are finished; each waits here until the ones before it
    // have been handed on.
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0;
    in_blocks(items, work, |first, results| {
        waiting.insert(first, results);
        while let Some(results) = waiting.remove(&next) {
            next += results.len();
            results.into_iter().for_each(&mut consume);
        }
    });
    assert!(waiting.is_empty(), "every block handed on in order");
}

/// Applies `work` to every item on up to one thread per core, each thread taking the next
/// block of items not yet taken; each block's results are handed to `block` on the calling
/// thread as soon as they are made, with the place of the block's first item (one block of
/// all the items, on this thread, when there is one core or one item).
fn in_blocks<I, O, F>(items: Vec<I>, work: F, mut block: impl FnMut(usize, Vec<O>))
where
    I: Send,
    O: Send,
    F: Fn(I) -> O + Sync,
{
    let threads = cores().min(items.len());
    if threads <= 1 {
        block(0, items.into_iter().map(work).collect());
        return;
    }
    let handout = Handout::of(items, threads);
    std::thread::scope(|scope| {
        let (done, blocks) = std::sync::mpsc::channel::<(usize, Vec<O>)>();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let done = done.clone();
                let (handout, work) = (&handout, &work);
                scope.spawn(move || {
                    loop {
                        let taken = handout.take();
                        let Some(&(first, _)) = taken.first() else {
                            return;
                        };
                        let results = taken.into_iter().map(|(_, item)| work(item)).collect();
                        if done.send((first, results)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(done);
        for (first, results) in blocks {
            block(first, results);
        }
        for worker in workers {
            worker.join().expect("a worker thread does not panic");
        }
    });
}

/// Items handed out to threads a block at a time, each with its place in the list. A block
/// is a 64th of a thread's share, so the threads still even out uneven work.
struct Handout<I> {
    items: std::sync::Mutex<std::iter::Enumerate<std::vec::IntoIter<I>>>,
    block: usize,
}

impl<I> Handout<I> {
    fn of(items: Vec<I>, threads: usize) -> Handout<I> {
        Handout {
            block: (items.len() / (threads * 64)).max(1),
            items: std::sync::Mutex::new(items.into_iter().enumerate()),
        }
    }

    /// The next block (empty once every item is taken).
    fn take(&self) -> Vec<(usize, I)> {
        let mut items = self
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        items.by_ref().take(self.block).collect()
    }
}

/// Drops `value` on a thread of its own, so that freeing it (for an incremental plan of
/// 100,000 files, the index's entries and the files' names: a sixth of what came after the
/// hashing) overlaps the work after it. A drop writes nothing, so the process may end
/// before it is done. When no thread can be started, `value` is dropped here.
pub fn drop_aside<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        for n in [1, 2, 3, 127, 128, 129, 1000, 100_003] {
            let items: Vec<u64> = (0..n).collect();
            let out = super::map_in_order(items.clone(), |i| i * 2);
            assert_eq!(out, (0..n).map(|i| i * 2).collect::<Vec<_>>());
            let mut blocks = super::map_in_blocks(items, |i| i * 3);
            assert_eq!(blocks.len(), n as usize);
            assert!(blocks.iter().copied().eq((0..n).map(|i| i * 3)));
            blocks.iter_mut().for_each(|i| *i += 1);
            assert!(blocks.into_iter().eq((0..n).map(|i| i * 3 + 1)));
        }
        assert!(super::map_in_order(Vec::<u8>::new(), |i| i).is_empty());
        for n in [0, 1, 2, 3, 129, 100_003] {
            let mut seen = Vec::new();
            super::map_each_in_order((0..n).collect(), |i: u64| i * 5, |o| seen.push(o));
            assert_eq!(seen, (0..n).map(|i| i * 5).collect::<Vec<_>>());
        }
        // What is dropped aside is dropped.
        let (sent, got) = std::sync::mpsc::channel::<()>();
        super::drop_aside(sent);
        let waited = got.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(waited, Err(std::sync::mpsc::RecvTimeoutError::Disconnected));
    }
}
